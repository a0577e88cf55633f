import KafkaProtocol
import NIOCore
import SluiceBroker
import Synchronization

/// A topic partition as REST consumers name it.
struct TopicPartition: Hashable, Sendable, Comparable {
  var topic: String
  var partition: Int32

  static func < (a: TopicPartition, b: TopicPartition) -> Bool {
    (a.topic, a.partition) < (b.topic, b.partition)
  }
  var description: String { "\(topic)-\(partition)" }
}

/// What `POST /consumers/{group}` configures (REST Proxy v2's CreateConsumerInstanceRequest).
struct ConsumerSettings: Sendable {
  enum Reset: String, Sendable { case earliest, latest, none }
  var format: EmbeddedFormat = .binary
  var reset: Reset = .latest
  var autoCommit = true
  var fetchMinBytes = -1
  var requestTimeoutMs: Int64
}

/// One REST consumer instance: a real member of its Kafka consumer group (JoinGroup,
/// SyncGroup, heartbeats and LeaveGroup on the broker's group coordinator, the consumer
/// protocol with the range and round-robin assignors), so REST consumers and Kafka
/// consumers of one group share its partitions. Positions are kept here; commits go to the
/// group's offsets.
///
/// Membership runs in a task of its own while the instance subscribes: it joins, syncs
/// (assigning partitions when it leads), heartbeats every second, and rejoins when the
/// coordinator starts a rebalance, its pattern matches other topics, or (as leader) a topic
/// it assigns gains partitions. Assignment is eager: all partitions are given up on
/// rejoining, after committing (with auto-commit) what was delivered.
actor RestConsumer {
  nonisolated let group: String
  nonisolated let name: String
  /// With HTTP authentication: the principal that created the instance, the only one that
  /// may use it.
  nonisolated let owner: String?
  nonisolated let settings: ConsumerSettings
  nonisolated let broker: Broker
  /// Broker clock (monotonic ms) of the last request: idle instances expire.
  nonisolated let lastUsed: Atomic<Int64>

  static let sessionTimeoutMs: Int32 = 30_000
  static let rebalanceTimeoutMs: Int32 = 60_000
  static let heartbeatIntervalMs = 1000
  /// Heartbeats between checks of the topics a pattern matches and of partition counts.
  static let metadataCheckEvery = 5

  enum Subscription: Sendable, Equatable {
    case none
    case topics([String])
    case pattern(String)
    case manual([TopicPartition])
  }

  private(set) var subscription = Subscription.none
  private var memberId = ""
  /// The id a first join asked for, until its answer is known: a join abandoned by a
  /// cancelled task may still have made it a member, which must then leave.
  private var pendingMemberId: String?
  private var generation: Int32 = -1
  private(set) var assigned: [TopicPartition] = []
  private var positions: [TopicPartition: Int64] = [:]
  /// Assigned partitions without a committed offset whose reset policy is `none`.
  private var undefined: Set<TopicPartition> = []
  private var committed: [TopicPartition: Int64] = [:]
  private var assignmentEpoch = 0
  private var membership: Task<Void, Never>?
  private var membershipToken = 0
  /// Topics last joined with, and (as leader) the partition counts last assigned.
  private var joinedTopics: [String] = []
  private var assignedCounts: [String: Int] = [:]
  private var isLeader = false
  private var rotation = 0
  private(set) var closed = false
  private var readBusy = false
  private var readWaiters: [CheckedContinuation<Void, Never>] = []

  init(group: String, name: String, settings: ConsumerSettings, broker: Broker, owner: String? = nil) {
    self.group = group
    self.name = name
    self.owner = owner
    self.settings = settings
    self.broker = broker
    self.lastUsed = Atomic(broker.clock.monotonicMs())
  }

  nonisolated func touch() { lastUsed.store(broker.clock.monotonicMs(), ordering: .relaxed) }

  // MARK: Subscription and assignment

  static let illegalMix = RestError(
    .conflict, 40903, "Illegal state: Subscription to topics, partitions and pattern are mutually exclusive")

  func subscribe(_ new: Subscription) async -> RestError? {
    if case .manual = subscription { return Self.illegalMix }
    if new == subscription { return nil }
    subscription = new
    startMembership()
    return nil
  }

  func unsubscribe() async {
    await stopMembership(leave: true)
    subscription = .none
    setAssignment([])
  }

  func assign(_ partitions: [TopicPartition]) async -> RestError? {
    switch subscription {
    case .topics, .pattern: return Self.illegalMix
    case .none, .manual: break
    }
    await commitIfAuto()
    subscription = .manual(partitions)
    setAssignment(Array(Set(partitions)).sorted())
    return nil
  }

  /// The topics a subscription names now (a pattern matched against the broker's topics).
  func subscribedTopics() -> [String] {
    switch subscription {
    case .none: return []
    case .topics(let topics): return topics
    case .manual(let partitions): return Array(Set(partitions.map(\.topic))).sorted()
    case .pattern(let pattern): return Self.matching(pattern, broker: broker)
    }
  }

  static func matching(_ pattern: String, broker: Broker) -> [String] {
    guard let regex = try? Regex(pattern) else { return [] }
    return broker.allTopics.map(\.name).filter { (try? regex.wholeMatch(in: $0)) != nil }
  }

  /// Takes a new assignment: positions kept for partitions kept, others start from the
  /// group's committed offset or the reset policy.
  private func setAssignment(_ partitions: [TopicPartition]) {
    assignmentEpoch += 1
    assigned = partitions
    let keep = Set(partitions)
    positions = positions.filter { keep.contains($0.key) }
    undefined = undefined.intersection(keep)
    committed = committed.filter { keep.contains($0.key) }
    let missing = partitions.filter { positions[$0] == nil && !undefined.contains($0) }
    guard !missing.isEmpty else { return }
    let byTopic = Dictionary(grouping: missing, by: \.topic)
    let stored = broker.committedOffsets(
      group: group, topics: byTopic.map { ($0.key, $0.value.map(\.partition)) })
    for (topic, entries) in stored {
      for (partition, offset) in entries {
        let key = TopicPartition(topic: topic, partition: partition)
        if let offset, offset.offset >= 0 {
          positions[key] = offset.offset
          committed[key] = offset.offset
        } else {
          reset(key)
        }
      }
    }
  }

  /// Applies the reset policy to a partition's position.
  private func reset(_ key: TopicPartition) {
    guard let partition = broker.topic(key.topic)?.partition(key.partition) else {
      positions[key] = 0
      return
    }
    switch settings.reset {
    case .earliest: positions[key] = partition.logStartOffset
    case .latest: positions[key] = partition.highWatermark
    case .none:
      positions[key] = nil
      undefined.insert(key)
    }
  }

  // MARK: Membership

  private func startMembership() {
    membershipToken += 1
    membership?.cancel()
    let token = membershipToken
    membership = Task { await self.runMembership(token) }
  }

  private func stopMembership(leave: Bool) async {
    membershipToken += 1
    membership?.cancel()
    membership = nil
    assignmentEpoch += 1
    await commitIfAuto()
    if leave {
      leaveGroup()
    }
  }

  /// Leaves with the member id, or the one a first join may have been given.
  private func leaveGroup() {
    for id in [memberId, pendingMemberId ?? ""] where !id.isEmpty {
      _ = broker.groups.leave(groupId: group, members: [(memberId: id, groupInstanceId: nil)])
    }
    memberId = ""
    pendingMemberId = nil
    generation = -1
  }

  private func current(_ token: Int) -> Bool { token == membershipToken && !Task.isCancelled && !closed }

  private func runMembership(_ token: Int) async {
    var failures = 0
    while current(token) {
      // Eager: partitions are given up before rejoining (reads that end meanwhile see the
      // epoch move and hand out nothing).
      if !assigned.isEmpty {
        assignmentEpoch += 1
        await commitIfAuto()
        guard current(token) else { return }
        setAssignment([])
      }
      if failures > 0 {
        try? await Task.sleep(for: .milliseconds(min(100 << min(failures, 5), 2000)))
        guard current(token) else { return }
      }
      // A first join that a cancelled task abandoned may have made a member: it leaves.
      if memberId.isEmpty && pendingMemberId != nil { leaveGroup() }
      let topics = subscribedTopics()
      guard let metadata = try? ConsumerProtocolCodec.encodeSubscription(topics: topics) else { return }
      let newMemberId = "sluice-rest-\(name)-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
      if memberId.isEmpty { pendingMemberId = newMemberId }
      let request = GroupStateMachine.JoinRequest(
        memberId: memberId, clientId: "sluice-rest-\(name)", clientHost: "",
        sessionTimeoutMs: Self.sessionTimeoutMs,
        rebalanceTimeoutMs: Self.rebalanceTimeoutMs, protocolType: "consumer",
        protocols: [
          .init(name: "range", metadata: metadata), .init(name: "roundrobin", metadata: metadata),
        ],
        requireKnownMemberId: false, newMemberId: newMemberId)
      let joined = await broker.groups.join(groupId: group, request)
      guard current(token) else {
        // Superseded or closed while joining: a member that joined is the next loop's (or
        // leaves with the instance).
        if joined.errorCode == .none {
          if memberId.isEmpty {
            memberId = joined.memberId
            pendingMemberId = nil
          } else if memberId != joined.memberId {
            _ = broker.groups.leave(
              groupId: group, members: [(memberId: joined.memberId, groupInstanceId: nil)])
          }
        }
        return
      }
      guard joined.errorCode == .none else {
        if joined.errorCode == .unknownMemberId { memberId = "" }
        failures += 1
        continue
      }
      memberId = joined.memberId
      pendingMemberId = nil
      generation = joined.generationId
      joinedTopics = topics
      isLeader = joined.leaderId == joined.memberId
      var assignments: [(memberId: String, assignment: ByteBuffer)] = []
      if isLeader {
        assignments = leaderAssignments(joined)
      }
      let synced = await broker.groups.sync(
        groupId: group, memberId: memberId, groupInstanceId: nil, generationId: generation,
        protocolType: "consumer", protocolName: joined.protocolName, assignments: assignments)
      guard current(token) else { return }
      guard synced.errorCode == .none else {
        if synced.errorCode == .unknownMemberId { memberId = "" }
        if synced.errorCode != .rebalanceInProgress { failures += 1 }
        continue
      }
      failures = 0
      let partitions = (try? ConsumerProtocolCodec.decodeAssignment(synced.assignment)) ?? []
      setAssignment(partitions.map { TopicPartition(topic: $0.topic, partition: $0.partition) })
      await heartbeats(token)
    }
  }

  private func leaderAssignments(_ joined: GroupStateMachine.JoinResult) -> [(
    memberId: String, assignment: ByteBuffer
  )] {
    var members: [GroupSubscription] = []
    for member in joined.members {
      // A member whose metadata does not decode gets nothing.
      let topics = (try? ConsumerProtocolCodec.decodeSubscription(member.metadata))?.topics ?? []
      members.append(
        GroupSubscription(memberId: member.memberId, groupInstanceId: member.groupInstanceId, topics: topics))
    }
    assignedCounts = partitionCounts(Set(members.flatMap(\.topics)))
    let result =
      joined.protocolName == "roundrobin"
      ? PartitionAssignment.roundRobin(members: members, partitionCounts: assignedCounts)
      : PartitionAssignment.range(members: members, partitionCounts: assignedCounts)
    return members.map { member in
      (
        member.memberId,
        (try? ConsumerProtocolCodec.encodeAssignment(result[member.memberId] ?? [:])) ?? ByteBuffer()
      )
    }
  }

  /// Partition counts, 0 for a topic that does not exist (yet: the leader rejoins when it
  /// appears).
  private func partitionCounts(_ topics: Set<String>) -> [String: Int] {
    var counts: [String: Int] = [:]
    for topic in topics { counts[topic] = broker.topic(topic)?.partitions.count ?? 0 }
    return counts
  }

  /// Heartbeats until the group rebalances (or this member is out of it); returns to rejoin.
  private func heartbeats(_ token: Int) async {
    var beats = 0
    while true {
      try? await Task.sleep(for: .milliseconds(Self.heartbeatIntervalMs))
      guard current(token) else { return }
      let code = broker.groups.heartbeat(
        groupId: group, memberId: memberId, groupInstanceId: nil, generationId: generation)
      switch code {
      case .none: break
      case .unknownMemberId, .fencedInstanceId:
        memberId = ""
        generation = -1
        return
      default:
        // REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, or the coordinator going away: rejoin.
        return
      }
      beats += 1
      if beats % Self.metadataCheckEvery == 0 {
        if case .pattern = subscription, subscribedTopics() != joinedTopics { return }
        if isLeader && partitionCounts(Set(assignedCounts.keys)) != assignedCounts { return }
      }
    }
  }

  // MARK: Positions and offsets

  private var memberRef: GroupMemberRef {
    let member: Bool
    switch subscription {
    case .topics, .pattern: member = generation >= 0 && !memberId.isEmpty
    case .none, .manual: member = false
    }
    return member
      ? GroupMemberRef(groupId: group, memberId: memberId, generationId: generation)
      : GroupMemberRef(groupId: group)
  }

  /// With auto-commit: commits the positions that moved (what earlier reads delivered).
  func commitIfAuto() async {
    guard settings.autoCommit else { return }
    let owned = Set(assigned)
    let moved = positions.filter { owned.contains($0.key) && committed[$0.key] != $0.value }
    guard !moved.isEmpty else { return }
    _ = await commit(moved.map { ($0.key, $0.value, "") })
  }

  /// Commits next-offsets; the first refusal as a REST error.
  func commit(_ entries: [(TopicPartition, Int64, String)]) async -> RestError? {
    guard !entries.isEmpty else { return nil }
    let codes = await broker.commitOffsets(
      memberRef,
      entries.map {
        (topic: $0.0.topic, partition: $0.0.partition, offset: CommittedOffset(offset: $0.1, metadata: $0.2))
      })
    var failure: RestError?
    for (entry, code) in zip(entries, codes) {
      if code == .none {
        committed[entry.0] = entry.1
      } else if failure == nil {
        failure = Self.commitError(code, entry.0)
      }
    }
    return failure
  }

  static func commitError(_ code: ErrorCode, _ partition: TopicPartition) -> RestError {
    switch code {
    case .unknownTopicOrPartition:
      RestError(.notFound, 40403, "This server does not host this topic-partition.")
    case .rebalanceInProgress, .illegalGeneration, .unknownMemberId, .fencedInstanceId:
      RestError(
        .conflict, 40903,
        "Illegal state: Commit cannot be completed since the group has already rebalanced (\(code.name))")
    case .offsetMetadataTooLarge:
      RestError(.unprocessableEntity, 42204, "Invalid consumer configuration: offset metadata too large")
    default:
      RestError(.internalServerError, 50002, "Kafka error: \(code.name) committing \(partition.description)")
    }
  }

  /// Commits all positions (the body-less `POST …/offsets`).
  func commitPositions() async -> RestError? {
    await commit(positions.map { ($0.key, $0.value, "") })
  }

  func committedOffsets(_ partitions: [TopicPartition]?) -> [(TopicPartition, CommittedOffset)] {
    let wanted = partitions ?? assigned
    let byTopic = Dictionary(grouping: wanted, by: \.topic)
    var result: [(TopicPartition, CommittedOffset)] = []
    for (topic, entries) in broker.committedOffsets(
      group: group, topics: byTopic.keys.sorted().map { ($0, byTopic[$0]!.map(\.partition)) })
    {
      for (partition, offset) in entries {
        if let offset { result.append((TopicPartition(topic: topic, partition: partition), offset)) }
      }
    }
    return result
  }

  enum Seek: Sendable {
    case offset(Int64)
    case beginning
    case end
    case timestamp(Int64)
  }

  func seek(_ targets: [(TopicPartition, Seek)]) async -> RestError? {
    let owned = Set(assigned)
    for (partition, _) in targets where !owned.contains(partition) {
      return RestError(
        .conflict, 40903, "Illegal state: No current assignment for partition \(partition.description)")
    }
    for (key, target) in targets {
      guard let partition = broker.topic(key.topic)?.partition(key.partition) else { continue }
      let position: Int64
      switch target {
      case .offset(let offset): position = offset
      case .beginning: position = partition.logStartOffset
      case .end: position = partition.highWatermark
      case .timestamp(let ms):
        position = await offLoop {
          (try? partition.offset(for: .timestamp(ms)))??.offset ?? partition.highWatermark
        }
        // The group may have rebalanced meanwhile.
        guard assigned.contains(key) else { continue }
      }
      positions[key] = position
      undefined.remove(key)
    }
    return nil
  }

  // MARK: Reading

  private func acquireRead() async {
    if !readBusy {
      readBusy = true
      return
    }
    await withCheckedContinuation { readWaiters.append($0) }
  }

  private func releaseRead() {
    if readWaiters.isEmpty {
      readBusy = false
    } else {
      readWaiters.removeFirst().resume()
    }
  }

  /// `GET …/records`: what the assigned partitions hold past the positions, as soon as there
  /// is any (a parked read, woken by an append), or `[]` after `timeoutMs`.
  func read(timeoutMs: Int64, maxBytes: Int, format: EmbeddedFormat, context: RequestContext) async -> Result<
    ByteBuffer, RestError
  > {
    await acquireRead()
    defer { releaseRead() }
    if closed { return .failure(RestConsumers.notFound) }
    if subscription == .none {
      return .failure(
        RestError(
          .conflict, 40903,
          "Illegal state: Consumer is not subscribed to any topics or assigned any partitions"))
    }
    await commitIfAuto()
    let started = broker.clock.monotonicMs()
    // Joining: wait (within the timeout) for partitions.
    while assigned.isEmpty && broker.clock.monotonicMs() - started < timeoutMs && !closed && context.isOpen()
    {
      try? await Task.sleep(for: .milliseconds(20))
    }
    let epoch = assignmentEpoch
    var order = assigned.filter { positions[$0] != nil }
    if order.isEmpty, let missing = assigned.first(where: { undefined.contains($0) }) {
      return .failure(
        RestError(
          .internalServerError, 50002,
          "Kafka error: Undefined offset with no reset policy for partitions: [\(missing.description)]"))
    }
    guard !order.isEmpty else { return .success(ByteBuffer(string: "[]")) }
    rotation = (rotation + 1) % order.count
    order = Array(order[rotation...] + order[..<rotation])
    let reads = order.map {
      PartitionRead(topic: $0.topic, partition: $0.partition, offset: positions[$0]!, maxBytes: maxBytes)
    }
    let remaining = max(0, timeoutMs - (broker.clock.monotonicMs() - started))
    let results = await broker.read(
      reads,
      options: ReadOptions(
        maxBytes: maxBytes, minBytes: max(1, settings.fetchMinBytes), maxWaitMs: remaining),
      context: CallContext(eventLoop: context.channel.eventLoop, isConnected: context.isOpen))
    // The group rebalanced meanwhile (these partitions may be another member's now), or the
    // client is gone: nothing is handed out, positions stay.
    guard epoch == assignmentEpoch, !closed else { return .success(ByteBuffer(string: "[]")) }
    guard context.isOpen() else { return .failure(RestError(.requestTimeout, 408, "The client went away")) }
    var writer = JSONWriter()
    var taken = 0
    var count = 0
    var next: [TopicPartition: Int64] = [:]
    writer.raw("[")
    for (read, result) in zip(reads, results) {
      let key = TopicPartition(topic: read.topic, partition: read.partition)
      if let failure = result.error {
        if failure.code == .offsetOutOfRange { reset(key) }
        continue
      }
      guard result.records.count > 0, taken < maxBytes || count == 0,
        let bytes = try? result.records.load()
      else { continue }
      do {
        next[key] = try RecordWalk.walk(
          bytes, from: read.offset, maxDecompressedSize: broker.config.maxDecompressedBatchBytes
        ) { record throws(RecordWalk.Failure) in
          let size = (record.key?.readableBytes ?? 0) + (record.value?.readableBytes ?? 0)
          if count > 0 && taken + size > maxBytes { return false }
          if format == .json && !(Self.isJSON(record.key) && Self.isJSON(record.value)) {
            throw RecordWalk.Failure(baseOffset: record.offset, message: "not JSON")
          }
          var entry = JSONWriter()
          entry.object { object in
            object.member("topic") { $0.string(read.topic) }
            object.member("key") { Self.embed(record.key, format, into: &$0) }
            object.member("value") { Self.embed(record.value, format, into: &$0) }
            object.member("partition") { $0.number(read.partition) }
            object.member("offset") { $0.number(record.offset) }
          }
          if count > 0 { writer.raw(",") }
          writer.raw(entry.buffer)
          count += 1
          taken += size
          return true
        }
      } catch {
        if error.message == "not JSON" {
          return .failure(
            RestError(
              .requestTimeout, 40801,
              "Error deserializing key/value for partition \(key.description) at offset \(error.baseOffset): "
                + "it is not JSON (this consumer instance reads the json format)"))
        }
        return .failure(
          RestError(
            .internalServerError, 50002,
            "Kafka error: the batch at offset \(error.baseOffset) of \(key.description) cannot be decoded: \(error.message)"
          ))
      }
    }
    writer.raw("]")
    for (key, position) in next where positions[key] != nil {
      positions[key] = position
    }
    return .success(writer.buffer)
  }

  static func isJSON(_ bytes: ByteBuffer?) -> Bool {
    guard let bytes else { return true }
    return (try? JSONParser.parse(bytes)) != nil
  }

  /// A key or value in the instance's format: base64 (binary) or the JSON it holds (json).
  static func embed(_ bytes: ByteBuffer?, _ format: EmbeddedFormat, into writer: inout JSONWriter) {
    guard let bytes else { return writer.null() }
    switch format {
    case .binary: writer.string(Base64.encode(bytes))
    case .json:
      if let value = try? JSONParser.parse(bytes) { writer.value(value) } else { writer.null() }
    }
  }

  // MARK: Lifecycle

  /// Leaves the group (committing first with auto-commit); later calls find no instance.
  func close() async {
    guard !closed else { return }
    await stopMembership(leave: true)
    closed = true
    assigned = []
    for waiter in readWaiters { waiter.resume() }
    readWaiters = []
  }
}

/// Every REST consumer instance of the server, by group and name, bounded in number and
/// expired when idle (`consumer.instance.timeout.ms`).
final class RestConsumers: Sendable {
  struct Key: Hashable { var group: String, name: String }

  static let notFound = RestError(.notFound, 40403, "Consumer instance not found.")

  let broker: Broker
  let configuration: HTTPServerConfiguration
  let instances = Mutex<[Key: RestConsumer]>([:])

  init(broker: Broker, configuration: HTTPServerConfiguration) {
    self.broker = broker
    self.configuration = configuration
  }

  var count: Int { instances.withLock { $0.count } }

  func create(group: String, name: String, settings: ConsumerSettings, owner: String? = nil)
    -> Result<RestConsumer, RestError>
  {
    let key = Key(group: group, name: name)
    return instances.withLock { table in
      if table[key] != nil {
        return .failure(
          RestError(
            .conflict, 40902,
            "Consumer with specified consumer ID already exists in the specified consumer group."))
      }
      guard table.count < configuration.maxConsumers else {
        return .failure(
          RestError(
            .tooManyRequests, 42901,
            "Too many consumer instances (http.consumer.max.instances=\(configuration.maxConsumers))"))
      }
      let consumer = RestConsumer(group: group, name: name, settings: settings, broker: broker, owner: owner)
      table[key] = consumer
      return .success(consumer)
    }
  }

  /// The instance, if it exists and `principal` may use it (nil: no authentication).
  func lookup(group: String, name: String, principal: String? = nil) -> RestConsumer? {
    let consumer = instances.withLock { $0[Key(group: group, name: name)] }
    guard consumer?.owner == principal else { return nil }
    consumer?.touch()
    return consumer
  }

  func remove(group: String, name: String, principal: String? = nil) async -> Bool {
    let key = Key(group: group, name: name)
    let removed = instances.withLock { table -> RestConsumer? in
      guard table[key]?.owner == principal else { return nil }
      return table.removeValue(forKey: key)
    }
    guard let consumer = removed else { return false }
    await consumer.close()
    return true
  }

  /// Closes instances idle longer than the instance timeout.
  func expire() async {
    let now = broker.clock.monotonicMs()
    let idle = instances.withLock { table in
      let expired = table.filter {
        now - $0.value.lastUsed.load(ordering: .relaxed) > configuration.consumerInstanceTimeoutMs
      }
      for key in expired.keys { table.removeValue(forKey: key) }
      return Array(expired.values)
    }
    for consumer in idle { await consumer.close() }
  }

  func closeAll() async {
    let all = instances.withLock { table in
      defer { table.removeAll() }
      return Array(table.values)
    }
    for consumer in all { await consumer.close() }
  }

  /// Expires idle instances every second until `stopping`, then closes them all.
  func run(until stopping: @escaping @Sendable () -> Bool) async {
    while !stopping() && !Task.isCancelled {
      try? await Task.sleep(for: .seconds(1))
      await expire()
    }
    await closeAll()
  }
}
