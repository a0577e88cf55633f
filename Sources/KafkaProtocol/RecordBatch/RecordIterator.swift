public import NIOCore

/// Decodes the records of one batch, one at a time.
///
/// Owns the record-level format of CLIENTS.md §3: length-prefixed records of zigzag varints,
/// length-prefixed key/value (-1 = null) and headers. For an uncompressed batch it walks the
/// batch's own bytes and returns slices of them; for a compressed batch it first
/// decompresses the records block once, bounded by a caller-chosen size limit.
///
/// Hostile input cannot make it trap or over-allocate: every length and count is checked
/// against the bytes that remain before anything is sliced or reserved; each record must
/// consume exactly its declared length; the batch must hold exactly `recordsCount` records
/// and nothing after them. Violations throw `.corruptRecordBatch` (`.invalidVarint` for an
/// overlong varint). The CRC is not checked here — `RecordBatch.validate(_:)` does that.
public struct RecordIterator: Sendable {
  private var records: ByteBuffer
  private var remainingCount: Int
  private let baseOffset: Int64
  private let baseTimestamp: Int64
  /// The batch's maxTimestamp when it uses LogAppendTime, else nil.
  private let logAppendTime: Int64?

  init(
    records: ByteBuffer, count: Int, baseOffset: Int64, baseTimestamp: Int64, logAppendTime: Int64?
  ) {
    self.records = records
    self.remainingCount = count
    self.baseOffset = baseOffset
    self.baseTimestamp = baseTimestamp
    self.logAppendTime = logAppendTime
  }

  /// Records not yet returned.
  public var underestimatedCount: Int { remainingCount }

  /// The next record, or nil after the last one.
  public mutating func next() throws(KafkaProtocolError) -> Record? {
    guard remainingCount > 0 else {
      guard records.readableBytes == 0 else {
        throw KafkaProtocolError(.corruptRecordBatch, "\(records.readableBytes) bytes after the last record")
      }
      return nil
    }
    // One pass over the raw bytes finds every field; slices are cut afterwards.
    let layout: RecordLayout
    let parsed = records.withUnsafeReadableBytes { raw in
      Result { () throws(RecordLayout.Failure) -> RecordLayout in try RecordLayout.parse(raw) }
    }
    switch parsed {
    case .success(let parsed): layout = parsed
    case .failure(let failure): throw failure.error(remainingCount: remainingCount)
    }
    remainingCount -= 1
    let base = records.readerIndex
    let key =
      layout.keyLength < 0 ? nil : records.getSlice(at: base + layout.keyStart, length: layout.keyLength)
    let value =
      layout.valueLength < 0
      ? nil : records.getSlice(at: base + layout.valueStart, length: layout.valueLength)
    var headers: [RecordHeader] = []
    if layout.headerCount > 0 {
      var body = records.getSlice(at: base + layout.headersStart, length: layout.end - layout.headersStart)!
      headers = try Self.headers(&body, count: layout.headerCount)
    }
    records.moveReaderIndex(to: base + layout.end)
    return Record(
      offset: baseOffset &+ Int64(layout.offsetDelta),
      timestamp: logAppendTime ?? (baseTimestamp &+ layout.timestampDelta),
      key: key, value: value, headers: headers, attributes: layout.attributes)
  }

  /// Decodes `count` headers, which must fill `body` exactly. The count was checked
  /// against the bytes available (two per header at least) before anything is reserved.
  private static func headers(_ body: inout ByteBuffer, count: Int) throws(KafkaProtocolError)
    -> [RecordHeader]
  {
    var headers: [RecordHeader] = []
    headers.reserveCapacity(count)
    for _ in 0..<count {
      guard let keyLength = try body.readZigZagVarInt32() else {
        throw KafkaProtocolError(.corruptRecordBatch, "record ends inside a header key length")
      }
      guard keyLength >= 0, Int(keyLength) <= body.readableBytes,
        let key = body.readString(length: Int(keyLength))
      else {
        throw KafkaProtocolError(
          .corruptRecordBatch, "header key length \(keyLength) with \(body.readableBytes) bytes left")
      }
      guard let valueLength = try body.readZigZagVarInt32() else {
        throw KafkaProtocolError(.corruptRecordBatch, "record ends inside a header value length")
      }
      var value: ByteBuffer? = nil
      if valueLength != -1 {
        guard valueLength >= 0, Int(valueLength) <= body.readableBytes else {
          throw KafkaProtocolError(
            .corruptRecordBatch, "header value length \(valueLength) with \(body.readableBytes) bytes left")
        }
        value = body.readSlice(length: Int(valueLength))
      }
      headers.append(RecordHeader(key: key, value: value))
    }
    guard body.readableBytes == 0 else {
      throw KafkaProtocolError(.corruptRecordBatch, "\(body.readableBytes) bytes left over inside a record")
    }
    return headers
  }
}

/// Where the fields of one encoded record lie, relative to the record's first byte (its
/// length varint). Found in a single bounds-checked pass over raw bytes; shared by
/// `RecordIterator` (which then slices the fields) and `RecordWalker` (which only checks).
struct RecordLayout {
  var attributes: Int8
  var timestampDelta: Int64
  var offsetDelta: Int32
  var keyStart: Int
  /// -1 for null.
  var keyLength: Int
  var valueStart: Int
  /// -1 for null.
  var valueLength: Int
  var headerCount: Int
  var headersStart: Int
  /// The first byte after the length varint: the record's declared length runs from here.
  var fieldsStart: Int
  /// One past the record's last byte.
  var end: Int

  /// Why a record could not be parsed; turned into an error (with its message) only then.
  enum Failure: Error {
    case endsEarly(field: StaticString)
    case overlong(field: StaticString)
    case badLength(field: StaticString, value: Int64, available: Int)
    /// The record's fields end before its declared length.
    case leftover(consumed: Int, declared: Int)

    func error(remainingCount: Int) -> KafkaProtocolError {
      switch self {
      case .endsEarly(let field):
        KafkaProtocolError(
          .corruptRecordBatch, "records end inside \(field) with \(remainingCount) records to go")
      case .overlong(let field):
        KafkaProtocolError(.invalidVarint, "record \(field) varint is overlong")
      case .badLength(let field, let value, let available):
        KafkaProtocolError(.corruptRecordBatch, "record \(field) \(value) with \(available) bytes left")
      case .leftover(let consumed, let declared):
        KafkaProtocolError(.corruptRecordBatch, "\(declared - consumed) bytes left over inside a record")
      }
    }
  }

  @inline(__always)
  static func parse(_ raw: UnsafeRawBufferPointer) throws(Failure) -> RecordLayout {
    var cursor = Cursor(raw: raw, position: 0, end: raw.count)
    let length = try cursor.varint32("length")
    let available = raw.count - cursor.position
    // attributes, timestampDelta, offsetDelta, key and value lengths, header count.
    guard length >= 6, Int(length) <= available else {
      throw .badLength(field: "length", value: Int64(length), available: available)
    }
    let fieldsStart = cursor.position
    cursor.end = fieldsStart + Int(length)
    let attributes = Int8(bitPattern: raw[cursor.position])
    cursor.position += 1
    let timestampDelta = try cursor.varint64("timestampDelta")
    let offsetDelta = try cursor.varint32("offsetDelta")
    let (keyStart, keyLength) = try cursor.bytes("key length")
    let (valueStart, valueLength) = try cursor.bytes("value length")
    let headerCount = try cursor.varint32("header count")
    let left = cursor.end - cursor.position
    // A header takes at least two bytes (key length and value length).
    guard headerCount >= 0, Int(headerCount) <= left / 2 else {
      throw .badLength(field: "header count", value: Int64(headerCount), available: left)
    }
    if headerCount == 0 && left != 0 {
      throw .leftover(consumed: cursor.position - fieldsStart, declared: Int(length))
    }
    return RecordLayout(
      attributes: attributes, timestampDelta: timestampDelta, offsetDelta: offsetDelta, keyStart: keyStart,
      keyLength: keyLength, valueStart: valueStart, valueLength: valueLength, headerCount: Int(headerCount),
      headersStart: cursor.position, fieldsStart: fieldsStart, end: cursor.end)
  }

  /// Reads varints and length-prefixed fields, never past `end`.
  struct Cursor {
    let raw: UnsafeRawBufferPointer
    var position: Int
    var end: Int

    @inline(__always)
    mutating func varUInt(_ field: StaticString, maxBytes: Int, lastByteMax: UInt8) throws(Failure) -> UInt64
    {
      // Most varints in records are one byte.
      if position < end, raw[position] < 0x80 {
        defer { position += 1 }
        return UInt64(raw[position])
      }
      let (value, length) = ByteBuffer._decodeVarUInt(
        raw, at: position, end: end, maxBytes: maxBytes, lastByteMax: lastByteMax)
      if length <= 0 { throw length == 0 ? .endsEarly(field: field) : .overlong(field: field) }
      position += length
      return value
    }

    @inline(__always)
    mutating func varint32(_ field: StaticString) throws(Failure) -> Int32 {
      let u = UInt32(truncatingIfNeeded: try varUInt(field, maxBytes: 5, lastByteMax: 0x0F))
      return Int32(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    @inline(__always)
    mutating func varint64(_ field: StaticString) throws(Failure) -> Int64 {
      let u = try varUInt(field, maxBytes: 10, lastByteMax: 0x01)
      return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    /// A varint length (-1 = null) and the start of that many bytes, which are skipped.
    @inline(__always)
    mutating func bytes(_ field: StaticString) throws(Failure) -> (start: Int, length: Int) {
      let length = try varint32(field)
      if length == -1 { return (position, -1) }
      let left = end - position
      guard length >= 0, Int(length) <= left else {
        throw .badLength(field: field, value: Int64(length), available: left)
      }
      defer { position += Int(length) }
      return (position, Int(length))
    }

    /// A varint length (-1 = null where allowed) and that many bytes, skipped.
    @inline(__always)
    mutating func skipBytes(_ field: StaticString, allowNull: Bool) throws(Failure) {
      let length = try varint32(field)
      if length == -1 && allowNull { return }
      let left = end - position
      guard length >= 0, Int(length) <= left else {
        throw .badLength(field: field, value: Int64(length), available: left)
      }
      position += Int(length)
    }
  }
}

extension RecordBatch {
  /// An iterator over the batch's records.
  ///
  /// Requires magic 2 and a `batchLength` within the buffer (not the CRC: validate first
  /// when the bytes come from outside). A compressed records block is decompressed here,
  /// producing at most `maxDecompressedSize` bytes (`.decompressedSizeExceeded` beyond).
  public func makeRecordIterator(
    maxDecompressedSize: Int, allocator: ByteBufferAllocator = ByteBufferAllocator()
  ) throws(KafkaProtocolError) -> RecordIterator {
    let (records, count) = try recordsSection(maxDecompressedSize: maxDecompressedSize, allocator: allocator)
    return RecordIterator(
      records: records, count: count, baseOffset: baseOffset, baseTimestamp: baseTimestamp,
      logAppendTime: timestampType == .logAppendTime ? maxTimestamp : nil)
  }

  /// The records section (decompressed when the batch is compressed, at most
  /// `maxDecompressedSize` bytes) and `recordsCount`, after the checks records decoding
  /// needs: magic 2, a `batchLength` within the buffer, a known codec, and a count that is
  /// not negative and fits the section at 7 bytes a record.
  func recordsSection(
    maxDecompressedSize: Int, allocator: ByteBufferAllocator
  ) throws(KafkaProtocolError) -> (records: ByteBuffer, count: Int) {
    guard magic == Self.currentMagic else {
      throw KafkaProtocolError(.unsupportedMagic, "record batch magic \(magic), expected 2")
    }
    let size = declaredSize
    guard size >= Layout.headerSize else {
      throw KafkaProtocolError(.corruptRecordBatch, "batchLength \(batchLength) is smaller than the header")
    }
    guard size <= buffer.readableBytes else {
      throw KafkaProtocolError(
        .truncated, "batch declares \(size) bytes, buffer holds \(buffer.readableBytes)")
    }
    let count = Int(recordsCount)
    guard count >= 0 else {
      throw KafkaProtocolError(.corruptRecordBatch, "recordsCount \(count)")
    }
    guard let codec = compression else {
      throw KafkaProtocolError(.unsupportedCompression, "compression codec id \(attributes.rawValue & 0x07)")
    }
    var records = buffer.getSlice(
      at: buffer.readerIndex + Layout.headerSize, length: size - Layout.headerSize)!
    if codec != .none {
      records = try codec.decompress(records, maxDecompressedSize: maxDecompressedSize, allocator: allocator)
    }
    guard Int64(count) <= Int64(records.readableBytes) / Record.minimumEncodedSize else {
      throw KafkaProtocolError(
        .corruptRecordBatch, "recordsCount \(count) cannot fit in \(records.readableBytes) bytes of records")
    }
    return (records, count)
  }

  /// Decodes every record (see `makeRecordIterator(maxDecompressedSize:allocator:)`).
  public func records(
    maxDecompressedSize: Int, allocator: ByteBufferAllocator = ByteBufferAllocator()
  ) throws(KafkaProtocolError) -> [Record] {
    var iterator = try makeRecordIterator(maxDecompressedSize: maxDecompressedSize, allocator: allocator)
    var result: [Record] = []
    result.reserveCapacity(iterator.underestimatedCount)
    while let record = try iterator.next() {
      result.append(record)
    }
    return result
  }
}
