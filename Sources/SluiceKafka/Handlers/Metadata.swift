import KafkaProtocol
import SluiceBroker

extension KafkaFrontDoor {
  /// Metadata. With ACLs, listing all topics shows only those the principal may DESCRIBE;
  /// a named one it may not is answered TOPIC_AUTHORIZATION_FAILED; auto-creation needs
  /// CREATE on the cluster or the topic.
  func metadata(_ request: MetadataRequest, version: Int16, context: RequestContext, access: Access) async
    -> MetadataResponse
  {
    let config = broker.config
    var response = MetadataResponse()
    let (host, port) = context.advertised ?? (config.advertisedHost, config.advertisedPort)
    response.brokers = [.init(nodeId: config.nodeId, host: host, port: port)]
    if version >= 2 { response.clusterId = broker.clusterId }
    if version >= 1 { response.controllerId = config.nodeId }

    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all = request.topics == nil || (version == 0 && request.topics?.isEmpty == true)
    let allowCreate = (version < 4 || request.allowAutoTopicCreation) && config.autoCreateTopics
    var results: [MetadataResponse.MetadataResponseTopic] = []
    if all {
      results = broker.allTopics.filter { access.allows(.describe, .topic, $0.name) }.map {
        describe($0, version: version)
      }
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
        // DESCRIBE is checked before existence (an unauthorized principal learns nothing).
        if !access.allows(.describe, .topic, name) {
          // Asked by id: the name is not told.
          let shown = requested.name == nil ? nil : name
          results.append(
            .init(
              errorCode: ErrorCode.topicAuthorizationFailed.rawValue, name: shown, topicId: requested.topicId)
          )
        } else if let existing = broker.topic(name) {
          results.append(describe(existing, version: version))
        } else if let problem = validateTopicName(name) {
          _ = problem
          results.append(.init(errorCode: ErrorCode.invalidTopicException.rawValue, name: name))
        } else if allowCreate && !access.allowsCluster(.create) && !access.allows(.create, .topic, name) {
          results.append(.init(errorCode: ErrorCode.topicAuthorizationFailed.rawValue, name: name))
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
        results[index].topicAuthorizedOperations = access.operations(
          Self.topicOperations, .topic, results[index].name ?? "")
      }
    }
    if (8...10).contains(version) && request.includeClusterAuthorizedOperations {
      response.clusterAuthorizedOperations = access.operations(
        Self.clusterOperations, .cluster, "kafka-cluster")
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
