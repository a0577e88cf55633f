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

  /// Kafka's ACL operation codes as a bit set (AclOperation: READ 3, WRITE 4, CREATE 5,
  /// DELETE 6, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11,
  /// IDEMPOTENT_WRITE 12). Without an authorizer Kafka reports every operation a resource
  /// type supports, and so does Sluice, which has none yet.
  static func operations(_ codes: [Int32]) -> Int32 { codes.reduce(0) { $0 | (1 << $1) } }
  /// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
  static let topicOperations = operations([3, 4, 5, 6, 7, 8, 10, 11])
  /// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
  static let clusterOperations = operations([5, 7, 8, 9, 10, 11, 12])

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
