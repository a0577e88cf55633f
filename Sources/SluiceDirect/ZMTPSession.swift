public import NIOCore

/// ZeroMQ socket types this module speaks, with the peers each may talk to (RFC 37's table;
/// XPUB/XSUB are accepted as peers so libzmq proxies can sit in between).
public enum ZMQSocketType: String, Sendable, CaseIterable {
  case pub = "PUB"
  case sub = "SUB"
  case push = "PUSH"
  case pull = "PULL"

  /// Whether a peer announcing `socketType` in READY is a valid peer.
  public func accepts(_ socketType: String) -> Bool {
    switch self {
    case .pub: ["SUB", "XSUB"].contains(socketType)
    case .sub: ["PUB", "XPUB"].contains(socketType)
    case .push: socketType == "PULL"
    case .pull: socketType == "PUSH"
    }
  }
}

/// One connection's protocol state, as a value: greeting, the NULL mechanism's READY
/// exchange, then commands (SUBSCRIBE, CANCEL, PING, PONG, ERROR) and messages. Time is a
/// parameter (milliseconds on any monotonic clock), so handshake and heartbeat timeouts are
/// tested without waiting; the channel handler is the I/O shell around it.
public struct ZMTPSession: Sendable {
  public enum Phase: Sendable, Equatable {
    case greeting, handshake, ready, closed
  }

  /// What the peer told us in READY.
  public struct Peer: Sendable, Equatable {
    public var socketType: String
    public var identity: ByteBuffer?
    /// ZMTP minor version of the peer's greeting: 0 peers (ZMTP 3.0) get subscriptions as
    /// messages, 1 peers as SUBSCRIBE/CANCEL commands.
    public var minor: UInt8
  }

  /// What the shell must do.
  public enum Output: Sendable, Equatable {
    case write(ByteBuffer)
    case ready(Peer)
    case message([ByteBuffer])
    case subscribe(ByteBuffer)
    case cancel(ByteBuffer)
    /// Close the connection; the reason is for logs. Any ERROR command to send was already
    /// given as a `.write`.
    case close(String)
  }

  public struct Timing: Sendable, Equatable {
    /// READY must be done this long after the connection opened.
    public var handshakeTimeoutMs: Int64 = 10_000
    /// Send PING after this long without sending anything; nil: no heartbeats.
    public var heartbeatIntervalMs: Int64?
    /// Close after this long without receiving anything (only when heartbeats are on).
    public var heartbeatTimeoutMs: Int64?

    public init(
      handshakeTimeoutMs: Int64 = 10_000, heartbeatIntervalMs: Int64? = nil, heartbeatTimeoutMs: Int64? = nil
    ) {
      self.handshakeTimeoutMs = handshakeTimeoutMs
      self.heartbeatIntervalMs = heartbeatIntervalMs
      self.heartbeatTimeoutMs = heartbeatTimeoutMs
    }
  }

  public let socketType: ZMQSocketType
  public let identity: [UInt8]
  public let timing: Timing
  public private(set) var phase: Phase = .greeting
  public private(set) var peer: Peer?
  private var decoder: ZMTPDecoder
  private var peerMinor: UInt8 = 0
  private let openedMs: Int64
  private var lastReceivedMs: Int64
  private var lastPingMs: Int64

  public init(
    socketType: ZMQSocketType, identity: [UInt8] = [], limits: ZMTPLimits = ZMTPLimits(),
    timing: Timing = Timing(), nowMs: Int64
  ) {
    self.socketType = socketType
    self.identity = identity
    self.timing = timing
    self.decoder = ZMTPDecoder(limits: limits)
    self.decoder.messagesAllowed = false
    self.openedMs = nowMs
    self.lastReceivedMs = nowMs
    self.lastPingMs = nowMs
  }

  /// The greeting to send as soon as the connection is open.
  public func start() -> ByteBuffer { ZMTP.greeting() }

  /// Feeds received bytes (consumed as far as they form whole frames), stopping after
  /// `maxMessages` messages so that the caller can stop reading at its high-water mark; the
  /// bytes not consumed stay in `buffer` for the next call.
  public mutating func receive(_ buffer: inout ByteBuffer, nowMs: Int64, maxMessages: Int = .max) -> [Output]
  {
    guard phase != .closed else { return [] }
    lastReceivedMs = nowMs
    var outputs: [Output] = []
    var messages = 0
    do {
      while phase != .closed, messages < maxMessages, let event = try decoder.next(&buffer) {
        if case .message = event { messages += 1 }
        try handle(event, into: &outputs)
      }
    } catch {
      fail(error.message, into: &outputs)
    }
    return outputs
  }

  /// Timeouts and heartbeats; call at least every `heartbeatIntervalMs` (and once after
  /// the handshake timeout).
  public mutating func tick(nowMs: Int64) -> [Output] {
    var outputs: [Output] = []
    switch phase {
    case .closed:
      break
    case .greeting, .handshake:
      if nowMs - openedMs >= timing.handshakeTimeoutMs {
        phase = .closed
        outputs.append(.close("handshake not done after \(timing.handshakeTimeoutMs) ms"))
      }
    case .ready:
      if let timeout = timing.heartbeatTimeoutMs ?? timing.heartbeatIntervalMs.map({ $0 * 3 }),
        timing.heartbeatIntervalMs != nil, nowMs - lastReceivedMs >= timeout
      {
        phase = .closed
        outputs.append(.close("nothing received for \(nowMs - lastReceivedMs) ms (heartbeat timeout)"))
      } else if let interval = timing.heartbeatIntervalMs, nowMs - lastPingMs >= interval {
        lastPingMs = nowMs
        var data = ByteBuffer()
        // TTL in deciseconds: how long the peer may wait for traffic before closing.
        let ttl = (timing.heartbeatTimeoutMs ?? interval * 3) / 100
        data.writeInteger(UInt16(clamping: ttl))
        var frame = ByteBuffer()
        ZMTP.writeCommand("PING", data: data, into: &frame)
        outputs.append(.write(frame))
      }
    }
    return outputs
  }

  private mutating func fail(_ reason: String, into outputs: inout [Output]) {
    var frame = ByteBuffer()
    var data = ByteBuffer()
    let text = Array(reason.utf8.prefix(255))
    data.writeInteger(UInt8(text.count))
    data.writeBytes(text)
    ZMTP.writeCommand("ERROR", data: data, into: &frame)
    outputs.append(.write(frame))
    phase = .closed
    outputs.append(.close(reason))
  }

  private mutating func handle(_ event: ZMTPDecoder.Event, into outputs: inout [Output]) throws(ZMTPError) {
    switch (phase, event) {
    case (.greeting, .greeting(let greeting)):
      guard greeting.mechanism == "NULL" else {
        throw ZMTPError("security mechanism \(greeting.mechanism) is not supported (NULL is)")
      }
      peerMinor = greeting.minor
      phase = .handshake
      var properties: [(name: String, value: [UInt8])] = [("Socket-Type", Array(socketType.rawValue.utf8))]
      if !identity.isEmpty { properties.append(("Identity", identity)) }
      var frame = ByteBuffer()
      ZMTP.writeCommand("READY", data: ZMTP.properties(properties), into: &frame)
      outputs.append(.write(frame))
    case (.handshake, .command("READY", let data)):
      let properties = try ZMTP.parseProperties(data)
      guard let typeBytes = properties["socket-type"] else { throw ZMTPError("READY without Socket-Type") }
      let type = String(buffer: typeBytes)
      guard socketType.accepts(type) else {
        throw ZMTPError("socket type \(type) cannot talk to \(socketType.rawValue)")
      }
      let identity = properties["identity"].flatMap { $0.readableBytes > 0 ? $0 : nil }
      guard (identity?.readableBytes ?? 0) <= 255 else { throw ZMTPError("Identity longer than 255 bytes") }
      let peer = Peer(socketType: type, identity: identity, minor: peerMinor)
      self.peer = peer
      phase = .ready
      decoder.messagesAllowed = true
      outputs.append(.ready(peer))
    case (_, .command("ERROR", var data)):
      let length = data.readInteger(as: UInt8.self).map(Int.init) ?? 0
      let reason = data.readString(length: min(length, data.readableBytes)) ?? ""
      phase = .closed
      outputs.append(.close("the peer sent ERROR: \(reason)"))
    case (.ready, .command("PING", var data)):
      guard data.readInteger(as: UInt16.self) != nil, data.readableBytes <= 16 else {
        throw ZMTPError("malformed PING")
      }
      var frame = ByteBuffer()
      ZMTP.writeCommand("PONG", data: data, into: &frame)
      outputs.append(.write(frame))
    case (.ready, .command("PONG", _)):
      break
    case (.ready, .command("SUBSCRIBE", let data)):
      if socketType == .pub { outputs.append(.subscribe(data)) }
    case (.ready, .command("CANCEL", let data)):
      if socketType == .pub { outputs.append(.cancel(data)) }
    case (.ready, .command):
      break  // unknown commands are ignored (RFC 37)
    case (.ready, .message(let frames)):
      switch socketType {
      case .pub:
        // ZMTP 3.0 peers (and libzmq's XSUB) subscribe with a message: 1 or 0, then the prefix.
        if frames.count == 1, var body = frames.first, let kind = body.readInteger(as: UInt8.self), kind <= 1
        {
          outputs.append(kind == 1 ? .subscribe(body) : .cancel(body))
        }
      case .sub, .pull:
        outputs.append(.message(frames))
      case .push:
        break  // PUSH receives nothing; libzmq drops such messages too
      }
    case (.handshake, _):
      throw ZMTPError("expected READY")
    default:
      throw ZMTPError("unexpected \(event) in phase \(phase)")
    }
  }
}
