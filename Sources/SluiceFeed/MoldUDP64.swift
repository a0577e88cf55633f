public import NIOCore

/// MoldUDP64 (NASDAQ, version 1.00): the framing of a multicast feed and of its
/// retransmission requests. All integers are big-endian.
///
/// ```
/// downstream packet: session (10 bytes) · sequence number (u64) · message count (u16)
///                    · count × (length (u16) · bytes)
/// request packet:    session (10 bytes) · sequence number (u64) · requested count (u16)
/// ```
/// A packet with count 0 is a heartbeat, with count 0xFFFF the end of the session; both
/// carry the next sequence number.
public enum MoldUDP64 {
  /// Session, sequence number and count.
  public static let headerSize = 20
  public static let sessionLength = 10
  public static let endOfSessionCount: UInt16 = 0xFFFF
  /// The largest UDP payload over IPv4.
  public static let maxDatagram = 65_507
  /// The longest message that fits in one datagram: the datagram less the header and the
  /// message's length field.
  public static let maxMessage = maxDatagram - headerSize - 2

  /// A session name: 10 printable ASCII bytes.
  public struct Session: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// nil unless `text` is exactly 10 printable ASCII characters.
    public init?(_ text: String) {
      self.init(bytes: Array(text.utf8))
    }

    public init?(bytes: [UInt8]) {
      guard bytes.count == MoldUDP64.sessionLength, bytes.allSatisfy({ (0x20...0x7E).contains($0) }) else {
        return nil
      }
      self.bytes = bytes
    }

    public var description: String { String(decoding: bytes, as: UTF8.self) }
  }

  public enum DecodingError: Error, Equatable, CustomStringConvertible {
    case tooShort(Int)
    case badSession
    case truncatedMessage(index: Int)
    case trailingBytes(Int)
    case wrongRequestSize(Int)
    case zeroCount
    case sequenceOverflow

    public var description: String {
      switch self {
      case .tooShort(let size): "packet of \(size) bytes is shorter than the 20-byte header"
      case .badSession: "session is not 10 printable ASCII characters"
      case .truncatedMessage(let index): "message \(index) runs past the end of the packet"
      case .trailingBytes(let count): "\(count) bytes after the last message"
      case .wrongRequestSize(let size): "request packet of \(size) bytes (expected 20)"
      case .zeroCount: "request for 0 messages"
      case .sequenceOverflow: "sequence number plus count passes 2^64"
      }
    }
  }

  /// A downstream packet: messages, a heartbeat or the end of a session.
  public struct Packet: Sendable, Equatable {
    public var session: Session
    /// The sequence number of the first message; for a heartbeat or the end of the session
    /// the next sequence number.
    public var sequence: UInt64
    /// Slices of the datagram; empty for a heartbeat or the end of the session.
    public var messages: [ByteBuffer]
    public var isEndOfSession: Bool

    public init(session: Session, sequence: UInt64, messages: [ByteBuffer], isEndOfSession: Bool = false) {
      self.session = session
      self.sequence = sequence
      self.messages = messages
      self.isEndOfSession = isEndOfSession
    }

    public var isHeartbeat: Bool { messages.isEmpty && !isEndOfSession }
  }

  /// A retransmission request: `count` messages from `sequence` on.
  public struct Request: Sendable, Equatable {
    public var session: Session
    public var sequence: UInt64
    public var count: UInt16

    public init(session: Session, sequence: UInt64, count: UInt16) {
      self.session = session
      self.sequence = sequence
      self.count = count
    }
  }

  /// Decodes a downstream packet. Messages are slices of `datagram` (nothing is copied), and
  /// the message array never outgrows what the datagram's bytes can hold.
  public static func decodePacket(_ datagram: ByteBuffer) throws(DecodingError) -> Packet {
    var buffer = datagram
    let (session, sequence, count) = try header(&buffer)
    if count == endOfSessionCount || count == 0 {
      guard buffer.readableBytes == 0 else { throw .trailingBytes(buffer.readableBytes) }
      return Packet(session: session, sequence: sequence, messages: [], isEndOfSession: count != 0)
    }
    guard sequence <= UInt64.max - UInt64(count) else { throw .sequenceOverflow }
    // Each message takes at least its 2-byte length.
    guard Int(count) * 2 <= buffer.readableBytes else {
      throw .truncatedMessage(index: buffer.readableBytes / 2)
    }
    var messages: [ByteBuffer] = []
    messages.reserveCapacity(Int(count))
    for index in 0..<Int(count) {
      guard let length = buffer.readInteger(as: UInt16.self),
        let message = buffer.readSlice(length: Int(length))
      else { throw .truncatedMessage(index: index) }
      messages.append(message)
    }
    guard buffer.readableBytes == 0 else { throw .trailingBytes(buffer.readableBytes) }
    return Packet(session: session, sequence: sequence, messages: messages)
  }

  /// Decodes a request packet: exactly 20 bytes, a count of at least 1.
  public static func decodeRequest(_ datagram: ByteBuffer) throws(DecodingError) -> Request {
    guard datagram.readableBytes == headerSize else { throw .wrongRequestSize(datagram.readableBytes) }
    var buffer = datagram
    let (session, sequence, count) = try header(&buffer)
    guard count > 0 else { throw .zeroCount }
    guard sequence <= UInt64.max - UInt64(count) else { throw .sequenceOverflow }
    return Request(session: session, sequence: sequence, count: count)
  }

  private static func header(
    _ buffer: inout ByteBuffer
  ) throws(DecodingError) -> (Session, UInt64, UInt16) {
    guard buffer.readableBytes >= headerSize else { throw .tooShort(buffer.readableBytes) }
    guard let session = Session(bytes: buffer.readBytes(length: sessionLength)!) else { throw .badSession }
    let sequence = buffer.readInteger(as: UInt64.self)!
    let count = buffer.readInteger(as: UInt16.self)!
    return (session, sequence, count)
  }

  public static func heartbeat(_ session: Session, next: UInt64) -> ByteBuffer {
    control(session, next: next, count: 0)
  }

  public static func endOfSession(_ session: Session, next: UInt64) -> ByteBuffer {
    control(session, next: next, count: endOfSessionCount)
  }

  public static func request(_ request: Request) -> ByteBuffer {
    control(request.session, next: request.sequence, count: request.count)
  }

  private static func control(_ session: Session, next: UInt64, count: UInt16) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.reserveCapacity(headerSize)
    buffer.writeBytes(session.bytes)
    buffer.writeInteger(next)
    buffer.writeInteger(count)
    return buffer
  }

  /// Packs messages into one downstream packet of at most `capacity` bytes; the first
  /// message always fits (up to `maxDatagram`).
  public struct PacketBuilder {
    public let sequence: UInt64
    public let capacity: Int
    public private(set) var count = 0
    private var buffer: ByteBuffer

    public init(session: Session, sequence: UInt64, capacity: Int) {
      self.sequence = sequence
      self.capacity = min(max(capacity, headerSize + 2), maxDatagram)
      buffer = ByteBuffer()
      buffer.reserveCapacity(min(self.capacity, 2048))
      buffer.writeBytes(session.bytes)
      buffer.writeInteger(sequence)
      buffer.writeInteger(UInt16(0))
    }

    /// The bytes packed so far.
    public var size: Int { buffer.readableBytes }

    /// Whether a message of `length` bytes can be appended: it fits the capacity, or it is
    /// the first (and fits a datagram), and the count stays below 0xFFFF.
    public func fits(_ length: Int) -> Bool {
      guard length <= maxMessage, count < Int(endOfSessionCount) - 1 else { return false }
      return count == 0 || buffer.readableBytes + 2 + length <= capacity
    }

    /// Appends a message; call `fits` first.
    public mutating func append(_ message: ByteBuffer) {
      precondition(message.readableBytes <= maxMessage)
      buffer.writeInteger(UInt16(message.readableBytes))
      buffer.writeImmutableBuffer(message)
      count += 1
    }

    /// Appends a message built in place: `write` adds its bytes, which must number `length`.
    public mutating func append(length: Int, _ write: (inout ByteBuffer) -> Void) {
      precondition(length <= maxMessage)
      buffer.writeInteger(UInt16(length))
      let start = buffer.writerIndex
      write(&buffer)
      precondition(buffer.writerIndex - start == length, "message length mismatch")
      count += 1
    }

    /// The packet, with its count filled in.
    public func finish() -> ByteBuffer {
      var packet = buffer
      packet.setInteger(UInt16(count), at: packet.readerIndex + sessionLength + 8)
      return packet
    }
  }
}

/// The `record` payload of a feed: a record's timestamp, key, value and headers.
///
/// ```
/// timestamp (i64, ms) · key length (i32, −1 = null) · key · value length (i32, −1 = null)
/// · value · header count (u16) · per header: name length (u16) · name (UTF-8)
/// · value length (i32, −1 = null) · value
/// ```
public struct FeedRecord: Sendable, Equatable {
  public var timestamp: Int64
  public var key: ByteBuffer?
  public var value: ByteBuffer?
  public var headers: [(name: String, value: ByteBuffer?)]

  public init(
    timestamp: Int64, key: ByteBuffer?, value: ByteBuffer?, headers: [(name: String, value: ByteBuffer?)]
  ) {
    self.timestamp = timestamp
    self.key = key
    self.value = value
    self.headers = headers
  }

  public static func == (lhs: FeedRecord, rhs: FeedRecord) -> Bool {
    lhs.timestamp == rhs.timestamp && lhs.key == rhs.key && lhs.value == rhs.value
      && lhs.headers.elementsEqual(rhs.headers) { $0.name == $1.name && $0.value == $1.value }
  }

  /// The encoded size, for checking the fit before writing.
  public static func encodedSize(
    key: ByteBuffer?, value: ByteBuffer?, headers: [(name: String, value: ByteBuffer?)]
  )
    -> Int
  {
    var size = 8 + 4 + (key?.readableBytes ?? 0) + 4 + (value?.readableBytes ?? 0) + 2
    for header in headers { size += 2 + header.name.utf8.count + 4 + (header.value?.readableBytes ?? 0) }
    return size
  }

  public static func encode(
    timestamp: Int64, key: ByteBuffer?, value: ByteBuffer?, headers: [(name: String, value: ByteBuffer?)],
    into buffer: inout ByteBuffer
  ) {
    buffer.writeInteger(timestamp)
    for bytes in [key, value] {
      if let bytes {
        buffer.writeInteger(Int32(bytes.readableBytes))
        buffer.writeImmutableBuffer(bytes)
      } else {
        buffer.writeInteger(Int32(-1))
      }
    }
    buffer.writeInteger(UInt16(min(headers.count, Int(UInt16.max))))
    for header in headers.prefix(Int(UInt16.max)) {
      buffer.writeInteger(UInt16(header.name.utf8.count))
      buffer.writeString(header.name)
      if let value = header.value {
        buffer.writeInteger(Int32(value.readableBytes))
        buffer.writeImmutableBuffer(value)
      } else {
        buffer.writeInteger(Int32(-1))
      }
    }
  }

  public enum DecodingError: Error, Equatable {
    case truncated
    case badLength
    case trailingBytes
  }

  /// Decodes an envelope; byte fields are slices of `message`.
  public init(decoding message: ByteBuffer) throws(DecodingError) {
    var buffer = message
    func bytes() throws(DecodingError) -> ByteBuffer? {
      guard let length = buffer.readInteger(as: Int32.self) else { throw .truncated }
      if length == -1 { return nil }
      guard length >= 0 else { throw .badLength }
      guard let slice = buffer.readSlice(length: Int(length)) else { throw .truncated }
      return slice
    }
    guard let timestamp = buffer.readInteger(as: Int64.self) else { throw .truncated }
    let key = try bytes()
    let value = try bytes()
    guard let count = buffer.readInteger(as: UInt16.self) else { throw .truncated }
    // Each header takes at least 6 bytes.
    guard Int(count) * 6 <= buffer.readableBytes else { throw .truncated }
    var headers: [(name: String, value: ByteBuffer?)] = []
    headers.reserveCapacity(Int(count))
    for _ in 0..<count {
      guard let nameLength = buffer.readInteger(as: UInt16.self),
        let name = buffer.readString(length: Int(nameLength))
      else { throw .truncated }
      headers.append((name, try bytes()))
    }
    guard buffer.readableBytes == 0 else { throw .trailingBytes }
    self.init(timestamp: timestamp, key: key, value: value, headers: headers)
  }
}
