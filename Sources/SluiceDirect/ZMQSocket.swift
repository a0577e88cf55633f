public import Logging
public import NIOCore
public import NIOPosix
import Synchronization

/// A message: one or more frames (ZeroMQ's multipart message). For PUB/SUB the first frame
/// is what subscriptions match by prefix.
public struct ZMQMessage: Sendable, Equatable, CustomStringConvertible {
  public var frames: [ByteBuffer]

  public init(_ frames: [ByteBuffer]) { self.frames = frames }
  public init(strings: [String]) { self.frames = strings.map { ByteBuffer(string: $0) } }

  /// Each frame decoded as UTF-8.
  public var strings: [String] { frames.map { String(buffer: $0) } }
  public var description: String { "ZMQMessage(\(strings))" }
}

/// Options of a socket; the defaults are libzmq's where it has one.
public struct ZMQSocketOptions: Sendable {
  /// Messages queued for one peer and not yet handed to the kernel before a PUB drops and a
  /// PUSH waits (libzmq's ZMQ_SNDHWM, 1000).
  public var sendHighWaterMark = 1000
  /// Messages received and not yet taken by `receive()` before the socket stops reading
  /// from its peers, so that TCP pushes back on them (libzmq's ZMQ_RCVHWM, 1000).
  public var receiveHighWaterMark = 1000
  /// Message, frame-count and command size bounds for what peers send.
  public var limits = ZMTPLimits()
  /// Distinct subscriptions one SUB peer may hold at a PUB; more are refused (counted).
  public var maxSubscriptionsPerPeer = 10_000
  /// Total bytes of one SUB peer's subscriptions at a PUB; more are refused (counted).
  public var maxSubscriptionBytesPerPeer = 1 << 20
  /// Connections a bound socket accepts at once; more are closed at once (counted).
  public var maxPeers = 1024
  /// Greeting and READY must be done within this time.
  public var handshakeTimeout: Duration = .seconds(10)
  /// First wait before reconnecting (libzmq's ZMQ_RECONNECT_IVL, 100 ms); doubled after each
  /// failed attempt up to `reconnectIntervalMax`.
  public var reconnectInterval: Duration = .milliseconds(100)
  public var reconnectIntervalMax: Duration = .seconds(2)
  /// Send PING this often and close a connection silent for `heartbeatTimeout` (default 3
  /// intervals); nil (libzmq's default): no heartbeats, a dead peer is noticed by TCP.
  public var heartbeatInterval: Duration?
  public var heartbeatTimeout: Duration?
  /// Identity sent in READY (at most 255 bytes); empty: none.
  public var identity: [UInt8] = []

  public init() {}
}

/// Counters of a socket, since it was made.
public struct ZMQSocketStatistics: Sendable, Equatable {
  /// Peers whose handshake is done and that are still connected.
  public var peers = 0
  /// Messages `send` accepted (for PUB: whether or not any subscriber wanted them).
  public var sent = 0
  /// PUB: copies not sent to a subscriber whose queue was at the high-water mark.
  public var dropped = 0
  /// Messages delivered to `receive` (SUB: after the subscription filter).
  public var received = 0
  /// Connections closed for a protocol error, an incompatible peer or a handshake timeout.
  public var protocolErrors = 0
  /// Connections refused at `maxPeers`.
  public var refusedPeers = 0
  /// Subscriptions refused at `maxSubscriptionsPerPeer` or `maxSubscriptionBytesPerPeer`.
  public var refusedSubscriptions = 0
}

/// The socket was closed while a `send` or `receive` waited, or before it was called.
public struct ZMQSocketClosed: Error, CustomStringConvertible {
  public var description: String { "the ZeroMQ socket is closed" }
}

/// A ZeroMQ-compatible socket (ZMTP 3.1 over TCP, NULL security) of one type: PUB, SUB,
/// PUSH or PULL. It may `bind` and `connect` to any number of endpoints; connections
/// reconnect with backoff. Send and receive semantics follow libzmq:
/// - **PUB** sends each message to every peer with a matching subscription (prefix of the
///   first frame, matched on the publisher's side). A peer whose queue holds
///   `sendHighWaterMark` messages misses the message (**drop**): a slow subscriber never
///   slows the publisher or the others. `send` never waits.
/// - **SUB** receives what matches its subscriptions; it starts with none.
/// - **PUSH** hands each message to one peer, in turn; when every peer's queue is full, or
///   there is no peer, `send` waits (**backpressure**).
/// - **PULL** receives from all peers, fairly queued.
/// A receiving socket holding `receiveHighWaterMark` unread messages stops reading, so TCP
/// pushes back: a PUB then drops for it, a PUSH waits.
public final class ZMQSocket: Sendable {
  public let type: ZMQSocketType
  public let options: ZMQSocketOptions
  let group: any EventLoopGroup
  let logger: Logger
  let state = Mutex(State())
  let counters = Counters()

  final class Counters: Sendable {
    let sent = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)
    let received = Atomic<Int>(0)
    let protocolErrors = Atomic<Int>(0)
    let refusedPeers = Atomic<Int>(0)
    let refusedSubscriptions = Atomic<Int>(0)
  }

  struct State {
    var closed = false
    /// Every open connection, handshake done or not.
    var connections: [ObjectIdentifier: ZMTPConnection] = [:]
    /// Connections whose handshake is done, in the order they became ready.
    var peers: [ZMTPConnection] = []
    var nextPeer = 0
    /// SUB: prefix → how many times subscribed.
    var subscriptions: [ByteBuffer: Int] = [:]
    var subscriptionLengths: Set<Int> = []
    var inbound = CircularBuffer<ZMQMessage>()
    /// Connections that stopped reading because `inbound` was full.
    var paused: [ZMTPConnection] = []
    var receivers: [(id: Int, continuation: CheckedContinuation<ZMQMessage, any Error>)] = []
    var senders: [(id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
    /// Waits that have an id but are not in a list yet; cancelled ones among them.
    var issued: Set<Int> = []
    var cancelled: Set<Int> = []
    var nextWaiter = 0
    var servers: [any Channel] = []
    var connectors: [Task<Void, Never>] = []
  }

  public init(
    _ type: ZMQSocketType, options: ZMQSocketOptions = ZMQSocketOptions(),
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    logger: Logger = Logger(label: "sluice.direct", factory: { _ in SwiftLogNoOpLogHandler() })
  ) {
    self.type = type
    self.options = options
    self.group = group
    self.logger = logger
  }

  public var statistics: ZMQSocketStatistics {
    var result = ZMQSocketStatistics()
    result.peers = state.withLock { $0.peers.count }
    result.sent = counters.sent.load(ordering: .relaxed)
    result.dropped = counters.dropped.load(ordering: .relaxed)
    result.received = counters.received.load(ordering: .relaxed)
    result.protocolErrors = counters.protocolErrors.load(ordering: .relaxed)
    result.refusedPeers = counters.refusedPeers.load(ordering: .relaxed)
    result.refusedSubscriptions = counters.refusedSubscriptions.load(ordering: .relaxed)
    return result
  }

  // MARK: bind and connect

  /// Listens on `tcp://HOST:PORT`; returns the bound endpoint (with the port chosen when
  /// PORT was `*` or 0).
  @discardableResult
  public func bind(_ text: String) async throws -> ZMQEndpoint {
    let endpoint = try ZMQEndpoint.parse(text).get()
    let server = try await ServerBootstrap(group: group)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
      .childChannelInitializer { channel in
        guard self.accept(channel) else {
          self.counters.refusedPeers.add(1, ordering: .relaxed)
          return channel.close()
        }
        return channel.eventLoop.makeCompletedFuture { _ = try self.initialize(channel) }
      }
      .bind(host: endpoint.host, port: endpoint.port).get()
    let closed = state.withLock { state in
      if !state.closed { state.servers.append(server) }
      return state.closed
    }
    if closed {
      try? await server.close()
      throw ZMQSocketClosed()
    }
    return ZMQEndpoint(host: endpoint.host, port: server.localAddress?.port ?? endpoint.port)
  }

  /// Connects to `tcp://HOST:PORT` in the background, and again whenever the connection
  /// drops, waiting `reconnectInterval` (doubling up to `reconnectIntervalMax`) between
  /// attempts. Throws only for a malformed endpoint or a closed socket.
  public func connect(_ text: String) throws {
    let endpoint = try ZMQEndpoint.parse(text).get()
    guard endpoint.port != 0, !text.contains("*") else {
      throw ZMTPError("\"\(text)\": connect needs a host and a port (* is for bind)")
    }
    let task = Task { await self.connectLoop(endpoint) }
    let closed = state.withLock { state in
      if !state.closed { state.connectors.append(task) }
      return state.closed
    }
    if closed {
      task.cancel()
      throw ZMQSocketClosed()
    }
  }

  private func connectLoop(_ endpoint: ZMQEndpoint) async {
    var delay = options.reconnectInterval
    while !Task.isCancelled && !state.withLock({ $0.closed }) {
      let made = ConnectionBox()
      do {
        let channel = try await ClientBootstrap(group: group)
          .channelOption(.tcpOption(.tcp_nodelay), value: 1)
          .connectTimeout(.seconds(5))
          .channelInitializer { channel in
            guard self.accept(channel) else { return channel.close() }
            return channel.eventLoop.makeCompletedFuture {
              let connection = try self.initialize(channel)
              made.value.withLock { $0 = connection }
            }
          }
          .connect(host: endpoint.host, port: endpoint.port).get()
        logger.debug("connected to \(endpoint)")
        try? await channel.closeFuture.get()
        if made.value.withLock({ $0?.wasReady.load(ordering: .relaxed) ?? false }) {
          delay = options.reconnectInterval
        }
      } catch {
        logger.debug("cannot connect to \(endpoint): \(error)")
      }
      if Task.isCancelled || state.withLock({ $0.closed }) { break }
      try? await Task.sleep(for: delay)
      delay = min(delay * 2, max(options.reconnectIntervalMax, options.reconnectInterval))
    }
  }

  private final class ConnectionBox: Sendable {
    let value = Mutex<ZMTPConnection?>(nil)
  }

  /// Room for another connection? (Counted against `maxPeers` from the moment it opens.)
  private func accept(_ channel: any Channel) -> Bool {
    state.withLock { !$0.closed && $0.connections.count < options.maxPeers }
  }

  private func initialize(_ channel: any Channel) throws -> ZMTPConnection {
    let timing = ZMTPSession.Timing(
      handshakeTimeoutMs: options.handshakeTimeout.milliseconds,
      heartbeatIntervalMs: options.heartbeatInterval?.milliseconds,
      heartbeatTimeoutMs: options.heartbeatTimeout?.milliseconds)
    let session = ZMTPSession(
      socketType: type, identity: options.identity, limits: options.limits, timing: timing,
      nowMs: monotonicMs())
    let handler = ZMTPHandler(session: session, logger: logger)
    let connection = ZMTPConnection(
      channel: channel, socket: self, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
    handler.connection = connection
    try channel.pipeline.syncOperations.addHandler(handler)
    let closed = state.withLock { state in
      if !state.closed { state.connections[ObjectIdentifier(connection)] = connection }
      return state.closed
    }
    if closed {
      channel.close(promise: nil)
      throw ZMQSocketClosed()
    }
    // Every way a channel ends (a refused connect never becomes active, so channelInactive
    // is not enough) takes its connection out of the books.
    channel.closeFuture.whenComplete { _ in self.connectionClosed(connection) }
    return connection
  }

  // MARK: events from connections

  func connectionReady(_ connection: ZMTPConnection) {
    let senders = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
      guard !state.closed else { return [] }
      state.peers.append(connection)
      if type == .sub {
        for prefix in state.subscriptions.keys { connection.sendSubscription(prefix, subscribe: true) }
      }
      let waiting = state.senders.map(\.continuation)
      state.senders.removeAll()
      return waiting
    }
    for sender in senders { sender.resume() }
  }

  func connectionClosed(_ connection: ZMTPConnection) {
    state.withLock { state in
      state.connections[ObjectIdentifier(connection)] = nil
      state.peers.removeAll { $0 === connection }
      state.paused.removeAll { $0 === connection }
    }
  }

  func protocolError() { counters.protocolErrors.add(1, ordering: .relaxed) }
  func refusedSubscription() { counters.refusedSubscriptions.add(1, ordering: .relaxed) }

  /// A message from a peer (SUB, PULL). False: stop reading from that peer for now (it is
  /// then on the `paused` list, once).
  func deliver(_ message: ZMQMessage, from connection: ZMTPConnection) -> Bool {
    let (receiver, keepReading) = state.withLock {
      state -> (CheckedContinuation<ZMQMessage, any Error>?, Bool) in
      if state.closed { return (nil, false) }
      if type == .sub && !state.matches(message.frames.first ?? ByteBuffer()) { return (nil, true) }
      if !state.receivers.isEmpty { return (state.receivers.removeFirst().continuation, true) }
      state.inbound.append(message)
      if state.inbound.count >= options.receiveHighWaterMark {
        if !state.paused.contains(where: { $0 === connection }) { state.paused.append(connection) }
        return (nil, false)
      }
      return (nil, true)
    }
    if let receiver {
      counters.received.add(1, ordering: .relaxed)
      receiver.resume(returning: message)
    }
    return keepReading
  }

  /// A PUSH peer's queue went below the high-water mark: wake senders.
  func capacityFreed() {
    let senders = state.withLock { state in
      let waiting = state.senders.map(\.continuation)
      state.senders.removeAll()
      return waiting
    }
    for sender in senders { sender.resume() }
  }

  // MARK: subscriptions (SUB)

  /// Subscribes to messages whose first frame starts with `prefix` (empty: all). Each call
  /// counts: as many `unsubscribe` calls undo it (as in libzmq, peers hear of a prefix's
  /// first subscription and of its last cancellation only).
  public func subscribe(_ prefix: ByteBuffer = ByteBuffer()) {
    precondition(type == .sub, "only SUB sockets subscribe")
    state.withLock { state in
      state.subscriptions[prefix, default: 0] += 1
      guard state.subscriptions[prefix] == 1 else { return }
      state.subscriptionLengths.insert(prefix.readableBytes)
      for peer in state.peers { peer.sendSubscription(prefix, subscribe: true) }
    }
  }

  public func subscribe(_ prefix: String) { subscribe(ByteBuffer(string: prefix)) }

  public func unsubscribe(_ prefix: ByteBuffer) {
    precondition(type == .sub, "only SUB sockets subscribe")
    state.withLock { state in
      guard let count = state.subscriptions[prefix] else { return }
      guard count == 1 else {
        state.subscriptions[prefix] = count - 1
        return
      }
      state.subscriptions[prefix] = nil
      state.subscriptionLengths = Set(state.subscriptions.keys.map(\.readableBytes))
      for peer in state.peers { peer.sendSubscription(prefix, subscribe: false) }
    }
  }

  public func unsubscribe(_ prefix: String) { unsubscribe(ByteBuffer(string: prefix)) }

  // MARK: send

  /// Sends a message (PUB, PUSH); see the type's documentation for when it drops or waits.
  nonisolated(nonsending) public func send(_ message: ZMQMessage) async throws {
    try await send(contentsOf: [message])
  }

  /// Sends messages in order, as `send` would one by one, with one write per peer for all
  /// of them (what a producer with a batch in hand should use: far fewer system calls). The
  /// high-water mark applies message by message: a PUB drops what does not fit below it, so
  /// keep batches well under `sendHighWaterMark`.
  nonisolated(nonsending) public func send(contentsOf messages: [ZMQMessage]) async throws {
    guard !messages.isEmpty else { return }
    switch type {
    case .pub:
      let peers = try state.withLock { state in
        guard !state.closed else { throw ZMQSocketClosed() }
        return state.peers
      }
      var dropped = 0
      for peer in peers { dropped += peer.publish(messages) }
      if dropped > 0 { counters.dropped.add(dropped, ordering: .relaxed) }
      counters.sent.add(messages.count, ordering: .relaxed)
    case .push:
      var rest = messages[...]
      while !rest.isEmpty {
        // Round robin, message by message, over the peers with room: as libzmq hands out.
        let plan = try state.withLock { state -> [(ZMTPConnection, [ZMQMessage])] in
          guard !state.closed else { throw ZMQSocketClosed() }
          let count = state.peers.count
          guard count > 0 else { return [] }
          let ordered = (0..<count).map { state.peers[(state.nextPeer + $0) % count] }
          var rooms = ordered.map(\.room)
          var lists = Array(repeating: [ZMQMessage](), count: count)
          var at = 0
          while let message = rest.first {
            var step = 0
            while step < count && rooms[(at + step) % count] == 0 { step += 1 }
            if step == count { break }
            let chosen = (at + step) % count
            lists[chosen].append(message)
            rooms[chosen] -= 1
            rest.removeFirst()
            at = chosen + 1
          }
          state.nextPeer = (state.nextPeer + at) % count
          return zip(ordered, lists).filter { !$0.1.isEmpty }
        }
        for (peer, list) in plan {
          peer.enqueue(list)
          counters.sent.add(list.count, ordering: .relaxed)
        }
        if !rest.isEmpty { try await waitForCapacity() }
      }
    case .sub, .pull:
      throw ZMTPError("\(type.rawValue) sockets do not send")
    }
  }

  nonisolated(nonsending) public func send(_ strings: String...) async throws {
    try await send(ZMQMessage(strings: strings))
  }

  private func waitForCapacity() async throws {
    try await wait(in: \.senders) { state in
      state.peers.contains(where: { $0.room > 0 }) ? (.success(()), []) : nil
    }
  }

  /// Waits in one of the state's waiter lists until resumed (by `deliver`, `capacityFreed`
  /// or `close`), unless `ready` — run under the lock just before waiting — answers at once;
  /// it may also name paused connections to wake. Cancellation resumes with
  /// `CancellationError`, whether it comes before, while or (harmlessly) after waiting.
  nonisolated(nonsending) private func wait<T: Sendable>(
    in list: any WritableKeyPath<State, [(id: Int, continuation: CheckedContinuation<T, any Error>)]>
      & Sendable,
    ready: @escaping (inout State) -> (Result<T, any Error>, [ZMTPConnection])?
  ) async throws -> T {
    let id = state.withLock { state in
      state.nextWaiter += 1
      state.issued.insert(state.nextWaiter)
      return state.nextWaiter
    }
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let answer: (Result<T, any Error>, [ZMTPConnection])? = state.withLock { state in
          state.issued.remove(id)
          if state.cancelled.remove(id) != nil { return (.failure(CancellationError()), []) }
          if let answer = ready(&state) { return answer }
          if state.closed { return (.failure(ZMQSocketClosed()), []) }
          state[keyPath: list].append((id, continuation))
          return nil
        }
        if let (result, resume) = answer {
          for connection in resume { connection.resumeReading() }
          continuation.resume(with: result)
        }
      }
    } onCancel: {
      let waiter = state.withLock { state -> CheckedContinuation<T, any Error>? in
        if let at = state[keyPath: list].firstIndex(where: { $0.id == id }) {
          return state[keyPath: list].remove(at: at).continuation
        }
        // Not waiting yet: the registration above will see it. Already answered: nothing.
        if state.issued.contains(id) { state.cancelled.insert(id) }
        return nil
      }
      waiter?.resume(throwing: CancellationError())
    }
  }

  // MARK: receive

  /// The next message, without waiting; nil when none is queued.
  public func tryReceive() -> ZMQMessage? {
    let (message, resume) = state.withLock { state -> (ZMQMessage?, [ZMTPConnection]) in
      guard let message = state.inbound.popFirst() else { return (nil, []) }
      return (message, state.resumable(lowWater: options.receiveHighWaterMark / 2))
    }
    for connection in resume { connection.resumeReading() }
    if message != nil { counters.received.add(1, ordering: .relaxed) }
    return message
  }

  /// The next message (SUB, PULL), waiting for one.
  nonisolated(nonsending) public func receive() async throws -> ZMQMessage {
    if let message = tryReceive() { return message }
    return try await wait(in: \.receivers) { state in
      guard let message = state.inbound.popFirst() else { return nil }
      self.counters.received.add(1, ordering: .relaxed)
      return (.success(message), state.resumable(lowWater: self.options.receiveHighWaterMark / 2))
    }
  }

  // MARK: waiting for peers, closing

  /// Waits until at least `count` peers have done their handshake (for PUB, with
  /// `subscribed`: peers holding at least one subscription, so that a first message is not
  /// lost to the slow-joiner race). False on timeout.
  public func waitForPeers(_ count: Int = 1, subscribed: Bool = false, timeout: Duration) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
      let ready = state.withLock { state in
        state.peers.filter { !subscribed || $0.hasSubscriptions }.count
      }
      if ready >= count { return true }
      if ContinuousClock.now >= deadline || Task.isCancelled { return false }
      try? await Task.sleep(for: .milliseconds(5))
    }
  }

  /// Stops listening and connecting, waits up to `linger` for queued messages to reach the
  /// kernel (libzmq's ZMQ_LINGER), then closes every connection. Waiting `send` and
  /// `receive` calls throw ``ZMQSocketClosed``.
  public func close(linger: Duration = .seconds(2)) async {
    let (servers, connectors, receivers, senders) = state.withLock { state in
      state.closed = true
      defer {
        state.servers = []
        state.connectors = []
        state.receivers = []
        state.senders = []
      }
      return (state.servers, state.connectors, state.receivers, state.senders)
    }
    for receiver in receivers { receiver.continuation.resume(throwing: ZMQSocketClosed()) }
    for sender in senders { sender.continuation.resume(throwing: ZMQSocketClosed()) }
    for connector in connectors { connector.cancel() }
    for server in servers { try? await server.close() }
    let deadline = ContinuousClock.now + linger
    while ContinuousClock.now < deadline,
      state.withLock({ $0.connections.values.contains { $0.hasPending } })
    {
      try? await Task.sleep(for: .milliseconds(2))
    }
    let connections = state.withLock { Array($0.connections.values) }
    for connection in connections { try? await connection.channel.close() }
  }
}

extension ZMQSocket.State {
  /// SUB's filter: does the first frame start with a subscribed prefix?
  func matches(_ topic: ByteBuffer) -> Bool {
    for length in subscriptionLengths where length <= topic.readableBytes {
      if subscriptions[topic.getSlice(at: topic.readerIndex, length: length)!] != nil { return true }
    }
    return false
  }

  /// Paused connections to wake once the queue is down to the low-water mark.
  mutating func resumable(lowWater: Int) -> [ZMTPConnection] {
    guard !paused.isEmpty, inbound.count <= lowWater else { return [] }
    defer { paused = [] }
    return paused
  }
}

extension Duration {
  var milliseconds: Int64 {
    let (seconds, attoseconds) = components
    return seconds * 1000 + attoseconds / 1_000_000_000_000_000
  }
}

func monotonicMs() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000) }
