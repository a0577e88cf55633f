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
            let topicConfig = created?.config ?? (try? makeTopicConfig(configs))
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
        if let topic, let partition = topic.partition(wanted.partitionIndex) {
          let highWatermark = partition.highWatermark
          let target = wanted.offset == -1 ? highWatermark : wanted.offset
          if !topic.config.deletesByRetention {
            // Kafka: records of a topic without "delete" in cleanup.policy are not deleted.
            result.errorCode = ErrorCode.policyViolation.rawValue
          } else if target < 0 || target > highWatermark {
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

  /// The broker configs only `sluice serve` sets (read-only here).
  var staticBrokerConfigValues: [(name: String, value: String)] {
    [
      ("auto.create.topics.enable", String(config.autoCreateTopics)),
      ("num.partitions", String(config.defaultPartitions)),
      ("log.dirs", config.dataDirectory),
      ("broker.id", String(config.nodeId)),
      ("node.id", String(config.nodeId)),
      ("advertised.listeners", "PLAINTEXT://\(config.advertisedHost):\(config.advertisedPort)"),
      ("log.retention.check.interval.ms", String(config.retentionCheckIntervalMs)),
      ("offsets.retention.minutes", String(config.offsetsRetentionMinutes)),
      ("group.initial.rebalance.delay.ms", String(config.groupInitialRebalanceDelayMs)),
    ]
  }

  /// One config of the BROKER resource as DescribeConfigs reports it.
  struct BrokerConfigEntry {
    var name: String
    var value: String
    /// Kafka's ConfigSource: 2 DYNAMIC_BROKER_CONFIG, 3 DYNAMIC_DEFAULT_BROKER_CONFIG,
    /// 4 STATIC_BROKER_CONFIG, 5 DEFAULT_CONFIG.
    var source: Int8
    var readOnly: Bool
    var typeCode: Int8
    var doc: String
  }

  /// The broker's configs: the static ones, the defaults of every topic config (which may be
  /// changed dynamically) and the inert dynamic ones that were set. `node` false: the
  /// cluster-default resource, which lists only what was set at that level.
  func brokerConfigEntries(node: Bool) -> [BrokerConfigEntry] {
    let dynamic = dynamicConfigs
    if !node {
      return dynamic.clusterDefault.sorted { $0.key < $1.key }.map { name, value in
        BrokerConfigEntry(
          name: name, value: value, source: 3, readOnly: false,
          typeCode: TopicConfigEntry.byBrokerName[name]?.typeCode ?? 2, doc: "")
      }
    }
    var entries = staticBrokerConfigValues.map {
      BrokerConfigEntry(
        name: $0.name, value: $0.value, source: 4, readOnly: true, typeCode: 2,
        doc: "Set when sluice serve starts (--set).")
    }
    let defaults = (try? makeTopicConfig([:])) ?? (try? TopicConfig(overrides: [:], broker: config))
    for entry in TopicConfigEntry.all {
      guard let brokerName = entry.brokerName else { continue }
      let set = dynamic.value(brokerName)
      entries.append(
        BrokerConfigEntry(
          name: brokerName, value: set?.value ?? defaults.map { entry.value($0) } ?? "",
          source: set.map { $0.isNode ? 2 : 3 } ?? 5, readOnly: false, typeCode: entry.typeCode,
          doc: "Default of the topic config \(entry.name). \(entry.doc)"))
    }
    for (name, reason) in Self.inertBrokerConfigs.sorted(by: { $0.key < $1.key }) {
      guard let set = dynamic.value(name) else { continue }
      entries.append(
        BrokerConfigEntry(
          name: name, value: set.value, source: set.isNode ? 2 : 3, readOnly: false, typeCode: 2,
          doc: "Accepted with no effect: \(reason)."))
    }
    return entries
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
        if let refusal = unknownBroker(resource.resourceName) {
          result.errorCode = refusal.code.rawValue
          result.errorMessage = refusal.message
          break
        }
        for entry in brokerConfigEntries(node: !resource.resourceName.isEmpty)
        where wanted?.contains(entry.name) ?? true {
          var config = DescribeConfigsResponse.DescribeConfigsResourceResult(
            name: entry.name, value: entry.value, readOnly: entry.readOnly)
          if version == 0 { config.isDefault = entry.source == 5 }
          if version >= 1 {
            config.configSource = entry.source
            if request.includeSynonyms {
              config.synonyms = [.init(name: entry.name, value: entry.value, source: entry.source)]
            }
          }
          if version >= 3 {
            config.configType = entry.typeCode
            if request.includeDocumentation { config.documentation = entry.doc }
          }
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
      // Read-only statistics (`sluice.stats.*`, which DescribeConfigs lists) are skipped here,
      // so that tools that write back every config they described work; setting one
      // incrementally is refused.
      for entry in resource.configs where !entry.name.hasPrefix(TopicConfig.statisticPrefix) {
        if let value = entry.value { configs[entry.name] = value }
      }
      let outcome = applyConfigs(resource.resourceType, resource.resourceName, configs, request.validateOnly)
      (result.errorCode, result.errorMessage) = (outcome.code.rawValue, outcome.message)
      response.responses.append(result)
    }
    return response
  }

  func incrementalAlterConfigs(_ request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    var response = IncrementalAlterConfigsResponse()
    for resource in request.resources {
      var result = IncrementalAlterConfigsResponse.AlterConfigsResourceResponse(
        resourceType: resource.resourceType, resourceName: resource.resourceName)
      let outcome: (code: ErrorCode, message: String?)
      switch currentConfigs(resource.resourceType, resource.resourceName) {
      case .failure(let refusal):
        outcome = (refusal.code, refusal.message)
      case .success(let current):
        switch Self.merge(resource.configs, into: current.explicit, effective: current.effective) {
        case .failure(let refusal):
          outcome = (ErrorCode.invalidConfig, refusal.message)
        case .success(let configs):
          outcome = applyConfigs(resource.resourceType, resource.resourceName, configs, request.validateOnly)
        }
      }
      (result.errorCode, result.errorMessage) = (outcome.code.rawValue, outcome.message)
      response.responses.append(result)
    }
    return response
  }

  struct ConfigRefusal: Error {
    var code: ErrorCode
    var message: String
  }

  /// A resource's explicitly set configs, and a lookup of any config's value in force.
  func currentConfigs(_ type: Int8, _ name: String) -> Result<
    (explicit: [String: String], effective: @Sendable (String) -> String?), ConfigRefusal
  > {
    switch type {
    case Self.topicResource:
      guard let topic = topic(name) else {
        return .failure(
          ConfigRefusal(code: .unknownTopicOrPartition, message: "Topic \(name) does not exist"))
      }
      let config = topic.config
      let values = Dictionary(config.effectiveValues().map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
      return .success((config.overrides, { values[$0] }))
    case Self.brokerResource:
      if let refusal = unknownBroker(name) { return .failure(refusal) }
      let dynamic = dynamicConfigs
      let values = Dictionary(
        brokerConfigEntries(node: !name.isEmpty).map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
      return .success((name.isEmpty ? dynamic.clusterDefault : dynamic.node, { values[$0] }))
    default:
      return .failure(
        ConfigRefusal(code: .invalidRequest, message: "Configs of resource type \(type) cannot be altered"))
    }
  }

  func unknownBroker(_ name: String) -> ConfigRefusal? {
    guard !name.isEmpty, name != String(config.nodeId) else { return nil }
    return ConfigRefusal(
      code: .invalidRequest, message: "Unknown broker \(name); this is broker \(config.nodeId)")
  }

  /// IncrementalAlterConfigs: SET (0), DELETE (1), and for list configs APPEND (2) and
  /// SUBTRACT (3), which start from the value in force (the default included).
  static func merge(
    _ operations: [IncrementalAlterConfigsRequest.AlterableConfig], into explicit: [String: String],
    effective: (String) -> String?
  ) -> Result<[String: String], ConfigRefusal> {
    var configs = explicit
    for entry in operations {
      switch entry.configOperation {
      case 0:
        guard let value = entry.value else {
          return .failure(ConfigRefusal(code: .invalidConfig, message: "SET \(entry.name) without a value"))
        }
        configs[entry.name] = value
      case 1:
        configs[entry.name] = nil
      case 2, 3:
        let topicEntry = TopicConfigEntry.byName[entry.name] ?? TopicConfigEntry.byBrokerName[entry.name]
        guard case .list = topicEntry?.kind else {
          return .failure(
            ConfigRefusal(
              code: .invalidConfig,
              message: "APPEND and SUBTRACT apply to list configs only; \(entry.name) is not one"))
        }
        var items = TopicConfigEntry.listItems(configs[entry.name] ?? effective(entry.name) ?? "")
        let given = TopicConfigEntry.listItems(entry.value ?? "")
        if entry.configOperation == 2 {
          items += given.filter { !items.contains($0) }
        } else {
          items.removeAll { given.contains($0) }
        }
        configs[entry.name] = items.joined(separator: ",")
      default:
        return .failure(
          ConfigRefusal(code: .invalidRequest, message: "Unknown config operation \(entry.configOperation)"))
      }
    }
    return .success(configs)
  }

  /// Replaces a resource's explicit configs.
  func applyConfigs(_ type: Int8, _ name: String, _ settable: [String: String], _ validateOnly: Bool) -> (
    code: ErrorCode, message: String?
  ) {
    do {
      switch type {
      case Self.topicResource:
        guard topic(name) != nil else { return (.unknownTopicOrPartition, "Topic \(name) does not exist") }
        try setTopicConfigs(name, settable, validateOnly: validateOnly)
      case Self.brokerResource:
        if let refusal = unknownBroker(name) { return (refusal.code, refusal.message) }
        try alterBrokerConfigs(settable, node: !name.isEmpty, validateOnly: validateOnly)
      default:
        return (.invalidRequest, "Configs of resource type \(type) cannot be altered")
      }
    } catch {
      return (error.code, error.message)
    }
    return (.none, nil)
  }
}
