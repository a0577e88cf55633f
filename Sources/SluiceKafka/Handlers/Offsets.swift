import KafkaProtocol
import SluiceBroker

/// OffsetCommit, OffsetFetch, OffsetDelete over the broker's committed offsets.
extension KafkaFrontDoor {
  func offsetCommit(_ request: OffsetCommitRequest, version: Int16) async -> OffsetCommitResponse {
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

  func offsetFetch(_ request: OffsetFetchRequest, version: Int16) -> OffsetFetchResponse {
    var response = OffsetFetchResponse()
    if version >= 8 {
      response.groups = request.groups.map { group in
        var result = OffsetFetchResponse.OffsetFetchResponseGroup(groupId: group.groupId)
        let topics = group.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }
        result.topics = broker.committedOffsets(group: group.groupId, topics: topics).map { topic in
          .init(
            name: topic.name,
            partitions: topic.partitions.map { partition in
              .init(
                partitionIndex: partition.index, committedOffset: partition.committed?.offset ?? -1,
                committedLeaderEpoch: partition.committed?.leaderEpoch ?? -1,
                metadata: partition.committed?.metadata ?? "", errorCode: 0)
            })
        }
        return result
      }
      return response
    }
    let topics = request.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }
    response.topics = broker.committedOffsets(group: request.groupId, topics: topics).map { topic in
      .init(
        name: topic.name,
        partitions: topic.partitions.map { partition in
          var entry = OffsetFetchResponse.OffsetFetchResponsePartition(
            partitionIndex: partition.index, committedOffset: partition.committed?.offset ?? -1,
            metadata: partition.committed?.metadata ?? "", errorCode: 0)
          if version >= 5 { entry.committedLeaderEpoch = partition.committed?.leaderEpoch ?? -1 }
          return entry
        })
    }
    return response
  }

  func offsetDelete(_ request: OffsetDeleteRequest) async -> OffsetDeleteResponse {
    var response = OffsetDeleteResponse()
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
