import KafkaProtocol
import NIOCore
import SluiceBroker
import SluiceTestSupport
import Testing

/// Produce walks every record of every batch (decompressed when compressed) before
/// appending: a batch with a valid CRC but undecodable records is refused, the partition
/// gets nothing, and the next sound batch is appended as usual.
@Suite struct ProduceRecordValidationTests {
  /// A batch around `section` (records, compressed already when `codec` is not none) with
  /// a valid CRC: it passes every header check.
  static func rawBatch(_ section: [UInt8], count: Int32, codec: CompressionCodec = .none) throws -> ByteBuffer
  {
    var out = ByteBuffer()
    out.writeInteger(Int64(0))
    out.writeInteger(Int32(49 + section.count))
    out.writeInteger(Int32(-1))
    out.writeInteger(Int8(2))
    out.writeInteger(UInt32(0))
    out.writeInteger(Int16(codec.rawValue))
    out.writeInteger(count - 1)
    out.writeInteger(Int64(1000))
    out.writeInteger(Int64(1000))
    out.writeInteger(Int64(-1))
    out.writeInteger(Int16(-1))
    out.writeInteger(Int32(-1))
    out.writeInteger(count)
    out.writeBytes(section)
    var batch = try RecordBatch(out)
    batch.updateCRC()
    try batch.validate(.clientProduce)
    return batch.buffer
  }

  /// The records section of a builder-made batch of `values` with offset deltas `deltas`.
  static func records(_ values: [String], deltas: [Int32]) -> [UInt8] {
    var out = ByteBuffer()
    for (value, delta) in zip(values, deltas) {
      var body = ByteBuffer()
      body.writeInteger(Int8(0))
      body.writeZigZagVarInt64(0)
      body.writeZigZagVarInt32(delta)
      body.writeZigZagVarInt32(-1)
      body.writeZigZagVarInt32(Int32(value.utf8.count))
      body.writeString(value)
      body.writeZigZagVarInt32(0)
      out.writeZigZagVarInt32(Int32(body.readableBytes))
      out.writeBuffer(&body)
    }
    return Array(out.readableBytesView)
  }

  static func compressed(_ codec: CompressionCodec, _ bytes: [UInt8]) throws -> [UInt8] {
    Array(try codec.compress(ByteBuffer(bytes: bytes)).readableBytesView)
  }

  /// Produce v8+ names the record at fault in `record_errors` (KIP-467), beside the
  /// partition's error message; before v8 the field does not exist, only the code is sent.
  @Test func recordErrorsNameTheRecordAtFault() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    let values = ["a", "b", "c", "d", "e"]
    var section = Self.records(values, deltas: [0, 1, 2, 3, 4])
    // The third record's value length (one byte, after its 1-byte length, attributes,
    // timestampDelta, offsetDelta and null key) runs past the record.
    let third = Self.records(Array(values[0..<2]), deltas: [0, 1]).count
    #expect(section[third + 5] == 2)  // zigzag 1
    section[third + 5] = 40
    let malformed = try Self.rawBatch(section, count: 5)
    let unordered = try Self.rawBatch(
      try Self.compressed(.gzip, Self.records(values, deltas: [0, 1, 3, 2, 4])), count: 5, codec: .gzip)

    for (name, records, fragment) in [
      ("malformed", malformed, "record 2 of 5: value length 20"),
      ("unordered", unordered, "record 2 of 5: offsetDelta 3"),
    ] {
      for version: Int16 in [8, 9, 10] {
        let response = try await Self.produceResponse(broker, records: records, version: version)
        let answer = try #require(response.responses.first?.partitionResponses.first)
        #expect(answer.errorCode == ErrorCode.invalidRecord.rawValue, "\(name) v\(version)")
        #expect(answer.errorMessage?.hasPrefix("Batch 0: \(fragment)") == true, "\(name): \(answer)")
        #expect(answer.recordErrors.count == 1, "\(name) v\(version)")
        let recordError = answer.recordErrors.first
        #expect(recordError?.batchIndex == 2, "\(name) v\(version)")
        #expect(recordError?.batchIndexErrorMessage?.hasPrefix(fragment) == true, "\(name): \(answer)")
        // The record error survives the wire.
        var wire = ByteBuffer()
        try response.encode(to: &wire, version: version)
        let decoded = try ProduceResponse(from: &wire, version: version)
        #expect(decoded.responses.first?.partitionResponses.first?.recordErrors == answer.recordErrors)
      }
      let old = try await Self.produceResponse(broker, records: records, version: 7)
      let answer = try #require(old.responses.first?.partitionResponses.first)
      #expect(answer.errorCode == ErrorCode.invalidRecord.rawValue, "\(name) v7")
      #expect(answer.errorMessage == nil && answer.recordErrors.isEmpty, "\(name) v7")
      var wire = ByteBuffer()
      try old.encode(to: &wire, version: 7)
      #expect(try ProduceResponse(from: &wire, version: 7) == old)
    }
    // A batch at fault as a whole (a record missing, trailing bytes, undecodable
    // compressed data) names no record.
    let whole = [
      try Self.rawBatch(Self.records(["xxxxxxxxxx", "yyyyyyyyyy"], deltas: [0, 1]), count: 3),
      try Self.rawBatch(Self.records(["x", "y"], deltas: [0, 1]) + [0], count: 2),
      try Self.rawBatch([0x00] + Array("not gzip at all, not at all".utf8), count: 2, codec: .gzip),
    ]
    for records in whole {
      let answer = await BrokerTests.produce(broker, topic: "t", records: records, version: 9)
      #expect(answer?.errorCode == ErrorCode.invalidRecord.rawValue, "\(String(describing: answer))")
      #expect(answer?.recordErrors == [], "\(String(describing: answer))")
    }
    #expect(broker.topic("t")?.partition(0)?.log.logEndOffset == 0)
    await broker.shutdown()
  }

  /// The whole Produce response to one batch for partition 0 of topic t.
  static func produceResponse(_ broker: Broker, records: ByteBuffer, version: Int16) async throws
    -> ProduceResponse
  {
    let request = ProduceRequest(
      acks: -1, timeoutMs: 1000,
      topicData: [.init(name: "t", partitionData: [.init(index: 0, records: records)])])
    let reply = await broker.handle(
      KafkaRequest(correlationId: 1, clientId: "t", apiVersion: version, body: .produce(request)))
    guard case .produce(let response) = reply else {
      throw KafkaProtocolError(.unknownApiKey, "no Produce response")
    }
    return response
  }

  @Test func refusedBatchesAppendNothing() async throws {
    let (broker, _) = try BrokerTests.makeBroker { $0.maxDecompressedBatchBytes = 256 << 10 }
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    let first = await BrokerTests.produce(broker, topic: "t", records: try BrokerTests.batch(["a", "b"]))
    #expect(first?.errorCode == 0 && first?.baseOffset == 0)

    let garbage: [UInt8] = (0..<40).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
    let zeros = [UInt8](repeating: 0, count: 1 << 20)
    let refusals: [(String, ByteBuffer, ErrorCode, String)] = [
      ("garbage records", try Self.rawBatch(garbage, count: 2), .invalidRecord, "record 0 of 2"),
      (
        "garbage gzip payload", try Self.rawBatch([0x00] + garbage, count: 2, codec: .gzip), .invalidRecord,
        "gzip"
      ),
      (
        "zstd payload of garbage",
        try Self.rawBatch(try Self.compressed(.zstd, garbage), count: 2, codec: .zstd),
        .invalidRecord, "record 0 of 2"
      ),
      (
        "offsets out of order", try Self.rawBatch(Self.records(["x", "y"], deltas: [1, 0]), count: 2),
        .invalidRecord, "record 0 of 2: offsetDelta 1, expected 0"
      ),
      (
        "a record missing",
        try Self.rawBatch(Self.records(["xxxxxxxxxx", "yyyyyyyyyy"], deltas: [0, 1]), count: 3),
        .invalidRecord, "recordsCount 3"
      ),
      (
        "trailing bytes", try Self.rawBatch(Self.records(["x", "y"], deltas: [0, 1]) + [0], count: 2),
        .invalidRecord, "1 bytes after the last"
      ),
      (
        "decompression bomb", try Self.rawBatch(try Self.compressed(.gzip, zeros), count: 1, codec: .gzip),
        .messageTooLarge, "\(256 << 10)"
      ),
    ]
    for (name, records, code, fragment) in refusals {
      let answer = await BrokerTests.produce(broker, topic: "t", records: records, version: 9)
      #expect(answer?.errorCode == code.rawValue, "\(name): \(String(describing: answer))")
      #expect(answer?.baseOffset == -1, "\(name)")
      let message = answer?.errorMessage ?? ""
      #expect(message.contains(fragment), "\(name): \(message)")
      #expect(broker.topic("t")?.partition(0)?.log.logEndOffset == 2, "\(name)")
      // Before Produce v8 there is no message, only the code.
      let old = await BrokerTests.produce(broker, topic: "t", records: records, version: 7)
      #expect(old?.errorCode == code.rawValue && old?.errorMessage == nil, "\(name) v7")
    }

    // All or nothing per partition: a sound batch followed by a bad one appends neither.
    var both = try BrokerTests.batch(["c"])
    var bad = try Self.rawBatch(garbage, count: 2)
    both.writeBuffer(&bad)
    let mixed = await BrokerTests.produce(broker, topic: "t", records: both)
    #expect(mixed?.errorCode == ErrorCode.invalidRecord.rawValue)
    #expect(mixed?.errorMessage?.hasPrefix("Batch 1: ") == true, "\(String(describing: mixed?.errorMessage))")
    #expect(broker.topic("t")?.partition(0)?.log.logEndOffset == 2)

    // The next sound batches (plain and compressed) are appended after the first ones.
    let next = await BrokerTests.produce(broker, topic: "t", records: try BrokerTests.batch(["c"]))
    #expect(next?.errorCode == 0 && next?.baseOffset == 2)
    let zstd = try Self.rawBatch(
      try Self.compressed(.zstd, Self.records(["d", "e"], deltas: [0, 1])), count: 2, codec: .zstd)
    let last = await BrokerTests.produce(broker, topic: "t", records: zstd)
    #expect(last?.errorCode == 0 && last?.baseOffset == 3)
    let data = await BrokerTests.fetch(broker, topic: "t", offset: 0)
    #expect(data?.highWatermark == 5)
    #expect(try BrokerTests.values(data?.records) == ["a", "b", "c", "d", "e"])
    await broker.shutdown()
  }
}
