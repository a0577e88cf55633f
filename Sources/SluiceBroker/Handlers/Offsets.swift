import KafkaProtocol

/// OffsetCommit, OffsetFetch, OffsetDelete over the ``OffsetStore``.
extension Broker {
  func offsetCommit(_ request: OffsetCommitRequest, version: Int16) async -> OffsetCommitResponse {
    let groupError = groups.authorizeCommit(
      groupId: request.groupId, memberId: request.memberId,
      groupInstanceId: version >= 7 ? request.groupInstanceId : nil,
      generationId: request.generationIdOrMemberEpoch)
    let now = clock()
    var response = OffsetCommitResponse()
    var changes: [OffsetStore.Change] = []
    /// (topic index, partition index) of each partition whose outcome depends on the write.
    var written: [(Int, Int)] = []
    for topic in request.topics {
      var result = OffsetCommitResponse.OffsetCommitResponseTopic(name: topic.name)
      let known = self.topic(topic.name)
      for partition in topic.partitions {
        var code = groupError
        if code == .none {
          if known?.partition(partition.partitionIndex) == nil {
            code = .unknownTopicOrPartition
          } else if (partition.committedMetadata?.utf8.count ?? 0)
            > groups.configuration.offsetMetadataMaxBytes
          {
            code = .offsetMetadataTooLarge
          } else {
            let committed = OffsetStore.Committed(
              offset: partition.committedOffset,
              leaderEpoch: version >= 6 ? partition.committedLeaderEpoch : -1,
              metadata: partition.committedMetadata ?? "",  // Kafka stores a null as ""
              commitTimestamp: now)
            changes.append(
              .commit(
                group: request.groupId, .init(topic: topic.name, partition: partition.partitionIndex),
                committed))
            written.append((response.topics.count, result.partitions.count))
          }
        }
        result.partitions.append(.init(partitionIndex: partition.partitionIndex, errorCode: code.rawValue))
      }
      response.topics.append(result)
    }
    if await groups.offsets.apply(changes) != nil {
      for (topic, partition) in written {
        response.topics[topic].partitions[partition].errorCode = ErrorCode.kafkaStorageError.rawValue
      }
    }
    return response
  }

  /// The committed offsets of one group: of the listed partitions, or (nil) every one.
  func committedOffsets(group: String, topics: [(name: String, partitions: [Int32])]?)
    -> [(name: String, partitions: [(index: Int32, committed: OffsetStore.Committed?)])]
  {
    let stored = groups.offsets.offsets(group)
    if let topics {
      return topics.map { topic in
        (topic.name, topic.partitions.map { ($0, stored[.init(topic: topic.name, partition: $0)]) })
      }
    }
    var byTopic: [String: [(index: Int32, committed: OffsetStore.Committed?)]] = [:]
    for (key, committed) in stored.sorted(by: { $0.key < $1.key }) {
      byTopic[key.topic, default: []].append((key.partition, committed))
    }
    return byTopic.keys.sorted().map { ($0, byTopic[$0]!) }
  }

  func offsetFetch(_ request: OffsetFetchRequest, version: Int16) -> OffsetFetchResponse {
    var response = OffsetFetchResponse()
    if version >= 8 {
      response.groups = request.groups.map { group in
        var result = OffsetFetchResponse.OffsetFetchResponseGroup(groupId: group.groupId)
        let topics = group.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }
        result.topics = committedOffsets(group: group.groupId, topics: topics).map { topic in
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
    response.topics = committedOffsets(group: request.groupId, topics: topics).map { topic in
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
    let (groupError, subscribed) = groups.offsetDeletionCheck(request.groupId)
    if groupError != .none {
      response.errorCode = groupError.rawValue
      return response
    }
    let stored = groups.offsets.offsets(request.groupId)
    var changes: [OffsetStore.Change] = []
    var written: [(Int, Int)] = []
    for topic in request.topics {
      var result = OffsetDeleteResponse.OffsetDeleteResponseTopic(name: topic.name)
      let known = self.topic(topic.name)
      for partition in topic.partitions {
        let key = OffsetStore.Key(topic: topic.name, partition: partition.partitionIndex)
        var code = ErrorCode.none
        if subscribed.map({ $0.contains(topic.name) }) ?? true {
          code = .groupSubscribedToTopic
        } else if stored[key] != nil {
          changes.append(.delete(group: request.groupId, key))
          written.append((response.topics.count, result.partitions.count))
        } else if known?.partition(partition.partitionIndex) == nil {
          code = .unknownTopicOrPartition
        }
        result.partitions.append(.init(partitionIndex: partition.partitionIndex, errorCode: code.rawValue))
      }
      response.topics.append(result)
    }
    if await groups.offsets.apply(changes) != nil {
      for (topic, partition) in written {
        response.topics[topic].partitions[partition].errorCode = ErrorCode.kafkaStorageError.rawValue
      }
    }
    return response
  }
}
