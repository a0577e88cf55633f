public import NIOCore

/// A tagged field this codec does not know (from a newer schema), kept verbatim.
///
/// Decoders collect unknown tags here and encoders write them back in tag order, so a value
/// that passes through Sluice loses nothing a newer peer put in it.
public struct TaggedField: Hashable, Sendable {
  public var tag: UInt32
  public var data: ByteBuffer

  public init(tag: UInt32, data: ByteBuffer) {
    self.tag = tag
    self.data = data
  }
}

/// Reads a tagged-field section one field at a time; generated decoders switch on the tag.
///
/// The count is bounded by the bytes left (each field takes at least two), and tags must be
/// strictly ascending, as Kafka requires.
package struct TaggedFieldsReader {
  @usableFromInline var remaining: UInt32
  @usableFromInline var previous: Int64 = -1

  @inlinable
  package init(_ buffer: inout ByteBuffer) throws(KafkaProtocolError) {
    let count = try buffer.readUnsignedVarInt()
    guard Int(count) <= buffer.readableBytes / 2 else {
      throw KafkaProtocolError(
        .invalidLength, "\(count) tagged fields cannot fit in \(buffer.readableBytes) bytes")
    }
    self.remaining = count
  }

  @inlinable
  package mutating func next(_ buffer: inout ByteBuffer) throws(KafkaProtocolError) -> TaggedField? {
    guard remaining > 0 else { return nil }
    remaining -= 1
    let tag = try buffer.readUnsignedVarInt()
    guard Int64(tag) > previous else {
      throw KafkaProtocolError(.invalidLength, "tagged field \(tag) out of order or repeated")
    }
    previous = Int64(tag)
    let size = Int(try buffer.readUnsignedVarInt())
    guard let slice = buffer.readSlice(length: size) else {
      throw KafkaProtocolError(.truncated, "tagged field \(tag) of \(size) bytes")
    }
    return TaggedField(tag: tag, data: slice)
  }
}
