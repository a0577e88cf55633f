import KafkaProtocol
import NIOCore
import Testing

/// Bytes from a hex string; whitespace is ignored.
private func hexBytes(_ text: String) -> [UInt8] {
  let digits = text.filter { !$0.isWhitespace }.map { $0 }
  return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

private func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

/// Runs `body` and checks that it throws a `KafkaProtocolError` with `code`.
private func expectCode(
  _ code: KafkaProtocolError.Code, _ comment: String = "", sourceLocation: SourceLocation = #_sourceLocation,
  _ body: () throws -> Void
) {
  do {
    try body()
    Issue.record("expected \(code) \(comment)", sourceLocation: sourceLocation)
  } catch let error as KafkaProtocolError {
    #expect(error.code == code, "\(error) \(comment)", sourceLocation: sourceLocation)
  } catch {
    Issue.record("expected \(code), got \(error) \(comment)", sourceLocation: sourceLocation)
  }
}

/// A batch with the given raw records section and header fields, CRC made valid.
private func rawBatch(
  records: [UInt8], count: Int32, lastOffsetDelta: Int32? = nil, attributes: Int16 = 0,
  producerId: Int64 = -1,
  baseSequence: Int32 = -1
) throws -> RecordBatch {
  var out = ByteBuffer()
  out.writeInteger(Int64(0))
  out.writeInteger(Int32(49 + records.count))
  out.writeInteger(Int32(-1))
  out.writeInteger(Int8(2))
  out.writeInteger(UInt32(0))
  out.writeInteger(attributes)
  out.writeInteger(lastOffsetDelta ?? (count - 1))
  out.writeInteger(Int64(1000))
  out.writeInteger(Int64(1000))
  out.writeInteger(producerId)
  out.writeInteger(Int16(-1))
  out.writeInteger(baseSequence)
  out.writeInteger(count)
  out.writeBytes(records)
  var batch = try RecordBatch(out)
  batch.updateCRC()
  return batch
}

/// Returns `batch`'s bytes with `patch` applied and, unless told otherwise, the CRC fixed.
private func patched(
  _ batch: RecordBatch, fixCRC: Bool = true, _ patch: (inout ByteBuffer) -> Void
) throws -> RecordBatch {
  var bytes = ByteBuffer(bytes: Array(batch.buffer.readableBytesView))
  patch(&bytes)
  var result = try RecordBatch(bytes)
  if fixCRC { result.updateCRC() }
  return result
}

private func sampleBatch(
  count: Int = 3, baseOffset: Int64 = 0, compression: CompressionCodec = .none
) throws(KafkaProtocolError) -> RecordBatch {
  var builder = RecordBatchBuilder(baseOffset: baseOffset, compression: compression)
  for i in 0..<count {
    builder.append(
      key: buffer("key-\(i)"), value: buffer(String(repeating: "v", count: i * 10)),
      headers: i % 2 == 0 ? [RecordHeader(key: "h", value: buffer("\(i)"))] : [],
      timestamp: 1_000 + Int64(i))
  }
  return try builder.build()
}

@Suite struct RecordBatchTests {
  // MARK: Byte-exact encoding

  /// A one-record batch written out by hand from CLIENTS.md §3; the CRC was computed with an
  /// independent bitwise CRC-32C over bytes 21...73.
  static let oneRecordBatch = hexBytes(
    """
    0000000000000000 0000003E FFFFFFFF 02 36FF4DC3
    0000 00000000 0000018BCFE56800 0000018BCFE56800
    FFFFFFFFFFFFFFFF FFFF FFFFFFFF 00000001
    18 00 00 00 02 6B 0A 68656C6C6F 00
    """)

  @Test func builderProducesHandWrittenBytes() throws {
    var builder = RecordBatchBuilder()
    builder.append(key: buffer("k"), value: buffer("hello"), timestamp: 1_700_000_000_000)
    let batch = try builder.build()
    #expect(Array(batch.buffer.readableBytesView) == Self.oneRecordBatch)
  }

  @Test func viewReadsHandWrittenBytes() throws {
    let batch = try RecordBatch(ByteBuffer(bytes: Self.oneRecordBatch))
    #expect(batch.baseOffset == 0)
    #expect(batch.batchLength == 62)
    #expect(batch.declaredSize == 74)
    #expect(batch.partitionLeaderEpoch == -1)
    #expect(batch.magic == 2)
    #expect(batch.crc == 0x36FF_4DC3)
    #expect(batch.computeCRC() == 0x36FF_4DC3)
    #expect(batch.verifyCRC())
    #expect(batch.attributes.rawValue == 0)
    #expect(batch.compression == CompressionCodec.none)
    #expect(batch.timestampType == .createTime)
    #expect(!batch.isTransactional && !batch.isControl && !batch.hasDeleteHorizon)
    #expect(batch.lastOffsetDelta == 0)
    #expect(batch.baseTimestamp == 1_700_000_000_000)
    #expect(batch.maxTimestamp == 1_700_000_000_000)
    #expect(batch.producerId == -1)
    #expect(batch.producerEpoch == -1)
    #expect(batch.baseSequence == -1)
    #expect(batch.recordsCount == 1)
    try batch.validate()
    let records = try batch.records(maxDecompressedSize: 1 << 20)
    #expect(
      records == [Record(offset: 0, timestamp: 1_700_000_000_000, key: buffer("k"), value: buffer("hello"))])
  }

  /// Written by an independent encoder (a short Python script, also the fuzz seed
  /// `headers-nulls`): headers, null and empty keys/values, negative timestamp delta.
  static let independentBatch = hexBytes(
    """
    000000000000000a0000005c000000000220e533fd00000000000200000000000003e800000000000004b000000000
    00000005000100000000000000032800000001047631040a74726163650661626300010e00c701020000001a009003
    04066b65790102026800
    """)

  @Test func builderMatchesIndependentEncoder() throws {
    var builder = RecordBatchBuilder(
      baseOffset: 10, producerId: 5, producerEpoch: 1, baseSequence: 0, partitionLeaderEpoch: 0)
    builder.append(
      key: nil, value: buffer("v1"),
      headers: [RecordHeader(key: "trace", value: buffer("abc")), RecordHeader(key: "", value: nil)],
      timestamp: 1000)
    builder.append(key: ByteBuffer(), value: ByteBuffer(), timestamp: 900)
    builder.append(
      key: buffer("key"), value: nil, headers: [RecordHeader(key: "h", value: ByteBuffer())], timestamp: 1200)
    let batch = try builder.build()
    #expect(Array(batch.buffer.readableBytesView) == Self.independentBatch)
    try batch.validate()
  }

  /// A gzip batch from the same independent encoder (Python's gzip module; fuzz seed `gzip`).
  @Test func decodesIndependentGzipBatch() throws {
    let batch = try RecordBatch(
      ByteBuffer(
        bytes: hexBytes(
          """
          0000000000000000000000a50000000002541388bc00010000000700000000000007d000000000000007d7ffffffff
          ffffffffffffffffffff000000081f8b0800f1dc076b02ff13616060e0c84ead3460609063606202310db9ca12734a
          531934185858407c2311301f2268c4c0c606123496430842646c1838384032261a6832106937062e2e90b4a9113669
          889a00061e1e901a331b9c6a200aa318f8f8400acdddf02b84a80600c491b5b6e4000000
          """)))
    try batch.validate()
    #expect(batch.compression == .gzip)
    let expected = (0..<8).map { i in
      Record(
        offset: Int64(i), timestamp: 2000 + Int64(i), key: buffer("key\(i)"),
        value: buffer(String(repeating: "value", count: i)))
    }
    #expect(try batch.records(maxDecompressedSize: 1 << 20) == expected)
  }

  @Test func viewHonoursReaderIndex() throws {
    var bytes = ByteBuffer(bytes: [0xAA, 0xBB] + Self.oneRecordBatch)
    bytes.moveReaderIndex(forwardBy: 2)
    var batch = try RecordBatch(bytes)
    try batch.validate()
    batch.setBaseOffset(5)
    #expect(batch.baseOffset == 5)
    #expect(try batch.records(maxDecompressedSize: 1024).first?.offset == 5)
  }

  // MARK: Round trips

  @Test func roundTripWithHeadersNullsAndEmpties() throws {
    let expected: [Record] = [
      Record(offset: 100, timestamp: 5_000, key: nil, value: nil),
      Record(offset: 101, timestamp: 4_000, key: ByteBuffer(), value: ByteBuffer()),
      Record(
        offset: 102, timestamp: 9_000, key: buffer("key"), value: nil,
        headers: [
          RecordHeader(key: "trace", value: buffer("abc")), RecordHeader(key: "", value: nil),
          RecordHeader(key: "ünï", value: ByteBuffer()),
        ]),
      Record(
        offset: 103, timestamp: -7, key: nil, value: buffer(String(repeating: "x", count: 300)),
        headers: [RecordHeader(key: "k", value: buffer("v"))]),
    ]
    var builder = RecordBatchBuilder(
      baseOffset: 100, producerId: 77, producerEpoch: 3, baseSequence: 12, isTransactional: true,
      partitionLeaderEpoch: 9)
    for record in expected {
      builder.append(
        key: record.key, value: record.value, headers: record.headers, timestamp: record.timestamp)
    }
    #expect(builder.count == 4)
    let batch = try builder.build()
    try batch.validate()
    #expect(batch.baseOffset == 100)
    #expect(batch.lastOffsetDelta == 3)
    #expect(batch.lastOffset == 103)
    #expect(batch.nextOffset == 104)
    #expect(batch.recordsCount == 4)
    #expect(batch.baseTimestamp == 5_000)
    #expect(batch.maxTimestamp == 9_000)
    #expect(batch.producerId == 77)
    #expect(batch.producerEpoch == 3)
    #expect(batch.baseSequence == 12)
    #expect(batch.partitionLeaderEpoch == 9)
    #expect(batch.isTransactional)
    #expect(try batch.records(maxDecompressedSize: 1 << 20) == expected)

    // Keys, values and header values are slices of the batch, not copies.
    let record = try batch.records(maxDecompressedSize: 1 << 20)[2]
    let batchBase = batch.buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
    let keyBase = record.key!.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
    #expect(keyBase > batchBase && keyBase < batchBase + UInt(batch.size))
  }

  @Test func builderIsReusableAfterBuild() throws {
    var builder = RecordBatchBuilder(baseOffset: 0)
    builder.append(key: nil, value: buffer("a"), timestamp: 1)
    let first = try builder.build()
    builder.baseOffset = 1
    builder.append(key: nil, value: buffer("b"), timestamp: 2)
    builder.append(key: nil, value: buffer("c"), timestamp: 3)
    let second = try builder.build()
    try first.validate()
    try second.validate()
    #expect(try first.records(maxDecompressedSize: 100).map(\.value) == [buffer("a")])
    #expect(try second.records(maxDecompressedSize: 100).map(\.offset) == [1, 2])
    #expect(second.baseTimestamp == 2)
  }

  @Test func byteArrayConvenience() throws {
    var builder = RecordBatchBuilder()
    builder.append(key: [1, 2] as [UInt8]?, value: nil as [UInt8]?, timestamp: 0)
    let records = try builder.build().records(maxDecompressedSize: 100)
    #expect(records.first?.key == ByteBuffer(bytes: [1, 2]))
    #expect(records.first?.value == nil)
  }

  @Test func emptyBatchIsOnlyValidAsStoredData() throws {
    var builder = RecordBatchBuilder()
    let batch = try builder.build()
    #expect(batch.recordsCount == 0)
    #expect(batch.lastOffsetDelta == -1)
    #expect(batch.size == 61)
    try batch.validate(.stored)
    expectCode(.corruptRecordBatch) { try batch.validate(.clientProduce) }
    #expect(try batch.records(maxDecompressedSize: 10).isEmpty)
  }

  @Test(arguments: [CompressionCodec.gzip, .snappy, .lz4, .zstd])
  func compressedRoundTrip(codec: CompressionCodec) throws {
    let plain = try sampleBatch(count: 50)
    let expected = try plain.records(maxDecompressedSize: 1 << 20)
    let built: Result<RecordBatch, KafkaProtocolError> = Result { () throws(KafkaProtocolError) in
      try sampleBatch(count: 50, compression: codec)
    }
    if case .failure(let error) = built, error.code == .unsupportedCompression, codec != .gzip {
      // The codec's runtime library is not installed on this machine.
      return
    }
    let batch = try built.get()
    try batch.validate()
    #expect(batch.compression == codec)
    #expect(batch.size < plain.size)
    #expect(try batch.records(maxDecompressedSize: 1 << 20) == expected)
    // The decompression limit is enforced.
    expectCode(.decompressedSizeExceeded) { _ = try batch.records(maxDecompressedSize: 100) }
  }

  // MARK: In-place updates

  @Test func offsetAndEpochRewritesKeepTheCRC() throws {
    var batch = try sampleBatch()
    let crc = batch.crc
    batch.setBaseOffset(1_234_567)
    batch.setPartitionLeaderEpoch(42)
    #expect(batch.crc == crc)
    #expect(batch.verifyCRC())
    try batch.validate()
    #expect(batch.partitionLeaderEpoch == 42)
    #expect(
      try batch.records(maxDecompressedSize: 1 << 20).map(\.offset) == [1_234_567, 1_234_568, 1_234_569])
  }

  @Test func logAppendTimeRewritesTheCRC() throws {
    var batch = try sampleBatch()
    let crc = batch.crc
    batch.setMaxTimestamp(99_999, timestampType: .logAppendTime)
    #expect(batch.crc != crc)
    try batch.validate()
    #expect(batch.timestampType == .logAppendTime)
    #expect(batch.attributes.rawValue == 0x08)
    #expect(batch.maxTimestamp == 99_999)
    #expect(try batch.records(maxDecompressedSize: 1 << 20).map(\.timestamp) == [99_999, 99_999, 99_999])
    batch.setMaxTimestamp(1_002, timestampType: .createTime)
    try batch.validate()
    #expect(try batch.records(maxDecompressedSize: 1 << 20).map(\.timestamp) == [1_000, 1_001, 1_002])
  }

  @Test func attributesBits() {
    var attributes = RecordBatch.Attributes(
      compression: .zstd, timestampType: .logAppendTime, isTransactional: true, isControl: true,
      hasDeleteHorizon: true)
    #expect(attributes.rawValue == 0b111_1100)
    #expect(attributes.compression == .zstd)
    attributes.isControl = false
    attributes.timestampType = .createTime
    #expect(attributes.rawValue == 0b101_0100)
    #expect(RecordBatch.Attributes(rawValue: 5).compression == nil)
  }

  // MARK: Validation failures

  @Test func badCRC() throws {
    let good = try sampleBatch()
    let flippedRecord = try patched(good, fixCRC: false) { $0.setInteger(UInt8(0x5A), at: 70) }
    expectCode(.crcMismatch) { try flippedRecord.validate() }
    #expect(!flippedRecord.verifyCRC())
    let flippedCRC = try patched(good, fixCRC: false) { $0.setInteger(good.crc ^ 1, at: 17) }
    expectCode(.crcMismatch) { try flippedCRC.validate(.stored) }
  }

  @Test func badMagic() throws {
    for magic: Int8 in [0, 1, 3, -1] {
      let batch = try patched(try sampleBatch()) { $0.setInteger(magic, at: 16) }
      expectCode(.unsupportedMagic) { try batch.validate() }
      expectCode(.unsupportedMagic) { _ = try batch.makeRecordIterator(maxDecompressedSize: 1 << 20) }
      var splitter = RecordBatchSplitter(batch.buffer)
      expectCode(.unsupportedMagic) { _ = try splitter.next() }
    }
  }

  @Test func truncatedAtEveryBytePosition() throws {
    let whole = try sampleBatch()
    let bytes = Array(whole.buffer.readableBytesView)
    for length in 0..<bytes.count {
      let prefix = ByteBuffer(bytes: bytes[..<length])
      if length < RecordBatch.Layout.headerSize {
        expectCode(.truncated, "length \(length)") { _ = try RecordBatch(prefix) }
      } else {
        let batch = try RecordBatch(prefix)
        expectCode(.truncated, "length \(length)") { try batch.validate(.stored) }
        expectCode(.truncated, "length \(length)") { _ = try batch.records(maxDecompressedSize: 1 << 20) }
      }
      let split = try RecordBatchSplitter.split(prefix)
      #expect(split.batches.isEmpty)
      #expect(split.partialTail?.readableBytes == (length == 0 ? nil : length))
    }
  }

  @Test func batchLengthInconsistentWithBuffer() throws {
    let good = try sampleBatch()
    for length: Int32 in [-1, Int32.min, 0, 48] {
      let batch = try patched(good) { $0.setInteger(length, at: 8) }
      expectCode(.corruptRecordBatch, "batchLength \(length)") { try batch.validate() }
      expectCode(.corruptRecordBatch, "batchLength \(length)") {
        _ = try batch.makeRecordIterator(maxDecompressedSize: 1 << 20)
      }
      var splitter = RecordBatchSplitter(batch.buffer)
      expectCode(.corruptRecordBatch, "batchLength \(length)") { _ = try splitter.next() }
    }
    // Shorter than the buffer: trailing bytes.
    let short = try patched(good) { $0.setInteger(good.batchLength - 1, at: 8) }
    expectCode(.corruptRecordBatch) { try short.validate() }
    // Longer than the buffer.
    let long = try patched(good) { $0.setInteger(Int32.max, at: 8) }
    expectCode(.truncated) { try long.validate() }
    expectCode(.truncated) { _ = try long.records(maxDecompressedSize: 1 << 20) }
  }

  @Test func recordCountRules() throws {
    let good = try sampleBatch()  // 3 records
    // Count disagrees with lastOffsetDelta.
    let moreCounted = try patched(good) { $0.setInteger(Int32(4), at: 57) }
    expectCode(.corruptRecordBatch) { try moreCounted.validate(.clientProduce) }
    expectCode(.corruptRecordBatch) { try moreCounted.validate(.stored) }
    expectCode(.corruptRecordBatch) { _ = try moreCounted.records(maxDecompressedSize: 1 << 20) }
    // Fewer counted than the offsets span: compaction leaves such batches, clients must not.
    let fewer = try patched(good) { $0.setInteger(Int32(2), at: 57) }
    expectCode(.corruptRecordBatch) { try fewer.validate(.clientProduce) }
    try fewer.validate(.stored)
    expectCode(.corruptRecordBatch) { _ = try fewer.records(maxDecompressedSize: 1 << 20) }
    // Zero records from a producer.
    let zero = try patched(good) {
      $0.setInteger(Int32(0), at: 57)
      $0.setInteger(Int32(-1), at: 23)
    }
    expectCode(.corruptRecordBatch) { try zero.validate(.clientProduce) }
    // Negative and absurd counts.
    for count: Int32 in [-1, Int32.min, Int32.max] {
      let batch = try patched(good) {
        $0.setInteger(count, at: 57)
        $0.setInteger(count &- 1, at: 23)
      }
      expectCode(.corruptRecordBatch, "count \(count)") { try batch.validate(.clientProduce) }
      expectCode(.corruptRecordBatch, "count \(count)") { try batch.validate(.stored) }
      expectCode(.corruptRecordBatch, "count \(count)") {
        _ = try batch.records(maxDecompressedSize: 1 << 20)
      }
    }
  }

  @Test func producerRules() throws {
    let good = try sampleBatch()
    let control = try patched(good) { $0.setInteger(Int16(0x20), at: 21) }
    expectCode(.corruptRecordBatch) { try control.validate(.clientProduce) }
    let noSequence = try patched(good) { $0.setInteger(Int64(5), at: 43) }
    expectCode(.corruptRecordBatch) { try noSequence.validate(.clientProduce) }
    try noSequence.validate(.stored)
    let withSequence = try patched(noSequence) { $0.setInteger(Int32(0), at: 53) }
    try withSequence.validate(.clientProduce)
    let unknownCodec = try patched(good) { $0.setInteger(Int16(5), at: 21) }
    expectCode(.unsupportedCompression) { try unknownCodec.validate() }
    expectCode(.unsupportedCompression) { _ = try unknownCodec.records(maxDecompressedSize: 1 << 20) }
  }

  // MARK: Malformed records

  /// Each case is a records section for a batch that claims one record.
  static let malformedRecords: [(name: String, bytes: [UInt8], code: KafkaProtocolError.Code)] = [
    ("empty section", [], .corruptRecordBatch),
    ("overlong length varint", [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0, 0, 0, 0, 0, 0], .invalidVarint),
    ("negative length", [0x03, 0, 0, 0, 0, 0, 0], .corruptRecordBatch),
    ("length past the end", [0x7E, 0, 0, 0, 0x01, 0x01, 0], .corruptRecordBatch),
    ("length below minimum", [0x08, 0, 0, 0, 0x01, 0, 0, 0], .corruptRecordBatch),
    ("key length -2", [0x0C, 0, 0, 0, 0x03, 0x01, 0], .corruptRecordBatch),
    ("key longer than record", [0x0C, 0, 0, 0, 0x10, 0x01, 0], .corruptRecordBatch),
    ("value length -3", [0x0C, 0, 0, 0, 0x01, 0x05, 0], .corruptRecordBatch),
    (
      "overlong timestampDelta", [0x1C, 0] + [UInt8](repeating: 0x80, count: 10) + [0, 0, 0x01, 0x01, 0],
      .invalidVarint
    ),
    ("offsetDelta truncated", [0x0C, 0, 0, 0x80, 0x80, 0x80, 0x80], .corruptRecordBatch),
    ("negative header count", [0x0C, 0, 0, 0, 0x01, 0x01, 0x01], .corruptRecordBatch),
    ("huge header count", [0x14, 0, 0, 0, 0x01, 0x01, 0xFE, 0xFF, 0xFF, 0xFF, 0x07], .corruptRecordBatch),
    ("null header key", [0x10, 0, 0, 0, 0x01, 0x01, 0x02, 0x01, 0x01], .corruptRecordBatch),
    ("header key past the end", [0x10, 0, 0, 0, 0x01, 0x01, 0x02, 0x08, 0x01], .corruptRecordBatch),
    ("bytes left inside the record", [0x0E, 0, 0, 0, 0x01, 0x01, 0, 0x00], .corruptRecordBatch),
    ("bytes after the last record", [0x0C, 0, 0, 0, 0x01, 0x01, 0, 0x00], .corruptRecordBatch),
  ]

  @Test(arguments: malformedRecords)
  func malformedRecordThrows(name: String, bytes: [UInt8], code: KafkaProtocolError.Code) throws {
    let batch = try rawBatch(records: bytes, count: 1)
    expectCode(code, name) { _ = try batch.records(maxDecompressedSize: 1 << 20) }
  }

  @Test func minimalRecordDecodes() throws {
    let batch = try rawBatch(records: [0x0C, 0, 0, 0, 0x01, 0x01, 0], count: 1)
    try batch.validate()
    #expect(
      try batch.records(maxDecompressedSize: 100) == [
        Record(offset: 0, timestamp: 1000, key: nil, value: nil)
      ])
  }

  /// Random corruption of valid batches (CRC repaired so decoding goes deep) never traps.
  @Test func randomMutationsNeverTrap() throws {
    var rng = SystemRandomNumberGenerator()
    let seeds = [try sampleBatch(count: 5), try sampleBatch(count: 1)]
    for iteration in 0..<4000 {
      let seed = seeds[iteration % seeds.count]
      let mutated = try patched(seed, fixCRC: iteration % 4 != 0) { bytes in
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
          let at = Int.random(in: 0..<bytes.readableBytes, using: &rng)
          bytes.setInteger(UInt8.random(in: 0...255, using: &rng), at: at)
        }
      }
      _ = try? mutated.validate(.stored)
      _ = try? mutated.records(maxDecompressedSize: 1 << 16)
      _ = try? RecordBatchSplitter.split(mutated.buffer)
    }
  }

  // MARK: Splitting

  @Test func splitsConcatenatedBatches() throws {
    let batches = try [
      sampleBatch(count: 1, baseOffset: 0), sampleBatch(count: 3, baseOffset: 1),
      sampleBatch(count: 2, baseOffset: 4),
    ]
    var all = ByteBuffer()
    for batch in batches { all.writeImmutableBuffer(batch.buffer) }
    let split = try RecordBatchSplitter.split(all)
    #expect(split.partialTail == nil)
    #expect(split.batches.map(\.baseOffset) == [0, 1, 4])
    #expect(split.batches == batches)
    for batch in split.batches { try batch.validate() }

    // A Fetch response cut anywhere inside a fourth batch: the tail is reported, not thrown.
    let fourth = try sampleBatch(count: 2, baseOffset: 6)
    for cut in 1..<fourth.size {
      var cutAll = all
      cutAll.writeBytes(fourth.buffer.readableBytesView.prefix(cut))
      var splitter = RecordBatchSplitter(cutAll)
      var count = 0
      while try splitter.next() != nil { count += 1 }
      #expect(count == 3)
      #expect(splitter.partialTail?.readableBytes == cut)
      #expect(try splitter.next() == nil)
    }
  }

  @Test func emptyRecordsSplitToNothing() throws {
    let split = try RecordBatchSplitter.split(ByteBuffer())
    #expect(split.batches.isEmpty && split.partialTail == nil)
  }

  @Test func splitStopsAtABadBatch() throws {
    let first = try sampleBatch(count: 1)
    let bad = try patched(try sampleBatch(count: 1)) { $0.setInteger(Int8(1), at: 16) }
    var all = ByteBuffer()
    all.writeImmutableBuffer(first.buffer)
    all.writeImmutableBuffer(bad.buffer)
    var splitter = RecordBatchSplitter(all)
    #expect(try splitter.next() == first)
    expectCode(.unsupportedMagic) { _ = try splitter.next() }
  }

  // MARK: Control records

  @Test func transactionMarkerBatch() throws {
    let batch = RecordBatchBuilder.transactionMarker(
      .commit, coordinatorEpoch: 7, producerId: 5, producerEpoch: 1, baseOffset: 10, timestamp: 123)
    try batch.validate(.stored)
    expectCode(.corruptRecordBatch) { try batch.validate(.clientProduce) }
    #expect(batch.isControl && batch.isTransactional)
    #expect(batch.producerId == 5 && batch.producerEpoch == 1 && batch.baseSequence == -1)
    let records = try batch.records(maxDecompressedSize: 1024)
    #expect(records.count == 1)
    #expect(records[0].offset == 10)
    #expect(records[0].key == ByteBuffer(bytes: [0, 0, 0, 1]))
    #expect(records[0].value == ByteBuffer(bytes: [0, 0, 0, 0, 0, 7]))
    let control = try ControlRecord(records[0])
    #expect(control == ControlRecord(type: .commit, coordinatorEpoch: 7))
    #expect(control.type == .commit)
  }

  @Test func controlRecordParsing() throws {
    let abort = try ControlRecord(
      key: ByteBuffer(bytes: [0, 0, 0, 0]), value: ByteBuffer(bytes: [0, 0, 0, 0, 1, 0]))
    #expect(abort.type == .abort && abort.coordinatorEpoch == 256)
    let other = try ControlRecord(key: ByteBuffer(bytes: [0, 0, 0, 5]), value: nil)
    #expect(other.type.rawValue == 5 && other.coordinatorEpoch == nil)
    expectCode(.corruptRecordBatch) { _ = try ControlRecord(key: nil, value: nil) }
    expectCode(.corruptRecordBatch) { _ = try ControlRecord(key: ByteBuffer(bytes: [0, 0, 0]), value: nil) }
    expectCode(.corruptRecordBatch) {
      _ = try ControlRecord(key: ByteBuffer(bytes: [0xFF, 0xFF, 0, 1]), value: nil)
    }
    expectCode(.corruptRecordBatch) {
      _ = try ControlRecord(key: ByteBuffer(bytes: [0, 0, 0, 1]), value: nil)
    }
    expectCode(.corruptRecordBatch) {
      _ = try ControlRecord(key: ByteBuffer(bytes: [0, 0, 0, 1]), value: ByteBuffer(bytes: [0, 0, 0, 0, 0]))
    }
  }
}
