import KafkaProtocol
import SluiceStorage
import Synchronization

/// Per-partition counters and state of the overflow policy (docs/overflow.md).
final class OverflowState: Sendable {
  struct Marks {
    /// Backpressure: above the high-water mark until the backlog is back at the low one.
    var throttled = false
    /// Bytes of produce requests admitted by backpressure and not yet appended.
    var reserved: Int64 = 0
  }

  let marks = Mutex(Marks())
  let droppedBytes = Atomic<Int64>(0)
  let droppedRecords = Atomic<Int64>(0)
  let rejectedRequests = Atomic<Int64>(0)
  let throttledRequests = Atomic<Int64>(0)
  let throttleMs = Atomic<Int64>(0)
  let timedOutRequests = Atomic<Int64>(0)
}

/// A topic's overflow figures, summed over its partitions.
public struct OverflowStatistics: Sendable, Hashable {
  public var backlogBytes: Int64 = 0
  public var droppedBytes: Int64 = 0
  public var droppedRecords: Int64 = 0
  public var rejectedRequests: Int64 = 0
  public var throttledRequests: Int64 = 0
  public var throttleMs: Int64 = 0
  public var timedOutRequests: Int64 = 0
  /// Per consumer group counted in the backlog: the bytes from its committed offsets to the
  /// log end, summed over the partitions it has committed.
  public var groupBacklogBytes: [String: Int64] = [:]
}

extension Broker {
  /// A partition's backlog: the bytes from the slowest counted consumer group's committed
  /// offset to the log end, or the whole retained log when no counted group has committed
  /// an offset for it (docs/overflow.md).
  func backlogBytes(_ partition: Partition) -> Int64 {
    let positions = groups.backlogPositions(
      topic: partition.topic, partition: partition.index, activeMs: config.overflowGroupActiveMs)
    let from = positions.map(\.offset).min() ?? partition.log.logStartOffset
    return partition.log.retainedBytes(from: from)
  }

  /// The figures DescribeConfigs and the metrics endpoint report for a topic.
  public func overflowStatistics(_ topic: Topic) -> OverflowStatistics {
    var stats = OverflowStatistics()
    for partition in topic.partitions {
      let counters = partition.overflow
      stats.droppedBytes += counters.droppedBytes.load(ordering: .relaxed)
      stats.droppedRecords += counters.droppedRecords.load(ordering: .relaxed)
      stats.rejectedRequests += counters.rejectedRequests.load(ordering: .relaxed)
      stats.throttledRequests += counters.throttledRequests.load(ordering: .relaxed)
      stats.throttleMs += counters.throttleMs.load(ordering: .relaxed)
      stats.timedOutRequests += counters.timedOutRequests.load(ordering: .relaxed)
      stats.backlogBytes += backlogBytes(partition)
      for position in groups.backlogPositions(
        topic: topic.name, partition: partition.index, activeMs: config.overflowGroupActiveMs)
      {
        stats.groupBacklogBytes[position.group, default: 0] += partition.log.retainedBytes(
          from: position.offset)
      }
    }
    return stats
  }

  /// reject: whether appending `incoming` bytes would take the backlog past the bound.
  func rejectsForOverflow(_ partition: Partition, _ overflow: OverflowConfig, incoming: Int) -> String? {
    guard overflow.policy == .reject else { return nil }
    let backlog = backlogBytes(partition)
    guard backlog + Int64(incoming) > overflow.maxBytes else { return nil }
    partition.overflow.rejectedRequests.wrappingAdd(1, ordering: .relaxed)
    return
      "Backlog of \(partition.topic)-\(partition.index) is \(backlog) bytes; \(incoming) more would exceed "
      + "sluice.overflow.max.bytes=\(overflow.maxBytes) (policy reject). Retry once consumers catch up."
  }

  /// drop-oldest: trims the partition back to its bound after an append.
  func dropOldest(_ partition: Partition, _ overflow: OverflowConfig) {
    guard overflow.policy == .dropOldest, overflow.maxBytes >= 0,
      let trimmed = try? partition.log.trim(toBytes: overflow.maxBytes), trimmed.records > 0
    else { return }
    partition.overflow.droppedBytes.wrappingAdd(trimmed.bytes, ordering: .relaxed)
    partition.overflow.droppedRecords.wrappingAdd(trimmed.records, ordering: .relaxed)
    partition.notifyAppended()
  }

  /// backpressure: waits until the partition may take `incoming` more bytes — at once if
  /// the backlog is below the high-water mark, otherwise once it has fallen to the
  /// low-water mark. Returns false if `maxWaitMs` passed first (never for acks=0, whose
  /// producers hear of no error: they are held until there is room) or the broker is
  /// stopping. An admitted caller must call ``releaseBackpressure(_:incoming:)`` after
  /// appending.
  func awaitBackpressure(_ partition: Partition, _ overflow: OverflowConfig, incoming: Int64, acks: Int16)
    async -> (admitted: Bool, heldMs: Int64)
  {
    let started = ContinuousClock.now
    var counted = false
    while true {
      let backlog = backlogBytes(partition)
      let admitted = partition.overflow.marks.withLock { marks -> Bool in
        let pending = backlog + marks.reserved
        if marks.throttled {
          guard pending <= overflow.lowWaterMark else { return false }
          marks.throttled = false
        } else if pending + incoming > overflow.maxBytes && pending > 0 {
          marks.throttled = true
          return false
        }
        marks.reserved += incoming
        return true
      }
      let held = (ContinuousClock.now - started).milliseconds
      if admitted {
        if counted { partition.overflow.throttleMs.wrappingAdd(held, ordering: .relaxed) }
        return (true, held)
      }
      if !counted {
        counted = true
        partition.overflow.throttledRequests.wrappingAdd(1, ordering: .relaxed)
      }
      if (held >= overflow.maxWaitMs && acks != 0) || stopping.load(ordering: .relaxed) {
        partition.overflow.throttleMs.wrappingAdd(held, ordering: .relaxed)
        partition.overflow.timedOutRequests.wrappingAdd(1, ordering: .relaxed)
        return (false, held)
      }
      try? await Task.sleep(for: .milliseconds(5))
    }
  }

  func releaseBackpressure(_ partition: Partition, incoming: Int64) {
    partition.overflow.marks.withLock { $0.reserved -= incoming }
  }
}

extension Duration {
  var milliseconds: Int64 {
    let (seconds, attoseconds) = components
    return seconds * 1000 + attoseconds / 1_000_000_000_000_000
  }
}
