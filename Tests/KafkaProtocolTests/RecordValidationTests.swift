import KafkaProtocol
import NIOCore
import Testing

// `RecordBatch.validateRecords`: the broker's walk over every record of a produced batch.

/// Runs `body` and returns the error it threw (nil if it returned).
private func thrown(_ body: () throws(KafkaProtocolError) -> Void) -> KafkaProtocolError? {
  do {
    try body()
    return nil
  } catch {
    return error
  }
}

/// Checks that `body` throws `code` with a message containing each of `fragments`.
private func expectRefusal(
  _ code: KafkaProtocolError.Code, _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation,
  _ body: () throws(KafkaProtocolError) -> Void
) {
  guard let error = thrown(body) else {
    Issue.record("expected \(code), nothing thrown", sourceLocation: sourceLocation)
    return
  }
  #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
  for fragment in fragments {
    #expect(error.message.contains(fragment), "\(error)", sourceLocation: sourceLocation)
  }
}

/// One encoded record (length prefix included) with the given offsetDelta.
private func record(
  offsetDelta: Int32, key: [UInt8]? = nil, value: [UInt8]? = [0x61], headers: [(String, [UInt8]?)] = []
) -> [UInt8] {
  var body = ByteBuffer()
  body.writeInteger(Int8(0))
  body.writeZigZagVarInt64(Int64(offsetDelta) * 3)
  body.writeZigZagVarInt32(offsetDelta)
  for field in [key, value] {
    if let field {
      body.writeZigZagVarInt32(Int32(field.count))
      body.writeBytes(field)
    } else {
      body.writeZigZagVarInt32(-1)
    }
  }
  body.writeZigZagVarInt32(Int32(headers.count))
  for (name, value) in headers {
    body.writeZigZagVarInt32(Int32(name.utf8.count))
    body.writeString(name)
    if let value {
      body.writeZigZagVarInt32(Int32(value.count))
      body.writeBytes(value)
    } else {
      body.writeZigZagVarInt32(-1)
    }
  }
  var out = ByteBuffer()
  out.writeZigZagVarInt32(Int32(body.readableBytes))
  out.writeBuffer(&body)
  return Array(out.readableBytesView)
}

/// Records with offset deltas `deltas` (one byte values, some keys and headers).
private func records(_ deltas: [Int32]) -> [UInt8] {
  deltas.enumerated().flatMap { index, delta in
    record(
      offsetDelta: delta, key: index % 2 == 0 ? Array("k\(index)".utf8) : nil,
      value: Array(String(repeating: "v", count: index * 7).utf8),
      headers: index % 3 == 0 ? [("trace", [1, 2]), ("empty", nil)] : [])
  }
}

/// A batch around `section` (the records, already compressed when `codec` is not none),
/// the CRC made valid; unless told otherwise it must pass the stored-data header checks.
private func batch(
  section: [UInt8], count: Int32, lastOffsetDelta: Int32? = nil, codec: CompressionCodec = .none,
  skipValidate: Bool = false
) throws -> RecordBatch {
  var out = ByteBuffer()
  out.writeInteger(Int64(0))
  out.writeInteger(Int32(49 + section.count))
  out.writeInteger(Int32(-1))
  out.writeInteger(Int8(2))
  out.writeInteger(UInt32(0))
  out.writeInteger(Int16(codec.rawValue))
  out.writeInteger(lastOffsetDelta ?? (count - 1))
  out.writeInteger(Int64(1000))
  out.writeInteger(Int64(1000))
  out.writeInteger(Int64(-1))
  out.writeInteger(Int16(-1))
  out.writeInteger(Int32(-1))
  out.writeInteger(count)
  out.writeBytes(section)
  var batch = try RecordBatch(out)
  batch.updateCRC()
  if !skipValidate { try batch.validate(.stored) }
  return batch
}

/// A batch whose (uncompressed) records are `plain`, compressed with `codec`.
private func batch(
  records plain: [UInt8], count: Int32, lastOffsetDelta: Int32? = nil, codec: CompressionCodec = .none
) throws -> RecordBatch {
  let section = Array(try codec.compress(ByteBuffer(bytes: plain)).readableBytesView)
  return try batch(section: section, count: count, lastOffsetDelta: lastOffsetDelta, codec: codec)
}

private let limit = 1 << 20

@Suite struct RecordValidationTests {
  // MARK: Valid batches

  @Test(arguments: CompressionCodec.allCases)
  func builtBatchesPass(codec: CompressionCodec) throws {
    var builder = RecordBatchBuilder(compression: codec)
    for i in 0..<200 {
      builder.append(
        key: i % 5 == 0 ? nil : ByteBuffer(string: "key-\(i)"),
        value: i % 7 == 0 ? nil : ByteBuffer(string: String(repeating: "value ", count: i)),
        headers: i % 3 == 0
          ? [RecordHeader(key: "h\(i)", value: i % 2 == 0 ? nil : ByteBuffer(string: "x"))] : [],
        timestamp: 1_000 - Int64(i))
    }
    let batch = try builder.build()
    try batch.validate()
    try batch.validateRecords(maxDecompressedSize: limit)
    try batch.validateRecords(.stored, maxDecompressedSize: limit)
  }

  @Test func handBuiltRecordsPass() throws {
    try batch(records: records(Array(0..<10)), count: 10).validateRecords(maxDecompressedSize: limit)
    // The smallest record: every field one byte.
    try batch(section: [0x0C, 0, 0, 0, 0x01, 0x01, 0], count: 1).validateRecords(maxDecompressedSize: limit)
  }

  /// Every batch real clients sent in the captured Produce requests (all codecs; raw and
  /// xerial snappy) passes.
  @Test(arguments: CapturedFrameTests.produceFixtures)
  func capturedClientBatchesPass(_ fixture: CapturedFrameTests.Fixture) throws {
    let request = try KafkaRequest.decode(frame: try CapturedFrameTests.frame(fixture.file))
    guard case .produce(let body) = request.body else {
      Issue.record("\(fixture.file) is not a Produce request")
      return
    }
    var walked = 0
    for topic in body.topicData {
      for partition in topic.partitionData {
        var splitter = RecordBatchSplitter(try #require(partition.records))
        while let batch = try splitter.next() {
          try batch.validate()
          try batch.validateRecords(maxDecompressedSize: limit)
          walked += 1
        }
      }
    }
    #expect(walked > 0)
  }

  // MARK: Garbage

  @Test func garbageRecordsWithValidCRC() throws {
    let garbage: [UInt8] = (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
    let bad = try batch(section: garbage, count: 3)
    expectRefusal(.corruptRecordBatch, "record 0 of 3") { () throws(KafkaProtocolError) in
      try bad.validateRecords(maxDecompressedSize: limit)
    }
  }

  @Test(arguments: [CompressionCodec.gzip, .snappy, .lz4, .zstd])
  func garbageCompressedPayload(codec: CompressionCodec) throws {
    let garbage = [0x00] + Array("this is not compressed data, only text pretending".utf8)
    let bad = try batch(section: garbage, count: 2, codec: codec)
    expectRefusal(.compressionFailed, codec.name) { () throws(KafkaProtocolError) in
      try bad.validateRecords(maxDecompressedSize: limit)
    }
  }

  @Test(arguments: [CompressionCodec.gzip, .snappy, .lz4, .zstd])
  func compressedPayloadOfGarbage(codec: CompressionCodec) throws {
    let garbage = [UInt8](repeating: 0xFF, count: 100)
    let bad = try batch(records: garbage, count: 5, codec: codec)
    expectRefusal(.invalidVarint, "record 0 of 5", "length") { () throws(KafkaProtocolError) in
      try bad.validateRecords(maxDecompressedSize: limit)
    }
    let text = Array(String(repeating: "garbage? ", count: 20).utf8)
    let worse = try batch(records: text, count: 5, codec: codec)
    expectRefusal(.corruptRecordBatch, "record 0 of 5") { () throws(KafkaProtocolError) in
      try worse.validateRecords(maxDecompressedSize: limit)
    }
  }

  // MARK: Counts, offsets, lengths

  @Test(arguments: [CompressionCodec.none, .gzip, .zstd])
  func tooFewRecords(codec: CompressionCodec) throws {
    let bad = try batch(records: records([0, 1, 2]), count: 4, codec: codec)
    expectRefusal(.corruptRecordBatch, "recordsCount 4", "after 3") { () throws(KafkaProtocolError) in
      try bad.validateRecords(maxDecompressedSize: limit)
    }
  }

  @Test(arguments: [CompressionCodec.none, .gzip, .zstd])
  func tooManyRecords(codec: CompressionCodec) throws {
    let extra = records([0, 1, 2])
    let bad = try batch(records: extra, count: 2, codec: codec)
    let third = records([0, 1, 2]).count - records([0, 1]).count
    expectRefusal(.corruptRecordBatch, "\(third) bytes after the last of recordsCount 2") {
      () throws(KafkaProtocolError) in
      try bad.validateRecords(maxDecompressedSize: limit)
    }
  }

  @Test(arguments: [CompressionCodec.none, .gzip, .snappy])
  func offsetDeltasOutOfOrder(codec: CompressionCodec) throws {
    let swapped = try batch(records: records([0, 2, 1]), count: 3, codec: codec)
    expectRefusal(.invalidRecord, "record 1 of 3", "offsetDelta 2, expected 1") {
      () throws(KafkaProtocolError) in
      try swapped.validateRecords(maxDecompressedSize: limit)
    }
    // Gaps are what compaction leaves: fine for stored data, not from a client.
    let gap = try batch(records: records([0, 2]), count: 2, lastOffsetDelta: 2, codec: codec)
    try gap.validateRecords(.stored, maxDecompressedSize: limit)
    expectRefusal(.invalidRecord, "record 1 of 2", "expected 1") { () throws(KafkaProtocolError) in
      try gap.validateRecords(.clientProduce, maxDecompressedSize: limit)
    }
    expectRefusal(.invalidRecord, "record 2 of 3", "offsetDelta 1 after 2") { () throws(KafkaProtocolError) in
      try swapped.validateRecords(.stored, maxDecompressedSize: limit)
    }
    // Beyond lastOffsetDelta.
    let beyond = try batch(records: records([0, 5]), count: 2, lastOffsetDelta: 3, codec: codec)
    expectRefusal(.invalidRecord, "record 1 of 2", "lastOffsetDelta 3") { () throws(KafkaProtocolError) in
      try beyond.validateRecords(.stored, maxDecompressedSize: limit)
    }
    // Dense deltas ending short of the header's lastOffsetDelta (validate() refuses the
    // count first; the walk does not rely on it).
    let short = try batch(
      section: Array(try codec.compress(ByteBuffer(bytes: records([0, 1]))).readableBytesView), count: 2,
      lastOffsetDelta: 2, codec: codec, skipValidate: true)
    expectRefusal(.invalidRecord, "lastOffsetDelta is 2") { () throws(KafkaProtocolError) in
      try short.validateRecords(maxDecompressedSize: limit)
    }
  }

  @Test func recordLengthRunsPastTheEnd() throws {
    var bytes = records([0, 1, 2])
    let last = bytes.count - records([0, 1]).count
    let at = bytes.count - last
    #expect(bytes[at] == UInt8(2 * (last - 1)))  // one-byte zigzag length
    bytes[at] += 2  // one byte longer than what is left
    let bad = try batch(section: bytes, count: 3)
    expectRefusal(.corruptRecordBatch, "record 2 of 3", "length \(last)", "\(last - 1) bytes left") {
      () throws(KafkaProtocolError) in
      try bad.validateRecords(maxDecompressedSize: limit)
    }
    // And a length that ends the record before its fields do.
    bytes[at] -= 4
    let shorter = try batch(section: bytes, count: 3)
    expectRefusal(.corruptRecordBatch, "record 2 of 3") { () throws(KafkaProtocolError) in
      try shorter.validateRecords(maxDecompressedSize: limit)
    }
  }

  @Test func fieldsShorterThanTheLength() throws {
    // Length 7 declares one byte more than the six one-byte fields.
    let bad = try batch(section: [0x0E, 0, 0, 0, 0x01, 0x01, 0, 0x00], count: 1)
    expectRefusal(.corruptRecordBatch, "record 0 of 1", "fields take 6 bytes but its length is 7") {
      () throws(KafkaProtocolError) in
      try bad.validateRecords(maxDecompressedSize: limit)
    }
  }

  @Test(arguments: [CompressionCodec.none, .lz4])
  func trailingBytes(codec: CompressionCodec) throws {
    let bad = try batch(records: records([0, 1]) + [0x00, 0x00], count: 2, codec: codec)
    expectRefusal(.corruptRecordBatch, "2 bytes after the last of recordsCount 2") {
      () throws(KafkaProtocolError) in
      try bad.validateRecords(maxDecompressedSize: limit)
    }
  }

  @Test(arguments: [CompressionCodec.gzip, .snappy, .lz4, .zstd])
  func decompressionBomb(codec: CompressionCodec) throws {
    // One record whose value is 4 MiB of zeros: a few KiB compressed.
    let huge = record(offsetDelta: 0, value: [UInt8](repeating: 0, count: 4 << 20))
    let bomb = try batch(records: huge, count: 1, codec: codec)
    #expect(bomb.size < 300_000)
    expectRefusal(.decompressedSizeExceeded, "\(limit)") { () throws(KafkaProtocolError) in
      try bomb.validateRecords(maxDecompressedSize: limit)
    }
    try bomb.validateRecords(maxDecompressedSize: 5 << 20)
  }

  /// The malformed single records `RecordIterator` refuses are refused the same way.
  @Test(arguments: RecordBatchTests.malformedRecords)
  func malformedRecord(name: String, bytes: [UInt8], code: KafkaProtocolError.Code) throws {
    let bad = try batch(section: bytes, count: 1, skipValidate: true)
    #expect(
      thrown { () throws(KafkaProtocolError) in try bad.validateRecords(maxDecompressedSize: limit) }?.code
        == code, "\(name)")
  }

  /// `recordIndex` names the record at fault (Produce v8+ reports it as a record error),
  /// and nothing when the batch as a whole is at fault.
  @Test func recordIndexNamesTheRecordAtFault() throws {
    func index(_ batch: RecordBatch) -> Int?? {
      thrown { () throws(KafkaProtocolError) in try batch.validateRecords(maxDecompressedSize: limit) }
        .map(\.recordIndex)
    }
    var longer = records([0, 1, 2, 3])
    longer[records([0, 1]).count] += 2  // record 2's length takes in a byte of record 3
    let cases: [(String, RecordBatch, Int?)] = [
      ("offsets out of order", try batch(records: records([0, 2, 1]), count: 3), 1),
      ("record 2 too long", try batch(section: longer, count: 4), 2),
      ("compressed, out of order", try batch(records: records([0, 1, 2, 4]), count: 4, codec: .gzip), 3),
      (
        "last offsetDelta short",
        try batch(
          section: records([0, 1]), count: 2, lastOffsetDelta: 2, skipValidate: true), 1
      ),
      ("a record missing", try batch(records: records([0, 1]), count: 3), nil),
      ("trailing bytes", try batch(records: records([0, 1]) + [0], count: 2), nil),
    ]
    for (name, bad, expected) in cases {
      #expect(index(bad) == .some(expected), "\(name)")
    }
    let swapped = try batch(records: records([0, 2, 1]), count: 3)
    let failure = thrown { () throws(KafkaProtocolError) in
      try swapped.validateRecords(maxDecompressedSize: limit)
    }
    #expect(failure == KafkaProtocolError(.invalidRecord, failure?.message ?? "", recordIndex: 1))
  }

  /// Random corruption of valid batches (CRC repaired) never traps, and the walk agrees
  /// with decoding: it passes exactly when every record decodes.
  @Test func agreesWithTheIteratorOnMutations() throws {
    var rng = SystemRandomNumberGenerator()
    let seeds = [records(Array(0..<6)), records([0])]
    for iteration in 0..<6000 {
      var bytes = seeds[iteration % seeds.count]
      for _ in 0..<Int.random(in: 1...3, using: &rng) {
        bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
      }
      let count = Int32(iteration % seeds.count == 0 ? 6 : 1)
      let mutated = try batch(section: bytes, count: count)
      let walked = thrown { () throws(KafkaProtocolError) in
        try mutated.validateRecords(.stored, maxDecompressedSize: limit)
      }
      let decoded = Result { try mutated.records(maxDecompressedSize: limit) }
      switch decoded {
      case .success(let records):
        let deltas = records.map { $0.offset }
        let increasing = zip(deltas, deltas.dropFirst()).allSatisfy { $0 < $1 }
        let ok =
          records.count == Int(count) && increasing && (deltas.first ?? 0) >= 0
          && (deltas.last ?? 0) <= Int64(mutated.lastOffsetDelta)
        #expect((walked == nil) == ok, "\(bytes): walk \(String(describing: walked))")
      case .failure(let error):
        #expect(walked != nil, "\(bytes): decoding failed (\(error)) but the walk passed")
      }
    }
  }
}

/// What the walk reports about timestamps, and the broker's rewrites of a batch (max
/// timestamp, recompression) that rest on it.
@Suite struct RecordTimestampAndRecompressionTests {
  let limit = 1 << 20

  func built(_ timestamps: [Int64], codec: CompressionCodec = .none, producerId: Int64 = -1) throws
    -> RecordBatch
  {
    var builder = RecordBatchBuilder(
      producerId: producerId, producerEpoch: producerId >= 0 ? 3 : -1, baseSequence: producerId >= 0 ? 7 : -1,
      compression: codec)
    for (index, timestamp) in timestamps.enumerated() {
      builder.append(
        key: ByteBuffer(string: "k\(index)"), value: ByteBuffer(string: String(repeating: "v", count: 100)),
        headers: [RecordHeader(key: "h", value: ByteBuffer(string: "\(index)"))], timestamp: timestamp)
    }
    return try builder.build()
  }

  @Test func summaryIsTheLargestTimestampIgnoringNone() throws {
    #expect(
      try built([5, 9, 7]).validateRecords(maxDecompressedSize: limit)
        == RecordsSummary(maxTimestamp: 9, maxTimestampOffsetDelta: 1))
    #expect(
      try built([-1, -1]).validateRecords(maxDecompressedSize: limit)
        == RecordsSummary(maxTimestamp: -1, maxTimestampOffsetDelta: -1))
    // First record without a timestamp, later ones with: base -1, deltas from it.
    #expect(try built([-1, 4000, 3000]).validateRecords(maxDecompressedSize: limit).maxTimestamp == 4000)
    // The first of equal maxima.
    #expect(try built([8, 8]).validateRecords(maxDecompressedSize: limit).maxTimestampOffsetDelta == 0)
    #expect(try built([1, 2, 3], codec: .gzip).validateRecords(maxDecompressedSize: limit).maxTimestamp == 3)
  }

  @Test func timestampsOutsideTheBoundsNameTheRecord() throws {
    let batch = try built([1000, 1500, 900, -1])
    #expect(
      try batch.validateRecords(maxDecompressedSize: limit, timestampBounds: 900...1500).maxTimestamp == 1500)
    do {
      try batch.validateRecords(maxDecompressedSize: limit, timestampBounds: 950...2000)
      Issue.record("expected invalidTimestamp")
    } catch {
      #expect(error.code == .invalidTimestamp && error.recordIndex == 2, "\(error)")
      #expect(
        error.message.contains("timestamp 900 is out of range") && error.message.contains("[950, 2000]"))
    }
    // -1 is "no timestamp": never out of range.
    try built([-1, -1]).validateRecords(maxDecompressedSize: limit, timestampBounds: 0...0)
  }

  @Test(arguments: [CompressionCodec.none, .gzip, .snappy, .lz4, .zstd])
  func recompressionKeepsRecordsAndHeader(from source: CompressionCodec) throws {
    let original = try built([100, 300, 200], codec: source, producerId: 42)
    for target in CompressionCodec.allCases where target != source {
      let converted = try original.recompressed(to: target, maxDecompressedSize: limit)
      try converted.validate()
      #expect(converted.compression == target)
      #expect(converted.buffer.readableBytes == converted.declaredSize)
      #expect(try converted.validateRecords(maxDecompressedSize: limit).maxTimestamp == 300)
      #expect(
        try converted.records(maxDecompressedSize: limit) == original.records(maxDecompressedSize: limit))
      for field in [
        \RecordBatch.baseOffset, \.baseTimestamp, \.maxTimestamp, \.producerId,
      ] {
        #expect(converted[keyPath: field] == original[keyPath: field])
      }
      #expect(converted.producerEpoch == 3 && converted.baseSequence == 7)
      #expect(converted.recordsCount == 3 && converted.lastOffsetDelta == 2)
      #expect(converted.timestampType == original.timestampType)
    }
  }

  @Test func compressionLevelsChangeTheOutputNotTheRecords() throws {
    let original = try built(Array(0..<50).map { Int64($0) })
    for (codec, levels) in [(CompressionCodec.gzip, [1, 9]), (.zstd, [1, 19]), (.lz4, [1, 12])] {
      let sizes = try levels.map { level -> Int in
        let converted = try original.recompressed(to: codec, level: Int32(level), maxDecompressedSize: limit)
        #expect(
          try converted.records(maxDecompressedSize: limit) == original.records(maxDecompressedSize: limit))
        return converted.size
      }
      #expect(sizes[1] <= sizes[0], "\(codec): \(sizes)")
    }
  }
}
