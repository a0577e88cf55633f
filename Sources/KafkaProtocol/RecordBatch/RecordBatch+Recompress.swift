public import NIOCore

extension RecordBatch {
  /// The batch with its records section compressed with `codec` instead (Kafka's
  /// `compression.type` on a topic whose producers use another codec).
  ///
  /// The records themselves are the same bytes once decompressed, so only the section is
  /// replaced: every header field (base offset and timestamp, max timestamp, producer id,
  /// epoch and sequence, transactional flag, partition leader epoch) is kept, and the codec
  /// bits, `batchLength` and CRC are rewritten. The section is decompressed to at most
  /// `maxDecompressedSize` bytes first (`.decompressedSizeExceeded` beyond); `level` is the
  /// target codec's level, nil for its default.
  public func recompressed(
    to codec: CompressionCodec, level: Int32? = nil, maxDecompressedSize: Int,
    allocator: ByteBufferAllocator = ByteBufferAllocator()
  ) throws(KafkaProtocolError) -> RecordBatch {
    let (records, _) = try recordsSection(maxDecompressedSize: maxDecompressedSize, allocator: allocator)
    let section = try codec.compress(records, level: level, allocator: allocator)
    let total = Layout.headerSize + section.readableBytes
    guard total - Layout.logOverhead <= Int(Int32.max) else {
      throw KafkaProtocolError(.corruptRecordBatch, "recompressed batch of \(total) bytes is too large")
    }
    var output = allocator.buffer(capacity: total)
    output.writeImmutableBuffer(buffer.getSlice(at: buffer.readerIndex, length: Layout.headerSize)!)
    output.writeImmutableBuffer(section)
    output.setInteger(Int32(total - Layout.logOverhead), at: Layout.batchLength)
    var attributes = self.attributes
    attributes.rawValue = (attributes.rawValue & ~0x07) | Int16(codec.rawValue)
    output.setInteger(attributes.rawValue, at: Layout.attributes)
    var batch = RecordBatch(uncheckedBuffer: output)
    batch.updateCRC()
    return batch
  }
}
