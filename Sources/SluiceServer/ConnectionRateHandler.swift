import Logging
import NIOCore
import SluiceBroker
import Synchronization

/// Connections refused or delayed by the connection creation rates (for metrics).
public final class ConnectionRateCounters: Sendable {
  /// Connections closed because their address was over its `connection_creation_rate`.
  let throttled = Atomic<Int>(0)
  /// Connections whose setup waited for the broker-wide `max.connection.creation.rate`.
  let delayed = Atomic<Int>(0)

  public init() {}

  public var throttledConnections: Int { throttled.load(ordering: .relaxed) }
  public var delayedConnections: Int { delayed.load(ordering: .relaxed) }
}

/// The first handler of the listener's pipeline: sees each accepted socket before NIO sets
/// it up, and applies `ConnectionRateLimiter`. An accepted socket here is a `Channel` that is
/// not yet registered with an event loop and has no handlers, so a refused one costs the
/// accept, the `Channel` object NIO made for it, a quota lookup and a close: no epoll
/// registration, pipeline, `NIOAsyncChannel`, task or idle timer.
///
/// Kafka closes a throttled connection only after the throttle time, so that its client
/// does not reconnect at once: such a socket is held here, unregistered (nothing is read
/// from it, nothing runs for it), for min(throttle, `maximumHold`), at most `maximumHeld` at
/// a time; beyond that it is closed at once. A connection delayed by the broker-wide rate
/// is held in a queue, and the listener accepts nothing more until the queue is empty (its
/// `read` is withheld), as Kafka's acceptor waits: the queue is never longer than one accept
/// burst (`maxMessagesPerRead`).
///
/// Everything here runs on the listener's event loop, so its state needs no lock.
final class ConnectionRateHandler: ChannelDuplexHandler {
  typealias InboundIn = any Channel
  typealias InboundOut = any Channel
  typealias OutboundIn = Any
  typealias OutboundOut = Any

  static let maximumHeld = 1000
  static let maximumHold = Duration.seconds(1)

  var limiter: ConnectionRateLimiter
  let quotas: ClientQuotas
  let counters: ConnectionRateCounters
  let logger: Logger
  /// Sockets held before their delayed close.
  var held: [ObjectIdentifier: any Channel] = [:]
  /// Sockets waiting for their broker-wide slot, in order, with when they may go on.
  var waiting = CircularBuffer<(socket: NIOAny, channel: any Channel, at: ContinuousClock.Instant)>()
  var releaseTimer: Scheduled<Void>?
  /// The listener asked to accept more while sockets were waiting.
  var readPending = false

  init(brokerRate: Int, quotas: ClientQuotas, counters: ConnectionRateCounters, logger: Logger) {
    limiter = ConnectionRateLimiter(brokerRate: Double(brokerRate))
    self.quotas = quotas
    self.counters = counters
    self.logger = logger
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let socket = Self.unwrapInboundIn(data)
    let now = ContinuousClock.now
    var address = ""
    var quota: Double?
    if quotas.hasConnectionCreationQuotas {
      address = ClientQuotas.unmapped(socket.remoteAddress?.ipAddress ?? "")
      quota = quotas.connectionCreationRate(ip: address)
    }
    switch limiter.decide(address: address, quota: quota, now: now) {
    case .accept where waiting.isEmpty:
      context.fireChannelRead(data)
    case .accept:
      waiting.append((data, socket, now))  // behind the delayed ones, in order
    case .delay(let wait):
      counters.delayed.add(1, ordering: .relaxed)
      waiting.append((data, socket, max(now + wait, waiting.last?.at ?? now)))
      if releaseTimer == nil { scheduleRelease(context: context, now: now) }
    case .throttle(let throttle):
      counters.throttled.add(1, ordering: .relaxed)
      if limiter.shouldWarn(about: address, now: now) {
        logger.warning(
          "connections from \(address) exceed its connection_creation_rate quota of \(quota ?? 0)/s: closing them after a delay (this warning: once per 10 s per address)"
        )
      }
      hold(socket, for: min(throttle, Self.maximumHold), context: context)
    }
  }

  func read(context: ChannelHandlerContext) {
    if waiting.isEmpty { context.read() } else { readPending = true }
  }

  func channelInactive(context: ChannelHandlerContext) {
    closeEverything()
    context.fireChannelInactive()
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    closeEverything()
  }

  /// Closes `socket` after `delay` (at once if `maximumHeld` are held already).
  func hold(_ socket: any Channel, for delay: Duration, context: ChannelHandlerContext) {
    guard held.count < Self.maximumHeld else {
      socket.close(promise: nil)
      return
    }
    let id = ObjectIdentifier(socket)
    held[id] = socket
    context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [self] in
      held.removeValue(forKey: id)?.close(promise: nil)
    }
  }

  func scheduleRelease(context: ChannelHandlerContext, now: ContinuousClock.Instant) {
    guard let first = waiting.first else { return }
    releaseTimer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(first.at - now)) {
      [self] in
      releaseTimer = nil
      let now = ContinuousClock.now
      var released = false
      while let next = waiting.first, next.at <= now + .milliseconds(1) {
        waiting.removeFirst()
        context.fireChannelRead(next.socket)
        released = true
      }
      if released { context.fireChannelReadComplete() }
      if !waiting.isEmpty {
        scheduleRelease(context: context, now: now)
      } else if readPending {
        readPending = false
        context.read()
      }
    }
  }

  func closeEverything() {
    releaseTimer?.cancel()
    releaseTimer = nil
    for (_, socket) in held { socket.close(promise: nil) }
    held.removeAll()
    while let next = waiting.popFirst() { next.channel.close(promise: nil) }
  }
}
