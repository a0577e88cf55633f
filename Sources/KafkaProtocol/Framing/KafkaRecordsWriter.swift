public import NIOCore

/// Writes the `records` fields of a message as its generated encoder meets them, in order
/// (`encode(to:version:records:)`). ``InlineRecordsWriter`` writes each field's bytes; a
/// front door that sends record data as file regions supplies a writer that writes only the
/// length prefix of such a field and notes where its bytes go, so that nothing has to find
/// them in the encoded bytes afterwards.
public protocol KafkaRecordsWriter {
  mutating func writeRecords(
    _ value: ByteBuffer?, compact: Bool, nullable: Bool, into buffer: inout ByteBuffer)
    throws(KafkaProtocolError)
}

/// Writes every records field in full (what `encode(to:version:)` uses).
public struct InlineRecordsWriter: KafkaRecordsWriter {
  public init() {}

  public mutating func writeRecords(
    _ value: ByteBuffer?, compact: Bool, nullable: Bool, into buffer: inout ByteBuffer
  )
    throws(KafkaProtocolError)
  {
    try buffer.kafkaWriteNullableBytes(value, compact: compact, nullable: nullable)
  }
}

extension ByteBuffer {
  /// The length prefix of a bytes or records field of `count` bytes (int32, or an unsigned
  /// varint of count + 1 in flexible versions), without the bytes.
  public mutating func kafkaWriteBytesLength(_ count: Int, compact: Bool) {
    kafkaWriteLength(count, compact: compact, wide: true)
  }
}
