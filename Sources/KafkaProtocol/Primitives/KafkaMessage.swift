public import NIOCore

/// A struct of a Kafka message schema: a whole message or one of its nested structs.
///
/// `init()` gives every field its schema default; decoding and encoding take the message
/// version because a field's presence, nullability and encoding depend on it.
public protocol KafkaStruct: Hashable, Sendable {
  init()
  init(from buffer: inout ByteBuffer, version: Int16) throws(KafkaProtocolError)
  func encode(to buffer: inout ByteBuffer, version: Int16) throws(KafkaProtocolError)
}

/// Whether a message schema is a request, a response, a header, or a data record.
public enum KafkaMessageKind: Sendable {
  case request
  case response
  case header
  case data
}

/// A top-level message schema generated from Kafka's JSON definitions.
public protocol KafkaMessage: KafkaStruct {
  /// The API key, or nil for headers and data records.
  static var apiKey: ApiKey? { get }
  static var kind: KafkaMessageKind { get }
  static var validVersions: ClosedRange<Int16> { get }
  /// The first version using the flexible encoding (compact types and tagged fields), or nil.
  static var firstFlexibleVersion: Int16? { get }
}

extension KafkaMessage {
  @inlinable
  public static func isFlexible(_ version: Int16) -> Bool {
    guard let first = firstFlexibleVersion else { return false }
    return version >= first
  }

  /// Decodes a message from `buffer`, requiring the version to be valid and every byte of
  /// the buffer to be consumed.
  @inlinable
  public static func decodeWhole(_ buffer: ByteBuffer, version: Int16) throws(KafkaProtocolError) -> Self {
    guard validVersions.contains(version) else {
      throw KafkaProtocolError(.unsupportedVersion, "\(Self.self) has no version \(version)")
    }
    var copy = buffer
    let value = try Self(from: &copy, version: version)
    guard copy.readableBytes == 0 else {
      throw KafkaProtocolError(.trailingBytes, "\(copy.readableBytes) bytes after \(Self.self) v\(version)")
    }
    return value
  }

  /// Encodes into a new buffer.
  @inlinable
  public func encoded(version: Int16, allocator: ByteBufferAllocator = ByteBufferAllocator())
    throws(KafkaProtocolError) -> ByteBuffer
  {
    guard Self.validVersions.contains(version) else {
      throw KafkaProtocolError(.unsupportedVersion, "\(Self.self) has no version \(version)")
    }
    var buffer = allocator.buffer(capacity: 64)
    try encode(to: &buffer, version: version)
    return buffer
  }
}
