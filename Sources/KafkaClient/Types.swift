public import NIOCore

/// Bytes that can be a record's key or value (swift-kafka-client's protocol of the same name).
public protocol KafkaContiguousBytes: Sendable {
  /// Calls `body` with the bytes.
  func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension [UInt8]: KafkaContiguousBytes {}

extension ByteBuffer: KafkaContiguousBytes {
  public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try withUnsafeReadableBytes(body)
  }
}

extension String: KafkaContiguousBytes {
  public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    if let result = try utf8.withContiguousStorageIfAvailable({ try body(UnsafeRawBufferPointer($0)) }) {
      return result
    }
    return try Array(utf8).withUnsafeBytes(body)
  }
}

/// The key type of a message without a key.
extension Never: KafkaContiguousBytes {
  public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    switch self {}
  }
}

extension KafkaContiguousBytes {
  /// The bytes as a `ByteBuffer` (no copy when they already are one). Inlinable, so that in
  /// a caller's specialized code the type check folds away.
  @inlinable
  var kafkaByteBuffer: ByteBuffer {
    if let buffer = self as? ByteBuffer { return buffer }
    return withUnsafeBytes { ByteBuffer(bytes: $0) }
  }
}

/// A partition number; ``unassigned`` lets the producer's partitioner choose.
public struct KafkaPartition: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
  public var rawValue: Int
  public init(rawValue: Int) { self.rawValue = rawValue }
  public static let unassigned = KafkaPartition(rawValue: -1)
  public var description: String { String(rawValue) }
}

/// A position in a partition. Negative raw values are Kafka's logical offsets.
public struct KafkaOffset: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
  public var rawValue: Int
  public init(rawValue: Int) { self.rawValue = rawValue }
  /// The first offset still in the log.
  public static let beginning = KafkaOffset(rawValue: -2)
  /// The high watermark: only records produced from now on.
  public static let end = KafkaOffset(rawValue: -1)
  public var description: String {
    switch self {
    case .beginning: "beginning"
    case .end: "end"
    default: String(rawValue)
    }
  }
}

public struct KafkaTopicPartition: Hashable, Sendable, CustomStringConvertible {
  public var topic: String
  public var partition: KafkaPartition
  public init(topic: String, partition: KafkaPartition) {
    self.topic = topic
    self.partition = partition
  }
  public var description: String { "\(topic)-\(partition)" }
}

/// A record header.
public struct KafkaHeader: Hashable, Sendable {
  public var key: String
  public var value: ByteBuffer?
  public init(key: String, value: ByteBuffer?) {
    self.key = key
    self.value = value
  }
}

/// A record to produce.
public struct KafkaProducerMessage<Key: KafkaContiguousBytes, Value: KafkaContiguousBytes>: Sendable {
  public var topic: String
  public var partition: KafkaPartition
  public var headers: [KafkaHeader]
  public var key: Key?
  /// nil produces a tombstone (null value).
  public var value: Value?
  /// Milliseconds since the epoch; nil means now.
  public var timestamp: Int64?

  public init(
    topic: String, partition: KafkaPartition = .unassigned, headers: [KafkaHeader] = [], key: Key?,
    value: Value?,
    timestamp: Int64? = nil
  ) {
    self.topic = topic
    self.partition = partition
    self.headers = headers
    self.key = key
    self.value = value
    self.timestamp = timestamp
  }
}

extension KafkaProducerMessage where Key == Never {
  public init(
    topic: String, partition: KafkaPartition = .unassigned, headers: [KafkaHeader] = [], value: Value?,
    timestamp: Int64? = nil
  ) {
    self.init(
      topic: topic, partition: partition, headers: headers, key: nil, value: value, timestamp: timestamp)
  }
}

/// Where a produced record landed.
public struct KafkaAcknowledgedMessage: Hashable, Sendable {
  public var topic: String
  public var partition: KafkaPartition
  /// -1 with acks=0 (the broker does not answer).
  public var offset: KafkaOffset
  /// The broker's append time under LogAppendTime, else -1.
  public var logAppendTime: Int64
  /// The message's key, value and headers (empty for messages sent with
  /// ``KafkaProducer/enqueue(_:)``, which keeps no copy).
  public var key: ByteBuffer?
  public var value: ByteBuffer
  public var headers: [KafkaHeader]
}

/// A consumed record.
public struct KafkaConsumerMessage: Hashable, Sendable {
  public var topic: String
  public var partition: KafkaPartition
  public var headers: [KafkaHeader]
  public var key: ByteBuffer?
  /// Empty for a tombstone (see ``isTombstone``).
  public var value: ByteBuffer
  /// The value was null.
  public var isTombstone: Bool
  public var offset: KafkaOffset
  /// Milliseconds since the epoch.
  public var timestamp: Int64
  public var timestampType: KafkaTimestampType

  public init(
    topic: String, partition: KafkaPartition, headers: [KafkaHeader] = [], key: ByteBuffer? = nil,
    value: ByteBuffer, isTombstone: Bool = false, offset: KafkaOffset, timestamp: Int64 = 0,
    timestampType: KafkaTimestampType = .createTime
  ) {
    self.topic = topic
    self.partition = partition
    self.headers = headers
    self.key = key
    self.value = value
    self.isTombstone = isTombstone
    self.offset = offset
    self.timestamp = timestamp
    self.timestampType = timestampType
  }

  public var topicPartition: KafkaTopicPartition { KafkaTopicPartition(topic: topic, partition: partition) }
}

public enum KafkaTimestampType: String, Hashable, Sendable {
  case createTime = "CreateTime"
  case logAppendTime = "LogAppendTime"
}
