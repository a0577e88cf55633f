package import KafkaProtocol
package import NIOCore
import SluiceStorage
import Synchronization

/// Owns every classic consumer group on this broker: a ``GroupStateMachine`` per group
/// and the committed offsets (``OffsetStore``). Handlers call it; it runs the state
/// machines under one lock (group traffic is low-rate), parks JoinGroup and SyncGroup
/// requests as continuations keyed by ticket, and resumes them — outside the lock — when
/// an action answers their ticket.
///
/// Time: `clock` (ms) is passed to every event. With `runsTimer`, a task sleeps until the
/// earliest deadline of any group (session expiry, end of a join phase) and then ticks;
/// tests turn it off and call ``tick()`` themselves.
package final class GroupCoordinator: Sendable {
  package typealias Ticket = GroupStateMachine.Ticket
  package typealias JoinResult = GroupStateMachine.JoinResult
  package typealias SyncResult = GroupStateMachine.SyncResult

  package struct Configuration: Sendable {
    package var group = GroupStateMachine.Configuration()
    /// `sluice.max.groups`: groups with members or committed offsets.
    package var maxGroups = 10_000
    /// `offset.metadata.max.bytes`.
    package var offsetMetadataMaxBytes = 4096
    /// `offsets.retention.minutes`, in ms.
    package var offsetsRetentionMs: Int64 = 7 * 24 * 60 * 60 * 1000
    /// `offsets.retention.check.interval.ms`.
    package var offsetsRetentionCheckIntervalMs: Int64 = 600_000
    /// Per member: total protocol metadata in a JoinGroup, and an assignment in a SyncGroup.
    package var maxMemberMetadataBytes = 1 << 20
    /// Protocols one member may offer.
    package var maxProtocolsPerMember = 64
    /// Group ids and group.instance.ids.
    package var maxIdLength = 1024
    /// Whether to run the deadline timer task (off in tests with a fake clock).
    package var runsTimer = true
    package init() {}

    package init(_ broker: BrokerConfig) {
      group.initialRebalanceDelayMs = broker.groupInitialRebalanceDelayMs
      group.minSessionTimeoutMs = broker.groupMinSessionTimeoutMs
      group.maxSessionTimeoutMs = broker.groupMaxSessionTimeoutMs
      group.maxMembers = broker.groupMaxSize
      maxGroups = broker.maxGroups
      offsetMetadataMaxBytes = broker.offsetMetadataMaxBytes
      offsetsRetentionMs = broker.offsetsRetentionMinutes * 60_000
      offsetsRetentionCheckIntervalMs = broker.offsetsRetentionCheckIntervalMs
    }
  }

  enum Waiter {
    case join(CheckedContinuation<JoinResult, Never>)
    case sync(CheckedContinuation<SyncResult, Never>)
  }

  struct Registry {
    var groups: [String: GroupStateMachine] = [:]
    var waiters: [Ticket: Waiter] = [:]
    var nextTicket: Ticket = 1
    /// Tickets handed out whose request is not parked yet → whether its task was cancelled.
    var reserved: [Ticket: Bool] = [:]
    var timer: ClockTimer?
    var timerAt: Int64?
    var lastRetentionCheck: Int64 = 0
    var closed = false

    mutating func reserve() -> Ticket {
      let ticket = nextTicket
      nextTicket += 1
      reserved[ticket] = false
      return ticket
    }

    /// The waiters the actions answer (removed from the table), to resume outside the lock.
    mutating func claim(_ actions: [GroupStateMachine.Action]) -> [(Waiter, GroupStateMachine.Action)] {
      actions.compactMap { action in waiters.removeValue(forKey: action.ticket).map { ($0, action) } }
    }
  }

  package let configuration: Configuration
  package let offsets: OffsetStore
  let clock: any BrokerClock
  /// Groups known only from their offsets count as Empty since this moment.
  let startedAt: Int64
  let registry = Mutex(Registry())

  package init(configuration: Configuration, offsets: OffsetStore, clock: any BrokerClock) {
    self.configuration = configuration
    self.offsets = offsets
    self.clock = clock
    self.startedAt = clock.now()
  }

  private static func resume(_ ready: [(Waiter, GroupStateMachine.Action)]) {
    for (waiter, action) in ready {
      switch (waiter, action) {
      case (.join(let continuation), .join(_, let result)): continuation.resume(returning: result)
      case (.sync(let continuation), .sync(_, let result)): continuation.resume(returning: result)
      case (.join(let continuation), .sync): continuation.resume(returning: .failure(.unknownServerError))
      case (.sync(let continuation), .join): continuation.resume(returning: .failure(.unknownServerError))
      }
    }
  }

  package func invalidGroupId(_ groupId: String) -> Bool {
    groupId.isEmpty || groupId.utf8.count > configuration.maxIdLength
  }

  /// Whether one more group fits (called with the registry locked).
  private func hasRoomForGroup(_ groupId: String, _ registry: Registry) -> Bool {
    if registry.groups[groupId] != nil || offsets.hasOffsets(groupId) { return true }
    // Cheap common case (overlapping ids counted twice, so this never lets too many in).
    if registry.groups.count + offsets.groupCount < configuration.maxGroups { return true }
    return Set(registry.groups.keys).union(offsets.groupIds).count < configuration.maxGroups
  }

  /// Arms the timer for `deadline` unless it already fires earlier (registry locked).
  private func schedule(_ deadline: Int64?, in registry: inout Registry, now: Int64) {
    guard configuration.runsTimer, !registry.closed, let deadline else { return }
    if let armed = registry.timerAt, armed <= deadline { return }
    registry.timer?.cancel()
    registry.timerAt = deadline
    let delay = max(0, deadline - now)
    registry.timer = clock.schedule(afterMs: delay, on: nil) { [weak self] in self?.tick() }
  }

  /// Why ``run`` could not hand an event to a group.
  enum Unavailable {
    case closed, cancelled, unknownGroup, full

    var code: ErrorCode {
      switch self {
      case .closed, .cancelled: .notCoordinator
      case .unknownGroup: .unknownMemberId
      // No member-level code says "too many groups"; GROUP_MAX_SIZE_REACHED is the group
      // capacity error clients surface as fatal, rather than retrying forever.
      case .full: .groupMaxSizeReached
      }
    }
  }

  /// Runs one event on a group (created on demand when `create`), answers what it
  /// answers and re-arms the timer.
  private func run(
    _ groupId: String, ticket: Ticket = 0, waiter: Waiter? = nil, create: Bool,
    _ event: (inout GroupStateMachine, Ticket, Int64) -> [GroupStateMachine.Action],
    missing: (Ticket, Unavailable) -> [GroupStateMachine.Action]
  ) {
    let now = clock.now()
    let ready = registry.withLock { registry -> [(Waiter, GroupStateMachine.Action)] in
      if let waiter {
        registry.waiters[ticket] = waiter
        if registry.reserved.removeValue(forKey: ticket) == true {
          return registry.claim(missing(ticket, .cancelled))  // its task was cancelled meanwhile
        }
      }
      var actions: [GroupStateMachine.Action]
      if registry.closed {
        actions = missing(ticket, .closed)
      } else if registry.groups[groupId] != nil {
        actions = event(&registry.groups[groupId]!, ticket, now)
        schedule(registry.groups[groupId]!.nextDeadline, in: &registry, now: now)
      } else if create {
        guard hasRoomForGroup(groupId, registry) else {
          return registry.claim(missing(ticket, .full))
        }
        var group = GroupStateMachine(groupId: groupId, configuration: configuration.group, now: now)
        actions = event(&group, ticket, now)
        schedule(group.nextDeadline, in: &registry, now: now)
        registry.groups[groupId] = group
      } else {
        actions = missing(ticket, .unknownGroup)
      }
      return registry.claim(actions)
    }
    Self.resume(ready)
  }

  // MARK: Membership

  package func join(groupId: String, _ request: GroupStateMachine.JoinRequest) async -> JoinResult {
    if invalidGroupId(groupId) { return .failure(.invalidGroupId, memberId: request.memberId) }
    if request.protocols.count > configuration.maxProtocolsPerMember
      || request.protocols.reduce(0, { $0 + $1.metadata.readableBytes + $1.name.utf8.count })
        > configuration.maxMemberMetadataBytes
      || (request.groupInstanceId?.utf8.count ?? 0) > configuration.maxIdLength
    {
      return .failure(.invalidRequest, memberId: request.memberId)
    }
    // Compact copies: the decoded metadata are slices of the whole request frame.
    var request = request
    request.protocols = request.protocols.map {
      .init(name: $0.name, metadata: ByteBuffer(buffer: $0.metadata))
    }
    let ticket = registry.withLock { $0.reserve() }
    return await withTaskCancellationHandler {
      await withCheckedContinuation { continuation in
        run(
          groupId, ticket: ticket, waiter: .join(continuation), create: request.memberId.isEmpty,
          { group, ticket, now in group.join(request, ticket: ticket, now: now) },
          missing: { ticket, reason in [.join(ticket, .failure(reason.code, memberId: request.memberId))] })
      }
    } onCancel: {
      abandon(ticket)
    }
  }

  package func sync(
    groupId: String, memberId: String, groupInstanceId: String?, generationId: Int32, protocolType: String?,
    protocolName: String?, assignments: [(memberId: String, assignment: ByteBuffer)]
  ) async -> SyncResult {
    if invalidGroupId(groupId) { return .failure(.invalidGroupId) }
    var table: [String: ByteBuffer] = [:]
    for (member, assignment) in assignments {
      guard assignment.readableBytes <= configuration.maxMemberMetadataBytes else {
        return .failure(.invalidRequest)
      }
      table[member] = ByteBuffer(buffer: assignment)
    }
    let ticket = registry.withLock { $0.reserve() }
    return await withTaskCancellationHandler {
      await withCheckedContinuation { continuation in
        run(
          groupId, ticket: ticket, waiter: .sync(continuation), create: false,
          { group, ticket, now in
            group.sync(
              memberId: memberId, groupInstanceId: groupInstanceId, generationId: generationId,
              protocolType: protocolType, protocolName: protocolName, assignments: table, ticket: ticket,
              now: now)
          },
          missing: { ticket, reason in [.sync(ticket, .failure(reason.code))] })
      }
    } onCancel: {
      abandon(ticket)
    }
  }

  /// The task of a parked request was cancelled (its connection is going away): answer it
  /// now. The group keeps its state; the answer it gives later finds nobody waiting.
  private func abandon(_ ticket: Ticket) {
    let ready = registry.withLock { registry -> [(Waiter, GroupStateMachine.Action)] in
      if registry.reserved[ticket] != nil {
        registry.reserved[ticket] = true
        return []
      }
      switch registry.waiters.removeValue(forKey: ticket) {
      case .join(let continuation)?: return [(.join(continuation), .join(ticket, .failure(.notCoordinator)))]
      case .sync(let continuation)?: return [(.sync(continuation), .sync(ticket, .failure(.notCoordinator)))]
      case nil: return []
      }
    }
    Self.resume(ready)
  }

  package func heartbeat(groupId: String, memberId: String, groupInstanceId: String?, generationId: Int32)
    -> ErrorCode
  {
    if invalidGroupId(groupId) { return .invalidGroupId }
    let now = clock.now()
    return registry.withLock { registry in
      if registry.closed { return .notCoordinator }
      return registry.groups[groupId]?.heartbeat(
        memberId: memberId, groupInstanceId: groupInstanceId, generationId: generationId, now: now)
        ?? .unknownMemberId
    }
  }

  package func leave(groupId: String, members leaving: [(memberId: String, groupInstanceId: String?)])
    -> [ErrorCode]
  {
    if invalidGroupId(groupId) { return leaving.map { _ in .invalidGroupId } }
    var errors: [ErrorCode] = []
    run(
      groupId, create: false,
      { group, _, now in
        let outcome = group.leave(leaving, now: now)
        errors = outcome.errors
        return outcome.actions
      },
      missing: { _, reason in
        errors = leaving.map { _ in reason.code }
        return []
      })
    return errors
  }

  // MARK: Timers and lifecycle

  /// Runs every group whose deadline has passed; re-arms the timer for the next one.
  package func tick() {
    let now = clock.now()
    let ready = registry.withLock { registry -> [(Waiter, GroupStateMachine.Action)] in
      registry.timer?.cancel()
      registry.timer = nil
      registry.timerAt = nil
      var actions: [GroupStateMachine.Action] = []
      var next: Int64?
      for groupId in Array(registry.groups.keys) {
        if let deadline = registry.groups[groupId]?.nextDeadline, deadline <= now {
          actions += registry.groups[groupId]?.tick(now: now) ?? []
        }
        if let deadline = registry.groups[groupId]?.nextDeadline { next = min(next ?? deadline, deadline) }
      }
      schedule(next, in: &registry, now: now)
      return registry.claim(actions)
    }
    Self.resume(ready)
  }

  /// Periodic work (the broker's housekeeping, every second): a safety tick, expiry of
  /// offsets of groups that have been Empty for the retention time, and forgetting Empty
  /// groups that have no offsets.
  /// The committed offsets that define a partition's backlog (docs/overflow.md): those of
  /// groups with members, and of groups without members that committed this partition
  /// within `activeMs`.
  package func backlogPositions(topic: String, partition: Int32, activeMs: Int64) -> [(
    group: String, offset: Int64
  )] {
    let commits = offsets.commits(for: .init(topic: topic, partition: partition))
    guard !commits.isEmpty else { return [] }
    let now = clock.now()
    return registry.withLock { registry in
      commits.compactMap { entry in
        let live = (registry.groups[entry.group]?.memberCount ?? 0) > 0
        return live || now - entry.committed.commitTimestamp <= activeMs
          ? (entry.group, entry.committed.offset) : nil
      }
    }
  }

  package func housekeeping() {
    tick()
    let now = clock.now()
    let (due, emptySince) = registry.withLock { registry -> (Bool, [String: Int64?]) in
      for (groupId, group) in registry.groups where group.isVacant && !offsets.hasOffsets(groupId) {
        registry.groups[groupId] = nil
      }
      guard !registry.closed,
        now - registry.lastRetentionCheck >= configuration.offsetsRetentionCheckIntervalMs
      else { return (false, [:]) }
      registry.lastRetentionCheck = now
      return (true, registry.groups.mapValues { $0.state == .empty ? $0.stateSince : nil })
    }
    guard due else { return }
    Task { await self.expireOffsets(now: now, emptySince: emptySince) }
  }

  /// Deletes offsets past retention. `emptySince`: what the registry knew of each group.
  package func expireOffsets(now: Int64, emptySince: [String: Int64?]? = nil) async {
    let known =
      emptySince
      ?? registry.withLock { registry in
        registry.groups.mapValues { $0.state == .empty ? $0.stateSince : nil }
      }
    let changes = offsets.expired(now: now, retentionMs: configuration.offsetsRetentionMs) { group in
      if let entry = known[group] { return entry }
      return startedAt
    }
    _ = await offsets.apply(changes)
  }

  /// Stops coordinating: parked JoinGroup/SyncGroup requests are answered with
  /// NOT_COORDINATOR (so connections can finish during a graceful shutdown), the timer
  /// stops and every later membership request gets NOT_COORDINATOR.
  package func close() {
    let now = clock.now()
    let ready = registry.withLock { registry -> [(Waiter, GroupStateMachine.Action)] in
      registry.closed = true
      registry.timer?.cancel()
      registry.timer = nil
      var actions: [GroupStateMachine.Action] = []
      for groupId in Array(registry.groups.keys) {
        actions += registry.groups[groupId]?.unload(answering: .notCoordinator, now: now) ?? []
      }
      var ready = registry.claim(actions)
      for (ticket, waiter) in registry.waiters {
        switch waiter {
        case .join: ready.append((waiter, .join(ticket, .failure(.notCoordinator))))
        case .sync: ready.append((waiter, .sync(ticket, .failure(.notCoordinator))))
        }
      }
      registry.waiters = [:]
      return ready
    }
    Self.resume(ready)
  }

  // MARK: Offsets

  /// Whether an OffsetCommit may be stored (before per-partition checks).
  package func authorizeCommit(
    groupId: String, memberId: String, groupInstanceId: String?, generationId: Int32
  )
    -> ErrorCode
  {
    if groupId.utf8.count > configuration.maxIdLength { return .invalidGroupId }
    let now = clock.now()
    return registry.withLock { registry in
      if registry.closed { return .notCoordinator }
      if registry.groups[groupId] != nil {
        return registry.groups[groupId]!.validateCommit(
          memberId: memberId, groupInstanceId: groupInstanceId, generationId: generationId, now: now)
      }
      // No live group: only a consumer that manages its own partitions may commit.
      guard generationId < 0 else { return .illegalGeneration }
      return hasRoomForGroup(groupId, registry) ? .none : .groupMaxSizeReached
    }
  }

  // MARK: Administration

  package struct GroupSummary: Sendable {
    package var groupId: String
    package var state: GroupStateMachine.State
    package var protocolType: String
    package var protocolName: String?
    package var members: [GroupStateMachine.Member]
  }

  /// Every group with members or offsets.
  package func list() -> [GroupSummary] {
    let (live, withOffsets) = registry.withLock { registry in
      (registry.groups.values.filter { $0.state != .dead }.map(Self.summary), offsets.groupIds)
    }
    var result = live
    let liveIds = Set(live.map(\.groupId))
    for groupId in withOffsets where !liveIds.contains(groupId) {
      result.append(
        GroupSummary(groupId: groupId, state: .empty, protocolType: "", protocolName: nil, members: []))
    }
    return result.sorted { $0.groupId < $1.groupId }
  }

  /// One group, or nil if it has neither members nor offsets.
  package func describe(_ groupId: String) -> GroupSummary? {
    let live = registry.withLock { registry in registry.groups[groupId].map(Self.summary) }
    if let live, live.state != .dead { return live }
    if offsets.hasOffsets(groupId) {
      return GroupSummary(groupId: groupId, state: .empty, protocolType: "", protocolName: nil, members: [])
    }
    return nil
  }

  static func summary(_ group: GroupStateMachine) -> GroupSummary {
    GroupSummary(
      groupId: group.groupId, state: group.state, protocolType: group.protocolType ?? "",
      protocolName: group.protocolName, members: group.allMembers)
  }

  /// DeleteGroups for one group: only an Empty group (else NON_EMPTY_GROUP); its offsets go.
  package func deleteGroup(_ groupId: String) async -> ErrorCode {
    if invalidGroupId(groupId) { return .invalidGroupId }
    let now = clock.now()
    let outcome = registry.withLock { registry -> ErrorCode in
      if registry.closed { return .notCoordinator }
      if let group = registry.groups[groupId] {
        guard group.state == .empty || group.state == .dead else { return .nonEmptyGroup }
        _ = registry.groups[groupId]?.unload(answering: .coordinatorNotAvailable, now: now)
        registry.groups[groupId] = nil
        return .none
      }
      return offsets.hasOffsets(groupId) ? .none : .groupIdNotFound
    }
    guard outcome == .none else { return outcome }
    if await offsets.apply([.deleteGroup(groupId)]) != nil { return .kafkaStorageError }
    return .none
  }

  /// For OffsetDelete: the group-level error, and the topics its members subscribe to
  /// (nil: unknown, treat every topic as subscribed).
  package func offsetDeletionCheck(_ groupId: String) -> (error: ErrorCode, subscribed: Set<String>?) {
    registry.withLock { registry in
      if registry.closed { return (.notCoordinator, nil) }
      guard let group = registry.groups[groupId], group.state != .dead else {
        return offsets.hasOffsets(groupId) ? (.none, []) : (.groupIdNotFound, nil)
      }
      if group.state == .empty { return (.none, []) }
      guard group.protocolType == "consumer" else { return (.nonEmptyGroup, nil) }
      var topics: Set<String> = []
      for member in group.allMembers {
        let chosen = group.protocolName.map { [member.metadata(for: $0)] } ?? member.protocols.map(\.metadata)
        for metadata in chosen {
          guard let subscription = Self.subscription(metadata) else { return (.none, nil) }
          topics.formUnion(subscription.topics)
        }
      }
      return (.none, topics)
    }
  }

  /// Decodes consumer-protocol subscription metadata (int16 version, then the fields).
  static func subscription(_ metadata: ByteBuffer) -> ConsumerProtocolSubscription? {
    var buffer = metadata
    guard let version = buffer.readInteger(as: Int16.self), version >= 0 else { return nil }
    return try? ConsumerProtocolSubscription(from: &buffer, version: min(version, 3))
  }
}
