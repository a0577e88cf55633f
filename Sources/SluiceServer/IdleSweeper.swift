import Logging
import NIOCore
import Synchronization

/// `connections.max.idle.ms` for the connections of one event loop.
///
/// The connections are kept in one list ordered by their last activity: a completed request
/// moves its connection to the tail, so the head is always the one idle longest. One timer
/// per loop is armed for the head's deadline; when it fires it closes the expired
/// connections from the head and re-arms for the new head. Every operation is O(1) (or
/// O(closed)) and the loop has at most one scheduled task for all its connections.
///
/// One NIO scheduled task per connection, as before, cost O(n) whenever one was cancelled —
/// at every connection close: NIO finds a cancelled task by a linear scan of the loop's
/// scheduled tasks. With thousands of idle connections that also slowed every parked Fetch,
/// whose timeout is a scheduled task cancelled when data arrives.
///
/// Only complete requests count as activity (the frame decoder yields whole frames), so a
/// client trickling a frame byte by byte is closed after the limit too. A connection with a
/// request in progress is never closed for idleness.
final class IdleSweeper: Sendable {
  /// One connection's place in the list. Its fields are guarded by the sweeper's lock.
  final class Entry: @unchecked Sendable {
    let channel: any Channel
    fileprivate var lastActivity: NIODeadline
    fileprivate var inFlight = false
    fileprivate var listed = false
    fileprivate var previous: Entry?
    fileprivate var next: Entry?

    fileprivate init(channel: any Channel, now: NIODeadline) {
      self.channel = channel
      self.lastActivity = now
    }
  }

  /// A doubly linked list of entries; `remove` clears an entry's links, so no cycle outlives
  /// its membership.
  struct List {
    var head: Entry?
    var tail: Entry?

    mutating func append(_ entry: Entry) {
      entry.previous = tail
      entry.next = nil
      if let tail { tail.next = entry } else { head = entry }
      tail = entry
      entry.listed = true
    }

    mutating func remove(_ entry: Entry) {
      guard entry.listed else { return }
      if let previous = entry.previous { previous.next = entry.next } else { head = entry.next }
      if let next = entry.next { next.previous = entry.previous } else { tail = entry.previous }
      entry.previous = nil
      entry.next = nil
      entry.listed = false
    }
  }

  struct State {
    var list = List()
    /// A sweep is scheduled. It is never cancelled: if the list empties meanwhile, it finds
    /// nothing to do and does not re-arm.
    var armed = false
  }

  let loop: any EventLoop
  let limit: TimeAmount
  /// Added to each timer's deadline, so connections expiring close together are closed by
  /// one wake-up instead of one each: a twentieth of the limit, from 1 ms to 250 ms.
  let slack: TimeAmount
  let logger: Logger
  let state = Mutex(State())

  /// Longest limit honoured (a century), so deadlines stay far from overflow.
  static let longestLimitMs: Int64 = 100 * 365 * 24 * 3_600_000

  init(loop: any EventLoop, limitMs: Int64, logger: Logger) {
    let ms = min(max(limitMs, 1), Self.longestLimitMs)
    self.loop = loop
    self.limit = .milliseconds(ms)
    self.slack = .milliseconds(min(max(ms / 20, 1), 250))
    self.logger = logger
  }

  /// Starts watching a new connection: idle from now.
  func add(_ channel: any Channel) -> Entry {
    let entry = Entry(channel: channel, now: .now())
    let deadline: NIODeadline? = state.withLock { state in
      state.list.append(entry)
      guard !state.armed else { return nil }
      state.armed = true
      return entry.lastActivity + limit + slack
    }
    if let deadline { arm(at: deadline) }
    return entry
  }

  func requestStarted(_ entry: Entry) {
    state.withLock { _ in entry.inFlight = true }
  }

  func requestEnded(_ entry: Entry) {
    let now = NIODeadline.now()
    state.withLock { state in
      entry.inFlight = false
      entry.lastActivity = now
      guard entry.listed else { return }  // already closed for idleness
      state.list.remove(entry)
      state.list.append(entry)
    }
  }

  /// Stops watching a connection (it has ended).
  func remove(_ entry: Entry) {
    state.withLock { state in state.list.remove(entry) }
  }

  /// Closes every connection without a request in progress (graceful shutdown of a TLS
  /// listener, whose connections cannot be half-closed: the others finish their request,
  /// then see the server stopping).
  func closeIdle() {
    let idle: [any Channel] = state.withLock { state in
      var result: [any Channel] = []
      var entry = state.list.head
      while let current = entry {
        if !current.inFlight { result.append(current.channel) }
        entry = current.next
      }
      return result
    }
    for channel in idle { channel.eventLoop.execute { channel.close(mode: .all, promise: nil) } }
  }

  private func arm(at deadline: NIODeadline) {
    loop.scheduleTask(deadline: deadline) { [self] in sweep() }
  }

  /// Closes every connection idle for the limit, then re-arms for the new head. A
  /// connection with a request in progress counts as active now.
  func sweep() {
    let now = NIODeadline.now()
    var expired: [any Channel] = []
    let next: NIODeadline? = state.withLock { state in
      while let head = state.list.head, head.lastActivity + limit <= now {
        state.list.remove(head)
        if head.inFlight {
          head.lastActivity = now
          state.list.append(head)
        } else {
          expired.append(head.channel)
        }
      }
      guard let head = state.list.head else {
        state.armed = false
        return nil
      }
      return head.lastActivity + limit + slack
    }
    if let next { arm(at: next) }
    for channel in expired {
      logger.debug("closing connection idle for \(limit.nanoseconds / 1_000_000) ms")
      channel.close(promise: nil)
    }
  }
}
