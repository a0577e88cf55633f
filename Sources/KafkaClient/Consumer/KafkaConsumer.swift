import KafkaProtocol
public import Logging
import NIOCore
public import ServiceLifecycle
import Synchronization

/// Reads records from assigned partitions, or as a member of a consumer group.
///
/// Messages come from ``messages``, an `AsyncSequence` that fetches on demand (a fetch
/// long-polls the partition leaders for up to ``KafkaConsumerConfiguration/fetchMaxWait``),
/// so a slow reader applies backpressure: nothing is fetched ahead of it but one response.
///
/// With ``KafkaConsumptionStrategy/group(id:topics:)`` the consumer joins the group (classic
/// protocol) on the first fetch and is given its share of the topics' partitions; rebalances
/// happen between fetch rounds, and are reported through ``KafkaConsumerEvents`` (see
/// ``makeConsumerWithEvents(configuration:logger:)``). Positions are committed
/// automatically (``KafkaConsumerConfiguration/autoCommitInterval``) or with ``commit()``.
///
/// Positions can be moved with ``seek(_:to:)`` and ``seek(_:toTimestamp:)`` (ListOffsets),
/// and partitions paused with ``pause(_:)``. As a swift-service-lifecycle `Service`, ``run()``
/// waits for graceful shutdown and then closes the consumer.
public final class KafkaConsumer: Service, Sendable {
  /// The configuration the consumer was created with.
  public let configuration: KafkaConsumerConfiguration
  let cluster: KafkaCluster
  let fetcher: Fetcher
  let group: ConsumerGroupMember?
  let logger: Logger
  let delivery = DeliveryTracker()
  let shared: ConsumerShared
  private let eventsContinuation: AsyncStream<KafkaConsumerEvent>.Continuation
  private let eventStream: AsyncStream<KafkaConsumerEvent>

  /// Creates a consumer; nothing is sent until the first fetch (or a call that needs the
  /// broker). Throws `.config` for an invalid configuration.
  public convenience init(
    configuration: KafkaConsumerConfiguration, logger: Logger = Logger(label: "KafkaConsumer")
  ) throws {
    try self.init(configuration: configuration, logger: logger, allowsEmptySubscription: false)
  }

  private init(configuration: KafkaConsumerConfiguration, logger: Logger, allowsEmptySubscription: Bool)
    throws
  {
    self.configuration = configuration
    self.logger = logger
    self.cluster = try KafkaCluster(
      bootstrap: configuration.bootstrapAddresses, settings: configuration.connection, logger: logger)
    (eventStream, eventsContinuation) = AsyncStream.makeStream(
      of: KafkaConsumerEvent.self, bufferingPolicy: .bufferingNewest(256))
    guard configuration.maxPollRecords > 0 else {
      throw KafkaError(.config, "maxPollRecords must be positive")
    }
    switch configuration.consumptionStrategy.base {
    case .partitions(let assignment):
      shared = ConsumerShared(subscription: [])
      self.fetcher = Fetcher(
        cluster: cluster, configuration: configuration, logger: logger, assignment: assignment, shared: shared
      )
      self.group = nil
    case .group(let id, let topics):
      shared = ConsumerShared(subscription: topics)
      if id.isEmpty, let offset = configuration.consumptionStrategy.allPartitionsOffset {
        self.fetcher = Fetcher(
          cluster: cluster, configuration: configuration, logger: logger, assignment: [:],
          pendingTopics: topics.map { ($0, offset) }, shared: shared)
        self.group = nil
      } else {
        guard !id.isEmpty, !topics.isEmpty || allowsEmptySubscription else {
          throw KafkaError(.config, "a group subscription needs a group id and at least one topic")
        }
        guard !configuration.partitionAssignors.isEmpty else {
          throw KafkaError(.config, "no partition assignor configured")
        }
        if let instance = configuration.groupInstanceId, instance.isEmpty {
          throw KafkaError(.config, "groupInstanceId must not be empty")
        }
        let fetcher = Fetcher(
          cluster: cluster, configuration: configuration, logger: logger, assignment: [:], shared: shared)
        self.fetcher = fetcher
        self.group = ConsumerGroupMember(
          groupId: id, topics: topics, configuration: configuration, cluster: cluster, fetcher: fetcher,
          logger: logger, events: eventsContinuation, shared: shared)
      }
    }
  }

  /// A consumer with librdkafka-named settings (swift-kafka-client's initializer). Without
  /// a ``KafkaConsumerConfig/consumptionStrategy`` it reads nothing until
  /// ``subscribe(topics:)``.
  public convenience init(config: KafkaConsumerConfig, logger: Logger) throws {
    try self.init(
      configuration: config.configuration(), logger: logger,
      allowsEmptySubscription: config.consumptionStrategy == nil)
  }

  /// A consumer and the sequence of its events (swift-kafka-client's factory).
  public static func makeConsumerWithEvents(config: KafkaConsumerConfig, logger: Logger) throws -> (
    KafkaConsumer, KafkaConsumerEvents
  ) {
    let consumer = try KafkaConsumer(config: config, logger: logger)
    return (consumer, consumer.events)
  }

  /// swift-kafka-client's factory name.
  public static func makeConsumer(
    configuration: KafkaConsumerConfiguration, logger: Logger = Logger(label: "KafkaConsumer")
  ) throws -> KafkaConsumer {
    try KafkaConsumer(configuration: configuration, logger: logger)
  }

  /// A consumer and the sequence of its rebalance events (swift-kafka-client's factory).
  public static func makeConsumerWithEvents(
    configuration: KafkaConsumerConfiguration, logger: Logger = Logger(label: "KafkaConsumer")
  ) throws -> (KafkaConsumer, KafkaConsumerEvents) {
    let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
    return (consumer, consumer.events)
  }

  /// Rebalance events (group consumers only; ends when the consumer closes). Iterate it
  /// from one task.
  public var events: KafkaConsumerEvents { KafkaConsumerEvents(stream: eventStream) }

  /// The records of the assigned partitions, in offset order per partition. Iterate it
  /// from one task at a time.
  public var messages: KafkaConsumerMessages { KafkaConsumerMessages(consumer: self) }

  /// The next records as one array (what one fetch returned); nil once closed or
  /// cancelled. For callers that want to act per fetch, e.g. flush output. Everything
  /// returned by the previous call counts as delivered.
  package func nextBatch() async throws -> [KafkaConsumerMessage]? {
    while !Task.isCancelled {
      if delivery.isClosed { return nil }
      if await fetcher.isClosed { return nil }
      // Positions first, then the hand-out count: a commit reading them in the other order
      // (``deliveredPositions()``) never misses the previous step.
      await fetcher.markConsumed()
      delivery.reset()
      let batch: [KafkaConsumerMessage]
      do {
        if let group { try await group.poll() }
        batch = try await fetcher.poll()
      } catch let error as KafkaError where error.code == .closed {
        if await fetcher.isClosed { return nil }
        throw error
      }
      // Records fetched while the consumer was closing are not delivered (their
      // positions were not committed).
      if delivery.isClosed { return nil }
      if await fetcher.isClosed { return nil }
      if !batch.isEmpty { return batch }
    }
    return nil
  }

  /// For ``nextBatch()`` callers that stop inside a batch: only its first `count` messages
  /// count as delivered (for ``commit()`` and the commit on close).
  package func markDelivered(_ batch: [KafkaConsumerMessage], count: Int) {
    delivery.started(batch)
    _ = delivery.handOut(count)
  }

  // MARK: Assignment and positions

  /// Replaces the assignment (manual assignment only; a group assigns partitions itself).
  public func assign(_ assignment: [KafkaTopicPartition: KafkaOffset]) async {
    await fetcher.assign(assignment)
  }

  /// The partitions currently assigned (topics given by name are expanded on first fetch;
  /// a group consumer has none until it has joined).
  public func assignment() async throws -> [KafkaTopicPartition] {
    try await fetcher.resolveTopics()
    return await fetcher.assignedPartitions
  }

  /// Moves the position of `topicPartition` (resolved through ListOffsets for `.beginning`/`.end`).
  public func seek(_ topicPartition: KafkaTopicPartition, to offset: KafkaOffset) async {
    await fetcher.seek(topicPartition, to: Fetcher.position(offset))
  }

  /// Moves the position to the first record with a timestamp ≥ `timestamp` (ms), or the
  /// end when there is none.
  public func seek(_ topicPartition: KafkaTopicPartition, toTimestamp timestamp: Int64) async {
    await fetcher.seek(topicPartition, to: .timestamp(timestamp))
  }

  /// The next offset this consumer will read from the partition (after resolving logical offsets).
  public func position(_ topicPartition: KafkaTopicPartition) async throws -> KafkaOffset {
    try await fetcher.resolvePositions()
    guard let position = await fetcher.position(topicPartition) else {
      throw KafkaError(.config, "\(topicPartition) is not assigned")
    }
    return KafkaOffset(rawValue: Int(position))
  }

  /// Stops fetching from `partitions` until ``resume(_:)`` (the group membership stays
  /// alive). A rebalance forgets pauses of partitions it takes away.
  public func pause(_ partitions: [KafkaTopicPartition]) async {
    shared.pause(partitions)
  }

  /// Fetches from `partitions` again.
  public func resume(_ partitions: [KafkaTopicPartition]) async {
    shared.resume(partitions)
  }

  /// Stops handing out and fetching records of `topicPartitions` until
  /// ``resume(topicPartitions:)``; records already fetched from them are fetched again
  /// then (swift-kafka-client's form).
  public func pause(topicPartitions: [KafkaTopicPartition]) throws {
    try requireOpen()
    shared.pause(topicPartitions)
  }

  /// Reads `topicPartitions` again.
  public func resume(topicPartitions: [KafkaTopicPartition]) throws {
    try requireOpen()
    shared.resume(topicPartitions)
  }

  private func requireOpen() throws(KafkaError) {
    if delivery.isClosed { throw KafkaError(.closed, "the consumer is closed") }
  }

  // MARK: Subscription

  /// Replaces the group subscription (an empty list leaves the group); the next iteration
  /// step rejoins with it. Needs a group: ``KafkaConsumerConfig/groupId`` or a
  /// `.group` consumption strategy.
  public func subscribe(topics: [String]) throws {
    try requireOpen()
    guard group != nil else {
      throw KafkaError(.config, "subscribing needs a group id (groupId or consumptionStrategy .group)")
    }
    guard topics.allSatisfy({ !$0.isEmpty }) else { throw KafkaError(.config, "empty topic name") }
    shared.subscribe(Array(Set(topics)).sorted())
  }

  /// Leaves the group's subscription: the partitions are revoked (committed first with
  /// auto-commit) and nothing is read until ``subscribe(topics:)``.
  public func unsubscribe() throws {
    try subscribe(topics: [])
  }

  /// The topics of the group subscription.
  public func subscribedTopics() throws -> [String] {
    try requireOpen()
    return shared.subscription
  }

  // MARK: Stored offsets

  /// Marks `message` as processed: the next commit (automatic or ``commit()``) covers its
  /// partition up to and including it. Needs ``KafkaConsumerConfig/enableAutoOffsetStore``
  /// set to false (otherwise every message handed out counts as processed).
  /// A message of a partition no longer assigned is not stored. Storing goes on during
  /// shutdown, until the final commit is taken.
  public func storeOffset(_ message: KafkaConsumerMessage) throws {
    guard !configuration.enableAutoOffsetStore else {
      throw KafkaError(.config, "storeOffset requires enableAutoOffsetStore to be set to false")
    }
    shared.store(message.topicPartition, Int64(message.offset.rawValue) + 1)
  }

  /// The paused partitions.
  public func pausedPartitions() async -> [KafkaTopicPartition] {
    await fetcher.pausedPartitions
  }

  /// Earliest and latest offsets (log start, high watermark) of a partition.
  public func watermarks(_ topicPartition: KafkaTopicPartition) async throws -> (
    low: KafkaOffset, high: KafkaOffset
  ) {
    let low = try await listOffsets(cluster, [topicPartition: -2])[topicPartition] ?? -1
    let high = try await listOffsets(cluster, [topicPartition: -1])[topicPartition] ?? -1
    return (KafkaOffset(rawValue: Int(low)), KafkaOffset(rawValue: Int(high)))
  }

  // MARK: Commits

  private func requireGroup() throws -> ConsumerGroupMember {
    guard let group else { throw KafkaError(.config, "commits need a group subscription") }
    return group
  }

  /// Commits the position after every message delivered so far and waits for the
  /// coordinator (`commitSync`).
  public func commit() async throws {
    let group = try requireGroup()
    try await group.commit(await deliveredPositions())
  }

  /// Commits the position after `message` for its partition and waits.
  public func commit(_ message: KafkaConsumerMessage) async throws {
    let group = try requireGroup()
    try await group.commit([message.topicPartition: Int64(message.offset.rawValue) + 1])
  }

  /// Commits the position after every message delivered so far without waiting
  /// (`commitAsync`); a failure is logged (a later commit supersedes it).
  public func scheduleCommit() throws {
    let group = try requireGroup()
    let logger = self.logger
    Task {
      do { try await group.commit(await self.deliveredPositions()) } catch {
        logger.warning("asynchronous commit failed: \(error)")
      }
    }
  }

  /// Commits the position after `message` without waiting (swift-kafka-client's name).
  public func scheduleCommit(_ message: KafkaConsumerMessage) throws {
    let group = try requireGroup()
    let logger = self.logger
    Task {
      do { try await group.commit([message.topicPartition: Int64(message.offset.rawValue) + 1]) } catch {
        logger.warning("asynchronous commit failed: \(error)")
      }
    }
  }

  /// The group's committed offsets for `partitions` (nil: the current assignment); a
  /// partition without a committed offset is absent.
  public func committed(_ partitions: [KafkaTopicPartition]? = nil) async throws
    -> [KafkaTopicPartition: KafkaOffset]
  {
    let group = try requireGroup()
    let wanted: [KafkaTopicPartition]
    if let partitions { wanted = partitions } else { wanted = await fetcher.assignedPartitions }
    return try await group.committedOffsets(wanted).mapValues { KafkaOffset(rawValue: Int($0)) }
  }

  /// Positions of delivered messages: those of finished fetch rounds, advanced by what the
  /// current round has handed out; only partitions still assigned.
  func deliveredPositions() async -> [KafkaTopicPartition: Int64] {
    let assigned = Set(await fetcher.assignedPartitions)
    if !configuration.enableAutoOffsetStore { return shared.storedOffsets(of: assigned) }
    // The hand-out count before the positions (``nextBatch()`` updates them the other way
    // round), so that a step finished in between is in one or the other.
    let delivered = delivery.delivered()
    var positions = await fetcher.consumed
    for message in delivered where assigned.contains(message.topicPartition) {
      let next = Int64(message.offset.rawValue) + 1
      if next > positions[message.topicPartition, default: -1] { positions[message.topicPartition] = next }
    }
    return positions
  }

  // MARK: Lifecycle

  /// Waits for graceful shutdown (or cancellation), then closes the consumer
  /// (swift-service-lifecycle).
  public func run() async throws {
    // The handler runs as the shutdown arrives, so the message sequence ends at once.
    await withGracefulShutdownHandler {
      try? await gracefulShutdown()
    } onGracefulShutdown: { [delivery] in
      delivery.close()
    }
    await close()
  }

  /// Closes the consumer: iteration ends at once (no buffered record is handed out after
  /// this call), and the final commit covers exactly what was handed out
  /// (swift-kafka-client's name).
  public func triggerGracefulShutdown() {
    delivery.close()
    Task { await close() }
  }

  /// Commits (group with auto-commit), leaves the group (unless static), closes the
  /// connections; iteration then ends, without handing out the rest of a fetched batch.
  public func close() async {
    delivery.close()
    await fetcher.close()
    if let group { await group.close(delivered: await deliveredPositions()) }
    eventsContinuation.finish()
    await cluster.close()
  }
}

/// Which messages of the current fetch round the iterator has handed out, and whether the
/// consumer is closing; one lock, so that nothing is handed out after ``close()`` returned
/// and the final commit reads an exact count.
final class DeliveryTracker: Sendable {
  private struct State {
    var batch: [KafkaConsumerMessage] = []
    var count = 0
    var closed = false
  }
  private let state = Mutex(State())

  func reset() {
    state.withLock {
      $0.count = 0
      $0.batch = []
    }
  }

  func started(_ messages: [KafkaConsumerMessage]) {
    state.withLock { $0.batch = messages }
  }

  /// Records that the first `n` messages were handed out; false (nothing recorded) once
  /// closed.
  func handOut(_ n: Int) -> Bool {
    state.withLock { s in
      if s.closed { return false }
      s.count = n
      return true
    }
  }

  func close() { state.withLock { $0.closed = true } }
  var isClosed: Bool { state.withLock { $0.closed } }

  func delivered() -> ArraySlice<KafkaConsumerMessage> {
    state.withLock { $0.batch.prefix($0.count) }
  }
}

/// What the consumer's callers ask for, read by its fetch loop: the group subscription,
/// offsets stored with ``KafkaConsumer/storeOffset(_:)``, paused partitions.
final class ConsumerShared: Sendable {
  private struct State {
    var subscription: [String]
    var stored: [KafkaTopicPartition: Int64] = [:]
    var paused: Set<KafkaTopicPartition> = []
    var assigned: Set<KafkaTopicPartition> = []
  }
  private let state: Mutex<State>

  init(subscription: [String]) { state = Mutex(State(subscription: subscription)) }

  var subscription: [String] { state.withLock { $0.subscription } }
  func subscribe(_ topics: [String]) { state.withLock { $0.subscription = topics } }

  func store(_ topicPartition: KafkaTopicPartition, _ next: Int64) {
    state.withLock {
      if $0.assigned.contains(topicPartition) { $0.stored[topicPartition] = next }
    }
  }
  func storedOffsets(of partitions: Set<KafkaTopicPartition>) -> [KafkaTopicPartition: Int64] {
    state.withLock { $0.stored.filter { partitions.contains($0.key) } }
  }

  var paused: Set<KafkaTopicPartition> { state.withLock { $0.paused } }
  func pause(_ partitions: [KafkaTopicPartition]) { state.withLock { $0.paused.formUnion(partitions) } }
  func resume(_ partitions: [KafkaTopicPartition]) { state.withLock { $0.paused.subtract(partitions) } }

  /// A new assignment: stored offsets are forgotten (each partition starts at its
  /// committed offset; a late store of an earlier assignment's message must not move it
  /// back), pauses of partitions no longer assigned too.
  func assigned(_ assigned: Set<KafkaTopicPartition>) {
    state.withLock {
      $0.assigned = assigned
      $0.stored = [:]
      $0.paused.formIntersection(assigned)
    }
  }
}

/// The consumer's messages. Iterate it from one task at a time.
public struct KafkaConsumerMessages: AsyncSequence, Sendable {
  public typealias Element = KafkaConsumerMessage
  let consumer: KafkaConsumer

  public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: consumer) }

  /// Fetches as it is advanced; everything it returned before a fetch counts as delivered.
  public struct AsyncIterator: AsyncIteratorProtocol {
    let consumer: KafkaConsumer
    var buffered: [KafkaConsumerMessage] = []
    var index = 0

    public mutating func next() async throws -> KafkaConsumerMessage? {
      while index == buffered.count {
        guard let batch = try await consumer.nextBatch() else { return nil }
        buffered = batch
        index = 0
        consumer.delivery.started(batch)
      }
      // After close (or graceful shutdown) the sequence ends at once: the rest of the batch
      // is not handed out, so the final commit covers exactly what the caller got.
      guard consumer.delivery.handOut(index + 1) else {
        buffered = []
        index = 0
        return nil
      }
      defer { index += 1 }
      return buffered[index]
    }
  }
}
