public import NIOCore
import NIOPosix
import Synchronization

/// Where and how a ``FeedReceiver`` listens.
public struct FeedReceiverConfiguration: Sendable {
  /// The IPv4 multicast group and port of the feed.
  public var group: String
  public var port: Int
  /// The retransmission server; nil: gaps are counted, not recovered.
  public var retransmit: (host: String, port: Int)?
  /// IPv4 address or name of the interface to join the group on; nil: the kernel's choice.
  public var interface: String?
  /// Start every session at this sequence number (catching up through retransmission).
  public var from: UInt64?
  /// A retransmission request unanswered this long is sent again.
  public var requestTimeout: Duration = .milliseconds(100)
  /// Messages delivered but not yet taken by `next()`: past this, the receiver stops reading
  /// the group (the kernel then drops datagrams, which are recovered later as gaps).
  public var maxQueued = 100_000
  /// SO_RCVBUF of the group socket (the kernel may cap it at net.core.rmem_max).
  public var receiveBufferBytes = 8 << 20

  public init(
    group: String, port: Int, retransmit: (host: String, port: Int)? = nil, interface: String? = nil,
    from: UInt64? = nil
  ) {
    self.group = group
    self.port = port
    self.retransmit = retransmit
    self.interface = interface
    self.from = from
  }
}

public struct FeedReceiverError: Error, CustomStringConvertible {
  public var description: String
}

/// Receives a MoldUDP64 feed: joins the multicast group, asks the retransmission server for
/// gaps, and hands out each message once, in sequence order per session (``FeedSequencer``
/// does the ordering; this is its I/O shell). One consumer calls `next()` (or iterates
/// `messages`) at a time.
public final class FeedReceiver: Sendable {
  final class Core: Sendable {
    struct State {
      var sequencer: FeedSequencer
      var queue: [FeedMessage] = []
      var head = 0
      var waiter: (id: Int, continuation: CheckedContinuation<FeedMessage?, any Error>)?
      var nextWaiter = 0
      var cancelledWaiter: Int?
      var closed = false
      var paused = false

      var queued: Int { queue.count - head }

      mutating func pop() -> FeedMessage? {
        guard head < queue.count else { return nil }
        let message = queue[head]
        head += 1
        if head == queue.count {
          queue.removeAll(keepingCapacity: true)
          head = 0
        } else if head >= 4096 && head * 2 >= queue.count {
          queue.removeFirst(head)
          head = 0
        }
        return message
      }
    }

    let state: Mutex<State>
    let maxQueued: Int
    let retransmit: SocketAddress?
    let unicast = Mutex<(any Channel)?>(nil)
    let multicast = Mutex<(any Channel)?>(nil)
    let started = NIODeadline.now()

    init(sequencer: FeedSequencer, maxQueued: Int, retransmit: SocketAddress?) {
      state = Mutex(State(sequencer: sequencer))
      self.maxQueued = maxQueued
      self.retransmit = retransmit
    }

    var nowMs: Int64 { (NIODeadline.now() - started).nanoseconds / 1_000_000 }

    /// A datagram from the group or the server: sequenced, delivered, requests sent.
    func received(_ datagram: ByteBuffer, retransmitted: Bool) {
      let packet = try? MoldUDP64.decodePacket(datagram)
      let now = nowMs
      let (requests, wake, pause) = state.withLock {
        state -> ([MoldUDP64.Request], (CheckedContinuation<FeedMessage?, any Error>, FeedMessage)?, Bool) in
        guard let packet else {
          state.sequencer.malformed()
          return ([], nil, false)
        }
        var requests: [MoldUDP64.Request] = []
        // While the consumer lags, no gap is asked for (answers would only pile up in the
        // queue); `tick` asks once it has caught up.
        let actions = state.sequencer.receive(
          packet, retransmitted: retransmitted, nowMs: now, requesting: !state.paused)
        for action in actions {
          switch action {
          case .deliver(let message): state.queue.append(message)
          case .request(let request): requests.append(request)
          }
        }
        var wake: (CheckedContinuation<FeedMessage?, any Error>, FeedMessage)?
        if let waiter = state.waiter, let message = state.pop() {
          state.waiter = nil
          wake = (waiter.continuation, message)
        }
        let pause = !state.paused && state.queued >= maxQueued
        if pause { state.paused = true }
        return (requests, wake, pause)
      }
      if let (continuation, message) = wake { continuation.resume(returning: message) }
      if pause, let channel = multicast.withLock({ $0 }) {
        channel.setOption(.autoRead, value: false).whenComplete { _ in }
      }
      send(requests)
    }

    func tick() {
      let now = nowMs
      let requests = state.withLock { state -> [MoldUDP64.Request] in
        // While the consumer lags, answers would only pile up: ask again when it catches up.
        guard !state.paused else { return [] }
        return state.sequencer.tick(nowMs: now).compactMap {
          if case .request(let request) = $0 { request } else { nil }
        }
      }
      send(requests)
    }

    func send(_ requests: [MoldUDP64.Request]) {
      guard !requests.isEmpty, let retransmit, let channel = unicast.withLock({ $0 }) else { return }
      for request in requests {
        channel.write(
          AddressedEnvelope(remoteAddress: retransmit, data: MoldUDP64.request(request)), promise: nil)
      }
      channel.flush()
    }

    func tryNext() -> FeedMessage? {
      let (message, resume) = state.withLock { state -> (FeedMessage?, Bool) in
        let message = state.pop()
        let resume = state.paused && state.queued <= maxQueued / 2
        if resume { state.paused = false }
        return (message, resume)
      }
      if resume, let channel = multicast.withLock({ $0 }) {
        channel.setOption(.autoRead, value: true).whenComplete { _ in }
      }
      return message
    }
  }

  let core: Core
  let channels: [any Channel]
  let timer: RepeatedTask

  private init(core: Core, channels: [any Channel], timer: RepeatedTask) {
    self.core = core
    self.channels = channels
    self.timer = timer
  }

  /// Binds the sockets and joins the group.
  public static func start(
    _ configuration: FeedReceiverConfiguration, group: (any EventLoopGroup)? = nil
  ) async throws -> FeedReceiver {
    let group = group ?? MultiThreadedEventLoopGroup.singleton
    let groupAddress: SocketAddress
    do {
      groupAddress = try SocketAddress(ipAddress: configuration.group, port: configuration.port)
    } catch {
      throw FeedReceiverError(description: "\(configuration.group) is not an IPv4 address")
    }
    guard case .v4(let v4) = groupAddress,
      (0xE0...0xEF).contains(UInt32(bigEndian: v4.address.sin_addr.s_addr) >> 24)
    else { throw FeedReceiverError(description: "\(configuration.group) is not an IPv4 multicast group") }
    let retransmit = try configuration.retransmit.map {
      try SocketAddress.makeAddressResolvingHost($0.host, port: $0.port)
    }
    var device: NIONetworkDevice?
    if let interface = configuration.interface {
      device = try System.enumerateDevices().first {
        $0.name == interface
          || ($0.address.flatMap(\.ipAddress) == interface && $0.address?.protocol == .inet)
      }
      if device == nil { throw FeedReceiverError(description: "no interface \(interface)") }
    }
    var sequencerConfiguration = FeedSequencer.Configuration(from: configuration.from)
    sequencerConfiguration.requestTimeoutMs = min(
      3_600_000,
      min(configuration.requestTimeout.components.seconds, 3600) * 1000
        + configuration.requestTimeout.components.attoseconds / 1_000_000_000_000_000)
    let core = Core(
      sequencer: FeedSequencer(configuration: sequencerConfiguration), maxQueued: configuration.maxQueued,
      retransmit: retransmit)
    let multicast = try await DatagramBootstrap(group: group)
      .channelOption(.socketOption(.so_reuseaddr), value: 1)
      .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(configuration.receiveBufferBytes))
      .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 1 << 16))
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandler(Handler(core: core, retransmitted: false))
        }
      }
      .bind(host: configuration.group, port: configuration.port).get()
    do {
      guard let multicastChannel = multicast as? any MulticastChannel else {
        throw FeedReceiverError(description: "datagram channel cannot join groups")
      }
      try await multicastChannel.joinGroup(groupAddress, device: device).get()
      core.multicast.withLock { $0 = multicast }
      let unicast = try await DatagramBootstrap(group: group)
        .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 1 << 16))
        .channelInitializer { channel in
          channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(Handler(core: core, retransmitted: true))
          }
        }
        .bind(host: "0.0.0.0", port: 0).get()
      core.unicast.withLock { $0 = unicast }
      let interval = TimeAmount.milliseconds(max(5, sequencerConfiguration.requestTimeoutMs / 4))
      let timer = multicast.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
        core.tick()
      }
      return FeedReceiver(core: core, channels: [multicast, unicast], timer: timer)
    } catch {
      try? await multicast.close()
      throw error
    }
  }

  /// What the receiver has seen so far.
  public var statistics: FeedStatistics { core.state.withLock { $0.sequencer.statistics } }

  /// The next message if one is waiting.
  public func tryNext() -> FeedMessage? { core.tryNext() }

  /// The next message in order, waiting for one; nil once closed.
  public func next() async throws -> FeedMessage? {
    if let message = core.tryNext() { return message }
    let id = core.state.withLock { state in
      defer { state.nextWaiter += 1 }
      return state.nextWaiter
    }
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { continuation in
        let immediate = core.state.withLock { state -> Result<FeedMessage?, any Error>? in
          if state.cancelledWaiter == id { return .failure(CancellationError()) }
          if let message = state.pop() { return .success(message) }
          if state.closed { return .success(nil) }
          precondition(state.waiter == nil, "FeedReceiver.next() called concurrently")
          state.waiter = (id, continuation)
          return nil
        }
        if let immediate { continuation.resume(with: immediate) }
      }
    } onCancel: {
      let waiter = core.state.withLock { state -> CheckedContinuation<FeedMessage?, any Error>? in
        guard let waiter = state.waiter, waiter.id == id else {
          state.cancelledWaiter = id
          return nil
        }
        state.waiter = nil
        return waiter.continuation
      }
      waiter?.resume(throwing: CancellationError())
    }
  }

  /// Messages in order until `close()`.
  public var messages: Messages { Messages(receiver: self) }

  public struct Messages: AsyncSequence, Sendable {
    public typealias Element = FeedMessage
    let receiver: FeedReceiver

    public struct AsyncIterator: AsyncIteratorProtocol {
      let receiver: FeedReceiver
      public mutating func next() async throws -> FeedMessage? { try await receiver.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(receiver: receiver) }
  }

  /// Leaves the group and closes the sockets; a waiting `next()` returns nil.
  public func close() async {
    timer.cancel()
    let waiter = core.state.withLock { state in
      state.closed = true
      defer { state.waiter = nil }
      return state.waiter?.continuation
    }
    waiter?.resume(returning: nil)
    for channel in channels { try? await channel.close() }
  }

  final class Handler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let core: Core
    let retransmitted: Bool

    init(core: Core, retransmitted: Bool) {
      self.core = core
      self.retransmitted = retransmitted
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      let envelope = unwrapInboundIn(data)
      // Answers count only from the retransmission server (anyone can send to this port).
      if retransmitted && envelope.remoteAddress != core.retransmit {
        core.state.withLock { $0.sequencer.malformed() }
        return
      }
      var datagram = envelope.data
      // Messages are slices of the datagram and may wait in the queue: a small datagram is
      // copied out of the 64 KiB receive buffer rather than keeping all of it alive.
      if datagram.readableBytes < 16_384 {
        var copy = context.channel.allocator.buffer(capacity: datagram.readableBytes)
        copy.writeBuffer(&datagram)
        datagram = copy
      }
      core.received(datagram, retransmitted: retransmitted)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
      // A datagram socket's errors (e.g. ICMP port unreachable from a stopped server) are
      // per datagram: keep the channel.
    }
  }
}
