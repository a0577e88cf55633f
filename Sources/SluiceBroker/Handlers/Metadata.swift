import KafkaProtocol

extension Broker {
  func metadata(_ request: MetadataRequest, version: Int16) -> MetadataResponse {
    var response = MetadataResponse()
    response.brokers = [
      .init(nodeId: config.nodeId, host: config.advertisedHost, port: config.advertisedPort)
    ]
    if version >= 2 { response.clusterId = clusterId }
    if version >= 1 { response.controllerId = config.nodeId }

    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all = request.topics == nil || (version == 0 && request.topics?.isEmpty == true)
    let allowCreate = (version < 4 || request.allowAutoTopicCreation) && config.autoCreateTopics
    var results: [MetadataResponse.MetadataResponseTopic] = []
    if all {
      results = allTopics.map { describe($0, version: version) }
    } else {
      for requested in request.topics ?? [] {
        var name = requested.name
        if name == nil, requested.topicId != .zero, let byId = topic(id: requested.topicId) {
          name = byId.name
        }
        guard let name else {
          results.append(
            .init(errorCode: ErrorCode.unknownTopicId.rawValue, name: nil, topicId: requested.topicId))
          continue
        }
        if let existing = topic(name) {
          results.append(describe(existing, version: version))
        } else if let problem = validateTopicName(name) {
          _ = problem
          results.append(.init(errorCode: ErrorCode.invalidTopicException.rawValue, name: name))
        } else if allowCreate {
          do {
            let created = try createTopic(name: name, partitions: config.defaultPartitions, configs: [:])
            results.append(describe(created ?? topic(name)!, version: version))
          } catch .exists {
            if let existing = topic(name) { results.append(describe(existing, version: version)) }
          } catch {
            results.append(.init(errorCode: error.code.rawValue, name: name))
          }
        } else {
          results.append(.init(errorCode: ErrorCode.unknownTopicOrPartition.rawValue, name: name))
        }
      }
    }
    response.topics = results
    return response
  }

  func describe(_ topic: Topic, version: Int16) -> MetadataResponse.MetadataResponseTopic {
    var result = MetadataResponse.MetadataResponseTopic(name: topic.name)
    if version >= 10 { result.topicId = topic.id }
    result.partitions = topic.partitions.map { partition in
      var entry = MetadataResponse.MetadataResponsePartition(
        partitionIndex: partition.index, leaderId: config.nodeId, replicaNodes: [config.nodeId],
        isrNodes: [config.nodeId])
      // Leader epochs are not tracked (single node): -1 everywhere, so clients never
      // send OffsetForLeaderEpoch.
      entry.leaderEpoch = -1
      return entry
    }
    return result
  }
}
