import KafkaProtocol
import Logging
import NIOCore

/// One consumer's membership of a group, over Kafka's classic group protocol.
///
/// Joining and rebalancing happen in the consumer's own fetch loop (``poll()`` runs before
/// every fetch round, as the Java client rebalances inside `poll()`), so when partitions are
/// revoked every record handed out from them has been delivered and their committed offsets
/// are exact. A heartbeat task runs beside it while the member is in a generation; a
/// heartbeat answered REBALANCE_IN_PROGRESS (or a lost membership) marks the member for a
/// rejoin, which the next ``poll()`` carries out:
///
/// 1. revoke: commit the delivered positions (with auto-commit), report the partitions,
///    stop fetching them;
/// 2. FindCoordinator, JoinGroup (retried with the id from MEMBER_ID_REQUIRED, KIP-394);
///    the leader computes every member's partitions with the chosen assignor;
/// 3. SyncGroup, then OffsetFetch for the new partitions: fetching starts at the committed
///    offset, or at ``KafkaConsumerConfiguration/autoOffsetReset``.
actor ConsumerGroupMember {
  let groupId: String
  private(set) var topics: [String]
  /// What the consumer asked for: the subscription, stored offsets, pauses.
  let shared: ConsumerShared
  let configuration: KafkaConsumerConfiguration
  let cluster: KafkaCluster
  let fetcher: Fetcher
  let logger: Logger
  let events: AsyncStream<KafkaConsumerEvent>.Continuation

  private(set) var memberId = ""
  private(set) var generationId: Int32 = -1
  private var protocolName: String?
  private var coordinator: (node: Int32, connection: KafkaConnection)?
  private(set) var assigned: [KafkaTopicPartition] = []
  private var needsRejoin = true
  private var membershipLost = false
  private var fatal: KafkaError?
  private var heartbeat: Task<Void, Never>?
  private var lastAutoCommit = ContinuousClock.now
  /// Leader only: the partition counts the assignment was computed from.
  private var assignedCounts: [String: Int]?
  private var nextMetadataCheck = ContinuousClock.now
  private var closed = false

  init(
    groupId: String, topics: [String], configuration: KafkaConsumerConfiguration, cluster: KafkaCluster,
    fetcher: Fetcher, logger: Logger, events: AsyncStream<KafkaConsumerEvent>.Continuation,
    shared: ConsumerShared
  ) {
    self.shared = shared
    self.groupId = groupId
    self.topics = topics
    self.configuration = configuration
    self.cluster = cluster
    self.fetcher = fetcher
    self.logger = logger
    self.events = events
  }

  private var isStatic: Bool { configuration.groupInstanceId != nil }

  // MARK: The fetch loop's hook

  /// Brings the membership up to date before a fetch round: joins or rejoins when needed,
  /// and auto-commits when the interval has passed.
  func poll() async throws {
    if let fatal { throw fatal }
    if closed { return }
    let wanted = shared.subscription
    if wanted != topics {
      topics = wanted
      if wanted.isEmpty {
        await leave(reason: "unsubscribed")
        needsRejoin = false
        return
      }
      needsRejoin = true
    }
    if topics.isEmpty { return }
    if needsRejoin {
      try await rejoin()
      return
    }
    if let interval = configuration.autoCommitInterval, ContinuousClock.now - lastAutoCommit >= interval {
      lastAutoCommit = .now
      do {
        try await commit(await processedPositions())
      } catch {
        if !closed {
          logger.warning("auto-commit for group \(groupId) failed: \(error)")
          events.yield(.error(error as? KafkaError ?? KafkaError(.connectionFailed, "\(error)")))
        }
      }
    }
  }

  /// The positions to commit: after every record handed out, or (with
  /// ``KafkaConsumerConfiguration/enableAutoOffsetStore`` off) the stored offsets.
  private func processedPositions() async -> [KafkaTopicPartition: Int64] {
    if configuration.enableAutoOffsetStore { return await fetcher.consumed }
    return shared.storedOffsets(of: Set(assigned))
  }

  private func rejoin() async throws {
    stopHeartbeat()
    if !assigned.isEmpty {
      let revoked = assigned
      if membershipLost {
        events.yield(.rebalance(.init(kind: .error("membership lost"), partitions: revoked)))
      } else {
        await commitBeforeRevoking(await processedPositions(), "before rebalance")
        events.yield(.rebalance(.init(kind: .revoke, partitions: revoked)))
      }
      assigned = []
      await fetcher.assign([:])
    }
    membershipLost = false
    var backoff = configuration.connection.reconnectBackoff
    while !closed && !Task.isCancelled {
      do {
        if try await joinAndSync() { break }
        backoff = configuration.connection.reconnectBackoff
      } catch let error as KafkaError {
        if let code = error.brokerErrorCode {
          if Self.isCoordinatorError(code) {
            coordinator = nil
          } else if error.isFatal || (!code.isRetriable && !Self.isRejoinError(code)) {
            fatal = error
            throw error
          }
        } else if error.isRetriable {
          coordinator = nil
        } else {
          fatal = error
          throw error
        }
        logger.debug("group \(groupId): \(error); retrying")
        try await Task.sleep(for: backoff)
        backoff = min(backoff * 2, configuration.connection.reconnectBackoffMax)
      }
    }
  }

  /// One JoinGroup + SyncGroup attempt; true once the member has its assignment.
  private func joinAndSync() async throws -> Bool {
    let connection = try await coordinatorConnection()
    let joinVersion = try connection.version(for: .joinGroup, max: 9)
    if isStatic && joinVersion < 5 {
      throw KafkaError(
        .unsupported, "static membership needs JoinGroup v5 (the broker offers v\(joinVersion))")
    }
    let subscription = try ConsumerProtocol.encodeSubscription(topics: topics)
    var join = JoinGroupRequest()
    join.groupId = groupId
    join.sessionTimeoutMs = Int32(clamping: configuration.sessionTimeout.milliseconds)
    join.rebalanceTimeoutMs = Int32(clamping: configuration.rebalanceTimeout.milliseconds)
    join.memberId = memberId
    join.groupInstanceId = joinVersion >= 5 ? configuration.groupInstanceId : nil
    join.protocolType = "consumer"
    join.protocols = configuration.partitionAssignors.map {
      JoinGroupRequest.JoinGroupRequestProtocol(name: $0.name, metadata: subscription)
    }
    let joinTimeout = configuration.rebalanceTimeout + configuration.connection.requestTimeout
    guard
      case .joinGroup(let joined) = try await connection.send(
        .joinGroup(join), version: joinVersion, timeout: joinTimeout)
    else { throw KafkaError(.protocolError, "not a JoinGroup response") }
    if closed { return true }
    let joinCode = ErrorCode(rawValue: joined.errorCode)
    switch joinCode {
    case .none: break
    case .memberIdRequired:
      memberId = joined.memberId
      return false
    case .unknownMemberId:
      memberId = ""
      return false
    case .rebalanceInProgress:
      return false
    default:
      throw KafkaError.broker(joinCode, "JoinGroup \(groupId)")
    }
    memberId = joined.memberId
    generationId = joined.generationId
    protocolName = joined.protocolName
    let isLeader = joined.leader == joined.memberId && !joined.skipAssignment
    logger.debug(
      "group \(groupId): generation \(generationId), member \(memberId)\(isLeader ? " (leader)" : ""), protocol \(protocolName ?? "?")"
    )

    var assignments: [SyncGroupRequest.SyncGroupRequestAssignment] = []
    assignedCounts = nil
    if isLeader {
      let (computed, counts) = try await computeAssignments(joined)
      assignments = computed
      assignedCounts = counts
      nextMetadataCheck = .now + configuration.connection.metadataMaxAge
    }
    let syncVersion = try connection.version(for: .syncGroup, max: 5)
    var sync = SyncGroupRequest()
    sync.groupId = groupId
    sync.generationId = generationId
    sync.memberId = memberId
    sync.groupInstanceId = syncVersion >= 3 ? configuration.groupInstanceId : nil
    if syncVersion >= 5 {
      sync.protocolType = "consumer"
      sync.protocolName = protocolName
    }
    sync.assignments = assignments
    guard
      case .syncGroup(let synced) = try await connection.send(
        .syncGroup(sync), version: syncVersion, timeout: joinTimeout)
    else { throw KafkaError(.protocolError, "not a SyncGroup response") }
    if closed { return true }
    let syncCode = ErrorCode(rawValue: synced.errorCode)
    switch syncCode {
    case .none: break
    case .unknownMemberId:
      memberId = ""
      return false
    case .rebalanceInProgress, .illegalGeneration:
      return false
    default:
      throw KafkaError.broker(syncCode, "SyncGroup \(groupId)")
    }
    let partitions = try ConsumerProtocol.decodeAssignment(synced.assignment)
    let committed = try await committedOffsets(partitions)
    var start: [KafkaTopicPartition: KafkaOffset] = [:]
    for topicPartition in partitions {
      let offset = committed[topicPartition] ?? -1
      start[topicPartition] = offset >= 0 ? KafkaOffset(rawValue: Int(offset)) : configuration.autoOffsetReset
    }
    await fetcher.assign(start)
    assigned = partitions
    needsRejoin = false
    lastAutoCommit = .now
    logger.debug("group \(groupId): assigned \(partitions.map(\.description).joined(separator: ","))")
    events.yield(.rebalance(.init(kind: .assign, partitions: partitions)))
    startHeartbeat()
    return true
  }

  /// The leader's job: decode every member's subscription, look up the partition counts,
  /// run the chosen assignor, encode each member's share.
  private func computeAssignments(_ joined: JoinGroupResponse) async throws -> (
    [SyncGroupRequest.SyncGroupRequestAssignment], [String: Int]
  ) {
    var members: [GroupSubscription] = []
    for member in joined.members {
      let subscription = try ConsumerProtocol.decodeSubscription(member.metadata)
      members.append(
        GroupSubscription(
          memberId: member.memberId, groupInstanceId: member.groupInstanceId, topics: subscription.topics))
    }
    let counts = try await partitionCounts(Set(members.flatMap(\.topics)))
    let assignor =
      configuration.partitionAssignors.first { $0.name == joined.protocolName }
      ?? KafkaPartitionAssignor(name: joined.protocolName ?? "range")
    let result = PartitionAssignment.assign(assignor, members: members, partitionCounts: counts)
    let assignments = try members.map {
      SyncGroupRequest.SyncGroupRequestAssignment(
        memberId: $0.memberId, assignment: try ConsumerProtocol.encodeAssignment(result[$0.memberId] ?? [:]))
    }
    return (assignments, counts)
  }

  /// Partition counts of the topics that exist (unknown topics get no partitions).
  private func partitionCounts(_ names: Set<String>) async throws -> [String: Int] {
    guard !names.isEmpty else { return [:] }
    let response = try await cluster.refreshMetadata(topics: names.sorted())
    var counts: [String: Int] = [:]
    for topic in response.topics where ErrorCode(rawValue: topic.errorCode) == .none {
      if let name = topic.name { counts[name] = topic.partitions.count }
    }
    return counts
  }

  // MARK: Heartbeats

  private func startHeartbeat() {
    let generation = generationId
    let interval = configuration.heartbeatInterval
    heartbeat = Task { [weak self] in
      while !Task.isCancelled {
        do { try await Task.sleep(for: interval) } catch { return }
        guard let self, await self.heartbeatOnce(generation: generation) else { return }
      }
    }
  }

  private func stopHeartbeat() {
    heartbeat?.cancel()
    heartbeat = nil
  }

  /// Sends one heartbeat; false once this generation's heartbeats should stop.
  private func heartbeatOnce(generation: Int32) async -> Bool {
    guard generation == generationId, !closed else { return false }
    do {
      let connection = try await coordinatorConnection()
      let version = try connection.version(for: .heartbeat, max: 4)
      var request = HeartbeatRequest()
      request.groupId = groupId
      request.generationId = generation
      request.memberId = memberId
      request.groupInstanceId = version >= 3 ? configuration.groupInstanceId : nil
      guard case .heartbeat(let response) = try await connection.send(.heartbeat(request), version: version)
      else { throw KafkaError(.protocolError, "not a Heartbeat response") }
      guard generation == generationId, !closed else { return false }
      let code = ErrorCode(rawValue: response.errorCode)
      switch code {
      case .none:
        await checkMetadata()
        return true
      case .rebalanceInProgress:
        // Keep heartbeating (the session must not expire) until poll() rejoins.
        if !needsRejoin { logger.debug("group \(groupId): rebalance in progress") }
        needsRejoin = true
        return true
      case .unknownMemberId, .illegalGeneration:
        logger.info("group \(groupId): membership lost (\(code.name)); rejoining")
        if code == .unknownMemberId { memberId = "" }
        membershipLost = true
        needsRejoin = true
        return false
      case .fencedInstanceId:
        fatal = KafkaError.broker(code, "group \(groupId): another consumer uses group.instance.id")
        membershipLost = true
        return false
      default:
        if Self.isCoordinatorError(code) { coordinator = nil }
        logger.debug("group \(groupId): heartbeat: \(code.name)")
        return true
      }
    } catch {
      logger.debug("group \(groupId): heartbeat failed: \(error)")
      coordinator = nil
      return true
    }
  }

  /// The leader notices partitions added to a subscribed topic and starts a rebalance.
  private func checkMetadata() async {
    guard let counts = assignedCounts, ContinuousClock.now >= nextMetadataCheck else { return }
    nextMetadataCheck = .now + configuration.connection.metadataMaxAge
    guard let current = try? await partitionCounts(Set(counts.keys).union(topics)) else { return }
    if current != counts && assignedCounts != nil {
      logger.info("group \(groupId): partitions of subscribed topics changed; rebalancing")
      needsRejoin = true
    }
  }

  // MARK: Coordinator

  private static func isCoordinatorError(_ code: ErrorCode) -> Bool {
    code == .notCoordinator || code == .coordinatorNotAvailable || code == .coordinatorLoadInProgress
  }

  private static func isRejoinError(_ code: ErrorCode?) -> Bool {
    guard let code else { return false }
    return code == .unknownMemberId || code == .illegalGeneration || code == .rebalanceInProgress
      || code == .memberIdRequired || isCoordinatorError(code)
  }

  private func coordinatorConnection() async throws -> KafkaConnection {
    if let coordinator, coordinator.connection.isActive { return coordinator.connection }
    let found = try await findGroupCoordinator(groupId, cluster: cluster)
    coordinator = found
    return found.connection
  }

  // MARK: Offsets

  /// Commits `offsets` (the next offset to read per partition) for the current generation.
  func commit(_ offsets: [KafkaTopicPartition: Int64]) async throws {
    let offsets = offsets.filter { $0.value >= 0 }
    guard !offsets.isEmpty else { return }
    var attempt = 0
    while true {
      attempt += 1
      do {
        try await commitOnce(offsets)
        return
      } catch let error as KafkaError {
        guard let code = error.brokerErrorCode else {
          coordinator = nil
          if error.isRetriable && attempt < 3 { continue }
          throw error
        }
        if Self.isCoordinatorError(code) && attempt < 5 {
          coordinator = nil
          try await Task.sleep(for: configuration.connection.reconnectBackoff)
          continue
        }
        if code == .unknownMemberId || code == .illegalGeneration || code == .rebalanceInProgress {
          needsRejoin = true
          if code == .unknownMemberId {
            memberId = ""
            membershipLost = true
          }
        }
        throw error
      }
    }
  }

  private func commitOnce(_ offsets: [KafkaTopicPartition: Int64]) async throws {
    let connection = try await coordinatorConnection()
    let version = try connection.version(for: .offsetCommit, min: 2, max: 8)
    var request = OffsetCommitRequest()
    request.groupId = groupId
    request.generationIdOrMemberEpoch = generationId
    request.memberId = memberId
    request.groupInstanceId = version >= 7 ? configuration.groupInstanceId : nil
    let byTopic = Dictionary(grouping: offsets.keys, by: \.topic)
    request.topics = byTopic.keys.sorted().map { topic in
      OffsetCommitRequest.OffsetCommitRequestTopic(
        name: topic,
        partitions: byTopic[topic]!.sorted { $0.partition.rawValue < $1.partition.rawValue }.map {
          OffsetCommitRequest.OffsetCommitRequestPartition(
            partitionIndex: Int32($0.partition.rawValue), committedOffset: offsets[$0]!, committedMetadata: ""
          )
        })
    }
    guard
      case .offsetCommit(let response) = try await connection.send(.offsetCommit(request), version: version)
    else { throw KafkaError(.protocolError, "not an OffsetCommit response") }
    for topic in response.topics {
      for partition in topic.partitions {
        try ErrorCode(rawValue: partition.errorCode).check(
          "OffsetCommit \(groupId) \(topic.name)-\(partition.partitionIndex)")
      }
    }
  }

  /// The committed offsets of `partitions` (absent when none).
  func committedOffsets(_ partitions: [KafkaTopicPartition]) async throws -> [KafkaTopicPartition: Int64] {
    guard !partitions.isEmpty else { return [:] }
    var attempt = 0
    while true {
      attempt += 1
      let connection = try await coordinatorConnection()
      do {
        return try await fetchCommittedOffsets(
          connection: connection, groupId: groupId, partitions: partitions)
      } catch let error as KafkaError {
        if let code = error.brokerErrorCode, code.isRetriable || Self.isCoordinatorError(code), attempt < 10 {
          if Self.isCoordinatorError(code) { coordinator = nil }
          try await Task.sleep(for: configuration.connection.reconnectBackoff)
          continue
        }
        throw error
      }
    }
  }

  // MARK: Leaving

  /// Commits `delivered` (with auto-commit) and leaves the group (a static member stays, so that it
  /// can come back without a rebalance).
  func close(delivered: [KafkaTopicPartition: Int64]) async {
    guard !closed else { return }
    // As before a rebalance (`rejoin`): commit unless the membership is lost. A rebalance
    // in progress does not stop it: the coordinator takes commits of the current generation
    // while it prepares the rebalance (as Kafka's does), and this member's last records
    // would otherwise be read again by the next owner of its partitions.
    if !membershipLost && !assigned.isEmpty {
      await commitBeforeRevoking(delivered, "on close")
    }
    closed = true
    await leave(reason: "consumer closed")
  }

  /// With auto-commit, commits `positions` before the assignment goes (a failure is
  /// logged: the next owner reads from the last commit); without it, nothing. The
  /// positions are worked out only when needed.
  private func commitBeforeRevoking(
    _ positions: @autoclosure () async -> [KafkaTopicPartition: Int64], _ occasion: String
  ) async {
    guard configuration.autoCommitInterval != nil else { return }
    do {
      try await commit(await positions())
    } catch {
      logger.warning("commit \(occasion) of group \(groupId) failed: \(error)")
    }
  }

  /// Reports the partitions revoked and leaves the group (a static member stays).
  private func leave(reason: String) async {
    stopHeartbeat()
    if !assigned.isEmpty {
      if !closed && !membershipLost {
        await commitBeforeRevoking(await processedPositions(), "on leaving")
      }
      events.yield(.rebalance(.init(kind: .revoke, partitions: assigned)))
      await fetcher.assign([:])
    }
    assigned = []
    guard !memberId.isEmpty, !isStatic, let connection = try? await coordinatorConnection() else { return }
    do {
      let version = try connection.version(for: .leaveGroup, max: 5)
      var request = LeaveGroupRequest()
      request.groupId = groupId
      if version >= 3 {
        request.members = [.init(memberId: memberId, groupInstanceId: nil, reason: reason)]
      } else {
        request.memberId = memberId
      }
      _ = try await connection.send(.leaveGroup(request), version: version)
    } catch {
      logger.debug("group \(groupId): LeaveGroup failed: \(error)")
    }
    memberId = ""
  }
}

/// OffsetFetch for one group (v1-v7 form).
func fetchCommittedOffsets(
  connection: KafkaConnection, groupId: String, partitions: [KafkaTopicPartition]?
) async throws -> [KafkaTopicPartition: Int64] {
  let version = try connection.version(for: .offsetFetch, min: 1, max: 7)
  var request = OffsetFetchRequest()
  request.groupId = groupId
  if let partitions {
    let byTopic = Dictionary(grouping: partitions, by: \.topic)
    request.topics = byTopic.keys.sorted().map { topic in
      OffsetFetchRequest.OffsetFetchRequestTopic(
        name: topic, partitionIndexes: byTopic[topic]!.map { Int32($0.partition.rawValue) }.sorted())
    }
  } else {
    guard version >= 2 else {
      throw KafkaError(.unsupported, "listing every committed offset needs OffsetFetch v2")
    }
    request.topics = nil
  }
  guard case .offsetFetch(let response) = try await connection.send(.offsetFetch(request), version: version)
  else { throw KafkaError(.protocolError, "not an OffsetFetch response") }
  if version >= 2 { try ErrorCode(rawValue: response.errorCode).check("OffsetFetch \(groupId)") }
  var result: [KafkaTopicPartition: Int64] = [:]
  for topic in response.topics {
    for partition in topic.partitions {
      try ErrorCode(rawValue: partition.errorCode).check(
        "OffsetFetch \(groupId) \(topic.name)-\(partition.partitionIndex)")
      if partition.committedOffset >= 0 {
        result[
          KafkaTopicPartition(
            topic: topic.name, partition: KafkaPartition(rawValue: Int(partition.partitionIndex)))
        ] = partition.committedOffset
      }
    }
  }
  return result
}

/// FindCoordinator for a group (key type 0, as consumer and share groups use), and a
/// connection to it.
func findGroupCoordinator(_ groupId: String, cluster: KafkaCluster) async throws -> (
  node: Int32, connection: KafkaConnection
) {
  let any = try await cluster.anyConnection()
  let version = try any.version(for: .findCoordinator, max: 4)
  var request = FindCoordinatorRequest()
  request.keyType = 0
  if version >= 4 { request.coordinatorKeys = [groupId] } else { request.key = groupId }
  guard
    case .findCoordinator(let response) = try await any.send(.findCoordinator(request), version: version)
  else { throw KafkaError(.protocolError, "not a FindCoordinator response") }
  let (code, node, host, port): (ErrorCode, Int32, String, Int32)
  if version >= 4 {
    guard let found = response.coordinators.first(where: { $0.key == groupId }) else {
      throw KafkaError(.protocolError, "FindCoordinator: no answer for group \(groupId)")
    }
    (code, node, host, port) = (ErrorCode(rawValue: found.errorCode), found.nodeId, found.host, found.port)
  } else {
    (code, node, host, port) = (
      ErrorCode(rawValue: response.errorCode), response.nodeId, response.host, response.port
    )
  }
  try code.check("FindCoordinator \(groupId)")
  let connection = try await cluster.connection(
    node: node, address: KafkaConfiguration.BrokerAddress(host: host, port: Int(port)))
  return (node, connection)
}
