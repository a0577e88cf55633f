import KafkaProtocol
import Logging
import NIOCore
import SluiceStorage
import Synchronization

/// Records of one partition a share consumer settles.
public struct ShareAcknowledgement: Sendable {
  public var key: SharePartitionKey
  public var first: Int64
  public var last: Int64
  /// One type for the whole range, or one per offset.
  public var types: [ShareAcknowledgeType]

  public init(key: SharePartitionKey, first: Int64, last: Int64, types: [ShareAcknowledgeType]) {
    self.key = key
    self.first = first
    self.last = last
    self.types = types
  }
}

/// A ShareFetch (or, with `fetch` false, a ShareAcknowledge) in the broker's terms.
public struct ShareFetchCall: Sendable {
  public var groupId: String
  public var memberId: String
  /// 0 opens a share session, -1 closes it, otherwise the session's next epoch.
  public var sessionEpoch: Int32
  public var maxWaitMs: Int64 = 0
  public var maxBytes: Int = Int(Int32.max)
  public var maxRecords: Int = 500
  /// Partitions to add to the session (ShareFetch only).
  public var partitions: [SharePartitionKey] = []
  /// Partitions to remove from the session.
  public var forgotten: [SharePartitionKey] = []
  public var acknowledgements: [ShareAcknowledgement] = []
  /// Whether to hand out records (false: ShareAcknowledge).
  public var fetch: Bool = true

  public init(groupId: String, memberId: String, sessionEpoch: Int32) {
    self.groupId = groupId
    self.memberId = memberId
    self.sessionEpoch = sessionEpoch
  }
}

public struct ShareFetchPartitionResult: Sendable {
  public var key: SharePartitionKey
  public var error: BrokerError?
  /// Set when the call carried acknowledgements for this partition: nil = all applied.
  public var acknowledgeError: BrokerError?
  public var records = RecordData()
  public var acquired: [SharePartitionState.Acquired] = []

  public init(key: SharePartitionKey) { self.key = key }
}

public struct ShareFetchResult: Sendable {
  public var error: BrokerError?
  public var partitions: [ShareFetchPartitionResult] = []
  /// `group.share.record.lock.duration.ms`, for the client.
  public var lockTimeoutMs: Int64 = 0

  public init(error: BrokerError? = nil) { self.error = error }
}

extension Broker {
  /// ShareFetch / ShareAcknowledge: checks the share session, applies the acknowledgements
  /// (durable before this returns; rejected and exhausted records go to the dead-letter
  /// topic), then acquires records for the member from the session's partitions — parking,
  /// as a Fetch does, until some are available, `maxWaitMs` passes, a lock held by another
  /// member expires, or the caller leaves.
  public func shareFetch(_ call: ShareFetchCall, context: CallContext = CallContext()) async
    -> ShareFetchResult
  {
    var result = ShareFetchResult()
    result.lockTimeoutMs = shares.configuration.limits.lockDurationMs
    let session: [SharePartitionKey]
    switch shares.useSession(call, now: clock.monotonicMs()) {
    case .failure(let error):
      result.error = error
      return result
    case .success(let partitions):
      session = partitions
    }
    var byKey: [SharePartitionKey: ShareFetchPartitionResult] = [:]
    var order: [SharePartitionKey] = []
    func slot(_ key: SharePartitionKey) -> SharePartitionKey {
      if byKey[key] == nil {
        byKey[key] = ShareFetchPartitionResult(key: key)
        order.append(key)
      }
      return key
    }

    // Acknowledgements first, written before the answer (dead letters follow in the
    // background: `DeadLetterOutbox`).
    if !call.acknowledgements.isEmpty {
      let outcome = shares.acknowledge(call, now: clock.monotonicMs())
      for (key, error) in outcome.errors { byKey[slot(key)]!.acknowledgeError = error }
      // Every acknowledged partition is answered.
      for acknowledgement in call.acknowledgements { _ = slot(acknowledgement.key) }
      // As durable as the records: synced when a topic acknowledged fsyncs its appends,
      // else written to the page cache (kept by a process crash) and synced by
      // housekeeping within a second.
      let sync = outcome.touched.contains { key in
        topic(key.topic)?.partition(key.partition).map { $0.log.config.flushMessages <= 1 } ?? true
      }
      let failure = await shares.store.write([], sync: sync)
      if let failure {
        for key in outcome.touched {
          byKey[slot(key)]!.acknowledgeError = BrokerError(ErrorCode.from(failure), failure.message)
        }
      }
      deadLetters.enqueue(outcome.dead, broker: self)
      wakeShareFetches(outcome.released)
    }
    if call.sessionEpoch == -1 {
      let released = shares.closeSession(group: call.groupId, member: call.memberId)
      deadLetters.enqueue(released, broker: self)
      wakeShareFetches(released)
    }

    if call.fetch && call.sessionEpoch != -1 && !session.isEmpty {
      for (key, fetched) in await acquire(call, session, context: context) {
        var slotted = byKey[slot(key)]!
        slotted.error = fetched.error
        slotted.records = fetched.records
        slotted.acquired = fetched.acquired
        byKey[key] = slotted
      }
    }
    result.partitions = order.map { byKey[$0]! }
    return result
  }

  /// Acquires records from the session's partitions, parking while there are none.
  func acquire(_ call: ShareFetchCall, _ session: [SharePartitionKey], context: CallContext) async
    -> [(SharePartitionKey, ShareFetchPartitionResult)]
  {
    let deadline = clock.monotonicMs() + max(0, call.maxWaitMs)
    while true {
      let waiter = FetchWaiter(eventLoop: context.eventLoop)
      var registered: [Partition] = []
      var results: [(SharePartitionKey, ShareFetchPartitionResult)] = []
      var acquiredAny = false
      var bytes = 0
      var records = 0
      var nextLock: Int64?
      // Every member has the same session order: starting at a random partition keeps
      // MaxRecords from always being spent on the first ones.
      let start = session.isEmpty ? 0 : Int.random(in: 0..<session.count)
      for key in session[start...] + session[..<start] {
        var partitionResult = ShareFetchPartitionResult(key: key)
        guard let topicInfo = topic(key.topic), let partition = topicInfo.partition(key.partition) else {
          partitionResult.error = .unknownPartition(key.topic, key.partition)
          results.append((key, partitionResult))
          continue
        }
        partition.addWaiter(waiter)
        registered.append(partition)
        guard bytes < call.maxBytes, records < call.maxRecords else { continue }
        let now = clock.monotonicMs()
        let (readFrom, dead, lock) = shares.prepare(
          group: call.groupId, member: call.memberId, key, topicId: topicInfo.id, partition: partition,
          now: now,
          wallNow: clock.now())
        deadLetters.enqueue(
          [ShareStore.Key(group: call.groupId, topic: key.topic, partition: key.partition): dead],
          broker: self)
        if let lock { nextLock = min(nextLock ?? lock, lock) }
        let highWatermark = partition.highWatermark
        guard let readFrom, readFrom < highWatermark else { continue }
        do throws(StorageError) {
          // Read about what the records still wanted take, by this partition's recent
          // bytes per record (whole batches come back in any case).
          let wanted = call.maxRecords - records
          let estimate = shares.bytesPerRecord(group: call.groupId, key) ?? 0
          let readBytes =
            estimate > 0
            ? min(Self.shareReadBytes, max(Self.shareMinReadBytes, wanted * estimate + wanted * estimate / 4))
            : Self.shareMinReadBytes
          let read = try partition.log.read(
            from: readFrom, maxBytes: min(call.maxBytes - bytes, readBytes), upTo: highWatermark,
            minOneBatch: true)
          var loaded = try read.loadBytes()
          let batchEnds = Self.batchEnds(loaded, below: highWatermark)
          guard let firstOffset = Self.firstOffset(loaded), let lastOffset = batchEnds.last,
            firstOffset <= lastOffset
          else { continue }
          shares.noteBytesPerRecord(
            group: call.groupId, key, loaded.readableBytes / Int(max(1, lastOffset - firstOffset + 1)))
          let acquired = shares.acquire(
            group: call.groupId, member: call.memberId, key, offsets: firstOffset...lastOffset,
            maxRecords: wanted,
            now: clock.monotonicMs(), batchEnds: batchEnds)
          guard let first = acquired.first?.first, let last = acquired.last?.last else { continue }
          // Only the batches holding acquired records travel.
          loaded = Self.batches(of: loaded, overlapping: first...last)
          acquiredAny = true
          bytes += loaded.readableBytes
          records += acquired.reduce(0) { $0 + Int($1.last - $1.first + 1) }
          partitionResult.records = RecordData(pieces: [.bytes(loaded)])
          partitionResult.acquired = acquired
          results.append((key, partitionResult))
        } catch {
          partitionResult.error = BrokerError(ErrorCode.from(error), error.message)
          results.append((key, partitionResult))
        }
      }
      let now = clock.monotonicMs()
      let done =
        acquiredAny || results.contains { $0.1.error != nil } || call.maxWaitMs <= 0 || now >= deadline
        || stopping.load(ordering: .relaxed) || !context.isConnected()
      if done {
        for partition in registered { partition.removeWaiter(waiter) }
        return results
      }
      // Park until an append or a release wakes a partition, the deadline, or the
      // earliest lock of this group's partitions expires.
      var wakeAt = min(deadline, now + Self.parkSliceMs)
      if let nextLock { wakeAt = min(wakeAt, max(now + 1, nextLock)) }
      let timer = clock.schedule(afterMs: wakeAt - now, on: context.eventLoop) { waiter.wake() }
      await waiter.wait()
      timer.cancel()
      for partition in registered { partition.removeWaiter(waiter) }
    }
  }

  /// Bytes of log read per partition and ShareFetch at most: a fetch hands out at most
  /// MaxRecords records (500 by default), and the in-flight window bounds them anyway.
  static let shareReadBytes = 1 << 20
  /// And at least (the first read of a partition, whose record size is not known yet).
  static let shareMinReadBytes = 16 << 10

  /// The whole batches of `bytes` that hold an offset in `range`.
  static func batches(of bytes: ByteBuffer, overlapping range: ClosedRange<Int64>) -> ByteBuffer {
    var splitter = RecordBatchSplitter(bytes)
    var start: Int?
    var end = bytes.readerIndex
    var position = bytes.readerIndex
    while let batch = try? splitter.next() {
      let size = batch.buffer.readableBytes
      if batch.nextOffset - 1 >= range.lowerBound && batch.baseOffset <= range.upperBound {
        if start == nil { start = position }
        end = position + size
      }
      position += size
    }
    guard let start, let slice = bytes.getSlice(at: start, length: end - start) else { return bytes }
    return slice
  }

  /// The base offset of the first batch in `bytes`.
  static func firstOffset(_ bytes: ByteBuffer) -> Int64? {
    var splitter = RecordBatchSplitter(bytes)
    return (try? splitter.next())??.baseOffset
  }

  /// The last offset of each batch in `bytes`, ascending, capped below the high watermark.
  static func batchEnds(_ bytes: ByteBuffer, below highWatermark: Int64) -> [Int64] {
    var splitter = RecordBatchSplitter(bytes)
    var ends: [Int64] = []
    while let batch = try? splitter.next() {
      let end = min(batch.nextOffset - 1, highWatermark - 1)
      if end >= (ends.last ?? Int64.min) { ends.append(end) }
    }
    return ends
  }

  /// ShareGroupHeartbeat (see ``ShareGroups``): a member leaving releases its records,
  /// which wakes fetches parked on them.
  package func shareHeartbeat(_ request: ShareGroups.HeartbeatRequest) async -> ShareGroups.HeartbeatResult {
    if request.memberEpoch == 0, groups.describe(request.groupId) != nil {
      var refused = ShareGroups.HeartbeatResult()
      refused.error = BrokerError(
        .inconsistentGroupProtocol, "Group \(request.groupId) is a consumer group, not a share group")
      return refused
    }
    // A new group counts against sluice.max.groups with the consumer groups.
    let otherGroups = request.memberEpoch == 0 ? groups.list().count : 0
    let (result, released) = shares.heartbeat(request, now: clock.monotonicMs(), otherGroups: otherGroups) {
      names in
      names.flatMap { name -> [SharePartitionKey] in
        guard let topic = self.topic(name) else { return [] }
        return topic.partitions.map { SharePartitionKey(topic: name, partition: $0.index) }
      }
    }
    wakeShareFetches(released)
    deadLetters.enqueue(released, broker: self)
    return result
  }

  /// Wakes fetches parked on partitions where records became available again.
  func wakeShareFetches<T>(_ released: [ShareStore.Key: T]) {
    for key in Set(released.keys.map { SharePartitionKey(topic: $0.topic, partition: $0.partition) }) {
      topic(key.topic)?.partition(key.partition)?.notifyAppended()
    }
  }

  /// Share groups' periodic work: member session timeouts and expired locks (parked fetches
  /// also wake at the earliest lock deadline by themselves).
  func shareHousekeeping() async {
    await shares.store.syncIfNeeded()
    let released = shares.tick(now: clock.monotonicMs())
    guard !released.isEmpty else { return }
    wakeShareFetches(released)
    deadLetters.enqueue(released, broker: self)
  }

  /// Whether `sluice.share.dlq.topic` is set.
  var deadLetterTopicPatternSet: Bool { !shares.configuration.deadLetterTopic.isEmpty }

  /// The dead-letter topic of a group's partition (nil: dead letters are off).
  func deadLetterTopic(group: String, topic: String) -> String? {
    let pattern = shares.configuration.deadLetterTopic
    guard !pattern.isEmpty else { return nil }
    return Self.substitute(Self.substitute(pattern, "{topic}", topic), "{group}", group)
  }

  static func substitute(_ text: String, _ placeholder: String, _ value: String) -> String {
    text.split(separator: placeholder, omittingEmptySubsequences: false).joined(separator: value)
  }

  /// Appends one partition's archived records to the dead-letter topic (created with one
  /// partition when missing), each with headers naming where it came from and why, in
  /// batches of at most `DeadLetterOutbox.batchBytes`. Returns false when it should be
  /// tried again (a transient failure); a refusal that cannot pass (an invalid topic name,
  /// a record too large, a policy) is logged and given up.
  func appendDeadLetters(_ key: ShareStore.Key, _ dead: [SharePartitionState.DeadLetter]) async -> Bool {
    guard let target = deadLetterTopic(group: key.group, topic: key.topic), target != key.topic,
      let partition = topic(key.topic)?.partition(key.partition)
    else { return true }
    let byOffset = Dictionary(dead.map { ($0.offset, $0) }, uniquingKeysWith: { a, _ in a })
    var wanted = Set(byOffset.keys)
    var batches: [ByteBuffer] = []
    var builder = RecordBatchBuilder()
    var position = byOffset.keys.min() ?? 0
    while !wanted.isEmpty {
      guard
        let read = try? partition.log.read(
          from: position, maxBytes: 1 << 20, upTo: partition.highWatermark, minOneBatch: true),
        let bytes = try? read.loadBytes(), bytes.readableBytes > 0
      else { break }
      let next = try? RecordWalk.walk(
        bytes, from: position, maxDecompressedSize: config.maxDecompressedBatchBytes
      ) {
        record in
        guard wanted.remove(record.offset) != nil, let letter = byOffset[record.offset] else { return true }
        var headers = record.headers
        func add(_ name: String, _ value: String) {
          headers.append(RecordHeader(key: name, value: ByteBuffer(string: value)))
        }
        add("sluice.dlq.original.topic", key.topic)
        add("sluice.dlq.original.partition", String(key.partition))
        add("sluice.dlq.original.offset", String(record.offset))
        add("sluice.dlq.group", key.group)
        add("sluice.dlq.delivery.count", String(letter.deliveryCount))
        add("sluice.dlq.reason", letter.reason.rawValue)
        if builder.count > 0
          && builder.uncompressedSize + (record.value?.readableBytes ?? 0) > DeadLetterOutbox.batchBytes,
          let batch = try? builder.build()
        {
          batches.append(batch.buffer)
        }
        builder.append(key: record.key, value: record.value, headers: headers, timestamp: record.timestamp)
        return true
      }
      guard let next, next > position else { break }
      position = next
      if let remaining = wanted.min(), remaining > position { position = remaining }
    }
    if builder.count > 0, let batch = try? builder.build() { batches.append(batch.buffer) }
    guard !batches.isEmpty else { return true }
    if topic(target) == nil {
      do throws(TopicError) {
        _ = try await createTopic(name: target, partitions: 1, configs: [:])
      } catch .exists {
      } catch {
        shares.logger.error(
          "share group \(key.group): dead-letter topic \(target) cannot be created (\(error.message)); \(dead.count) dead letters of \(key.topic)-\(key.partition) are dropped"
        )
        return true
      }
    }
    while let batch = batches.first {
      let result = await produce(
        [PartitionRecords(topic: target, partition: 0, records: batch)], options: ProduceOptions(acks: .all))
      switch result.results.first {
      case .appended?, .duplicate?:
        batches.removeFirst()
      case .failed(let error)? where !error.code.isRetriable:
        shares.logger.error(
          "share group \(key.group): dead-letter topic \(target) refused \(dead.count) dead letters of \(key.topic)-\(key.partition): \(error.message); they are dropped"
        )
        return true
      default:
        return false
      }
    }
    return true
  }
}

/// Dead letters on their way to the dead-letter topic, written in the background so that
/// no acknowledgement, heartbeat or housekeeping round waits for (or hangs on) another
/// topic. Before each round the share journal is synced, so a dead letter is appended only
/// once its record is durably archived: a crash between the two loses that dead letter
/// (the record stays archived, as Kafka leaves it), never writes it twice. Transient
/// failures are retried with backoff a few times; bounded in how much it holds.
final class DeadLetterOutbox: Sendable {
  /// Uncompressed bytes per dead-letter batch at most (well below `max.message.bytes`).
  static let batchBytes = 256 << 10
  /// Dead letters waiting at most; beyond, new ones are dropped (and logged).
  static let maxPending = 100_000
  static let attempts = 6

  struct State {
    var pending: [ShareStore.Key: [SharePartitionState.DeadLetter]] = [:]
    var count = 0
    var running = false
  }

  let state = Mutex(State())

  func enqueue(_ letters: [ShareStore.Key: [SharePartitionState.DeadLetter]], broker: Broker) {
    guard broker.deadLetterTopicPatternSet else { return }
    let letters = letters.filter { !$0.value.isEmpty }
    guard !letters.isEmpty else { return }
    let start = state.withLock { state -> Bool in
      for (key, dead) in letters {
        guard state.count + dead.count <= Self.maxPending else {
          broker.shares.logger.error(
            "share group \(key.group): \(dead.count) dead letters of \(key.topic)-\(key.partition) dropped: \(state.count) are waiting already"
          )
          continue
        }
        state.pending[key, default: []] += dead
        state.count += dead.count
      }
      if state.running || state.pending.isEmpty { return false }
      state.running = true
      return true
    }
    if start { Task { await self.drain(broker) } }
  }

  private func drain(_ broker: Broker) async {
    while true {
      let round = state.withLock { state -> [ShareStore.Key: [SharePartitionState.DeadLetter]]? in
        guard !state.pending.isEmpty else {
          state.running = false
          return nil
        }
        defer {
          state.pending = [:]
          state.count = 0
        }
        return state.pending
      }
      guard let round else { return }
      // The archived states first (see the type's comment).
      _ = await broker.shares.store.write([], sync: true)
      for (key, dead) in round {
        var backoff: Int64 = 100
        for attempt in 1...Self.attempts {
          if await broker.appendDeadLetters(key, dead) { break }
          if attempt == Self.attempts || broker.stopping.load(ordering: .relaxed) {
            broker.shares.logger.error(
              "share group \(key.group): \(dead.count) dead letters of \(key.topic)-\(key.partition) dropped after \(attempt) failed attempts"
            )
            break
          }
          await broker.clock.sleep(ms: backoff)
          backoff *= 2
        }
      }
    }
  }
}
