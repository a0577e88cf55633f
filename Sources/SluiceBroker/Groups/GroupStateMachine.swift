package import KafkaProtocol
package import NIOCore

/// The membership protocol of one classic consumer group (JoinGroup, SyncGroup, Heartbeat,
/// LeaveGroup), as a value type: every event is a `mutating` method that takes the time
/// and returns what to answer. It does no I/O and keeps no clock — the caller passes `now`
/// (milliseconds) to each event and calls ``tick(now:)`` by ``nextDeadline``; tests drive it
/// with a fake time.
///
/// Requests that must wait (a JoinGroup until the join phase ends, a follower's SyncGroup
/// until the leader's assignment arrives) are identified by a caller-chosen ``Ticket``; an
/// event's ``Action``s answer tickets, the current request's or parked ones. A ticket is
/// answered exactly once.
///
/// States and transitions follow Kafka's classic coordinator (see
/// docs/groups.md): Empty → PreparingRebalance (first join; the join phase of an Empty
/// group is held open for ``Configuration/initialRebalanceDelayMs`` after the last new
/// member, to batch joins) → CompletingRebalance (generation + 1, protocol chosen by vote,
/// the leader alone gets every member's metadata) → Stable (the leader's SyncGroup
/// delivers the assignments, relayed untouched). Any membership change goes back to
/// PreparingRebalance; the last member leaving leads to Empty; Dead is terminal (deleted or
/// unloaded).
///
/// One file, longer than the project's ~600 lines, on purpose: the membership state is
/// private to this type (so that no event can leave it inconsistent), and Swift keeps
/// `private` to a file; the events read best beside each other.
package struct GroupStateMachine: Sendable {
  package enum State: String, Sendable, CaseIterable {
    case empty = "Empty"
    case preparingRebalance = "PreparingRebalance"
    case completingRebalance = "CompletingRebalance"
    case stable = "Stable"
    case dead = "Dead"
  }

  package struct Configuration: Sendable {
    /// `group.initial.rebalance.delay.ms`: how long the first join phase of an Empty group
    /// stays open after the last new member joined (capped by the rebalance timeout).
    package var initialRebalanceDelayMs: Int64 = 300
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    package var minSessionTimeoutMs: Int32 = 6000
    package var maxSessionTimeoutMs: Int32 = 1_800_000
    /// `group.max.size`: members, plus members that still have to rejoin with their id.
    package var maxMembers: Int = 1000
    package init() {}
  }

  /// Identifies one JoinGroup or SyncGroup request, chosen by the caller.
  package typealias Ticket = UInt64

  package struct MemberProtocol: Hashable, Sendable {
    package var name: String
    package var metadata: ByteBuffer
    package init(name: String, metadata: ByteBuffer) {
      self.name = name
      self.metadata = metadata
    }
  }

  package struct Member: Sendable {
    package let memberId: String
    package var groupInstanceId: String?
    package var clientId: String
    package var clientHost: String
    package var sessionTimeoutMs: Int32
    package var rebalanceTimeoutMs: Int32
    package var protocolType: String
    package var protocols: [MemberProtocol]
    /// The assignment the leader gave it in the current generation (empty if none).
    package var assignment: ByteBuffer
    /// When the member is removed unless it is heard from (ignored while a JoinGroup or
    /// SyncGroup of its is parked: those end by themselves).
    package var sessionDeadline: Int64
    var joinTicket: Ticket?
    var syncTicket: Ticket?

    package var isAwaitingJoin: Bool { joinTicket != nil }
    package var isAwaitingSync: Bool { syncTicket != nil }
    package func metadata(for protocolName: String?) -> ByteBuffer {
      protocols.first { $0.name == protocolName }?.metadata ?? ByteBuffer()
    }
  }

  /// A JoinGroup, version differences already resolved by the handler.
  package struct JoinRequest: Sendable {
    package var memberId: String
    package var groupInstanceId: String?
    package var clientId: String
    package var clientHost: String
    package var sessionTimeoutMs: Int32
    /// JoinGroup v0 has none: the session timeout then.
    package var rebalanceTimeoutMs: Int32
    package var protocolType: String
    package var protocols: [MemberProtocol]
    /// KIP-394 (JoinGroup v4+): a member without an id is handed one and must rejoin with it.
    package var requireKnownMemberId: Bool
    /// The id a new member gets (the caller generates it: client id + "-" + UUID).
    package var newMemberId: String

    package init(
      memberId: String, groupInstanceId: String? = nil, clientId: String = "", clientHost: String = "",
      sessionTimeoutMs: Int32, rebalanceTimeoutMs: Int32, protocolType: String, protocols: [MemberProtocol],
      requireKnownMemberId: Bool, newMemberId: String
    ) {
      self.memberId = memberId
      self.groupInstanceId = groupInstanceId
      self.clientId = clientId
      self.clientHost = clientHost
      self.sessionTimeoutMs = sessionTimeoutMs
      self.rebalanceTimeoutMs = rebalanceTimeoutMs
      self.protocolType = protocolType
      self.protocols = protocols
      self.requireKnownMemberId = requireKnownMemberId
      self.newMemberId = newMemberId
    }
  }

  package struct JoinedMember: Hashable, Sendable {
    package var memberId: String
    package var groupInstanceId: String?
    package var metadata: ByteBuffer
  }

  package struct JoinResult: Hashable, Sendable {
    package var errorCode: ErrorCode
    package var generationId: Int32 = -1
    package var protocolType: String? = nil
    package var protocolName: String? = nil
    package var leaderId: String = ""
    package var memberId: String = ""
    /// Every member with its metadata for the chosen protocol — for the leader only.
    package var members: [JoinedMember] = []

    package static func failure(_ code: ErrorCode, memberId: String = "") -> JoinResult {
      JoinResult(errorCode: code, memberId: memberId)
    }
  }

  package struct SyncResult: Hashable, Sendable {
    package var errorCode: ErrorCode
    package var protocolType: String? = nil
    package var protocolName: String? = nil
    /// Never null on the wire: empty bytes for a member the leader assigned nothing.
    package var assignment: ByteBuffer = ByteBuffer()

    package init(
      errorCode: ErrorCode, protocolType: String? = nil, protocolName: String? = nil,
      assignment: ByteBuffer = ByteBuffer()
    ) {
      self.errorCode = errorCode
      self.protocolType = protocolType
      self.protocolName = protocolName
      self.assignment = assignment
    }

    package static func failure(_ code: ErrorCode) -> SyncResult { SyncResult(errorCode: code) }
  }

  package enum Action: Hashable, Sendable {
    case join(Ticket, JoinResult)
    case sync(Ticket, SyncResult)

    package var ticket: Ticket {
      switch self {
      case .join(let ticket, _), .sync(let ticket, _): ticket
      }
    }
  }

  package let groupId: String
  package var configuration: Configuration
  package private(set) var state: State = .empty
  /// When the group entered its current state (offset retention counts from Empty).
  package private(set) var stateSince: Int64
  package private(set) var generationId: Int32 = 0
  package private(set) var protocolType: String?
  package private(set) var protocolName: String?
  package private(set) var leaderId: String?
  private var members: [String: Member] = [:]
  /// Member ids in joining order (deterministic leader choice and listing).
  private var order: [String] = []
  /// KIP-394: ids handed out with MEMBER_ID_REQUIRED, with their expiry.
  private var pending: [String: Int64] = [:]
  /// group.instance.id → member id.
  private var staticMembers: [String: String] = [:]
  /// When the join phase ends at the latest (PreparingRebalance only).
  private var joinDeadline: Int64?
  /// Set while the initial delay of an Empty group's first join phase runs: the latest
  /// that phase may be stretched to.
  private var initialDelayLimit: Int64?

  package init(groupId: String, configuration: Configuration = Configuration(), now: Int64) {
    self.groupId = groupId
    self.configuration = configuration
    self.stateSince = now
  }

  // MARK: Queries

  /// Members in joining order.
  package var allMembers: [Member] { order.compactMap { members[$0] } }
  package var memberCount: Int { members.count }
  package var pendingMemberCount: Int { pending.count }
  package func member(_ memberId: String) -> Member? { members[memberId] }
  package func memberId(forInstance instanceId: String) -> String? { staticMembers[instanceId] }
  /// Nothing lives here: no members, no member ids waiting to be used.
  package var isVacant: Bool { members.isEmpty && pending.isEmpty && (state == .empty || state == .dead) }

  /// The earliest time at which ``tick(now:)`` has something to do.
  package var nextDeadline: Int64? {
    var earliest = joinDeadline
    func consider(_ time: Int64) { earliest = min(earliest ?? time, time) }
    for deadline in pending.values { consider(deadline) }
    for member in members.values where member.joinTicket == nil && member.syncTicket == nil {
      consider(member.sessionDeadline)
    }
    return earliest
  }

  // MARK: JoinGroup

  package mutating func join(_ request: JoinRequest, ticket: Ticket, now: Int64) -> [Action] {
    func fail(_ code: ErrorCode) -> [Action] { [.join(ticket, .failure(code, memberId: request.memberId))] }
    if state == .dead { return fail(.coordinatorNotAvailable) }
    if request.sessionTimeoutMs < configuration.minSessionTimeoutMs
      || request.sessionTimeoutMs > configuration.maxSessionTimeoutMs
    {
      return fail(.invalidSessionTimeout)
    }
    if !supportsProtocols(
      type: request.protocolType, names: request.protocols.map(\.name), excluding: request.memberId)
    {
      return fail(.inconsistentGroupProtocol)
    }
    let isFull = members.count + pending.count >= configuration.maxMembers

    if request.memberId.isEmpty {
      let newId = request.newMemberId
      if let instance = request.groupInstanceId {
        if let previous = staticMembers[instance] {
          return replaceStaticMember(previous, with: newId, request, ticket: ticket, now: now)
        }
        if isFull { return fail(.groupMaxSizeReached) }
        return addMember(newId, request, ticket: ticket, now: now)
      }
      if isFull { return fail(.groupMaxSizeReached) }
      if request.requireKnownMemberId {
        pending[newId] = now + Int64(request.sessionTimeoutMs)
        return [.join(ticket, .failure(.memberIdRequired, memberId: newId))]
      }
      return addMember(newId, request, ticket: ticket, now: now)
    }

    if request.groupInstanceId == nil, pending.removeValue(forKey: request.memberId) != nil {
      return addMember(request.memberId, request, ticket: ticket, now: now)
    }
    if isFenced(instance: request.groupInstanceId, memberId: request.memberId) {
      return fail(.fencedInstanceId)
    }
    guard let member = members[request.memberId] else { return fail(.unknownMemberId) }
    switch state {
    case .preparingRebalance:
      return updateMember(request, ticket: ticket, now: now)
    case .completingRebalance:
      // Same metadata: probably a retry after a lost response; answer with the generation.
      guard member.protocols == request.protocols else {
        return updateMember(request, ticket: ticket, now: now)
      }
      members[request.memberId]?.sessionDeadline = now + Int64(member.sessionTimeoutMs)
      return [.join(ticket, currentJoinResult(for: request.memberId))]
    case .stable:
      guard request.memberId != leaderId && member.protocols == request.protocols else {
        return updateMember(request, ticket: ticket, now: now)
      }
      members[request.memberId]?.sessionDeadline = now + Int64(member.sessionTimeoutMs)
      return [.join(ticket, currentJoinResult(for: request.memberId))]
    case .empty, .dead:
      return fail(.unknownMemberId)
    }
  }

  private func isFenced(instance: String?, memberId: String) -> Bool {
    guard let instance, let known = staticMembers[instance] else { return false }
    return known != memberId
  }

  private func supportsProtocols(type: String, names: [String], excluding memberId: String) -> Bool {
    guard !type.isEmpty, !names.isEmpty else { return false }
    let others = members.values.filter { $0.memberId != memberId }
    if others.isEmpty { return true }
    guard type == protocolType else { return false }
    return names.contains { name in others.allSatisfy { $0.protocols.contains { $0.name == name } } }
  }

  private func currentJoinResult(for memberId: String) -> JoinResult {
    JoinResult(
      errorCode: .none, generationId: generationId, protocolType: protocolType, protocolName: protocolName,
      leaderId: leaderId ?? "", memberId: memberId, members: memberId == leaderId ? joinedMembers() : [])
  }

  private func joinedMembers() -> [JoinedMember] {
    order.compactMap { id in
      members[id].map {
        JoinedMember(
          memberId: id, groupInstanceId: $0.groupInstanceId, metadata: $0.metadata(for: protocolName))
      }
    }
  }

  private mutating func addMember(_ memberId: String, _ request: JoinRequest, ticket: Ticket, now: Int64)
    -> [Action]
  {
    if members.isEmpty { protocolType = request.protocolType }
    members[memberId] = Member(
      memberId: memberId, groupInstanceId: request.groupInstanceId, clientId: request.clientId,
      clientHost: request.clientHost, sessionTimeoutMs: request.sessionTimeoutMs,
      rebalanceTimeoutMs: request.rebalanceTimeoutMs, protocolType: request.protocolType,
      protocols: request.protocols, assignment: ByteBuffer(),
      sessionDeadline: now + Int64(request.sessionTimeoutMs), joinTicket: ticket)
    order.append(memberId)
    if let instance = request.groupInstanceId { staticMembers[instance] = memberId }
    if leaderId == nil { leaderId = memberId }
    if state == .preparingRebalance, let limit = initialDelayLimit {
      joinDeadline = min(now + configuration.initialRebalanceDelayMs, limit)
    }
    return rebalanceOrComplete(now: now)
  }

  private mutating func updateMember(_ request: JoinRequest, ticket: Ticket, now: Int64) -> [Action] {
    guard var member = members[request.memberId] else { return [] }
    var actions: [Action] = []
    if let previous = member.joinTicket {
      actions.append(.join(previous, .failure(.rebalanceInProgress, memberId: member.memberId)))
    }
    member.protocols = request.protocols
    member.protocolType = request.protocolType
    member.sessionTimeoutMs = request.sessionTimeoutMs
    member.rebalanceTimeoutMs = request.rebalanceTimeoutMs
    member.sessionDeadline = now + Int64(request.sessionTimeoutMs)
    member.joinTicket = ticket
    members[request.memberId] = member
    if members.count == 1 { protocolType = request.protocolType }
    return actions + rebalanceOrComplete(now: now)
  }

  /// KIP-345: a known group.instance.id arriving without a member id takes over the old
  /// member's place (and assignment); the old id is fenced from now on.
  private mutating func replaceStaticMember(
    _ oldId: String, with newId: String, _ request: JoinRequest, ticket: Ticket, now: Int64
  ) -> [Action] {
    guard let old = members.removeValue(forKey: oldId) else { return [] }
    var actions: [Action] = []
    if let parked = old.joinTicket {
      actions.append(.join(parked, .failure(.fencedInstanceId, memberId: oldId)))
    }
    if let parked = old.syncTicket { actions.append(.sync(parked, .failure(.fencedInstanceId))) }
    let previousLeader = leaderId
    var member = Member(
      memberId: newId, groupInstanceId: request.groupInstanceId, clientId: request.clientId,
      clientHost: request.clientHost, sessionTimeoutMs: request.sessionTimeoutMs,
      rebalanceTimeoutMs: request.rebalanceTimeoutMs, protocolType: old.protocolType,
      protocols: old.protocols,
      assignment: old.assignment, sessionDeadline: now + Int64(request.sessionTimeoutMs))
    if let index = order.firstIndex(of: oldId) { order[index] = newId } else { order.append(newId) }
    if let instance = request.groupInstanceId { staticMembers[instance] = newId }
    if leaderId == oldId { leaderId = newId }

    if state == .stable && old.protocols == request.protocols && old.protocolType == request.protocolType {
      // Nothing the assignment depends on changed: no rebalance. The old leader id is
      // returned so that a replaced leader does not compute an assignment nobody would
      // receive (a Stable group does not hand out new assignments).
      members[newId] = member
      actions.append(
        .join(
          ticket,
          JoinResult(
            errorCode: .none, generationId: generationId, protocolType: protocolType,
            protocolName: protocolName,
            leaderId: previousLeader ?? "", memberId: newId, members: [])))
      return actions
    }
    member.protocols = request.protocols
    member.protocolType = request.protocolType
    member.joinTicket = ticket
    members[newId] = member
    return actions + rebalanceOrComplete(now: now)
  }

  private mutating func rebalanceOrComplete(now: Int64) -> [Action] {
    switch state {
    case .empty, .stable, .completingRebalance: prepareRebalance(now: now)
    case .preparingRebalance: tryCompleteJoin(now: now)
    case .dead: []
    }
  }

  private mutating func transition(to next: State, now: Int64) {
    state = next
    stateSince = now
  }

  private mutating func prepareRebalance(now: Int64) -> [Action] {
    var actions: [Action] = []
    if state == .completingRebalance {
      // Parked followers learn that their generation is over; assignments are void.
      for id in order {
        if let parked = members[id]?.syncTicket {
          actions.append(.sync(parked, .failure(.rebalanceInProgress)))
          members[id]?.syncTicket = nil
        }
        members[id]?.assignment = ByteBuffer()
      }
    }
    let wasEmpty = state == .empty
    transition(to: .preparingRebalance, now: now)
    let rebalanceTimeout = Int64(members.values.map(\.rebalanceTimeoutMs).max() ?? 0)
    let delay = configuration.initialRebalanceDelayMs
    if wasEmpty && delay > 0 {
      initialDelayLimit = now + max(rebalanceTimeout, delay)
      joinDeadline = now + delay
    } else {
      initialDelayLimit = nil
      joinDeadline = now + rebalanceTimeout
    }
    return actions + tryCompleteJoin(now: now)
  }

  /// Ends the join phase early once every member has rejoined (never during the initial delay).
  private mutating func tryCompleteJoin(now: Int64) -> [Action] {
    guard state == .preparingRebalance, initialDelayLimit == nil, pending.isEmpty,
      members.values.allSatisfy({ $0.joinTicket != nil })
    else { return [] }
    return completeJoin(now: now)
  }

  private mutating func completeJoin(now: Int64) -> [Action] {
    var actions: [Action] = []
    for id in order where members[id]?.joinTicket == nil {
      actions += detach(id, answering: .unknownMemberId)
    }
    joinDeadline = nil
    initialDelayLimit = nil
    generationId &+= 1
    if members.isEmpty {
      protocolName = nil
      leaderId = nil
      transition(to: .empty, now: now)
      return actions
    }
    protocolName = selectProtocol()
    if leaderId.map({ members[$0] == nil }) ?? true { leaderId = order.first }
    transition(to: .completingRebalance, now: now)
    let everyone = joinedMembers()
    for id in order {
      guard var member = members[id], let ticket = member.joinTicket else { continue }
      actions.append(
        .join(
          ticket,
          JoinResult(
            errorCode: .none, generationId: generationId, protocolType: protocolType,
            protocolName: protocolName,
            leaderId: leaderId ?? "", memberId: id, members: id == leaderId ? everyone : [])))
      member.joinTicket = nil
      member.sessionDeadline = now + Int64(member.sessionTimeoutMs)
      members[id] = member
    }
    return actions
  }

  /// Each member votes for the first of its protocols that every member supports; most
  /// votes wins (ties: the first member's preference order).
  private func selectProtocol() -> String? {
    let all = allMembers
    guard let first = all.first else { return nil }
    let candidates = first.protocols.map(\.name).filter { name in
      all.allSatisfy { member in member.protocols.contains { $0.name == name } }
    }
    var votes: [String: Int] = [:]
    for member in all {
      if let choice = member.protocols.first(where: { candidates.contains($0.name) }) {
        votes[choice.name, default: 0] += 1
      }
    }
    var best: String?
    for name in candidates where best == nil || votes[name, default: 0] > votes[best!, default: 0] {
      best = name
    }
    return best
  }

  /// Removes a member without touching the state; answers its parked requests.
  private mutating func detach(_ memberId: String, answering code: ErrorCode) -> [Action] {
    guard let member = members.removeValue(forKey: memberId) else { return [] }
    order.removeAll { $0 == memberId }
    if let instance = member.groupInstanceId, staticMembers[instance] == memberId {
      staticMembers[instance] = nil
    }
    if leaderId == memberId { leaderId = order.first }
    var actions: [Action] = []
    if let parked = member.joinTicket { actions.append(.join(parked, .failure(code, memberId: memberId))) }
    if let parked = member.syncTicket { actions.append(.sync(parked, .failure(code))) }
    return actions
  }

  private mutating func removeMember(_ memberId: String, now: Int64) -> [Action] {
    let actions = detach(memberId, answering: .unknownMemberId)
    switch state {
    case .stable, .completingRebalance: return actions + prepareRebalance(now: now)
    case .preparingRebalance: return actions + tryCompleteJoin(now: now)
    case .empty, .dead: return actions
    }
  }

  // MARK: SyncGroup

  package mutating func sync(
    memberId: String, groupInstanceId: String?, generationId: Int32, protocolType: String?,
    protocolName: String?,
    assignments: [String: ByteBuffer], ticket: Ticket, now: Int64
  ) -> [Action] {
    func fail(_ code: ErrorCode) -> [Action] { [.sync(ticket, .failure(code))] }
    if state == .dead { return fail(.coordinatorNotAvailable) }
    if isFenced(instance: groupInstanceId, memberId: memberId) { return fail(.fencedInstanceId) }
    guard var member = members[memberId] else { return fail(.unknownMemberId) }
    if generationId != self.generationId { return fail(.illegalGeneration) }
    if let protocolType, protocolType != self.protocolType { return fail(.inconsistentGroupProtocol) }
    if let protocolName, protocolName != self.protocolName { return fail(.inconsistentGroupProtocol) }
    switch state {
    case .empty, .dead:
      return fail(.unknownMemberId)
    case .preparingRebalance:
      return fail(.rebalanceInProgress)
    case .stable:
      member.sessionDeadline = now + Int64(member.sessionTimeoutMs)
      members[memberId] = member
      return [
        .sync(
          ticket,
          SyncResult(
            errorCode: .none, protocolType: self.protocolType, protocolName: self.protocolName,
            assignment: member.assignment))
      ]
    case .completingRebalance:
      var actions: [Action] = []
      if let previous = member.syncTicket { actions.append(.sync(previous, .failure(.rebalanceInProgress))) }
      member.syncTicket = ticket
      member.sessionDeadline = now + Int64(member.sessionTimeoutMs)
      members[memberId] = member
      guard memberId == leaderId else { return actions }
      for id in order { members[id]?.assignment = assignments[id] ?? ByteBuffer() }
      transition(to: .stable, now: now)
      for id in order {
        guard var waiting = members[id], let parked = waiting.syncTicket else { continue }
        actions.append(
          .sync(
            parked,
            SyncResult(
              errorCode: .none, protocolType: self.protocolType, protocolName: self.protocolName,
              assignment: waiting.assignment)))
        waiting.syncTicket = nil
        waiting.sessionDeadline = now + Int64(waiting.sessionTimeoutMs)
        members[id] = waiting
      }
      return actions
    }
  }

  // MARK: Heartbeat

  package mutating func heartbeat(memberId: String, groupInstanceId: String?, generationId: Int32, now: Int64)
    -> ErrorCode
  {
    if state == .dead { return .coordinatorNotAvailable }
    if isFenced(instance: groupInstanceId, memberId: memberId) { return .fencedInstanceId }
    guard let member = members[memberId] else { return .unknownMemberId }
    if generationId != self.generationId { return .illegalGeneration }
    switch state {
    case .empty, .dead:
      return .unknownMemberId
    case .preparingRebalance:
      members[memberId]?.sessionDeadline = now + Int64(member.sessionTimeoutMs)
      return .rebalanceInProgress
    case .completingRebalance, .stable:
      members[memberId]?.sessionDeadline = now + Int64(member.sessionTimeoutMs)
      return .none
    }
  }

  // MARK: LeaveGroup

  /// Removes members (LeaveGroup v3+ names several; an empty member id with a
  /// group.instance.id means "whoever holds that instance"). One error per entry.
  package mutating func leave(_ leaving: [(memberId: String, groupInstanceId: String?)], now: Int64)
    -> (errors: [ErrorCode], actions: [Action])
  {
    var errors: [ErrorCode] = []
    var actions: [Action] = []
    for (memberId, instance) in leaving {
      if state == .dead {
        errors.append(.coordinatorNotAvailable)
      } else if memberId.isEmpty {
        if let instance, let holder = staticMembers[instance] {
          actions += removeMember(holder, now: now)
          errors.append(.none)
        } else {
          errors.append(.unknownMemberId)
        }
      } else if isFenced(instance: instance, memberId: memberId) {
        errors.append(.fencedInstanceId)
      } else if pending.removeValue(forKey: memberId) != nil {
        actions += tryCompleteJoin(now: now)
        errors.append(.none)
      } else if members[memberId] != nil {
        actions += removeMember(memberId, now: now)
        errors.append(.none)
      } else {
        errors.append(.unknownMemberId)
      }
    }
    return (errors, actions)
  }

  // MARK: Timers

  /// Expires members whose session ran out, ids handed out but never used, and the join
  /// phase when its deadline has passed.
  package mutating func tick(now: Int64) -> [Action] {
    guard state != .dead else { return [] }
    var actions: [Action] = []
    let expiredPending = pending.filter { $0.value <= now }.map(\.key)
    for id in expiredPending { pending[id] = nil }
    let expired = order.filter { id in
      guard let member = members[id] else { return false }
      return member.joinTicket == nil && member.syncTicket == nil && member.sessionDeadline <= now
    }
    for id in expired where members[id] != nil {
      actions += removeMember(id, now: now)
    }
    if state == .preparingRebalance {
      if let deadline = joinDeadline, deadline <= now {
        actions += completeJoin(now: now)
      } else if !expiredPending.isEmpty {
        actions += tryCompleteJoin(now: now)
      }
    }
    return actions
  }

  // MARK: Offsets and lifecycle

  /// Whether an OffsetCommit from this member at this generation may be stored. Generation
  /// -1 stores offsets for an Empty group (a consumer that only uses the group for
  /// offsets, as kcat does).
  package mutating func validateCommit(
    memberId: String, groupInstanceId: String?, generationId: Int32, now: Int64
  )
    -> ErrorCode
  {
    if state == .dead { return .coordinatorNotAvailable }
    if isFenced(instance: groupInstanceId, memberId: memberId) { return .fencedInstanceId }
    if generationId < 0 && state == .empty { return .none }
    guard let member = members[memberId] else { return .unknownMemberId }
    if generationId != self.generationId { return .illegalGeneration }
    switch state {
    case .empty, .dead: return .unknownMemberId
    case .completingRebalance: return .rebalanceInProgress
    case .stable, .preparingRebalance:
      members[memberId]?.sessionDeadline = now + Int64(member.sessionTimeoutMs)
      return .none
    }
  }

  /// Ends the group (deleted, or the broker stopping): parked requests are answered with
  /// `code` and every later event fails.
  package mutating func unload(answering code: ErrorCode, now: Int64) -> [Action] {
    var actions: [Action] = []
    for id in order {
      if let parked = members[id]?.joinTicket { actions.append(.join(parked, .failure(code, memberId: id))) }
      if let parked = members[id]?.syncTicket { actions.append(.sync(parked, .failure(code))) }
    }
    members = [:]
    order = []
    pending = [:]
    staticMembers = [:]
    joinDeadline = nil
    initialDelayLimit = nil
    transition(to: .dead, now: now)
    return actions
  }
}
