public import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The broker's time, injected: every component reads it here rather than from the system,
/// so that tests drive timing logic by hand with a ``ManualClock`` (as postgres-nio's pool
/// state machine is generic over its clock) and assert orders of events, not wall-clock
/// bounds.
///
/// Two readings: wall-clock milliseconds for what is stored and compared with producers'
/// timestamps (append times, retention, offset expiry), and a monotonic reading for
/// deadlines (parked fetches, held produce requests, rebalance delays, quotas), which a
/// wall-clock step must not stretch or cut short.
public protocol BrokerClock: Sendable {
  /// Milliseconds since the Unix epoch.
  func now() -> Int64
  /// Nanoseconds on a clock that never goes backwards (its origin is arbitrary).
  func monotonicNanos() -> Int64
  /// Runs `work` once `delayMs` milliseconds have passed on this clock, on `eventLoop` when
  /// one is given (a parked fetch resumes on its connection's loop). Cancel the returned
  /// timer to drop it.
  @discardableResult
  func schedule(
    afterMs delayMs: Int64, on eventLoop: (any EventLoop)?, _ work: @escaping @Sendable () -> Void
  )
    -> ClockTimer
}

extension BrokerClock {
  /// Milliseconds on the monotonic clock.
  public func monotonicMs() -> Int64 { monotonicNanos() / 1_000_000 }

  /// Suspends for `delayMs` on this clock (a timer, so a ``ManualClock`` moves it).
  public func sleep(ms delayMs: Int64) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      schedule(afterMs: delayMs, on: nil) { continuation.resume() }
    }
  }
}

/// A scheduled piece of work; `cancel()` drops it if it has not run.
public struct ClockTimer: Sendable {
  let cancellation: @Sendable () -> Void
  public init(cancel: @escaping @Sendable () -> Void) { self.cancellation = cancel }
  public func cancel() { cancellation() }
}

/// The real clocks: CLOCK_REALTIME and CLOCK_MONOTONIC; timers on the given event loop, or
/// on the singleton group's next loop (``LoopTimers``: one NIO scheduled task per loop).
public struct SystemClock: BrokerClock {
  public init() {}

  public func now() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
  }

  public func monotonicNanos() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
  }

  @discardableResult
  public func schedule(
    afterMs delayMs: Int64, on eventLoop: (any EventLoop)?, _ work: @escaping @Sendable () -> Void
  )
    -> ClockTimer
  {
    let loop = eventLoop ?? Self.timerLoop
    return Self.timers(of: loop).schedule(at: .now() + .milliseconds(max(0, delayMs)), work)
  }

  /// Each event loop's ``LoopTimers`` (the singleton group's loops, and any a caller passes).
  static let loopTimers = Mutex<[ObjectIdentifier: LoopTimers]>([:])

  static func timers(of loop: any EventLoop) -> LoopTimers {
    let key = ObjectIdentifier(loop as AnyObject)
    return loopTimers.withLock { all in
      if let timers = all[key] { return timers }
      let timers = LoopTimers(loop: loop)
      all[key] = timers
      return timers
    }
  }

  /// Where timers without a loop of their own run: NIO's shared group (an event loop
  /// timer, not a libdispatch one).
  static var timerLoop: any EventLoop { MultiThreadedEventLoopGroup.singleton.any() }
}

/// A clock tests move by hand: `advance(ms:)` moves both readings and runs, in deadline
/// order, every timer that has come due (synchronously, on the caller's thread; work bound
/// for an event loop is executed there).
public final class ManualClock: BrokerClock {
  struct Pending {
    var id: Int
    var dueNanos: Int64
    var loop: (any EventLoop)?
    var work: @Sendable () -> Void
  }

  struct State {
    var wallMs: Int64
    var monotonic: Int64 = 0
    var nextId = 0
    var pending: [Pending] = []
  }

  let state: Mutex<State>

  /// Starts at `wallMs` milliseconds since the epoch.
  public init(wallMs: Int64 = 1_700_000_000_000) {
    state = Mutex(State(wallMs: wallMs))
  }

  public func now() -> Int64 { state.withLock { $0.wallMs } }
  public func monotonicNanos() -> Int64 { state.withLock { $0.monotonic } }

  /// Timers not yet run.
  public var pendingTimers: Int { state.withLock { $0.pending.count } }

  @discardableResult
  public func schedule(
    afterMs delayMs: Int64, on eventLoop: (any EventLoop)?, _ work: @escaping @Sendable () -> Void
  )
    -> ClockTimer
  {
    let id = state.withLock { state -> Int in
      state.nextId += 1
      state.pending.append(
        Pending(
          id: state.nextId, dueNanos: state.monotonic + max(0, delayMs) * 1_000_000, loop: eventLoop,
          work: work))
      return state.nextId
    }
    return ClockTimer { [weak self] in self?.state.withLock { $0.pending.removeAll { $0.id == id } } }
  }

  /// Moves time forward by `ms` and runs the timers that come due.
  public func advance(ms: Int64) {
    let due = state.withLock { state -> [Pending] in
      state.wallMs += ms
      state.monotonic += ms * 1_000_000
      let now = state.monotonic
      let due = state.pending.filter { $0.dueNanos <= now }.sorted {
        ($0.dueNanos, $0.id) < ($1.dueNanos, $1.id)
      }
      state.pending.removeAll { $0.dueNanos <= now }
      return due
    }
    for timer in due {
      if let loop = timer.loop { loop.execute(timer.work) } else { timer.work() }
    }
  }

  /// Sets the wall clock (the monotonic reading does not move: a clock step).
  public func setWall(ms: Int64) { state.withLock { $0.wallMs = ms } }
}
