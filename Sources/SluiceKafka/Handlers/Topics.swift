import KafkaProtocol
import SluiceBroker

/// CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords over the topic registry.
extension KafkaFrontDoor {
  /// CreateTopics: CREATE on the cluster or on the topic (TOPIC_AUTHORIZATION_FAILED).
  func createTopics(_ request: CreateTopicsRequest, version: Int16, access: Access) async
    -> CreateTopicsResponse
  {
    let config = broker.config
    let clusterCreate = access.allowsCluster(.create)
    var response = CreateTopicsResponse()
    var seen: Set<String> = []
    for requested in request.topics {
      var result = CreateTopicsResponse.CreatableTopicResult(name: requested.name)
      func fail(_ code: ErrorCode, _ message: String) {
        result.errorCode = code.rawValue
        if version >= 1 { result.errorMessage = message }
      }
      if !seen.insert(requested.name).inserted {
        fail(ErrorCode.invalidRequest, "Topic \(requested.name) appears more than once in the request")
      } else if !clusterCreate && !access.allows(.create, .topic, requested.name) {
        fail(ErrorCode.topicAuthorizationFailed, "CREATE on topic \(requested.name) is not allowed")
      } else if requested.replicationFactor == 0 || requested.replicationFactor < -1 {
        fail(
          ErrorCode.invalidReplicationFactor,
          "Replication factor must be larger than 0, or -1 to use the default.")
      } else if requested.replicationFactor > 1 {
        fail(
          ErrorCode.invalidReplicationFactor,
          "Replication factor \(requested.replicationFactor) is larger than the number of brokers (1)")
      } else if !requested.assignments.isEmpty
        && requested.assignments.contains(where: { $0.brokerIds != [config.nodeId] })
      {
        fail(ErrorCode.invalidReplicaAssignment, "Replica assignments may name only broker \(config.nodeId)")
      } else {
        let count =
          requested.numPartitions == -1
          ? (requested.assignments.isEmpty ? config.defaultPartitions : Int32(requested.assignments.count))
          : requested.numPartitions
        var configs: [String: String] = [:]
        for entry in requested.configs {
          if let value = entry.value { configs[entry.name] = value }
        }
        do {
          let created = try await broker.createTopic(
            name: requested.name, partitions: count, configs: configs, validateOnly: request.validateOnly)
          if version >= 7 { result.topicId = created?.id ?? .zero }
          if version >= 5 {
            result.numPartitions = count
            result.replicationFactor = 1
            let topicConfig = created?.config ?? (try? broker.topics.makeTopicConfig(configs))
            result.configs =
              topicConfig?.effectiveValues().map {
                .init(
                  name: $0.name, value: $0.value, readOnly: false, configSource: $0.isDefault ? 5 : 1,
                  isSensitive: false)
              } ?? []
          }
        } catch {
          fail(error.code, error.message)
        }
      }
      if version >= 5 && result.errorCode != 0 {
        result.numPartitions = -1
        result.replicationFactor = -1
        result.configs = nil
      }
      response.topics.append(result)
    }
    return response
  }

  /// DeleteTopics: DELETE on each topic (TOPIC_AUTHORIZATION_FAILED).
  func deleteTopics(_ request: DeleteTopicsRequest, version: Int16, access: Access) async
    -> DeleteTopicsResponse
  {
    var response = DeleteTopicsResponse()
    let targets: [(name: String?, id: KafkaUUID)] =
      version >= 6 ? request.topics.map { ($0.name, $0.topicId) } : request.topicNames.map { ($0, .zero) }
    for target in targets {
      var result = DeleteTopicsResponse.DeletableTopicResult(name: target.name)
      if version >= 6 { result.topicId = target.id }
      let existing =
        target.name.flatMap { broker.topic($0) } ?? (target.id != .zero ? broker.topic(id: target.id) : nil)
      // DELETE is checked before existence, by the name asked for (an unauthorized principal
      // learns nothing of whether it exists).
      if let name = target.name ?? existing?.name, !access.allows(.delete, .topic, name) {
        result.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
      } else if let existing {
        result.name = existing.name
        if version >= 6 { result.topicId = existing.id }
        do {
          _ = try await broker.deleteTopic(existing.name)
        } catch {
          result.errorCode = ErrorCode.kafkaStorageError.rawValue
          if version >= 5 { result.errorMessage = error.message }
        }
      } else {
        result.errorCode = (target.name == nil ? ErrorCode.unknownTopicId : .unknownTopicOrPartition).rawValue
      }
      response.responses.append(result)
    }
    return response
  }

  /// CreatePartitions: ALTER on each topic (TOPIC_AUTHORIZATION_FAILED).
  func createPartitions(_ request: CreatePartitionsRequest, access: Access) async -> CreatePartitionsResponse
  {
    var response = CreatePartitionsResponse()
    for requested in request.topics {
      var result = CreatePartitionsResponse.CreatePartitionsTopicResult(name: requested.name)
      if !access.allows(.alter, .topic, requested.name) {
        result.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
        result.errorMessage = "ALTER on topic \(requested.name) is not allowed"
      } else if broker.topic(requested.name) == nil {
        result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
        result.errorMessage = "Topic \(requested.name) does not exist"
      } else {
        do {
          try await broker.topics.createPartitions(
            requested.name, count: requested.count, validateOnly: request.validateOnly)
        } catch {
          result.errorCode = error.code.rawValue
          result.errorMessage = error.message
        }
      }
      response.results.append(result)
    }
    return response
  }

  /// DeleteRecords: DELETE on each topic (TOPIC_AUTHORIZATION_FAILED).
  func deleteRecords(_ request: DeleteRecordsRequest, access: Access) async -> DeleteRecordsResponse {
    var response = DeleteRecordsResponse()
    for requested in request.topics {
      var topicResult = DeleteRecordsResponse.DeleteRecordsTopicResult(name: requested.name)
      let allowed = access.allows(.delete, .topic, requested.name)
      for wanted in requested.partitions {
        var result = DeleteRecordsResponse.DeleteRecordsPartitionResult(
          partitionIndex: wanted.partitionIndex, lowWatermark: -1)
        guard allowed else {
          result.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
          topicResult.partitions.append(result)
          continue
        }
        do throws(BrokerError) {
          result.lowWatermark = try await broker.deleteRecords(
            topic: requested.name, partition: wanted.partitionIndex,
            before: wanted.offset == -1 ? nil : wanted.offset)
        } catch {
          result.errorCode = error.code.rawValue
        }
        topicResult.partitions.append(result)
      }
      response.topics.append(topicResult)
    }
    return response
  }
}
