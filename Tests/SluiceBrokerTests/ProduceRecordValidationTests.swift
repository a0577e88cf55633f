import KafkaProtocol
import NIOCore
import SluiceBroker
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

  @Test func refusedBatchesAppendNothing() async throws {
    let (broker, _) = try BrokerTests.makeBroker { $0.maxDecompressedBatchBytes = 256 << 10 }
    try broker.createTopic(name: "t", partitions: 1, configs: [:])
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
