package import KafkaProtocol
import Logging
import NIOPosix
import SluiceStorage
import Synchronization

/// A partition of a topic, as share groups name it.
public struct SharePartitionKey: Hashable, Sendable, Comparable {
  public var topic: String
  public var partition: Int32

  public init(topic: String, partition: Int32) {
    self.topic = topic
    self.partition = partition
  }

  public static func < (a: Self, b: Self) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
}

/// Share groups (KIP-932): membership with server-side assignment, share sessions, and each
/// share partition's delivery state (``SharePartitionState``), made durable through a
/// ``ShareStore``. All of it sits under one lock: share traffic is counted in fetches, each
/// of which carries many records, and nothing blocking runs under it.
package final class ShareGroups: Sendable {
  package struct Configuration: Sendable {
    var limits: SharePartitionState.Limits
    /// `group.share.session.timeout.ms`: a member that has not heartbeated for this long
    /// leaves (its records are released).
    var sessionTimeoutMs: Int64
    /// `group.share.heartbeat.interval.ms`.
    var heartbeatIntervalMs: Int32
    /// `group.share.max.size`: members per share group.
    var maxMembers: Int
    /// `group.share.max.share.sessions`: share sessions on this broker.
    var maxSessions: Int
    /// `sluice.max.groups`: share groups at most (besides classic groups).
    var maxGroups: Int
    /// `sluice.share.dlq.topic`: the dead-letter topic's name pattern ("" = off).
    var deadLetterTopic: String

    init(_ config: BrokerConfig) {
      limits = .init(
        lockDurationMs: config.shareRecordLockDurationMs, deliveryCountLimit: config.shareDeliveryCountLimit,
        maxInFlight: config.sharePartitionMaxRecordLocks)
      sessionTimeoutMs = config.shareSessionTimeoutMs
      heartbeatIntervalMs = config.shareHeartbeatIntervalMs
      maxMembers = config.shareMaxSize
      maxSessions = config.shareMaxSessions
      maxGroups = config.maxGroups
      deadLetterTopic = config.shareDeadLetterTopic
    }
  }

  package struct Member: Sendable {
    package var memberId: String
    package var memberEpoch: Int32
    package var clientId: String
    package var clientHost: String
    package var rackId: String?
    package var subscribedTopics: [String]
    /// The assignment last sent (nil: none sent yet).
    package var assignment: [SharePartitionKey]?
    var lastHeartbeat: Int64
  }

  package struct Group: Sendable {
    package var groupId: String
    package var groupEpoch: Int32 = 0
    package var members: [String: Member] = [:]
  }

  struct Session {
    var epoch: Int32
    var partitions: [SharePartitionKey] = []
    /// When a request last used it (monotonic ms).
    var lastUsed: Int64 = 0
  }

  struct SessionKey: Hashable {
    var group: String
    var member: String
  }

  struct State {
    /// Recent bytes per record of each share partition's reads (to size the next read).
    var bytesPerRecord: [ShareStore.Key: Int] = [:]
    var groups: [String: Group] = [:]
    /// Group configs (IncrementalAlterConfigs on a GROUP), also of groups without members.
    var configs: [String: [String: String]] = [:]
    /// The topic id each share partition's state belongs to: a topic deleted and created
    /// again under its name starts afresh.
    var topicIds: [ShareStore.Key: KafkaUUID] = [:]
    var partitions: [ShareStore.Key: SharePartitionState] = [:]
    var sessions: [SessionKey: Session] = [:]
  }

  let configuration: Configuration
  let store: ShareStore
  let state: Mutex<State>
  let logger = Logger(label: "sluice.share")

  init(configuration: Configuration, store: ShareStore) {
    self.configuration = configuration
    self.store = store
    var state = State()
    let recovered = store.recovered
    state.configs = recovered.configs
    for (key, persisted) in recovered.partitions {
      state.partitions[key] = SharePartitionState(
        startOffset: persisted.startOffset, endOffset: persisted.endOffset, runs: persisted.runs,
        limits: configuration.limits)
      state.topicIds[key] = persisted.topicId
      if state.groups[key.group] == nil { state.groups[key.group] = Group(groupId: key.group) }
    }
    self.state = Mutex(state)
  }

  static func persisted(_ state: State, _ key: ShareStore.Key) -> ShareStore.Change {
    let partition = state.partitions[key]!
    return .partition(
      key,
      .init(
        topicId: state.topicIds[key] ?? .zero, startOffset: partition.startOffset,
        endOffset: partition.endOffset,
        runs: partition.runs))
  }

  /// Drops the state of share partitions whose records did not survive the restart
  /// (memory topics): they start again at the log's start.
  func forgetVolatile(topics: Set<String>) {
    state.withLock { state in
      let gone = state.partitions.keys.filter { topics.contains($0.topic) }
      for key in gone {
        state.partitions[key] = nil
        state.topicIds[key] = nil
      }
      store.writeSoon(gone.map { .deletePartition($0) })
    }
  }

  // MARK: Membership

  package struct HeartbeatRequest: Sendable {
    package var groupId: String
    package var memberId: String
    package var memberEpoch: Int32
    package var rackId: String?
    /// nil: unchanged since the last heartbeat.
    package var subscribedTopicNames: [String]?
    package var clientId: String
    package var clientHost: String

    package init(
      groupId: String, memberId: String, memberEpoch: Int32, rackId: String?, subscribedTopicNames: [String]?,
      clientId: String, clientHost: String
    ) {
      self.groupId = groupId
      self.memberId = memberId
      self.memberEpoch = memberEpoch
      self.rackId = rackId
      self.subscribedTopicNames = subscribedTopicNames
      self.clientId = clientId
      self.clientHost = clientHost
    }
  }

  package struct HeartbeatResult: Sendable {
    package var error: BrokerError?
    package var memberId: String = ""
    package var memberEpoch: Int32 = 0
    package var heartbeatIntervalMs: Int32 = 0
    /// nil: unchanged since the last heartbeat's.
    package var assignment: [SharePartitionKey]?
  }

  /// ShareGroupHeartbeat: join (epoch 0), stay (the current epoch), leave (epoch -1).
  /// `partitions` names the partitions of each subscribed topic that exists now. Every
  /// member is assigned every partition of the topics it subscribes to: a share partition
  /// serves any number of members, records going to whichever asks first.
  func heartbeat(
    _ request: HeartbeatRequest, now: Int64, otherGroups: Int, partitions: ([String]) -> [SharePartitionKey]
  ) -> (HeartbeatResult, released: [ShareStore.Key: [SharePartitionState.DeadLetter]]) {
    var result = HeartbeatResult()
    result.heartbeatIntervalMs = configuration.heartbeatIntervalMs
    var released: [ShareStore.Key: [SharePartitionState.DeadLetter]] = [:]
    state.withLock { state in
      if request.memberEpoch == -1 {
        released = leave(&state, group: request.groupId, member: request.memberId)
        result.memberId = request.memberId
        result.memberEpoch = -1
        return
      }
      if state.groups[request.groupId] == nil {
        guard state.groups.count + otherGroups < configuration.maxGroups else {
          result.error = BrokerError(.groupMaxSizeReached, "Too many groups (sluice.max.groups)")
          return
        }
        state.groups[request.groupId] = Group(groupId: request.groupId)
      }
      var group = state.groups[request.groupId]!
      defer { state.groups[request.groupId] = group }
      var member: Member
      if let existing = group.members[request.memberId] {
        member = existing
        if request.memberEpoch != 0 && request.memberEpoch != member.memberEpoch {
          result.error = BrokerError(
            .fencedMemberEpoch,
            "Member epoch \(request.memberEpoch) is not the current \(member.memberEpoch)")
          return
        }
        if request.memberEpoch == 0 { member.assignment = nil }
      } else {
        guard request.memberEpoch == 0 else {
          result.error = BrokerError(
            .unknownMemberId, "Member \(request.memberId) is not in group \(request.groupId)")
          return
        }
        guard request.subscribedTopicNames != nil else {
          result.error = BrokerError(.invalidRequest, "SubscribedTopicNames must be set when joining")
          return
        }
        guard group.members.count < configuration.maxMembers else {
          result.error = BrokerError(
            .groupMaxSizeReached,
            "Share group \(request.groupId) has \(group.members.count) members (group.share.max.size)")
          return
        }
        let memberId = request.memberId.isEmpty ? KafkaUUID.random().description : request.memberId
        member = Member(
          memberId: memberId, memberEpoch: 0, clientId: request.clientId, clientHost: request.clientHost,
          rackId: request.rackId, subscribedTopics: [], assignment: nil, lastHeartbeat: now)
        group.groupEpoch += 1
      }
      member.lastHeartbeat = now
      if let topics = request.subscribedTopicNames, topics.sorted() != member.subscribedTopics {
        member.subscribedTopics = topics.sorted()
        group.groupEpoch += 1
      }
      let assignment = partitions(member.subscribedTopics).sorted()
      if member.assignment != assignment {
        member.assignment = assignment
        member.memberEpoch = group.groupEpoch
        result.assignment = assignment
      }
      group.members[member.memberId] = member
      result.memberId = member.memberId
      result.memberEpoch = member.memberEpoch
    }
    return (result, released)
  }

  /// Removes a member. Without a share session its records are released now; with one they
  /// are released when the session closes: a Kafka client closing sends its leave heartbeat
  /// and its last acknowledgements (ShareAcknowledge, epoch -1) on two connections in
  /// either order, and those acknowledgements must still count. A session its member never
  /// closes ends in ``tick(now:)``.
  private func leave(_ state: inout State, group groupId: String, member memberId: String)
    -> [ShareStore.Key: [SharePartitionState.DeadLetter]]
  {
    guard state.groups[groupId]?.members.removeValue(forKey: memberId) != nil else { return [:] }
    state.groups[groupId]?.groupEpoch += 1
    guard state.sessions[SessionKey(group: groupId, member: memberId)] == nil else { return [:] }
    return releaseAllLocked(&state, group: groupId, member: memberId)
  }

  func releaseAllLocked(_ state: inout State, group groupId: String, member memberId: String)
    -> [ShareStore.Key: [SharePartitionState.DeadLetter]]
  {
    var dead: [ShareStore.Key: [SharePartitionState.DeadLetter]] = [:]
    var changes: [ShareStore.Change] = []
    for key in state.partitions.keys where key.group == groupId {
      guard state.partitions[key]!.acquiredCount > 0 else { continue }
      let letters = state.partitions[key]!.releaseAll(member: memberId)
      dead[key] = letters
      changes.append(Self.persisted(state, key))
    }
    store.writeSoon(changes)
    return dead
  }

  /// Members whose session timed out leave; expired acquisition locks end. Returns the
  /// partitions where records became available again and the dead letters.
  func tick(now: Int64) -> [ShareStore.Key: [SharePartitionState.DeadLetter]] {
    state.withLock { state in
      var released: [ShareStore.Key: [SharePartitionState.DeadLetter]] = [:]
      for (groupId, group) in state.groups {
        for member in group.members.values where now - member.lastHeartbeat >= configuration.sessionTimeoutMs
        {
          logger.info("share group \(groupId): member \(member.memberId) timed out; its records are released")
          released.merge(leave(&state, group: groupId, member: member.memberId)) { $0 + $1 }
        }
      }
      // Sessions of members that left without closing them end once unused for a lock's
      // duration (by then every record they held has expired anyway).
      for (key, session) in state.sessions
      where state.groups[key.group]?.members[key.member] == nil
        && now - session.lastUsed >= configuration.limits.lockDurationMs
      {
        state.sessions[key] = nil
        released.merge(releaseAllLocked(&state, group: key.group, member: key.member)) { $0 + $1 }
      }
      var changes: [ShareStore.Change] = []
      for key in Array(state.partitions.keys) {
        let (expired, letters) = state.partitions[key]!.expireLocks(now: now)
        guard expired > 0 else { continue }
        released[key, default: []] += letters
        changes.append(Self.persisted(state, key))
      }
      store.writeSoon(changes)
      return released
    }
  }

  package func group(_ groupId: String) -> Group? { state.withLock { $0.groups[groupId] } }

  package var groupIds: [String] { state.withLock { $0.groups.keys.sorted() } }

  /// Per partition of a group: start offset, end offset, acquired records.
  package func partitionStates(_ groupId: String) -> [(SharePartitionKey, SharePartitionState)] {
    state.withLock { state in
      state.partitions.filter { $0.key.group == groupId }
        .map { (SharePartitionKey(topic: $0.key.topic, partition: $0.key.partition), $0.value) }
        .sorted { $0.0 < $1.0 }
    }
  }

  /// DeleteGroups for a share group: only without members; its state and configs go.
  package func delete(_ groupId: String) async -> ErrorCode? {
    let outcome: ErrorCode? = state.withLock { state in
      guard state.groups[groupId] != nil || state.configs[groupId] != nil else { return .groupIdNotFound }
      guard state.groups[groupId]?.members.isEmpty ?? true else { return .nonEmptyGroup }
      state.groups[groupId] = nil
      state.configs[groupId] = nil
      for key in state.partitions.keys where key.group == groupId {
        state.partitions[key] = nil
        state.topicIds[key] = nil
        state.bytesPerRecord[key] = nil
      }
      for key in Array(state.sessions.keys) where key.group == groupId { state.sessions[key] = nil }
      store.writeSoon([.deleteGroup(groupId)])
      return nil
    }
    if outcome == nil, let error = await store.write([]) { return ErrorCode.from(error) }
    return outcome
  }

  /// Drops every share partition of a deleted topic.
  func forget(topic: String) async {
    state.withLock { state in
      let gone = state.partitions.keys.filter { $0.topic == topic }
      for key in gone {
        state.partitions[key] = nil
        state.topicIds[key] = nil
      }
      for key in Array(state.sessions.keys) {
        state.sessions[key]!.partitions.removeAll { $0.topic == topic }
      }
      store.writeSoon(gone.map { .deletePartition($0) })
    }
    _ = await store.write([])
  }

  // MARK: Group configs

  /// The group configs a share group accepts (Kafka 4.1's names), with their defaults.
  package static let groupConfigDefaults: [String: String] = [
    "share.auto.offset.reset": "latest",
    "share.isolation.level": "read_uncommitted",
  ]

  package func configs(_ groupId: String) -> [String: String] {
    state.withLock { $0.configs[groupId] ?? [:] }
  }

  /// Whether the group has share state or configs (DeleteGroups goes here, not to the
  /// consumer groups).
  package func knows(_ groupId: String) -> Bool {
    state.withLock { $0.groups[groupId] != nil || $0.configs[groupId] != nil }
  }

  /// Checks and stores a group's configs (IncrementalAlterConfigs on a GROUP resource).
  package func setConfigs(_ groupId: String, _ configs: [String: String], validateOnly: Bool)
    async throws(BrokerError)
  {
    for (name, value) in configs {
      switch name {
      case "share.auto.offset.reset":
        guard Self.autoOffsetReset(value) != nil else {
          throw BrokerError(
            .invalidConfig,
            "share.auto.offset.reset: \(value) is not latest, earliest or by_duration:<ISO-8601 duration>")
        }
      case "share.isolation.level":
        guard value == "read_uncommitted" || value == "read_committed" else {
          throw BrokerError(
            .invalidConfig, "share.isolation.level: \(value) is not read_uncommitted or read_committed")
        }
      default:
        throw BrokerError(.invalidConfig, "Unknown group config \(name)")
      }
    }
    guard !validateOnly else { return }
    let refused: BrokerError? = state.withLock { state in
      // Configured groups are bounded like groups (a config map per id a client names).
      if state.configs[groupId] == nil && !configs.isEmpty && state.configs.count >= configuration.maxGroups {
        return BrokerError(.groupMaxSizeReached, "Too many configured groups (sluice.max.groups)")
      }
      state.configs[groupId] = configs.isEmpty ? nil : configs
      store.writeSoon([.configs(group: groupId, configs)])
      return nil
    }
    if let refused { throw refused }
    if let error = await store.write([]) { throw BrokerError(ErrorCode.from(error), error.message) }
  }

  enum AutoOffsetReset: Equatable {
    case earliest
    case latest
    case byDuration(ms: Int64)
  }

  static func autoOffsetReset(_ value: String) -> AutoOffsetReset? {
    switch value.lowercased() {
    case "earliest": return .earliest
    case "latest": return .latest
    default:
      guard value.lowercased().hasPrefix("by_duration:") else { return nil }
      return isoDurationMs(String(value.dropFirst("by_duration:".count))).map { .byDuration(ms: $0) }
    }
  }

  /// `PnDTnHnMn.nS` (the subset of ISO-8601 durations Java's Duration.parse reads).
  static func isoDurationMs(_ text: String) -> Int64? {
    var rest = Substring(text.uppercased())
    guard rest.hasPrefix("P") else { return nil }
    rest = rest.dropFirst()
    var total = 0.0
    var inTime = false
    var number = ""
    var sawUnit = false
    for character in rest {
      switch character {
      case "T":
        guard !inTime, number.isEmpty else { return nil }
        inTime = true
      case "0"..."9", ".":
        number.append(character)
      case "D", "H", "M", "S":
        guard let value = Double(number), value >= 0 else { return nil }
        let unit: Double
        switch (character, inTime) {
        case ("D", false): unit = 86_400_000
        case ("H", true): unit = 3_600_000
        case ("M", true): unit = 60_000
        case ("S", true): unit = 1000
        default: return nil
        }
        total += value * unit
        number = ""
        sawUnit = true
      default:
        return nil
      }
    }
    guard sawUnit, number.isEmpty, total < 9.2e18 else { return nil }
    return Int64(total)
  }
}

// MARK: Share sessions and records

extension ShareGroups {
  /// Checks and advances the member's share session for a ShareFetch or ShareAcknowledge;
  /// returns the session's partitions.
  func useSession(_ call: ShareFetchCall, now: Int64) -> Result<[SharePartitionKey], BrokerError> {
    state.withLock { state in
      let key = SessionKey(group: call.groupId, member: call.memberId)
      guard call.sessionEpoch == -1 || state.groups[call.groupId]?.members[call.memberId] != nil else {
        return .failure(
          BrokerError(.unknownMemberId, "Member \(call.memberId) is not in share group \(call.groupId)"))
      }
      switch call.sessionEpoch {
      case 0:
        guard call.fetch else {
          return .failure(
            BrokerError(.invalidShareSessionEpoch, "ShareAcknowledge cannot open a share session"))
        }
        guard state.sessions[key] != nil || state.sessions.count < configuration.maxSessions else {
          return .failure(
            BrokerError(.shareSessionLimitReached, "Too many share sessions (group.share.max.share.sessions)")
          )
        }
        var session = Session(epoch: 1, lastUsed: now)
        Self.update(&session, adding: call.partitions, forgetting: call.forgotten)
        state.sessions[key] = session
        return .success(session.partitions)
      case -1:
        // Closing: the acknowledgements count even when the session is already gone.
        return .success(state.sessions[key]?.partitions ?? [])
      default:
        guard var session = state.sessions[key] else {
          return .failure(BrokerError(.shareSessionNotFound, "No share session for member \(call.memberId)"))
        }
        guard call.sessionEpoch == session.epoch else {
          return .failure(
            BrokerError(
              .invalidShareSessionEpoch, "Share session epoch \(call.sessionEpoch), expected \(session.epoch)"
            ))
        }
        session.epoch = session.epoch == Int32.max ? 1 : session.epoch + 1
        session.lastUsed = now
        if call.fetch { Self.update(&session, adding: call.partitions, forgetting: call.forgotten) }
        state.sessions[key] = session
        return .success(session.partitions)
      }
    }
  }

  static func update(_ session: inout Session, adding: [SharePartitionKey], forgetting: [SharePartitionKey]) {
    let forgotten = Set(forgetting)
    session.partitions.removeAll { forgotten.contains($0) }
    var known = Set(session.partitions)
    for key in adding where known.insert(key).inserted { session.partitions.append(key) }
  }

  /// Closes a member's share session (epoch -1): its records are released. Returns the
  /// partitions where that happened, with their dead letters.
  func closeSession(group: String, member: String) -> [ShareStore.Key: [SharePartitionState.DeadLetter]] {
    state.withLock { state in
      state.sessions[SessionKey(group: group, member: member)] = nil
      return releaseAllLocked(&state, group: group, member: member)
    }
  }

  struct AcknowledgeOutcome {
    var errors: [SharePartitionKey: BrokerError] = [:]
    var dead: [ShareStore.Key: [SharePartitionState.DeadLetter]] = [:]
    /// Partitions where a record became available again.
    var released: [ShareStore.Key: Bool] = [:]
    var touched: [SharePartitionKey] = []
  }

  /// Applies a call's acknowledgements, each batch all or nothing; the changed partitions
  /// are queued for the journal (the caller waits for it).
  func acknowledge(_ call: ShareFetchCall, now: Int64) -> AcknowledgeOutcome {
    state.withLock { state in
      var outcome = AcknowledgeOutcome()
      var changed: Set<ShareStore.Key> = []
      for acknowledgement in call.acknowledgements {
        let key = ShareStore.Key(
          group: call.groupId, topic: acknowledgement.key.topic, partition: acknowledgement.key.partition)
        guard outcome.errors[acknowledgement.key] == nil else { continue }
        guard state.partitions[key] != nil else {
          outcome.errors[acknowledgement.key] = BrokerError(
            .invalidRecordState, "No records of \(key.topic)-\(key.partition) were acquired in this group")
          continue
        }
        // Locks that ran out are released first (once per partition and call), so a late
        // acknowledgement is refused; what that archives is dead-lettered like any other.
        if changed.insert(key).inserted {
          let (_, expired) = state.partitions[key]!.expireLocks(now: now)
          if !expired.isEmpty { outcome.dead[key, default: []] += expired }
        }
        // In place: the window is not copied per batch.
        let result = state.partitions[key]!.acknowledge(
          member: call.memberId, first: acknowledgement.first, last: acknowledgement.last,
          types: acknowledgement.types)
        switch result {
        case .success(let letters):
          if !letters.isEmpty { outcome.dead[key, default: []] += letters }
        case .failure(.invalidRecordState(let offset)):
          outcome.errors[acknowledgement.key] = BrokerError(
            .invalidRecordState,
            "Offset \(offset) of \(key.topic)-\(key.partition) is not acquired by this member")
        case .failure(.invalidRequest(let message)):
          outcome.errors[acknowledgement.key] = BrokerError(.invalidRequest, message)
        }
      }
      // Any settlement may make records available or move the start (room in a full
      // window): parked fetches of these partitions look again.
      for key in changed { outcome.released[key] = true }
      outcome.touched = changed.map { SharePartitionKey(topic: $0.topic, partition: $0.partition) }
      store.writeSoon(changed.map { Self.persisted(state, $0) })
      return outcome
    }
  }

  /// Readies a share partition for acquisition: creates it at the group's
  /// `share.auto.offset.reset` position if new (or if its topic was created anew), ends
  /// expired locks, drops what the log no longer holds. Returns where to read (nil: nothing
  /// to read, or the member's session is gone), dead letters from expired locks, and the
  /// earliest remaining lock deadline.
  func prepare(
    group: String, member: String, _ key: SharePartitionKey, topicId: KafkaUUID, partition: Partition,
    now: Int64,
    wallNow: Int64
  ) -> (readFrom: Int64?, dead: [SharePartitionState.DeadLetter], nextLock: Int64?) {
    let storeKey = ShareStore.Key(group: group, topic: key.topic, partition: key.partition)
    let logStart = partition.logStartOffset
    let logEnd = partition.logEndOffset
    return state.withLock { state in
      // A fetch parked while its member left (or its group was deleted) takes nothing.
      guard state.sessions[SessionKey(group: group, member: member)] != nil else { return (nil, [], nil) }
      var changed = false
      if state.partitions[storeKey] == nil || state.topicIds[storeKey] != topicId {
        let reset =
          Self.autoOffsetReset(state.configs[group]?["share.auto.offset.reset"] ?? "latest") ?? .latest
        let start: Int64
        switch reset {
        case .earliest: start = logStart
        case .latest: start = partition.highWatermark
        case .byDuration(let ms):
          start = (try? partition.offset(for: .timestamp(wallNow - ms)))??.offset ?? partition.highWatermark
        }
        state.partitions[storeKey] = SharePartitionState(startOffset: start, limits: configuration.limits)
        state.topicIds[storeKey] = topicId
        changed = true
      }
      var (expired, dead) = state.partitions[storeKey]!.expireLocks(now: now)
      let exhausted = state.partitions[storeKey]!.archiveExhausted()
      dead += exhausted
      if !exhausted.isEmpty { changed = true }
      if state.partitions[storeKey]!.startOffset < logStart {
        state.partitions[storeKey]!.moveStart(to: logStart)
        changed = true
      } else if state.partitions[storeKey]!.endOffset > logEnd {
        // The log lost its tail (cut at recovery after a power loss): records handed out
        // beyond its end are gone, and offsets there will be reused by new records.
        state.partitions[storeKey]!.cutBack(to: logEnd)
        changed = true
      }
      if expired > 0 || changed { store.writeSoon([Self.persisted(state, storeKey)]) }
      let share = state.partitions[storeKey]!
      return (share.nextReadOffset, dead, share.nextLockDeadline)
    }
  }

  func bytesPerRecord(group: String, _ key: SharePartitionKey) -> Int? {
    state.withLock {
      $0.bytesPerRecord[ShareStore.Key(group: group, topic: key.topic, partition: key.partition)]
    }
  }

  func noteBytesPerRecord(group: String, _ key: SharePartitionKey, _ bytes: Int) {
    state.withLock {
      $0.bytesPerRecord[ShareStore.Key(group: group, topic: key.topic, partition: key.partition)] = bytes
    }
  }

  /// Acquires records among `offsets` for a member (see ``SharePartitionState/acquire``);
  /// the new delivery counts are queued for the journal without waiting.
  func acquire(
    group: String, member: String, _ key: SharePartitionKey, offsets: ClosedRange<Int64>, maxRecords: Int,
    now: Int64, batchEnds: [Int64]
  ) -> [SharePartitionState.Acquired] {
    let storeKey = ShareStore.Key(group: group, topic: key.topic, partition: key.partition)
    return state.withLock { state in
      guard state.partitions[storeKey] != nil, state.sessions[SessionKey(group: group, member: member)] != nil
      else { return [] }
      let acquired = state.partitions[storeKey]!.acquire(
        member: member, offsets: offsets, maxRecords: maxRecords, now: now, batchEnds: batchEnds)
      guard !acquired.isEmpty else { return [] }
      store.writeSoon([Self.persisted(state, storeKey)])
      return acquired
    }
  }
}
