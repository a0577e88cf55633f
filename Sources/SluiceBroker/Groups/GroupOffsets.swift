public import KafkaProtocol

/// A committed position of a consumer group in one partition.
public struct CommittedOffset: Sendable, Hashable {
  public var offset: Int64
  public var leaderEpoch: Int32
  public var metadata: String

  public init(offset: Int64, leaderEpoch: Int32 = -1, metadata: String = "") {
    self.offset = offset
    self.leaderEpoch = leaderEpoch
    self.metadata = metadata
  }
}

/// Which group member commits, as the coordinator checks it (Kafka's OffsetCommit fields;
/// a standalone consumer commits with generation -1 and no member id).
public struct GroupMemberRef: Sendable {
  public var groupId: String
  public var memberId: String
  public var groupInstanceId: String?
  public var generationId: Int32

  public init(
    groupId: String, memberId: String = "", groupInstanceId: String? = nil, generationId: Int32 = -1
  ) {
    self.groupId = groupId
    self.memberId = memberId
    self.groupInstanceId = groupInstanceId
    self.generationId = generationId
  }
}

/// Committed offsets: commits (checked against the group's membership and generation),
/// reads and deletions, persisted in the crash-safe offsets journal. The time of a commit is
/// the broker's clock (offset expiry counts from it; a client's commit timestamp or
/// retention time is not used).
extension Broker {
  /// Commits positions; one error code per entry (`.none` where it was stored).
  public func commitOffsets(
    _ member: GroupMemberRef, _ entries: [(topic: String, partition: Int32, offset: CommittedOffset)]
  ) async -> [ErrorCode] {
    let groupError = groups.authorizeCommit(
      groupId: member.groupId, memberId: member.memberId, groupInstanceId: member.groupInstanceId,
      generationId: member.generationId)
    let now = clock.now()
    var codes: [ErrorCode] = []
    var changes: [OffsetStore.Change] = []
    var written: [Int] = []
    for entry in entries {
      var code = groupError
      if code == .none {
        if topic(entry.topic)?.partition(entry.partition) == nil {
          code = .unknownTopicOrPartition
        } else if entry.offset.metadata.utf8.count > groups.configuration.offsetMetadataMaxBytes {
          code = .offsetMetadataTooLarge
        } else {
          let committed = OffsetStore.Committed(
            offset: entry.offset.offset, leaderEpoch: entry.offset.leaderEpoch,
            metadata: entry.offset.metadata,
            commitTimestamp: now)
          changes.append(
            .commit(group: member.groupId, .init(topic: entry.topic, partition: entry.partition), committed))
          written.append(codes.count)
        }
      }
      codes.append(code)
    }
    if await groups.offsets.apply(changes) != nil {
      for index in written { codes[index] = .kafkaStorageError }
    }
    return codes
  }

  /// A group's committed offsets: of the listed partitions (nil where none is committed), or
  /// (nil topics) every one, by topic name.
  public func committedOffsets(group: String, topics: [(name: String, partitions: [Int32])]?)
    -> [(name: String, partitions: [(index: Int32, committed: CommittedOffset?)])]
  {
    let stored = groups.offsets.offsets(group)
    func value(_ committed: OffsetStore.Committed?) -> CommittedOffset? {
      committed.map {
        CommittedOffset(offset: $0.offset, leaderEpoch: $0.leaderEpoch, metadata: $0.metadata ?? "")
      }
    }
    if let topics {
      return topics.map { topic in
        (topic.name, topic.partitions.map { ($0, value(stored[.init(topic: topic.name, partition: $0)])) })
      }
    }
    var byTopic: [String: [(index: Int32, committed: CommittedOffset?)]] = [:]
    for (key, committed) in stored.sorted(by: { $0.key < $1.key }) {
      byTopic[key.topic, default: []].append((key.partition, value(committed)))
    }
    return byTopic.keys.sorted().map { ($0, byTopic[$0]!) }
  }

  /// Deletes committed offsets of a group (Kafka's OffsetDelete): refused for the whole
  /// group when it is unknown or not empty, per partition when the group consumes that topic.
  /// Returns the group's error, or one code per entry.
  public func deleteOffsets(group: String, _ entries: [(topic: String, partition: Int32)]) async -> Result<
    [ErrorCode], BrokerError
  > {
    let (groupError, subscribed) = groups.offsetDeletionCheck(group)
    if groupError != .none { return .failure(BrokerError(groupError, "")) }
    let stored = groups.offsets.offsets(group)
    var codes: [ErrorCode] = []
    var changes: [OffsetStore.Change] = []
    var written: [Int] = []
    for entry in entries {
      let key = OffsetStore.Key(topic: entry.topic, partition: entry.partition)
      var code = ErrorCode.none
      if subscribed.map({ $0.contains(entry.topic) }) ?? true {
        code = .groupSubscribedToTopic
      } else if stored[key] != nil {
        changes.append(.delete(group: group, key))
        written.append(codes.count)
      } else if topic(entry.topic)?.partition(entry.partition) == nil {
        code = .unknownTopicOrPartition
      }
      codes.append(code)
    }
    if await groups.offsets.apply(changes) != nil {
      for index in written { codes[index] = .kafkaStorageError }
    }
    return .success(codes)
  }
}
