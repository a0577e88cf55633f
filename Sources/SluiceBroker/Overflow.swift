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
    let from = backlogPositions(partition).map(\.offset).min() ?? partition.log.logStartOffset
    return partition.log.retainedBytes(from: from)
  }

  /// The committed offsets of the groups counted in the partition's backlog.
  func backlogPositions(_ partition: Partition) -> [(group: String, offset: Int64)] {
    groups.backlogPositions(
      topic: partition.topic, partition: partition.index, activeMs: config.overflowGroupActiveMs)
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
      // The partition's backlog is its slowest counted group's (the most bytes), or the
      // whole log when no group is counted.
      var slowest = Int64(0)
      let positions = backlogPositions(partition)
      for position in positions {
        let bytes = partition.log.retainedBytes(from: position.offset)
        stats.groupBacklogBytes[position.group, default: 0] += bytes
        slowest = max(slowest, bytes)
      }
      stats.backlogBytes +=
        positions.isEmpty ? partition.log.retainedBytes(from: partition.log.logStartOffset) : slowest
    }
    return stats
  }

  /// `sluice.stats.*`: a topic's overflow figures as read-only config entries (Kafka's
  /// DescribeConfigs lists them beside the configs; docs/overflow.md).
  public func overflowStatisticEntries(_ topic: Topic) -> [(name: String, value: String)] {
    let stats = overflowStatistics(topic)
    let prefix = TopicConfig.statisticPrefix
    var entries: [(name: String, value: String)] = [
      (prefix + "backlog.bytes", String(stats.backlogBytes)),
      (prefix + "dropped.bytes", String(stats.droppedBytes)),
      (prefix + "dropped.records", String(stats.droppedRecords)),
      (prefix + "rejected.requests", String(stats.rejectedRequests)),
      (prefix + "throttled.requests", String(stats.throttledRequests)),
      (prefix + "throttle.time.ms", String(stats.throttleMs)),
      (prefix + "timed.out.requests", String(stats.timedOutRequests)),
    ]
    for (group, bytes) in stats.groupBacklogBytes.sorted(by: { $0.key < $1.key }) {
      entries.append((prefix + "group.backlog.bytes." + group, String(bytes)))
    }
    return entries
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

  /// One partition a produce request writes to a backpressure topic, with the bytes it
  /// writes there (summed, should the partition appear more than once).
  struct BackpressureClaim {
    let topic: Topic
    let partition: Partition
    var incoming: Int64
  }

  /// What ``awaitBackpressure(_:acks:connectionOpen:)`` decided: partitions admitted (with
  /// bytes reserved, to be released by ``releaseBackpressure(_:)`` after appending) and
  /// partitions refused.
  struct BackpressureOutcome {
    var reserved: [BackpressureClaim] = []
    var refused: [Partition] = []
    var heldMs: Int64 = 0
  }

  /// backpressure: waits until every claimed partition may take its bytes — at once if its
  /// backlog is below the high-water mark, otherwise once it has fallen to the low-water
  /// mark. All at once or none: a request does not keep bytes reserved on one partition
  /// while it waits for another. Gives up on the partitions still over after
  /// `sluice.overflow.max.wait.ms` (never for acks=0, whose producers hear of no error: they
  /// are held until there is room), when the client disconnects, or when the broker stops.
  /// The topic's current config is read at every check, so a changed policy or bound, or a
  /// deleted topic, applies to held requests too.
  func awaitBackpressure(_ claims: [BackpressureClaim], acks: Acks, context: CallContext) async
    -> BackpressureOutcome
  {
    let started = clock.monotonicMs()
    var blocked: Set<ObjectIdentifier> = []
    while true {
      // Claims that still need admission: same topic object, still backpressure.
      var live: [(claim: BackpressureClaim, overflow: OverflowConfig)] = []
      for claim in claims where self.topic(claim.topic.name) === claim.topic {
        let overflow = claim.topic.config.overflow
        if overflow.policy == .backpressure { live.append((claim, overflow)) }
      }
      var reserved: [BackpressureClaim] = []
      var refused: [(claim: BackpressureClaim, overflow: OverflowConfig)] = []
      for (claim, overflow) in live {
        if tryReserve(claim, overflow) { reserved.append(claim) } else { refused.append((claim, overflow)) }
      }
      let held = clock.monotonicMs() - started
      if refused.isEmpty {
        account(claims, blocked: blocked, heldMs: held, timedOut: [])
        return BackpressureOutcome(reserved: reserved, heldMs: held)
      }
      for (claim, _) in refused where blocked.insert(ObjectIdentifier(claim.partition)).inserted {
        claim.partition.overflow.throttledRequests.wrappingAdd(1, ordering: .relaxed)
      }
      let maxWait = refused.map(\.overflow.maxWaitMs).min() ?? 0
      if (acks != .none && held >= maxWait) || stopping.load(ordering: .relaxed) || !context.isConnected() {
        // Give up on what is still over; what got through this round goes ahead.
        let timedOut = refused.map(\.claim.partition)
        account(claims, blocked: blocked, heldMs: held, timedOut: timedOut)
        return BackpressureOutcome(reserved: reserved, refused: timedOut, heldMs: held)
      }
      releaseBackpressure(reserved)
      await clock.sleep(ms: Self.backpressureRecheckMs)
    }
  }

  /// How often a held request looks at the backlog again.
  static let backpressureRecheckMs: Int64 = 5

  /// Under the partition's marks: admits `claim` (reserving its bytes) or not.
  func tryReserve(_ claim: BackpressureClaim, _ overflow: OverflowConfig) -> Bool {
    let backlog = backlogBytes(claim.partition)
    return claim.partition.overflow.marks.withLock { marks -> Bool in
      let pending = backlog + marks.reserved
      if marks.throttled {
        guard pending <= overflow.lowWaterMark else { return false }
        marks.throttled = false
      } else if pending + claim.incoming > overflow.maxBytes && pending > 0 {
        marks.throttled = true
        return false
      }
      marks.reserved += claim.incoming
      return true
    }
  }

  private func account(
    _ claims: [BackpressureClaim], blocked: Set<ObjectIdentifier>, heldMs: Int64, timedOut: [Partition]
  ) {
    for claim in claims where blocked.contains(ObjectIdentifier(claim.partition)) {
      claim.partition.overflow.throttleMs.wrappingAdd(heldMs, ordering: .relaxed)
    }
    for partition in timedOut { partition.overflow.timedOutRequests.wrappingAdd(1, ordering: .relaxed) }
  }

  func releaseBackpressure(_ reserved: [BackpressureClaim]) {
    for claim in reserved { claim.partition.overflow.marks.withLock { $0.reserved -= claim.incoming } }
  }
}
