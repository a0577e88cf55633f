public import NIOCore

/// Cuts a `records` field (Produce, Fetch, or a log segment read) into its batches.
///
/// A records field may hold several concatenated batches. Each is delimited by its 12-byte
/// prefix (baseOffset, batchLength) and checked for magic 2; nothing else is read, so
/// splitting is cheap and never allocates. The bytes are not validated: call
/// `RecordBatch.validate(_:)` on each batch.
///
/// A Fetch response may end with a batch cut short by the broker's size limit. Such a tail
/// is not an error: `next()` returns nil and `partialTail` holds the bytes. Where a partial
/// batch is an error (Produce, segment recovery) the caller checks `partialTail`.
public struct RecordBatchSplitter: Sendable {
  private var remaining: ByteBuffer

  /// The bytes left after the last complete batch once `next()` returned nil, or nil when
  /// the input ended exactly on a batch boundary.
  public private(set) var partialTail: ByteBuffer?

  public init(_ records: ByteBuffer) {
    self.remaining = records
  }

  /// The next complete batch, or nil at the end (check `partialTail`).
  ///
  /// Throws `.corruptRecordBatch` when a batch declares a length smaller than the v2 header
  /// and `.unsupportedMagic` when its magic is not 2; the split cannot continue after either.
  public mutating func next() throws(KafkaProtocolError) -> RecordBatch? {
    let available = remaining.readableBytes
    if available == 0 { return nil }
    let start = remaining.readerIndex
    guard available >= RecordBatch.Layout.logOverhead,
      let length = remaining.getInteger(at: start + RecordBatch.Layout.batchLength, as: Int32.self)
    else {
      return takeTail()
    }
    guard Int(length) >= RecordBatch.Layout.headerSize - RecordBatch.Layout.logOverhead else {
      throw KafkaProtocolError(.corruptRecordBatch, "batchLength \(length) is smaller than a v2 header")
    }
    // Magic sits before the end of the header, so a batch with a valid length has it.
    if let magic = remaining.getInteger(at: start + RecordBatch.Layout.magic, as: Int8.self),
      magic != RecordBatch.currentMagic
    {
      throw KafkaProtocolError(.unsupportedMagic, "record batch magic \(magic), expected 2")
    }
    let size = Int(length) + RecordBatch.Layout.logOverhead
    guard size <= available, let slice = remaining.readSlice(length: size) else {
      return takeTail()
    }
    return RecordBatch(uncheckedBuffer: slice)
  }

  private mutating func takeTail() -> RecordBatch? {
    partialTail = remaining
    remaining.moveReaderIndex(forwardBy: remaining.readableBytes)
    return nil
  }

  /// Splits `records` whole: the complete batches and the partial tail, if any.
  public static func split(_ records: ByteBuffer) throws(KafkaProtocolError) -> (
    batches: [RecordBatch], partialTail: ByteBuffer?
  ) {
    var splitter = RecordBatchSplitter(records)
    var batches: [RecordBatch] = []
    while let batch = try splitter.next() {
      batches.append(batch)
    }
    return (batches, splitter.partialTail)
  }
}
