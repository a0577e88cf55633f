public import NIOCore

/// Builds one RecordBatch v2 from records.
///
/// Used by the client's producer, by the broker for transaction markers and by tests. Records
/// are encoded straight into a single buffer that already holds room for the 61-byte header
/// (each record's size is computed first so its length prefix is written once, with no
/// intermediate buffers); `build()` fills in the header, compresses the records block when a
/// codec is set, and writes the CRC. Offset deltas run 0, 1, 2…; `baseTimestamp` is the
/// first record's timestamp and `maxTimestamp` the largest.
public struct RecordBatchBuilder: Sendable {
  public var baseOffset: Int64
  public var partitionLeaderEpoch: Int32
  public var producerId: Int64
  public var producerEpoch: Int16
  public var baseSequence: Int32
  /// Codec, timestamp type and flags of the batch.
  public var attributes: RecordBatch.Attributes

  private let allocator: ByteBufferAllocator
  private let initialCapacity: Int
  /// Header room followed by the encoded records.
  private var buffer: ByteBuffer?
  private var baseTimestamp: Int64 = -1
  private var maxTimestamp: Int64 = -1
  /// Records appended so far.
  public private(set) var count: Int32 = 0

  /// - Parameters:
  ///   - capacity: bytes to reserve up front (header included); the buffer grows as needed.
  public init(
    baseOffset: Int64 = 0,
    producerId: Int64 = -1,
    producerEpoch: Int16 = -1,
    baseSequence: Int32 = -1,
    isTransactional: Bool = false,
    compression: CompressionCodec = .none,
    timestampType: TimestampType = .createTime,
    partitionLeaderEpoch: Int32 = -1,
    capacity: Int = 1024,
    allocator: ByteBufferAllocator = ByteBufferAllocator()
  ) {
    self.baseOffset = baseOffset
    self.partitionLeaderEpoch = partitionLeaderEpoch
    self.producerId = producerId
    self.producerEpoch = producerEpoch
    self.baseSequence = baseSequence
    self.attributes = RecordBatch.Attributes(
      compression: compression, timestampType: timestampType, isTransactional: isTransactional)
    self.allocator = allocator
    self.initialCapacity = Swift.max(capacity, RecordBatch.Layout.headerSize)
  }

  /// Bytes encoded so far: header plus uncompressed records.
  public var uncompressedSize: Int {
    buffer?.readableBytes ?? RecordBatch.Layout.headerSize
  }

  /// Appends a record. `key`/`value` nil encode as null (length -1), distinct from empty.
  public mutating func append(
    key: ByteBuffer?, value: ByteBuffer?, headers: [RecordHeader] = [], timestamp: Int64
  ) {
    if count == 0 {
      baseTimestamp = timestamp
      maxTimestamp = timestamp
    } else if timestamp > maxTimestamp {
      maxTimestamp = timestamp
    }
    let timestampDelta = timestamp &- baseTimestamp
    let offsetDelta = count

    var bodySize =
      1 + ByteBuffer.zigZagVarInt64Size(timestampDelta) + ByteBuffer.zigZagVarInt32Size(offsetDelta)
      + Self.bytesFieldSize(key) + Self.bytesFieldSize(value)
      + ByteBuffer.zigZagVarInt32Size(Self.length(headers.count))
    for header in headers {
      let keyLength = header.key.utf8.count
      bodySize += ByteBuffer.zigZagVarInt32Size(Self.length(keyLength)) + keyLength
      bodySize += Self.bytesFieldSize(header.value)
    }
    let bodyLength = Self.length(bodySize)

    var out = takeBuffer()
    // Everything up to the headers is written in one pass over the reserved bytes.
    out.writeWithUnsafeMutableBytes(minimumWritableBytes: bodySize + 5) { raw in
      var at = 0
      Self.put(zigZag32: bodyLength, into: raw, at: &at)
      raw[at] = 0  // record attributes
      at += 1
      Self.put(zigZag64: timestampDelta, into: raw, at: &at)
      Self.put(zigZag32: offsetDelta, into: raw, at: &at)
      Self.put(bytesField: key, into: raw, at: &at)
      Self.put(bytesField: value, into: raw, at: &at)
      Self.put(zigZag32: Int32(headers.count), into: raw, at: &at)
      return at
    }
    for header in headers {
      out.writeZigZagVarInt32(Int32(header.key.utf8.count))
      out.writeString(header.key)
      Self.writeBytesField(header.value, to: &out)
    }
    buffer = out
    count += 1
  }

  /// Appends a record from byte arrays (convenience for tests and small producers).
  public mutating func append(
    key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader] = [], timestamp: Int64
  ) {
    append(
      key: key.map { ByteBuffer(bytes: $0) }, value: value.map { ByteBuffer(bytes: $0) }, headers: headers,
      timestamp: timestamp)
  }

  /// Encodes the batch and resets the builder to empty (same settings) for reuse.
  ///
  /// An empty builder yields a valid empty batch (recordsCount 0, lastOffsetDelta -1,
  /// timestamps -1), which only compaction-style policies accept. Throws when compression
  /// fails.
  public mutating func build() throws(KafkaProtocolError) -> RecordBatch {
    var out = takeBuffer()
    let count = self.count
    let baseTimestamp = self.baseTimestamp
    let maxTimestamp = self.maxTimestamp
    self.count = 0
    self.baseTimestamp = -1
    self.maxTimestamp = -1

    let header = RecordBatch.Layout.headerSize
    if let codec = attributes.compression, codec != .none {
      let records = out.getSlice(at: out.readerIndex + header, length: out.readableBytes - header)!
      let compressed = try codec.compress(records, allocator: allocator)
      out.moveWriterIndex(to: out.readerIndex + header)
      out.reserveCapacity(minimumWritableBytes: compressed.readableBytes)
      out.writeImmutableBuffer(compressed)
    }
    let start = out.readerIndex
    out.setInteger(baseOffset, at: start + RecordBatch.Layout.baseOffset)
    out.setInteger(
      Int32(out.readableBytes - RecordBatch.Layout.logOverhead), at: start + RecordBatch.Layout.batchLength)
    out.setInteger(partitionLeaderEpoch, at: start + RecordBatch.Layout.partitionLeaderEpoch)
    out.setInteger(RecordBatch.currentMagic, at: start + RecordBatch.Layout.magic)
    out.setInteger(UInt32(0), at: start + RecordBatch.Layout.crc)
    out.setInteger(attributes.rawValue, at: start + RecordBatch.Layout.attributes)
    out.setInteger(count &- 1, at: start + RecordBatch.Layout.lastOffsetDelta)
    out.setInteger(baseTimestamp, at: start + RecordBatch.Layout.baseTimestamp)
    out.setInteger(maxTimestamp, at: start + RecordBatch.Layout.maxTimestamp)
    out.setInteger(producerId, at: start + RecordBatch.Layout.producerId)
    out.setInteger(producerEpoch, at: start + RecordBatch.Layout.producerEpoch)
    out.setInteger(baseSequence, at: start + RecordBatch.Layout.baseSequence)
    out.setInteger(count, at: start + RecordBatch.Layout.recordsCount)
    var batch = RecordBatch(uncheckedBuffer: out)
    batch.updateCRC()
    return batch
  }

  /// A control batch holding one transaction marker (what the broker appends when a
  /// transaction commits or aborts).
  public static func transactionMarker(
    _ type: ControlRecordType, coordinatorEpoch: Int32, producerId: Int64, producerEpoch: Int16,
    baseOffset: Int64 = 0, partitionLeaderEpoch: Int32 = -1, timestamp: Int64,
    allocator: ByteBufferAllocator = ByteBufferAllocator()
  ) -> RecordBatch {
    var builder = RecordBatchBuilder(
      baseOffset: baseOffset, producerId: producerId, producerEpoch: producerEpoch, baseSequence: -1,
      isTransactional: true, partitionLeaderEpoch: partitionLeaderEpoch, capacity: 96, allocator: allocator)
    builder.attributes.isControl = true
    let marker = ControlRecord(type: type, coordinatorEpoch: coordinatorEpoch)
    builder.append(
      key: marker.encodedKey(allocator: allocator), value: marker.encodedValue(allocator: allocator),
      timestamp: timestamp)
    // Uncompressed: building cannot fail.
    return try! builder.build()
  }

  // MARK: Encoding helpers

  private mutating func takeBuffer() -> ByteBuffer {
    if let existing = buffer {
      buffer = nil  // keep the storage uniquely referenced while it is written
      return existing
    }
    var fresh = allocator.buffer(capacity: initialCapacity)
    fresh.writeRepeatingByte(0, count: RecordBatch.Layout.headerSize)
    return fresh
  }

  private static func length(_ value: Int) -> Int32 {
    guard let length = Int32(exactly: value) else {
      preconditionFailure("record field of \(value) bytes exceeds the format's Int32 lengths")
    }
    return length
  }

  private static func bytesFieldSize(_ bytes: ByteBuffer?) -> Int {
    guard let bytes else { return 1 }
    return ByteBuffer.zigZagVarInt32Size(length(bytes.readableBytes)) + bytes.readableBytes
  }

  @inline(__always)
  private static func put(varUInt value: UInt64, into raw: UnsafeMutableRawBufferPointer, at index: inout Int)
  {
    var v = value
    while v >= 0x80 {
      raw[index] = UInt8(truncatingIfNeeded: v) | 0x80
      v >>= 7
      index += 1
    }
    raw[index] = UInt8(truncatingIfNeeded: v)
    index += 1
  }

  @inline(__always)
  private static func put(zigZag32 value: Int32, into raw: UnsafeMutableRawBufferPointer, at index: inout Int)
  {
    put(varUInt: UInt64(UInt32(bitPattern: (value << 1) ^ (value >> 31))), into: raw, at: &index)
  }

  @inline(__always)
  private static func put(zigZag64 value: Int64, into raw: UnsafeMutableRawBufferPointer, at index: inout Int)
  {
    put(varUInt: UInt64(bitPattern: (value << 1) ^ (value >> 63)), into: raw, at: &index)
  }

  @inline(__always)
  private static func put(
    bytesField bytes: ByteBuffer?, into raw: UnsafeMutableRawBufferPointer, at index: inout Int
  ) {
    guard let bytes else {
      put(zigZag32: -1, into: raw, at: &index)
      return
    }
    put(zigZag32: Int32(bytes.readableBytes), into: raw, at: &index)
    bytes.withUnsafeReadableBytes { source in
      if source.count > 0 {
        UnsafeMutableRawBufferPointer(rebasing: raw[index..<index + source.count]).copyMemory(from: source)
      }
    }
    index += bytes.readableBytes
  }

  private static func writeBytesField(_ bytes: ByteBuffer?, to out: inout ByteBuffer) {
    guard let bytes else {
      out.writeZigZagVarInt32(-1)
      return
    }
    out.writeZigZagVarInt32(Int32(bytes.readableBytes))
    out.writeImmutableBuffer(bytes)
  }
}
