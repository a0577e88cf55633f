import NIOCore
import Synchronization

/// The timers ``SystemClock`` schedules on one event loop, kept in a heap of their own with
/// one NIO scheduled task armed for the earliest.
///
/// Every parked Fetch has a timer (its MaxWaitMs) that is nearly always cancelled: data
/// arrives first. A NIO scheduled task costs several allocations, and NIO cancels one by
/// scanning the loop's scheduled tasks, O(n) with n parked Fetches on the loop. Here a timer
/// is an entry in a binary heap and a cancellation sets its token's flag: cancelled entries
/// are dropped when they reach the top. Timers with the same delay (a client's fetches) arrive in
/// deadline order, so the armed task rarely changes.
final class LoopTimers: Sendable {
  /// Set once the timer is cancelled.
  final class Token: Sendable {
    let cancelled = Atomic<Bool>(false)
  }

  struct Entry {
    var deadline: NIODeadline
    var token: Token
    var work: @Sendable () -> Void
    var isCancelled: Bool { token.cancelled.load(ordering: .relaxed) }
  }

  struct State {
    var heap: [Entry] = []
    /// The deadline the current NIO task fires at, and its generation: a task armed
    /// earlier for a later deadline is stale once another is armed, and when it fires it
    /// runs what is due but arms nothing (so at most one task keeps re-arming).
    var armed: NIODeadline?
    var generation: UInt64 = 0

    mutating func push(_ entry: Entry) {
      heap.append(entry)
      var child = heap.count - 1
      while child > 0 {
        let parent = (child - 1) / 2
        guard heap[child].deadline < heap[parent].deadline else { break }
        heap.swapAt(child, parent)
        child = parent
      }
    }

    mutating func popFirst() -> Entry? {
      guard !heap.isEmpty else { return nil }
      heap.swapAt(0, heap.count - 1)
      let first = heap.removeLast()
      var parent = 0
      while true {
        let left = 2 * parent + 1
        let right = left + 1
        var smallest = parent
        if left < heap.count && heap[left].deadline < heap[smallest].deadline { smallest = left }
        if right < heap.count && heap[right].deadline < heap[smallest].deadline { smallest = right }
        if smallest == parent { break }
        heap.swapAt(parent, smallest)
        parent = smallest
      }
      return first
    }
  }

  let loop: any EventLoop
  let state = Mutex(State())

  init(loop: any EventLoop) {
    self.loop = loop
  }

  /// Runs `work` on the loop at `deadline` unless cancelled first.
  func schedule(at deadline: NIODeadline, _ work: @escaping @Sendable () -> Void) -> ClockTimer {
    let token = Token()
    let arm = state.withLock { state -> UInt64? in
      state.push(Entry(deadline: deadline, token: token, work: work))
      guard state.armed.map({ deadline < $0 }) ?? true else { return nil }
      state.armed = deadline
      state.generation &+= 1
      return state.generation
    }
    if let arm { loop.scheduleTask(deadline: deadline) { self.fire(arm) } }
    return ClockTimer { token.cancelled.store(true, ordering: .relaxed) }
  }

  /// Runs what is due (outside the lock); the current task then arms for the next entry.
  func fire(_ generation: UInt64) {
    let now = NIODeadline.now()
    var due: [@Sendable () -> Void] = []
    let next = state.withLock { state -> (NIODeadline, UInt64)? in
      // What is due, and cancelled entries at the top (dropped rather than armed for).
      while let first = state.heap.first, first.deadline <= now || first.isCancelled {
        _ = state.popFirst()
        if !first.isCancelled { due.append(first.work) }
      }
      guard generation == state.generation else { return nil }
      state.armed = nil
      guard let first = state.heap.first else { return nil }
      state.armed = first.deadline
      state.generation &+= 1
      return (first.deadline, state.generation)
    }
    if let (deadline, generation) = next { loop.scheduleTask(deadline: deadline) { self.fire(generation) } }
    for work in due { work() }
  }
}
