public import NIOCore

/// One record of a batch, as a consumer sees it.
///
/// Produced by `RecordIterator`: offsets and timestamps are absolute (the batch's base plus
/// the record's deltas), and `key`, `value` and header values are slices of the batch's
/// buffer (or of the decompressed records, for a compressed batch) — no bytes are copied.
public struct Record: Hashable, Sendable {
  /// `baseOffset + offsetDelta`.
  public var offset: Int64
  /// `baseTimestamp + timestampDelta`, or the batch's `maxTimestamp` under LogAppendTime.
  public var timestamp: Int64
  /// nil when the record has no key (length -1); an empty buffer when the key is empty.
  public var key: ByteBuffer?
  /// nil for a tombstone (length -1); an empty buffer when the value is empty.
  public var value: ByteBuffer?
  public var headers: [RecordHeader]
  /// The record-level attributes byte (unused by Kafka so far; always 0 from clients).
  public var attributes: Int8

  public init(
    offset: Int64, timestamp: Int64, key: ByteBuffer?, value: ByteBuffer?, headers: [RecordHeader] = [],
    attributes: Int8 = 0
  ) {
    self.offset = offset
    self.timestamp = timestamp
    self.key = key
    self.value = value
    self.headers = headers
    self.attributes = attributes
  }

  /// The smallest possible encoded record: length, attributes, timestampDelta, offsetDelta,
  /// key length, value length and header count, one byte each.
  static let minimumEncodedSize: Int64 = 7
}

/// A record header: a UTF-8 key (never null) and an optional value.
public struct RecordHeader: Hashable, Sendable {
  public var key: String
  public var value: ByteBuffer?

  public init(key: String, value: ByteBuffer?) {
    self.key = key
    self.value = value
  }
}

/// The type of a control record (the key's second int16).
public struct ControlRecordType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
  public var rawValue: Int16
  public init(rawValue: Int16) { self.rawValue = rawValue }

  /// Transaction aborted: consumers in read_committed skip the producer's records.
  public static let abort = ControlRecordType(rawValue: 0)
  /// Transaction committed.
  public static let commit = ControlRecordType(rawValue: 1)

  public var description: String {
    switch self {
    case .abort: "abort"
    case .commit: "commit"
    default: "type(\(rawValue))"
    }
  }
}

/// The payload of a record in a control batch (a transaction marker).
///
/// Key: version int16 + type int16. For abort and commit the value is an end-transaction
/// marker: version int16 + coordinatorEpoch int32. Other types are carried without a value
/// interpretation, so newer markers pass through.
public struct ControlRecord: Hashable, Sendable {
  public var version: Int16
  public var type: ControlRecordType
  /// Version of the end-transaction marker value; nil when the type has no such value.
  public var markerVersion: Int16?
  /// The transaction coordinator's epoch from the marker value; nil when absent.
  public var coordinatorEpoch: Int32?

  public init(
    version: Int16 = 0, type: ControlRecordType, markerVersion: Int16? = 0, coordinatorEpoch: Int32?
  ) {
    self.version = version
    self.type = type
    self.markerVersion = markerVersion
    self.coordinatorEpoch = coordinatorEpoch
  }

  /// Parses a control record's key and value. Throws `.corruptRecordBatch` when the key is
  /// absent or short, or an abort/commit value is absent or short.
  public init(key: ByteBuffer?, value: ByteBuffer?) throws(KafkaProtocolError) {
    guard var key, let version = key.readInteger(as: Int16.self), let type = key.readInteger(as: Int16.self)
    else {
      throw KafkaProtocolError(.corruptRecordBatch, "control record key shorter than 4 bytes")
    }
    guard version >= 0 else {
      throw KafkaProtocolError(.corruptRecordBatch, "control record key version \(version)")
    }
    self.version = version
    self.type = ControlRecordType(rawValue: type)
    if self.type == .abort || self.type == .commit {
      guard var value, let markerVersion = value.readInteger(as: Int16.self),
        let epoch = value.readInteger(as: Int32.self)
      else {
        throw KafkaProtocolError(.corruptRecordBatch, "end-transaction marker value shorter than 6 bytes")
      }
      guard markerVersion >= 0 else {
        throw KafkaProtocolError(.corruptRecordBatch, "end-transaction marker version \(markerVersion)")
      }
      self.markerVersion = markerVersion
      self.coordinatorEpoch = epoch
    } else {
      self.markerVersion = nil
      self.coordinatorEpoch = nil
    }
  }

  /// Parses the control payload of `record` (a record of a control batch).
  public init(_ record: Record) throws(KafkaProtocolError) {
    try self.init(key: record.key, value: record.value)
  }

  /// The encoded key: version + type.
  public func encodedKey(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
    var buffer = allocator.buffer(capacity: 4)
    buffer.writeInteger(version)
    buffer.writeInteger(type.rawValue)
    return buffer
  }

  /// The encoded value: the end-transaction marker, or nil when there is none.
  public func encodedValue(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer? {
    guard let coordinatorEpoch else { return nil }
    var buffer = allocator.buffer(capacity: 6)
    buffer.writeInteger(markerVersion ?? 0)
    buffer.writeInteger(coordinatorEpoch)
    return buffer
  }
}
