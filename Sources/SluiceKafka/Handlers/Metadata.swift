import KafkaProtocol
import SluiceBroker

extension KafkaFrontDoor {
  func metadata(_ request: MetadataRequest, version: Int16) async -> MetadataResponse {
    let config = broker.config
    var response = MetadataResponse()
    response.brokers = [
      .init(nodeId: config.nodeId, host: config.advertisedHost, port: config.advertisedPort)
    ]
    if version >= 2 { response.clusterId = broker.clusterId }
    if version >= 1 { response.controllerId = config.nodeId }

    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all = request.topics == nil || (version == 0 && request.topics?.isEmpty == true)
    let allowCreate = (version < 4 || request.allowAutoTopicCreation) && config.autoCreateTopics
    var results: [MetadataResponse.MetadataResponseTopic] = []
    if all {
      results = broker.allTopics.map { describe($0, version: version) }
    } else {
      for requested in request.topics ?? [] {
        var name = requested.name
        if name == nil, requested.topicId != .zero, let byId = broker.topic(id: requested.topicId) {
          name = byId.name
        }
        guard let name else {
          results.append(
            .init(errorCode: ErrorCode.unknownTopicId.rawValue, name: nil, topicId: requested.topicId))
          continue
        }
        if let existing = broker.topic(name) {
          results.append(describe(existing, version: version))
        } else if let problem = validateTopicName(name) {
          _ = problem
          results.append(.init(errorCode: ErrorCode.invalidTopicException.rawValue, name: name))
        } else if allowCreate {
          do throws(TopicError) {
            let created = try await broker.createTopic(
              name: name, partitions: config.defaultPartitions, configs: [:])
            if let topic = created ?? broker.topic(name) { results.append(describe(topic, version: version)) }
          } catch .exists {
            if let existing = broker.topic(name) { results.append(describe(existing, version: version)) }
          } catch {
            results.append(.init(errorCode: error.code.rawValue, name: name))
          }
        } else {
          results.append(.init(errorCode: ErrorCode.unknownTopicOrPartition.rawValue, name: name))
        }
      }
    }
    if version >= 8 && request.includeTopicAuthorizedOperations {
      for index in results.indices where results[index].errorCode == 0 {
        results[index].topicAuthorizedOperations = Self.topicOperations
      }
    }
    if (8...10).contains(version) && request.includeClusterAuthorizedOperations {
      response.clusterAuthorizedOperations = Self.clusterOperations
    }
    response.topics = results
    return response
  }

  func describe(_ topic: Topic, version: Int16) -> MetadataResponse.MetadataResponseTopic {
    let config = broker.config
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
