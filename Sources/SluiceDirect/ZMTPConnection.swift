import Logging
import NIOCore
import Synchronization

/// One TCP connection of a ``ZMQSocket``: its outbound queue (bounded by the send
/// high-water mark, flushed in batches on the channel's event loop) and, at a PUB, the
/// peer's subscriptions.
final class ZMTPConnection: Sendable {
  let channel: any Channel
  let socket: ZMQSocket
  let handler: NIOLoopBound<ZMTPHandler>
  let wasReady = Atomic<Bool>(false)
  private let out: Mutex<Outbound>

  struct Outbound {
    var pending = ByteBuffer()
    var pendingCount = 0
    /// Messages queued or handed to NIO and not yet written to the kernel.
    var outstanding = 0
    /// A flush is scheduled or its write is in progress.
    var flushing = false
    var peerMinor: UInt8 = 1
    var subscriptions: Set<ByteBuffer> = []
    var subscriptionLengths: [Int: Int] = [:]
    var subscriptionBytes = 0

    func matches(_ topic: ByteBuffer) -> Bool {
      for length in subscriptionLengths.keys where length <= topic.readableBytes {
        if subscriptions.contains(topic.getSlice(at: topic.readerIndex, length: length)!) { return true }
      }
      return false
    }
  }

  init(channel: any Channel, socket: ZMQSocket, handler: NIOLoopBound<ZMTPHandler>) {
    self.channel = channel
    self.socket = socket
    self.handler = handler
    self.out = Mutex(Outbound())
  }

  var hasPending: Bool { out.withLock { $0.outstanding > 0 } }
  var hasSubscriptions: Bool { out.withLock { !$0.subscriptions.isEmpty } }
  func isSubscribed(_ prefix: ByteBuffer) -> Bool { out.withLock { $0.subscriptions.contains(prefix) } }

  /// Room left below the send high-water mark.
  var room: Int { out.withLock { max(0, socket.options.sendHighWaterMark - $0.outstanding) } }

  /// Queues messages whatever the high-water mark (the caller counted the room), encoded
  /// straight into the pending buffer.
  func enqueue(_ messages: some Collection<ZMQMessage>) {
    guard !messages.isEmpty else { return }
    let (schedule, bytes) = out.withLock { out -> (Bool, Int) in
      for message in messages { ZMTP.writeMessage(message.frames, into: &out.pending) }
      out.outstanding += messages.count
      out.pendingCount += messages.count
      return (Self.claimFlush(&out), out.pending.readableBytes)
    }
    if schedule { channel.eventLoop.execute { self.flush() } }
    writeNowIfStarving(bytes)
  }

  /// Queues bytes already encoded (a subscription command).
  func enqueue(encoded: ByteBuffer) {
    let schedule = out.withLock { out -> Bool in
      out.pending.writeImmutableBuffer(encoded)
      out.outstanding += 1
      out.pendingCount += 1
      return Self.claimFlush(&out)
    }
    if schedule { channel.eventLoop.execute { self.flush() } }
  }

  /// PUB: queues each message whose first frame the peer subscribed to, dropping those
  /// beyond the high-water mark; returns how many were dropped.
  func publish(_ messages: [ZMQMessage]) -> Int {
    let (dropped, schedule, bytes) = out.withLock { out -> (Int, Bool, Int) in
      var dropped = 0
      var queued = 0
      for message in messages where out.matches(message.frames.first ?? ByteBuffer()) {
        if out.outstanding >= socket.options.sendHighWaterMark {
          dropped += 1
          continue
        }
        ZMTP.writeMessage(message.frames, into: &out.pending)
        out.outstanding += 1
        out.pendingCount += 1
        queued += 1
      }
      return (dropped, queued > 0 && Self.claimFlush(&out), out.pending.readableBytes)
    }
    if schedule { channel.eventLoop.execute { self.flush() } }
    writeNowIfStarving(bytes)
    return dropped
  }

  /// A sender running on this connection's own event loop (NIO as the global executor)
  /// keeps the scheduled flush from running until it suspends, which a PUB never does: so
  /// past 64 KiB queued, it writes them itself, here.
  private func writeNowIfStarving(_ bytes: Int) {
    guard bytes >= 64 << 10, channel.eventLoop.inEventLoop else { return }
    let (buffer, count) = out.withLock { out in
      defer {
        out.pending = ByteBuffer()
        out.pendingCount = 0
      }
      return (out.pending, out.pendingCount)
    }
    guard count > 0 else { return }
    let promise = channel.eventLoop.makePromise(of: Void.self)
    promise.futureResult.whenComplete { _ in self.written(count) }
    channel.writeAndFlush(buffer, promise: promise)
  }

  /// Whether the caller must schedule a flush: only when none is running. A running flush
  /// picks up what was queued meanwhile when its write is done, so a fast sender costs one
  /// write per batch that accumulated during the previous write, not one per message (and
  /// no wake-up of the event loop from another thread per message).
  private static func claimFlush(_ out: inout Outbound) -> Bool {
    if out.flushing { return false }
    out.flushing = true
    return true
  }

  /// On the event loop: writes everything queued as one buffer; when the write is done,
  /// goes again if more was queued meanwhile, else stops.
  private func flush() {
    let (buffer, count) = out.withLock { out -> (ByteBuffer?, Int) in
      guard out.pendingCount > 0 else {
        out.flushing = false
        return (nil, 0)
      }
      defer {
        out.pending = ByteBuffer()
        out.pendingCount = 0
      }
      return (out.pending, out.pendingCount)
    }
    guard let buffer else { return }
    let promise = channel.eventLoop.makePromise(of: Void.self)
    promise.futureResult.whenComplete { result in
      self.written(count)
      switch result {
      case .success:
        self.channel.eventLoop.execute { self.flush() }  // on this loop: no wake-up
      case .failure:
        // The connection is gone: what is still queued for it goes with it.
        self.out.withLock { out in
          out.outstanding -= out.pendingCount
          out.pendingCount = 0
          out.pending = ByteBuffer()
          out.flushing = false
        }
      }
    }
    channel.writeAndFlush(buffer, promise: promise)
  }

  private func written(_ count: Int) {
    let freed = out.withLock { out in
      let wasFull = out.outstanding >= socket.options.sendHighWaterMark
      out.outstanding -= count
      return wasFull && out.outstanding < socket.options.sendHighWaterMark
    }
    if freed && socket.type == .push { socket.capacityFreed() }
  }

  /// SUB: tells the peer about a subscription change, in the form its ZMTP version knows.
  func sendSubscription(_ prefix: ByteBuffer, subscribe: Bool) {
    let minor = out.withLock { $0.peerMinor }
    enqueue(encoded: ZMTP.subscription(prefix, subscribe: subscribe, peerMinor: minor))
  }

  func ready(_ peer: ZMTPSession.Peer) {
    out.withLock { $0.peerMinor = peer.minor }
    wasReady.store(true, ordering: .relaxed)
    socket.connectionReady(self)
  }

  /// PUB: a peer's SUBSCRIBE or CANCEL. A peer's subscriptions are a set, as libzmq's PUB
  /// keeps them (a SUB sends SUBSCRIBE for a prefix's first subscriber and CANCEL for its
  /// last); a prefix is copied out of the read buffer it arrived in before it is kept.
  func subscription(_ prefix: ByteBuffer, subscribe: Bool) {
    let refused = out.withLock { out -> Bool in
      if subscribe {
        if out.subscriptions.contains(prefix) { return false }
        guard out.subscriptions.count < socket.options.maxSubscriptionsPerPeer,
          out.subscriptionBytes + prefix.readableBytes <= socket.options.maxSubscriptionBytesPerPeer
        else { return true }
        out.subscriptions.insert(ByteBuffer(bytes: prefix.readableBytesView))
        out.subscriptionLengths[prefix.readableBytes, default: 0] += 1
        out.subscriptionBytes += prefix.readableBytes
      } else if out.subscriptions.remove(prefix) != nil {
        out.subscriptionBytes -= prefix.readableBytes
        let length = prefix.readableBytes
        if out.subscriptionLengths[length] == 1 {
          out.subscriptionLengths[length] = nil
        } else {
          out.subscriptionLengths[length]! -= 1
        }
      }
      return false
    }
    if refused { socket.refusedSubscription() }
  }

  /// Starts reading again after the socket's queue drained.
  func resumeReading() {
    channel.eventLoop.execute { self.handler.value.resume() }
  }
}

/// The channel handler: feeds bytes to the ``ZMTPSession`` and carries out what it says.
/// Withholds reads while the socket's receive queue is full.
final class ZMTPHandler: ChannelDuplexHandler {
  typealias InboundIn = ByteBuffer
  typealias OutboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  private var session: ZMTPSession
  private let logger: Logger
  var connection: ZMTPConnection?
  private var context: ChannelHandlerContext?
  private var received = ByteBuffer()
  private var paused = false
  private var withheldRead = false
  private var timer: RepeatedTask?
  private var closing = false

  init(session: ZMTPSession, logger: Logger) {
    self.session = session
    self.logger = logger
  }

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    if context.channel.isActive { start(context) }
  }

  func channelActive(context: ChannelHandlerContext) {
    start(context)
    context.fireChannelActive()
  }

  private func start(_ context: ChannelHandlerContext) {
    guard timer == nil else { return }
    context.writeAndFlush(wrapOutboundOut(session.start()), promise: nil)
    let interval = session.timing.heartbeatIntervalMs ?? session.timing.handshakeTimeoutMs
    let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
    timer = context.eventLoop.scheduleRepeatedTask(
      initialDelay: .milliseconds(min(interval, session.timing.handshakeTimeoutMs)),
      delay: .milliseconds(max(1, interval))
    ) { _ in loopBound.value.tick() }
  }

  private func tick() {
    guard let context else { return }
    let outputs = session.tick(nowMs: monotonicMs())
    if session.phase == .ready && session.timing.heartbeatIntervalMs == nil {
      timer?.cancel()
    }
    apply(outputs, context)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    var bytes = unwrapInboundIn(data)
    if received.readableBytes == 0 {
      received = bytes
    } else {
      received.writeBuffer(&bytes)
    }
    process(context)
  }

  /// Decodes what was received, a few messages at a time, until it is used up or the
  /// socket's receive queue is full; then what is left waits for `resume()`. (So a queue
  /// passes its high-water mark by at most one slice, whatever one read held.)
  private func process(_ context: ChannelHandlerContext) {
    while !paused && !closing && received.readableBytes > 0 {
      let before = received.readableBytes
      let outputs = session.receive(&received, nowMs: monotonicMs(), maxMessages: 64)
      apply(outputs, context)
      if received.readableBytes == before { break }  // an incomplete frame: wait for more
    }
    if received.readableBytes == 0 {
      received = ByteBuffer()
    } else if received.readerIndex > 1 << 16 {
      received.discardReadBytes()
    }
  }

  private func apply(_ outputs: [ZMTPSession.Output], _ context: ChannelHandlerContext) {
    guard let connection else { return }
    var wrote = false
    for output in outputs {
      switch output {
      case .write(let bytes):
        context.write(wrapOutboundOut(bytes), promise: nil)
        wrote = true
      case .ready(let peer):
        logger.debug("ZMTP peer ready: \(peer.socketType) at \(context.remoteAddress.map { "\($0)" } ?? "?")")
        connection.ready(peer)
      case .message(let frames):
        if !connection.socket.deliver(ZMQMessage(frames), from: connection) { paused = true }
      case .subscribe(let prefix):
        connection.subscription(prefix, subscribe: true)
      case .cancel(let prefix):
        connection.subscription(prefix, subscribe: false)
      case .close(let reason):
        if !closing {
          closing = true
          connection.socket.protocolError()
          logger.debug("closing ZMTP connection \(context.remoteAddress.map { "\($0)" } ?? "?"): \(reason)")
          context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: nil)
          context.close(promise: nil)
        }
        return
      }
    }
    if wrote { context.flush() }
  }

  func read(context: ChannelHandlerContext) {
    if paused {
      withheldRead = true
    } else {
      context.read()
    }
  }

  /// The socket's queue drained: first what was already received, then reading again.
  func resume() {
    guard paused, let context else { return }
    paused = false
    process(context)
    if !paused && withheldRead {
      withheldRead = false
      context.read()
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    timer?.cancel()
    timer = nil
    // Bytes read while the queue was full are the peer's last messages: they are queued
    // past the mark rather than lost with the connection (at most the reads that were in
    // flight when the queue filled).
    if paused, received.readableBytes > 0, let connection {
      for case .message(let frames) in session.receive(&received, nowMs: monotonicMs()) {
        _ = connection.socket.deliver(ZMQMessage(frames), from: connection)
      }
    }
    context.fireChannelInactive()
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    // Breaks the connection ↔ handler cycle and lets go of what was buffered.
    timer?.cancel()
    timer = nil
    self.context = nil
    connection = nil
    received = ByteBuffer()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    logger.debug("ZMTP connection error: \(error)")
    context.close(promise: nil)
  }
}
