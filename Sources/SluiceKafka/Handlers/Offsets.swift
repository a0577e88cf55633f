import KafkaProtocol
import SluiceBroker

/// OffsetCommit, OffsetFetch, OffsetDelete over the broker's committed offsets.
extension KafkaFrontDoor {
  /// OffsetCommit: READ on the group (else every partition GROUP_AUTHORIZATION_FAILED) and
  /// READ on each topic (TOPIC_AUTHORIZATION_FAILED for its partitions).
  func offsetCommit(_ request: OffsetCommitRequest, version: Int16, access: Access) async
    -> OffsetCommitResponse
  {
    if !access.allows(.read, .group, request.groupId) {
      return Self.offsetCommitRefused(request, .groupAuthorizationFailed) { _ in true }
    }
    let deniedTopics = Set(request.topics.map(\.name).filter { !access.allows(.read, .topic, $0) })
    if !deniedTopics.isEmpty {
      var allowed = request
      allowed.topics.removeAll { deniedTopics.contains($0.name) }
      var response = await offsetCommit(allowed, version: version, access: access)
      let refused = Self.offsetCommitRefused(request, .topicAuthorizationFailed) { deniedTopics.contains($0) }
      response.topics += refused.topics.filter { deniedTopics.contains($0.name) }
      return response
    }
    let member = GroupMemberRef(
      groupId: request.groupId, memberId: request.memberId,
      groupInstanceId: version >= 7 ? request.groupInstanceId : nil,
      generationId: request.generationIdOrMemberEpoch)
    var entries: [(topic: String, partition: Int32, offset: CommittedOffset)] = []
    for topic in request.topics {
      for partition in topic.partitions {
        entries.append(
          (
            topic.name, partition.partitionIndex,
            CommittedOffset(
              offset: partition.committedOffset,
              leaderEpoch: version >= 6 ? partition.committedLeaderEpoch : -1,
              metadata: partition.committedMetadata ?? "")  // Kafka stores a null as ""
          ))
      }
    }
    var codes = await broker.commitOffsets(member, entries).makeIterator()
    var response = OffsetCommitResponse()
    for topic in request.topics {
      var result = OffsetCommitResponse.OffsetCommitResponseTopic(name: topic.name)
      for partition in topic.partitions {
        let code = codes.next() ?? .unknownServerError
        result.partitions.append(.init(partitionIndex: partition.partitionIndex, errorCode: code.rawValue))
      }
      response.topics.append(result)
    }
    return response
  }

  static func offsetCommitRefused(
    _ request: OffsetCommitRequest, _ code: ErrorCode, _ which: (String) -> Bool
  ) -> OffsetCommitResponse {
    var response = OffsetCommitResponse()
    response.topics = request.topics.filter { which($0.name) }.map { topic in
      .init(
        name: topic.name,
        partitions: topic.partitions.map {
          .init(partitionIndex: $0.partitionIndex, errorCode: code.rawValue)
        })
    }
    return response
  }

  /// OffsetFetch: DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED) and on each topic
  /// (named topics: TOPIC_AUTHORIZATION_FAILED; all topics: those not allowed are left out).
  func offsetFetch(_ request: OffsetFetchRequest, version: Int16, access: Access) -> OffsetFetchResponse {
    var response = OffsetFetchResponse()
    let denied = ErrorCode.topicAuthorizationFailed.rawValue
    if version >= 8 {
      response.groups = request.groups.map { group in
        var result = OffsetFetchResponse.OffsetFetchResponseGroup(groupId: group.groupId)
        guard access.allows(.describe, .group, group.groupId) else {
          result.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
          return result
        }
        let topics = group.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }
        result.topics = broker.committedOffsets(group: group.groupId, topics: topics).compactMap { topic in
          let allowed = access.allows(.describe, .topic, topic.name)
          if !allowed && group.topics == nil { return nil }
          return .init(
            name: topic.name,
            partitions: topic.partitions.map { partition in
              guard allowed else {
                return .init(
                  partitionIndex: partition.index, committedOffset: -1, committedLeaderEpoch: -1,
                  metadata: "",
                  errorCode: denied)
              }
              return .init(
                partitionIndex: partition.index, committedOffset: partition.committed?.offset ?? -1,
                committedLeaderEpoch: partition.committed?.leaderEpoch ?? -1,
                metadata: partition.committed?.metadata ?? "", errorCode: 0)
            })
        }
        return result
      }
      return response
    }
    guard access.allows(.describe, .group, request.groupId) else {
      response.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
      return response
    }
    let topics = request.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }
    response.topics = broker.committedOffsets(group: request.groupId, topics: topics).compactMap { topic in
      let allowed = access.allows(.describe, .topic, topic.name)
      if !allowed && request.topics == nil { return nil }
      return .init(
        name: topic.name,
        partitions: topic.partitions.map { partition in
          var entry = OffsetFetchResponse.OffsetFetchResponsePartition(
            partitionIndex: partition.index,
            committedOffset: allowed ? partition.committed?.offset ?? -1 : -1,
            metadata: allowed ? partition.committed?.metadata ?? "" : "", errorCode: allowed ? 0 : denied)
          if version >= 5 {
            entry.committedLeaderEpoch = allowed ? partition.committed?.leaderEpoch ?? -1 : -1
          }
          return entry
        })
    }
    return response
  }

  /// OffsetDelete: DELETE on the group (GROUP_AUTHORIZATION_FAILED), READ on each topic.
  func offsetDelete(_ request: OffsetDeleteRequest, access: Access) async -> OffsetDeleteResponse {
    var response = OffsetDeleteResponse()
    guard access.allows(.delete, .group, request.groupId) else {
      response.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
      return response
    }
    let deniedTopics = Set(request.topics.map(\.name).filter { !access.allows(.read, .topic, $0) })
    if !deniedTopics.isEmpty {
      var allowed = request
      allowed.topics.removeAll { deniedTopics.contains($0.name) }
      response = await offsetDelete(allowed, access: access)
      for topic in request.topics where deniedTopics.contains(topic.name) {
        response.topics.append(
          .init(
            name: topic.name,
            partitions: topic.partitions.map {
              .init(partitionIndex: $0.partitionIndex, errorCode: ErrorCode.topicAuthorizationFailed.rawValue)
            }))
      }
      return response
    }
    let entries = request.topics.flatMap { topic in topic.partitions.map { (topic.name, $0.partitionIndex) } }
    switch await broker.deleteOffsets(group: request.groupId, entries) {
    case .failure(let error):
      response.errorCode = error.code.rawValue
    case .success(let codes):
      var next = codes.makeIterator()
      for topic in request.topics {
        var result = OffsetDeleteResponse.OffsetDeleteResponseTopic(name: topic.name)
        for partition in topic.partitions {
          let code = next.next() ?? .unknownServerError
          result.partitions.append(.init(partitionIndex: partition.partitionIndex, errorCode: code.rawValue))
        }
        response.topics.append(result)
      }
    }
    return response
  }
}
