import NIOCore
public import SluiceStorage
import Synchronization

/// One partition of a topic: its log, the fetches parked on it, and its producers'
/// sequence state. The producer state's lock is held across the sequence check and the
/// (page-cache) append, so two batches of one producer cannot interleave; lock order is
/// always producer state → log.
public final class Partition: Sendable {
  public let topic: String
  public let index: Int32
  public let log: any PartitionLog
  let producers: Mutex<ProducerStateTable>
  let waiters = Mutex<[FetchWaiter]>([])
  let overflow = OverflowState()
  /// Whether the broker has logged this partition going offline (it does so once).
  let reportedOffline = Atomic<Bool>(false)

  init(topic: String, index: Int32, log: any PartitionLog, producers: ProducerStateTable) {
    self.topic = topic
    self.index = index
    self.log = log
    self.producers = Mutex(producers)
  }

  /// The offset up to which consumers may read: the log end, or — for logs that fsync
  /// every append — the durable end, so no consumer sees a record a crash could take back.
  public var highWatermark: Int64 {
    log.config.flushMessages <= 1 ? log.durableEndOffset : log.logEndOffset
  }

  func addWaiter(_ waiter: FetchWaiter) {
    waiters.withLock { $0.append(waiter) }
  }

  func removeWaiter(_ waiter: FetchWaiter) {
    waiters.withLock { list in list.removeAll { $0 === waiter } }
  }

  /// Wakes every fetch parked on this partition (new data is visible).
  func notifyAppended() {
    let woken = waiters.withLock { list in
      let all = list
      list.removeAll()
      return all
    }
    for waiter in woken { waiter.wake() }
  }
}

/// A parked fetch: resumed once, by new data on any of its partitions or by its deadline.
final class FetchWaiter: Sendable {
  struct State {
    var fired = false
    var continuation: CheckedContinuation<Void, Never>?
  }

  let state = Mutex(State())
  /// The waiting connection's event loop: `wake()` resumes the fetch there, so it goes on
  /// on its own connection's thread rather than on the thread of the append that woke it.
  let eventLoop: (any EventLoop)?

  init(eventLoop: (any EventLoop)? = nil) {
    self.eventLoop = eventLoop
  }

  /// Suspends until `wake()` (or returns at once if it already happened).
  func wait() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let alreadyFired = state.withLock { state in
        if state.fired { return true }
        state.continuation = continuation
        return false
      }
      if alreadyFired { continuation.resume() }
    }
  }

  func wake() {
    let pending: CheckedContinuation<Void, Never>? = state.withLock { state in
      if state.fired { return nil }
      state.fired = true
      let taken = state.continuation
      state.continuation = nil
      return taken
    }
    guard let pending else { return }
    if let eventLoop, !eventLoop.inEventLoop {
      eventLoop.execute { pending.resume() }
    } else {
      pending.resume()
    }
  }
}
