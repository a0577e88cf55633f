import KafkaProtocol
import NIOCore
package import SluiceStorage
import Synchronization

/// One partition of a topic: its log, the fetches parked on it, and its producers'
/// sequence state. The producer state's lock is held across the sequence check and the
/// (page-cache) append, so two batches of one producer cannot interleave; lock order is
/// always producer state → log.
public final class Partition: Sendable {
  public let topic: String
  public let index: Int32
  package let log: any PartitionLog
  let producers: Mutex<ProducerStateTable>
  let waiters = Mutex<[FetchWaiter]>([])
  let overflow = OverflowState()
  /// Whether the broker has logged this partition going offline (it does so once).
  let reportedOffline = Atomic<Bool>(false)
  /// The topic's traffic counters (shared by its partitions).
  let metrics: TopicMetrics

  init(
    topic: String, index: Int32, log: any PartitionLog, producers: ProducerStateTable, metrics: TopicMetrics
  ) {
    self.topic = topic
    self.index = index
    self.log = log
    self.producers = Mutex(producers)
    self.metrics = metrics
  }

  /// The offset up to which consumers may read: the log end, or — for logs that fsync
  /// every append — the durable end, so no consumer sees a record a crash could take back.
  public var highWatermark: Int64 {
    log.config.flushMessages <= 1 ? log.durableEndOffset : log.logEndOffset
  }

  /// The first offset still in the log.
  public var logStartOffset: Int64 { log.logStartOffset }
  /// The offset the next record will get.
  public var logEndOffset: Int64 { log.logEndOffset }

  /// Bytes of the log from the batch holding `offset` to its end.
  public func retainedBytes(from offset: Int64) -> Int64 { log.retainedBytes(from: offset) }

  /// Why the partition's log refuses appends (a failed write or fsync, damage found at
  /// open), or nil while it serves.
  public var offlineReason: String? { log.failure?.message }

  /// Where to start reading (Kafka's ListOffsets).
  public enum OffsetQuery: Sendable, Hashable {
    /// The log start.
    case earliest
    /// The high watermark.
    case latest
    /// The record with the largest timestamp.
    case maxTimestamp
    /// The first record whose timestamp is at least this.
    case timestamp(Int64)
  }

  /// The offset (and, for time queries, the timestamp) a query names; nil when no record
  /// matches (a time after every record's).
  public func offset(for query: OffsetQuery) throws(BrokerError) -> (offset: Int64, timestamp: Int64)? {
    do throws(StorageError) {
      switch query {
      case .earliest: return (log.logStartOffset, -1)
      case .latest: return (highWatermark, -1)
      case .maxTimestamp: return try log.maxTimestamp()
      case .timestamp(let timestamp):
        guard let found = try log.offset(forTimestamp: timestamp), found.offset < highWatermark else {
          return nil
        }
        return found
      }
    } catch {
      throw BrokerError(ErrorCode.from(error), error.message)
    }
  }

  /// Advances the log start to `offset` (nil: the high watermark), deleting the records
  /// before it (Kafka's DeleteRecords); returns the new log start. Refused beyond the high
  /// watermark, for negative offsets, and for topics whose `cleanup.policy` lacks delete.
  func deleteRecords(before offset: Int64?, policy: TopicConfig) throws(BrokerError) -> Int64 {
    let highWatermark = self.highWatermark
    let target = offset ?? highWatermark
    guard policy.deletesByRetention else {
      throw BrokerError(
        .policyViolation, "Records of a topic whose cleanup.policy lacks delete are not deleted")
    }
    guard target >= 0, target <= highWatermark else {
      throw BrokerError(.offsetOutOfRange, "Offset \(target) is outside [0, \(highWatermark)]")
    }
    do throws(StorageError) {
      return try log.deleteRecords(before: target)
    } catch {
      throw BrokerError(ErrorCode.from(error), error.message)
    }
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

/// A parked fetch: resumed once, by new data on any of its partitions or by its deadline —
/// either a suspended task (`wait()`) or a callback (`onWake(_:)`), whichever it was given.
final class FetchWaiter: Sendable {
  struct State {
    var fired = false
    var continuation: CheckedContinuation<Void, Never>?
    var handler: (@Sendable () -> Void)?
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

  /// Runs `handler` once `wake()` is called (on the waiter's event loop, never inside the
  /// caller of `wake()`); at once, the same way, if it already was.
  func onWake(_ handler: @escaping @Sendable () -> Void) {
    let alreadyFired = state.withLock { state in
      if state.fired { return true }
      state.handler = handler
      return false
    }
    if alreadyFired { run(handler) }
  }

  func wake() {
    let (continuation, handler) = state.withLock {
      state -> (CheckedContinuation<Void, Never>?, (@Sendable () -> Void)?) in
      if state.fired { return (nil, nil) }
      state.fired = true
      defer {
        state.continuation = nil
        state.handler = nil
      }
      return (state.continuation, state.handler)
    }
    if let continuation {
      // Resuming only enqueues the task, on the loop it is resumed from: hop first.
      if let eventLoop, !eventLoop.inEventLoop {
        eventLoop.execute { continuation.resume() }
      } else {
        continuation.resume()
      }
    }
    if let handler { run(handler) }
  }

  private func run(_ handler: @escaping @Sendable () -> Void) {
    if let eventLoop {
      // Queued even on the waiter's own loop: the append that woke it finishes first.
      eventLoop.execute(handler)
    } else {
      // No loop of its own (webhooks, bridges): in a task, not inside the append that woke it.
      Task { handler() }
    }
  }
}
