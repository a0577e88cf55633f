public import NIOCore

/// Splits a byte stream into Kafka frames: an int32 size, then that many bytes.
///
/// The size is checked against ``maximumFrameSize`` (Kafka's `socket.request.max.bytes`,
/// 100 MiB by default) as soon as its four bytes arrive, before any byte of the frame is
/// buffered for it, so a hostile size prefix cannot make the broker allocate. Frames are
/// produced as slices of the inbound buffer, without the size prefix.
public struct KafkaFrameDecoder: NIOSingleStepByteToMessageDecoder {
  public typealias InboundOut = ByteBuffer

  public static let defaultMaximumFrameSize = 104_857_600

  public let maximumFrameSize: Int

  public init(maximumFrameSize: Int = KafkaFrameDecoder.defaultMaximumFrameSize) {
    precondition(maximumFrameSize >= 0)
    self.maximumFrameSize = maximumFrameSize
  }

  public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
    try Self.nextFrame(from: &buffer, maximumFrameSize: maximumFrameSize)
  }

  public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
    try decode(buffer: &buffer)
  }

  /// Takes the next whole frame from `buffer`, or returns nil (consuming nothing) if it is not
  /// all there yet. Throws `.frameTooLarge` for a negative or oversized size prefix.
  @inlinable
  public static func nextFrame(
    from buffer: inout ByteBuffer, maximumFrameSize: Int
  ) throws(KafkaProtocolError) -> ByteBuffer? {
    guard let size = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return nil }
    guard size >= 0, Int(size) <= maximumFrameSize else {
      throw KafkaProtocolError(.frameTooLarge, "frame of \(size) bytes; the limit is \(maximumFrameSize)")
    }
    guard buffer.readableBytes >= 4 + Int(size) else { return nil }
    buffer.moveReaderIndex(forwardBy: 4)
    return buffer.readSlice(length: Int(size))
  }
}
