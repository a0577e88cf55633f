import KafkaProtocol

extension KafkaAdmin {
  /// A group as ListGroups reports it.
  public struct GroupListing: Sendable, Hashable {
    /// The group id.
    public var groupId: String
    /// "consumer" for consumer groups; empty for groups that only hold offsets.
    public var protocolType: String
    /// Stable, PreparingRebalance, CompletingRebalance, Empty, Dead (empty when the broker
    /// does not report states).
    public var state: String
  }

  /// One member of a described group.
  public struct GroupMemberDescription: Sendable, Hashable {
    /// The id the coordinator gave the member.
    public var memberId: String
    /// Its `group.instance.id` when it is a static member.
    public var groupInstanceId: String?
    /// The `client.id` of its connection.
    public var clientId: String
    /// Where it connects from, as the coordinator reports it (`/127.0.0.1`).
    public var clientHost: String
    /// The member's partitions (decoded for consumer groups while Stable, else empty).
    public var assignment: [KafkaTopicPartition]
  }

  /// A group as DescribeGroups reports it.
  public struct GroupDescription: Sendable, Hashable {
    /// The group id.
    public var groupId: String
    /// Stable, PreparingRebalance, CompletingRebalance, Empty or Dead (unknown groups).
    public var state: String
    /// "consumer" for consumer groups.
    public var protocolType: String
    /// The assignor chosen for the current generation.
    public var protocolName: String
    /// Its members, by member id.
    public var members: [GroupMemberDescription]
  }

  /// The coordinator of `groupId` (FindCoordinator).
  private func coordinator(for groupId: String) async throws -> KafkaConnection {
    try await findGroupCoordinator(groupId, cluster: cluster).connection
  }

  /// A share group (KIP-932) as ShareGroupDescribe reports it.
  public struct ShareGroupDescription: Sendable, Hashable {
    public var groupId: String
    /// Empty or Stable.
    public var state: String
    public var groupEpoch: Int32
    public var members: [GroupMemberDescription]
  }

  /// Describes a share group; nil when there is none of that id (or the broker has no
  /// share groups).
  public func describeShareGroup(_ groupId: String) async throws -> ShareGroupDescription? {
    let connection = try await coordinator(for: groupId)
    guard let version = try? connection.version(for: .shareGroupDescribe, min: 1, max: 1) else { return nil }
    var request = ShareGroupDescribeRequest()
    request.groupIds = [groupId]
    guard
      case .shareGroupDescribe(let response) = try await connection.send(
        .shareGroupDescribe(request), version: version)
    else { throw KafkaError(.protocolError, "not a ShareGroupDescribe response") }
    guard let group = response.groups.first(where: { $0.groupId == groupId }) else { return nil }
    let code = ErrorCode(rawValue: group.errorCode)
    if code == .groupIdNotFound { return nil }
    try code.check("ShareGroupDescribe \(groupId)", message: group.errorMessage)
    let members = group.members.map { member in
      GroupMemberDescription(
        memberId: member.memberId, groupInstanceId: nil, clientId: member.clientId,
        clientHost: member.clientHost,
        assignment: member.assignment.topicPartitions.flatMap { topic in
          topic.partitions.map {
            KafkaTopicPartition(topic: topic.topicName, partition: KafkaPartition(rawValue: Int($0)))
          }
        })
    }
    return ShareGroupDescription(
      groupId: groupId, state: group.groupState, groupEpoch: group.groupEpoch,
      members: members.sorted { $0.memberId < $1.memberId })
  }

  /// Every group of every broker, sorted by id.
  public func listGroups() async throws -> [GroupListing] {
    _ = try await cluster.refreshMetadata(topics: [])
    var nodes = await cluster.knownBrokers.map(\.nodeId)
    if nodes.isEmpty { nodes = [-1] }
    var result: [String: GroupListing] = [:]
    for node in nodes {
      let connection = node < 0 ? try await cluster.anyConnection() : try await cluster.connection(node: node)
      let version = try connection.version(for: .listGroups, max: 4)
      guard
        case .listGroups(let response) = try await connection.send(
          .listGroups(ListGroupsRequest()), version: version)
      else { throw KafkaError(.protocolError, "not a ListGroups response") }
      try ErrorCode(rawValue: response.errorCode).check("ListGroups")
      for group in response.groups {
        result[group.groupId] = GroupListing(
          groupId: group.groupId, protocolType: group.protocolType, state: group.groupState)
      }
    }
    return result.values.sorted { $0.groupId < $1.groupId }
  }

  /// Describes groups; an unknown group is reported in state Dead (as Kafka does).
  public func describeGroups(_ groupIds: [String]) async throws -> [GroupDescription] {
    var result: [GroupDescription] = []
    for groupId in groupIds {
      let connection = try await coordinator(for: groupId)
      let version = try connection.version(for: .describeGroups, max: 5)
      var request = DescribeGroupsRequest()
      request.groups = [groupId]
      guard
        case .describeGroups(let response) = try await connection.send(
          .describeGroups(request), version: version)
      else { throw KafkaError(.protocolError, "not a DescribeGroups response") }
      for group in response.groups {
        try ErrorCode(rawValue: group.errorCode).check("DescribeGroups \(group.groupId)")
        let members = group.members.map { member in
          GroupMemberDescription(
            memberId: member.memberId, groupInstanceId: member.groupInstanceId, clientId: member.clientId,
            clientHost: member.clientHost,
            assignment: group.protocolType == "consumer"
              ? (try? ConsumerProtocol.decodeAssignment(member.memberAssignment)) ?? [] : [])
        }
        result.append(
          GroupDescription(
            groupId: group.groupId, state: group.groupState, protocolType: group.protocolType,
            protocolName: group.protocolData, members: members.sorted { $0.memberId < $1.memberId }))
      }
    }
    return result
  }

  /// Deletes groups (only groups without members can be deleted: NON_EMPTY_GROUP).
  public func deleteGroups(_ groupIds: [String]) async throws {
    for groupId in groupIds {
      let connection = try await coordinator(for: groupId)
      let version = try connection.version(for: .deleteGroups, max: 2)
      var request = DeleteGroupsRequest()
      request.groupsNames = [groupId]
      guard
        case .deleteGroups(let response) = try await connection.send(.deleteGroups(request), version: version)
      else { throw KafkaError(.protocolError, "not a DeleteGroups response") }
      for result in response.results {
        try ErrorCode(rawValue: result.errorCode).check("delete group \(result.groupId)")
      }
    }
  }

  /// The committed offsets of a group (`partitions` nil: every partition it has an
  /// offset for).
  public func committedOffsets(group groupId: String, partitions: [KafkaTopicPartition]? = nil)
    async throws -> [KafkaTopicPartition: KafkaOffset]
  {
    let connection = try await coordinator(for: groupId)
    return try await fetchCommittedOffsets(connection: connection, groupId: groupId, partitions: partitions)
      .mapValues { KafkaOffset(rawValue: Int($0)) }
  }

  /// For each partition, the first offset whose record timestamp is at or after `timestamp`
  /// (epoch milliseconds), or the log end where no record is that recent (ListOffsets; as
  /// `kafka-consumer-groups --reset-offsets --to-datetime`).
  public func offsets(forTimestamp timestamp: Int64, partitions: [KafkaTopicPartition]) async throws
    -> [KafkaTopicPartition: KafkaOffset]
  {
    let found = try await listOffsets(
      cluster, Dictionary(uniqueKeysWithValues: partitions.map { ($0, max(0, timestamp)) }))
    let missing = found.filter { $0.value < 0 }.map(\.key)
    let ends =
      missing.isEmpty
      ? [:] : try await listOffsets(cluster, Dictionary(uniqueKeysWithValues: missing.map { ($0, -1) }))
    return found.mapValues { KafkaOffset(rawValue: Int($0)) }.merging(
      ends.mapValues { KafkaOffset(rawValue: Int($0)) }
    ) {
      _, end in end
    }
  }

  /// Sets a group's committed offsets (`kafka-consumer-groups --reset-offsets`). The
  /// group must have no active members (the coordinator refuses a commit from outside a
  /// live generation). Logical offsets (`.beginning`, `.end`) are resolved first.
  public func resetOffsets(group groupId: String, to offsets: [KafkaTopicPartition: KafkaOffset]) async throws
  {
    guard !offsets.isEmpty else { return }
    var resolved: [KafkaTopicPartition: Int64] = [:]
    var logical: [KafkaTopicPartition: Int64] = [:]
    for (topicPartition, offset) in offsets {
      if offset.rawValue >= 0 {
        resolved[topicPartition] = Int64(offset.rawValue)
      } else {
        logical[topicPartition] = Int64(offset.rawValue)
      }
    }
    if !logical.isEmpty {
      for (topicPartition, offset) in try await listOffsets(cluster, logical) {
        resolved[topicPartition] = offset
      }
    }
    let connection = try await coordinator(for: groupId)
    let version = try connection.version(for: .offsetCommit, min: 2, max: 8)
    var request = OffsetCommitRequest()
    request.groupId = groupId
    request.generationIdOrMemberEpoch = -1
    request.memberId = ""
    let byTopic = Dictionary(grouping: resolved.keys, by: \.topic)
    request.topics = byTopic.keys.sorted().map { topic in
      .init(
        name: topic,
        partitions: byTopic[topic]!.sorted { $0.partition.rawValue < $1.partition.rawValue }.map {
          .init(
            partitionIndex: Int32($0.partition.rawValue), committedOffset: resolved[$0]!,
            committedMetadata: "")
        })
    }
    guard
      case .offsetCommit(let response) = try await connection.send(.offsetCommit(request), version: version)
    else { throw KafkaError(.protocolError, "not an OffsetCommit response") }
    for topic in response.topics {
      for partition in topic.partitions {
        let code = ErrorCode(rawValue: partition.errorCode)
        if code == .unknownMemberId || code == .illegalGeneration || code == .rebalanceInProgress {
          throw KafkaError.broker(
            code, "reset offsets of group \(groupId)",
            message: "the group has active members; stop them first")
        }
        try code.check("reset offsets of group \(groupId) \(topic.name)-\(partition.partitionIndex)")
      }
    }
  }
}
