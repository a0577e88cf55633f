import KafkaProtocol
import SluiceStorage

extension Broker {
  func createTopics(_ request: CreateTopicsRequest, version: Int16) -> CreateTopicsResponse {
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
          let created = try createTopic(
            name: requested.name, partitions: count, configs: configs, validateOnly: request.validateOnly)
          if version >= 7 { result.topicId = created?.id ?? .zero }
          if version >= 5 {
            result.numPartitions = count
            result.replicationFactor = 1
            let topicConfig = created?.config ?? (try? TopicConfig(overrides: configs, broker: config))
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

  func deleteTopics(_ request: DeleteTopicsRequest, version: Int16) -> DeleteTopicsResponse {
    var response = DeleteTopicsResponse()
    let targets: [(name: String?, id: KafkaUUID)] =
      version >= 6 ? request.topics.map { ($0.name, $0.topicId) } : request.topicNames.map { ($0, .zero) }
    for target in targets {
      var result = DeleteTopicsResponse.DeletableTopicResult(name: target.name)
      if version >= 6 { result.topicId = target.id }
      let existing = target.name.flatMap { topic($0) } ?? (target.id != .zero ? topic(id: target.id) : nil)
      if let existing {
        result.name = existing.name
        if version >= 6 { result.topicId = existing.id }
        do {
          _ = try deleteTopic(existing.name)
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

  func createPartitions(_ request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    var response = CreatePartitionsResponse()
    for requested in request.topics {
      var result = CreatePartitionsResponse.CreatePartitionsTopicResult(name: requested.name)
      if topic(requested.name) == nil {
        result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
        result.errorMessage = "Topic \(requested.name) does not exist"
      } else {
        do {
          try createPartitions(requested.name, count: requested.count, validateOnly: request.validateOnly)
        } catch {
          result.errorCode = error.code.rawValue
          result.errorMessage = error.message
        }
      }
      response.results.append(result)
    }
    return response
  }

  func deleteRecords(_ request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    var response = DeleteRecordsResponse()
    for requested in request.topics {
      var topicResult = DeleteRecordsResponse.DeleteRecordsTopicResult(name: requested.name)
      let topic = self.topic(requested.name)
      for wanted in requested.partitions {
        var result = DeleteRecordsResponse.DeleteRecordsPartitionResult(
          partitionIndex: wanted.partitionIndex, lowWatermark: -1)
        if let partition = topic?.partition(wanted.partitionIndex) {
          let highWatermark = partition.highWatermark
          let target = wanted.offset == -1 ? highWatermark : wanted.offset
          if target < 0 || target > highWatermark {
            result.errorCode = ErrorCode.offsetOutOfRange.rawValue
          } else {
            do {
              result.lowWatermark = try partition.log.deleteRecords(before: target)
            } catch {
              result.errorCode = ErrorCode.from(error).rawValue
            }
          }
        } else {
          result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
        }
        topicResult.partitions.append(result)
      }
      response.topics.append(topicResult)
    }
    return response
  }

  // MARK: Configs

  static let topicResource: Int8 = 2
  static let brokerResource: Int8 = 4

  /// The broker-level configs DescribeConfigs reports (read-only here).
  var brokerConfigValues: [(name: String, value: String)] {
    [
      ("auto.create.topics.enable", String(config.autoCreateTopics)),
      ("num.partitions", String(config.defaultPartitions)),
      ("message.max.bytes", String(config.maxMessageBytes)),
      ("log.dirs", config.dataDirectory),
      ("broker.id", String(config.nodeId)),
      ("advertised.listeners", "PLAINTEXT://\(config.advertisedHost):\(config.advertisedPort)"),
    ]
  }

  /// `sluice.stats.*`: the topic's overflow figures as DescribeConfigs entries.
  func overflowStatisticEntries(_ topic: Topic) -> [(name: String, value: String)] {
    let stats = overflowStatistics(topic)
    let prefix = TopicConfig.statisticPrefix
    var entries: [(name: String, value: String)] = [
      (prefix + "backlog.bytes", String(stats.backlogBytes)),
      (prefix + "dropped.bytes", String(stats.droppedBytes)),
      (prefix + "dropped.records", String(stats.droppedRecords)),
      (prefix + "rejected.requests", String(stats.rejectedRequests)),
      (prefix + "throttled.requests", String(stats.throttledRequests)),
      (prefix + "throttle.time.ms", String(stats.throttleMs)),
      (prefix + "timed.out.requests", String(stats.timedOutRequests)),
    ]
    for (group, bytes) in stats.groupBacklogBytes.sorted(by: { $0.key < $1.key }) {
      entries.append((prefix + "group.backlog.bytes." + group, String(bytes)))
    }
    return entries
  }

  func describeConfigs(_ request: DescribeConfigsRequest, version: Int16) -> DescribeConfigsResponse {
    var response = DescribeConfigsResponse()
    for resource in request.resources {
      var result = DescribeConfigsResponse.DescribeConfigsResult(
        resourceType: resource.resourceType, resourceName: resource.resourceName)
      let wanted = resource.configurationKeys.map(Set.init)
      switch resource.resourceType {
      case Self.topicResource:
        guard let topic = topic(resource.resourceName) else {
          result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
          result.errorMessage = "Topic \(resource.resourceName) does not exist"
          break
        }
        for entry in topic.config.effectiveValues() where wanted?.contains(entry.name) ?? true {
          var config = DescribeConfigsResponse.DescribeConfigsResourceResult(
            name: entry.name, value: entry.value, readOnly: false)
          if version == 0 { config.isDefault = entry.isDefault }
          if version >= 1 {
            config.configSource = entry.isDefault ? 5 : 1  // DEFAULT_CONFIG / DYNAMIC_TOPIC_CONFIG
            if request.includeSynonyms {
              config.synonyms = [.init(name: entry.name, value: entry.value, source: config.configSource)]
            }
          }
          if version >= 3 {
            config.configType = TopicConfig.typeCode(entry.name)
            if request.includeDocumentation { config.documentation = entry.doc }
          }
          result.configs.append(config)
        }
        // Read-only statistics of the overflow policy, beside the configs (docs/overflow.md).
        for (name, value) in overflowStatisticEntries(topic) where wanted?.contains(name) ?? true {
          var config = DescribeConfigsResponse.DescribeConfigsResourceResult(
            name: name, value: value, readOnly: true)
          if version == 0 { config.isDefault = false }
          if version >= 1 { config.configSource = 5 }  // DEFAULT_CONFIG: not settable anywhere
          if version >= 3 {
            config.configType = 5
            if request.includeDocumentation {
              config.documentation = "Read-only statistic of the overflow policy; see docs/overflow.md."
            }
          }
          result.configs.append(config)
        }
      case Self.brokerResource:
        if !resource.resourceName.isEmpty && resource.resourceName != String(config.nodeId) {
          result.errorCode = ErrorCode.invalidRequest.rawValue
          result.errorMessage = "Unknown broker \(resource.resourceName)"
          break
        }
        for (name, value) in brokerConfigValues where wanted?.contains(name) ?? true {
          var config = DescribeConfigsResponse.DescribeConfigsResourceResult(
            name: name, value: value, readOnly: true)
          if version == 0 { config.isDefault = false }
          if version >= 1 { config.configSource = 4 }  // STATIC_BROKER_CONFIG
          if version >= 3 { config.configType = 2 }
          result.configs.append(config)
        }
      default:
        result.errorCode = ErrorCode.invalidRequest.rawValue
        result.errorMessage = "Resource type \(resource.resourceType) is not supported"
      }
      response.results.append(result)
    }
    return response
  }

  func alterConfigs(_ request: AlterConfigsRequest) -> AlterConfigsResponse {
    var response = AlterConfigsResponse()
    for resource in request.resources {
      var result = AlterConfigsResponse.AlterConfigsResourceResponse(
        resourceType: resource.resourceType, resourceName: resource.resourceName)
      var configs: [String: String] = [:]
      for entry in resource.configs { if let value = entry.value { configs[entry.name] = value } }
      applyConfigs(resource.resourceType, resource.resourceName, configs, request.validateOnly, into: &result)
      response.responses.append(result)
    }
    return response
  }

  func incrementalAlterConfigs(_ request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    var response = IncrementalAlterConfigsResponse()
    for resource in request.resources {
      var result = IncrementalAlterConfigsResponse.AlterConfigsResourceResponse(
        resourceType: resource.resourceType, resourceName: resource.resourceName)
      guard resource.resourceType == Self.topicResource, let topic = topic(resource.resourceName) else {
        result.errorCode =
          (resource.resourceType == Self.topicResource ? ErrorCode.unknownTopicOrPartition : .invalidRequest)
          .rawValue
        result.errorMessage = "Only existing topics can be altered"
        response.responses.append(result)
        continue
      }
      var configs = topic.config.overrides
      var problem: String?
      for entry in resource.configs {
        switch entry.configOperation {
        case 0:  // SET
          if let value = entry.value {
            configs[entry.name] = value
          } else {
            problem = "SET \(entry.name) without a value"
          }
        case 1:  // DELETE
          configs[entry.name] = nil
        default:  // APPEND / SUBTRACT: only for list configs, and cleanup.policy allows one value
          problem = "Operation \(entry.configOperation) is not supported for \(entry.name)"
        }
      }
      if let problem {
        result.errorCode = ErrorCode.invalidConfig.rawValue
        result.errorMessage = problem
      } else {
        var plain = AlterConfigsResponse.AlterConfigsResourceResponse()
        applyConfigs(
          resource.resourceType, resource.resourceName, configs, request.validateOnly, into: &plain)
        result.errorCode = plain.errorCode
        result.errorMessage = plain.errorMessage
      }
      response.responses.append(result)
    }
    return response
  }

  func applyConfigs(
    _ type: Int8, _ name: String, _ configs: [String: String], _ validateOnly: Bool,
    into result: inout AlterConfigsResponse.AlterConfigsResourceResponse
  ) {
    guard type == Self.topicResource else {
      result.errorCode = ErrorCode.invalidRequest.rawValue
      result.errorMessage = "Only topic configs can be altered"
      return
    }
    guard topic(name) != nil else {
      result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
      result.errorMessage = "Topic \(name) does not exist"
      return
    }
    do {
      try setTopicConfigs(name, configs, validateOnly: validateOnly)
    } catch {
      result.errorCode = error.code.rawValue
      result.errorMessage = error.message
    }
  }
}
