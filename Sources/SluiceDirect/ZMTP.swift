public import NIOCore

/// The ZMTP 3.1 wire format (ZeroMQ RFC 37): the 64-byte greeting, frames, commands and the
/// metadata properties of READY. Pure functions and a value-type decoder; the connection's
/// protocol state is ``ZMTPSession``.
public enum ZMTP {
  public static let greetingSize = 64
  /// Flags byte: another frame of the same message follows.
  static let more: UInt8 = 0x01
  /// Flags byte: an 8-byte size follows instead of a 1-byte one.
  static let long: UInt8 = 0x02
  /// Flags byte: the frame is a command, not a message frame.
  static let command: UInt8 = 0x04

  /// What a peer said about itself in its greeting.
  public struct Greeting: Equatable, Sendable {
    public var major: UInt8
    public var minor: UInt8
    public var mechanism: String
    public var asServer: Bool
  }

  /// Our greeting: signature (0xFF, 8 bytes of padding, 0x7F), version 3.1, mechanism name
  /// padded with zeros to 20 bytes, the as-server flag, 31 bytes of filler.
  public static func greeting(mechanism: String = "NULL", asServer: Bool = false) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.reserveCapacity(greetingSize)
    buffer.writeInteger(UInt8(0xFF))
    buffer.writeRepeatingByte(0, count: 8)
    buffer.writeInteger(UInt8(0x7F))
    buffer.writeInteger(UInt8(3))
    buffer.writeInteger(UInt8(1))
    let name = Array(mechanism.utf8.prefix(20))
    buffer.writeBytes(name)
    buffer.writeRepeatingByte(0, count: 20 - name.count)
    buffer.writeInteger(UInt8(asServer ? 1 : 0))
    buffer.writeRepeatingByte(0, count: 31)
    return buffer
  }

  /// Checks the 10-byte signature as soon as it is there, so that a peer speaking something
  /// else is refused without waiting for 64 bytes.
  static func checkSignature(_ buffer: ByteBuffer) throws(ZMTPError) {
    guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
    guard first == 0xFF else { throw ZMTPError("not a ZMTP peer: the greeting does not start with 0xFF") }
    guard let tenth = buffer.getInteger(at: buffer.readerIndex + 9, as: UInt8.self) else { return }
    guard tenth & 0x01 == 1 else {
      throw ZMTPError("the peer speaks ZMTP 1.0, which is not supported (ZMTP 3.x is)")
    }
  }

  /// Parses a whole greeting (64 bytes).
  static func parseGreeting(_ bytes: ByteBuffer) throws(ZMTPError) -> Greeting {
    try checkSignature(bytes)
    let view = Array(bytes.readableBytesView.prefix(greetingSize))
    guard view.count == greetingSize else { throw ZMTPError("short greeting") }
    let major = view[10]
    let minor = view[11]
    guard major >= 3 else { throw ZMTPError("the peer speaks ZMTP \(major).\(minor); 3.x is required") }
    let nameBytes = view[12..<32].prefix { $0 != 0 }
    guard nameBytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
      throw ZMTPError("the greeting's mechanism name is not printable ASCII")
    }
    return Greeting(
      major: major, minor: minor, mechanism: String(decoding: nameBytes, as: UTF8.self),
      asServer: view[32] == 1)
  }

  /// Appends a frame header (flags and size) to `buffer`.
  static func writeFrameHeader(size: Int, flags: UInt8, into buffer: inout ByteBuffer) {
    if size > 255 {
      buffer.writeInteger(flags | long)
      buffer.writeInteger(UInt64(size))
    } else {
      buffer.writeInteger(flags)
      buffer.writeInteger(UInt8(size))
    }
  }

  /// Appends a (multipart) message: every frame but the last has the MORE flag.
  public static func writeMessage(_ frames: [ByteBuffer], into buffer: inout ByteBuffer) {
    if frames.isEmpty {  // a message has at least one frame; an empty one is one empty frame
      writeFrameHeader(size: 0, flags: 0, into: &buffer)
      return
    }
    for (index, frame) in frames.enumerated() {
      writeFrameHeader(size: frame.readableBytes, flags: index == frames.count - 1 ? 0 : more, into: &buffer)
      buffer.writeImmutableBuffer(frame)
    }
  }

  /// Appends a command: name length, name, data.
  public static func writeCommand(
    _ name: String, data: ByteBuffer = ByteBuffer(), into buffer: inout ByteBuffer
  ) {
    let nameBytes = Array(name.utf8)
    writeFrameHeader(size: 1 + nameBytes.count + data.readableBytes, flags: command, into: &buffer)
    buffer.writeInteger(UInt8(nameBytes.count))
    buffer.writeBytes(nameBytes)
    buffer.writeImmutableBuffer(data)
  }

  /// A subscription (or its cancellation) in the form a peer of this ZMTP minor version
  /// understands: 3.1 peers get a SUBSCRIBE or CANCEL command, 3.0 peers a message whose
  /// first byte is 1 or 0.
  public static func subscription(_ prefix: ByteBuffer, subscribe: Bool, peerMinor: UInt8) -> ByteBuffer {
    var frame = ByteBuffer()
    if peerMinor >= 1 {
      writeCommand(subscribe ? "SUBSCRIBE" : "CANCEL", data: prefix, into: &frame)
    } else {
      var body = ByteBuffer()
      body.writeInteger(UInt8(subscribe ? 1 : 0))
      body.writeImmutableBuffer(prefix)
      writeMessage([body], into: &frame)
    }
    return frame
  }

  /// The metadata of READY (and of other mechanisms' handshakes): name length (1 byte),
  /// name, value length (4 bytes, big-endian), value.
  public static func properties(_ properties: [(name: String, value: [UInt8])]) -> ByteBuffer {
    var buffer = ByteBuffer()
    for (name, value) in properties {
      let nameBytes = Array(name.utf8.prefix(255))
      buffer.writeInteger(UInt8(nameBytes.count))
      buffer.writeBytes(nameBytes)
      buffer.writeInteger(UInt32(value.count))
      buffer.writeBytes(value)
    }
    return buffer
  }

  /// Parses metadata properties; names compare case-insensitively, so they are lower-cased.
  public static func parseProperties(_ data: ByteBuffer) throws(ZMTPError) -> [String: ByteBuffer] {
    var data = data
    var result: [String: ByteBuffer] = [:]
    while data.readableBytes > 0 {
      guard let nameLength = data.readInteger(as: UInt8.self), nameLength > 0,
        let name = data.readString(length: Int(nameLength))
      else { throw ZMTPError("malformed metadata: bad property name") }
      guard let valueLength = data.readInteger(as: UInt32.self), Int(valueLength) <= data.readableBytes,
        let value = data.readSlice(length: Int(valueLength))
      else { throw ZMTPError("malformed metadata: property \(name) overruns the command") }
      result[name.lowercased()] = value
    }
    return result
  }
}

/// A protocol violation by the peer (or bytes that are not ZMTP).
public struct ZMTPError: Error, Equatable, CustomStringConvertible, Sendable {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// Bounds on what a peer can make us hold, checked before anything is allocated.
public struct ZMTPLimits: Sendable, Equatable {
  /// The largest message (all frames together), in bytes; libzmq's ZMQ_MAXMSGSIZE.
  public var maxMessageSize: Int = 16 << 20
  /// The most frames in one multipart message.
  public var maxFrames: Int = 1024
  /// The largest command (READY, SUBSCRIBE, PING, …), in bytes.
  public var maxCommandSize: Int = 64 << 10

  public init(maxMessageSize: Int = 16 << 20, maxFrames: Int = 1024, maxCommandSize: Int = 64 << 10) {
    self.maxMessageSize = maxMessageSize
    self.maxFrames = maxFrames
    self.maxCommandSize = maxCommandSize
  }
}

/// Splits a byte stream into a greeting, then commands and whole messages. Frames are slices
/// of the input (no copy); sizes are checked against ``ZMTPLimits`` from the frame header,
/// before the body is waited for.
public struct ZMTPDecoder: Sendable {
  public enum Event: Sendable, Equatable {
    case greeting(ZMTP.Greeting)
    case command(name: String, data: ByteBuffer)
    case message([ByteBuffer])
  }

  public var limits: ZMTPLimits
  /// Whether message frames are accepted; a connection's session allows them only once the
  /// handshake is done, so that a peer cannot make us buffer a large message before READY.
  public var messagesAllowed = true
  private var greeted = false
  private var parts: [ByteBuffer] = []
  private var partsSize = 0

  public init(limits: ZMTPLimits = ZMTPLimits()) { self.limits = limits }

  /// The next event from the front of `buffer`, consuming its bytes; nil when more bytes are
  /// needed. Throws on a protocol violation (the connection must then be closed).
  public mutating func next(_ buffer: inout ByteBuffer) throws(ZMTPError) -> Event? {
    if !greeted {
      try ZMTP.checkSignature(buffer)
      guard buffer.readableBytes >= ZMTP.greetingSize else { return nil }
      let greeting = try ZMTP.parseGreeting(buffer)
      buffer.moveReaderIndex(forwardBy: ZMTP.greetingSize)
      greeted = true
      return .greeting(greeting)
    }
    while true {
      let start = buffer.readerIndex
      guard let flags = buffer.getInteger(at: start, as: UInt8.self) else { return nil }
      guard flags & 0xF8 == 0 else {
        throw ZMTPError("reserved frame flag bits set (0x\(String(flags, radix: 16)))")
      }
      let isCommand = flags & ZMTP.command != 0
      let hasMore = flags & ZMTP.more != 0
      let size: UInt64
      let headerSize: Int
      if flags & ZMTP.long != 0 {
        guard let long = buffer.getInteger(at: start + 1, as: UInt64.self) else { return nil }
        size = long
        headerSize = 9
      } else {
        guard let short = buffer.getInteger(at: start + 1, as: UInt8.self) else { return nil }
        size = UInt64(short)
        headerSize = 2
      }
      if isCommand {
        guard !hasMore else { throw ZMTPError("a command frame has the MORE flag") }
        guard parts.isEmpty else { throw ZMTPError("a command inside a multipart message") }
        guard size <= UInt64(limits.maxCommandSize) else {
          throw ZMTPError("command of \(size) bytes exceeds the limit of \(limits.maxCommandSize)")
        }
      } else {
        guard messagesAllowed else { throw ZMTPError("a message frame before the handshake is done") }
        guard size <= UInt64(limits.maxMessageSize - partsSize) else {
          throw ZMTPError("message of more than \(limits.maxMessageSize) bytes (the limit)")
        }
        guard parts.count < limits.maxFrames else {
          throw ZMTPError("message of more than \(limits.maxFrames) frames (the limit)")
        }
      }
      let bodySize = Int(size)
      guard buffer.readableBytes >= headerSize + bodySize else { return nil }
      buffer.moveReaderIndex(forwardBy: headerSize)
      var body = buffer.readSlice(length: bodySize)!
      if isCommand {
        guard let nameLength = body.readInteger(as: UInt8.self), nameLength > 0,
          let nameBytes = body.readBytes(length: Int(nameLength))
        else { throw ZMTPError("malformed command: bad name") }
        guard nameBytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
          throw ZMTPError("malformed command: name is not printable ASCII")
        }
        return .command(name: String(decoding: nameBytes, as: UTF8.self), data: body)
      }
      parts.append(body)
      partsSize += bodySize
      if !hasMore {
        let message = parts
        parts = []
        partsSize = 0
        return .message(message)
      }
    }
  }
}
