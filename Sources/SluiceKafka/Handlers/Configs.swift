import KafkaProtocol
import SluiceBroker

/// DescribeConfigs, AlterConfigs, IncrementalAlterConfigs for topics and the broker
/// (docs/topics.md).
extension KafkaFrontDoor {
  static let topicResource: Int8 = 2
  static let brokerResource: Int8 = 4
  static let groupResource: Int8 = 32

  /// Kafka's ConfigSource codes.
  static func sourceCode(_ source: BrokerConfigEntry.Source) -> Int8 {
    switch source {
    case .dynamicNode: 2  // DYNAMIC_BROKER_CONFIG
    case .dynamicDefault: 3  // DYNAMIC_DEFAULT_BROKER_CONFIG
    case .static: 4  // STATIC_BROKER_CONFIG
    case .defaultValue: 5  // DEFAULT_CONFIG
    }
  }

  /// The refusal of `operation` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on a config resource:
  /// a topic's are the topic's, the broker's the cluster's, a group's the group's.
  func configDenial(_ type: Int8, _ name: String, _ operation: AclOperation, _ access: Access) -> BrokerError?
  {
    switch type {
    case Self.topicResource where !access.allows(operation, .topic, name):
      BrokerError(.topicAuthorizationFailed, "\(operation.name) on topic \(name) is not allowed")
    case Self.groupResource where !access.allows(operation, .group, name):
      BrokerError(.groupAuthorizationFailed, "\(operation.name) on group \(name) is not allowed")
    case Self.brokerResource where !access.allowsCluster(operation):
      BrokerError(.clusterAuthorizationFailed, "\(operation.name) on the cluster is not allowed")
    default: nil
    }
  }

  func describeConfigs(_ request: DescribeConfigsRequest, version: Int16, access: Access)
    -> DescribeConfigsResponse
  {
    var response = DescribeConfigsResponse()
    for resource in request.resources {
      var result = DescribeConfigsResponse.DescribeConfigsResult(
        resourceType: resource.resourceType, resourceName: resource.resourceName)
      if let denial = configDenial(resource.resourceType, resource.resourceName, .describeConfigs, access) {
        result.errorCode = denial.code.rawValue
        result.errorMessage = denial.message
        response.results.append(result)
        continue
      }
      let wanted = resource.configurationKeys.map(Set.init)
      func add(name: String, value: String, readOnly: Bool, source: Int8, typeCode: Int8, doc: String) {
        guard wanted?.contains(name) ?? true else { return }
        var config = DescribeConfigsResponse.DescribeConfigsResourceResult(
          name: name, value: value, readOnly: readOnly)
        if version == 0 { config.isDefault = source == 5 }
        if version >= 1 {
          config.configSource = source
          if request.includeSynonyms { config.synonyms = [.init(name: name, value: value, source: source)] }
        }
        if version >= 3 {
          config.configType = typeCode
          if request.includeDocumentation { config.documentation = doc }
        }
        result.configs.append(config)
      }
      switch resource.resourceType {
      case Self.topicResource:
        guard let topic = broker.topic(resource.resourceName) else {
          result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
          result.errorMessage = "Topic \(resource.resourceName) does not exist"
          break
        }
        for entry in topic.config.effectiveValues() {
          // DEFAULT_CONFIG / DYNAMIC_TOPIC_CONFIG
          add(
            name: entry.name, value: entry.value, readOnly: false, source: entry.isDefault ? 5 : 1,
            typeCode: TopicConfig.typeCode(entry.name), doc: entry.doc)
        }
        // Read-only statistics of the overflow policy, beside the configs (docs/overflow.md).
        for (name, value) in broker.overflowStatisticEntries(topic) {
          add(
            name: name, value: value, readOnly: true, source: 5, typeCode: 5,
            doc: "Read-only statistic of the overflow policy; see docs/overflow.md.")
        }
      case Self.brokerResource:
        if let refusal = unknownBroker(resource.resourceName) {
          result.errorCode = refusal.code.rawValue
          result.errorMessage = refusal.message
          break
        }
        for entry in broker.topics.brokerConfigEntries(node: !resource.resourceName.isEmpty) {
          add(
            name: entry.name, value: entry.value, readOnly: entry.readOnly,
            source: Self.sourceCode(entry.source),
            typeCode: entry.typeCode, doc: entry.doc)
        }
      case Self.groupResource:
        // Share-group configs (docs/queues.md): set ones are GROUP_CONFIG (8).
        let set = broker.shares.configs(resource.resourceName)
        for (name, value) in ShareGroups.groupConfigDefaults.merging(set, uniquingKeysWith: { $1 }).sorted(
          by: { $0.key < $1.key })
        {
          add(
            name: name, value: value, readOnly: false, source: set[name] == nil ? 5 : 8, typeCode: 2,
            doc: "Share-group config; see docs/queues.md.")
        }
        // Read-only statistics per share partition, as for topics (docs/queues.md).
        for (key, share) in broker.shares.partitionStates(resource.resourceName) {
          let prefix = "\(TopicConfig.statisticPrefix)share.\(key.topic).\(key.partition)."
          for (name, value) in [
            ("start.offset", share.startOffset), ("end.offset", share.endOffset),
            ("acquired", Int64(share.acquiredCount)),
            ("acknowledged", Int64(share.entries.count { $0.state == .acknowledged })),
            ("archived", Int64(share.entries.count { $0.state == .archived })),
          ] {
            add(
              name: prefix + name, value: String(value), readOnly: true, source: 5, typeCode: 5,
              doc: "Read-only statistic of a share partition; see docs/queues.md.")
          }
        }
      default:
        result.errorCode = ErrorCode.invalidRequest.rawValue
        result.errorMessage = "Resource type \(resource.resourceType) is not supported"
      }
      response.results.append(result)
    }
    return response
  }

  func alterConfigs(_ request: AlterConfigsRequest, access: Access) async -> AlterConfigsResponse {
    var response = AlterConfigsResponse()
    for resource in request.resources {
      var result = AlterConfigsResponse.AlterConfigsResourceResponse(
        resourceType: resource.resourceType, resourceName: resource.resourceName)
      if let denial = configDenial(resource.resourceType, resource.resourceName, .alterConfigs, access) {
        result.errorCode = denial.code.rawValue
        result.errorMessage = denial.message
        response.responses.append(result)
        continue
      }
      var configs: [String: String] = [:]
      // Read-only statistics (`sluice.stats.*`, which DescribeConfigs lists) are skipped here,
      // so that tools that write back every config they described work; setting one
      // incrementally is refused.
      for entry in resource.configs where !entry.name.hasPrefix(TopicConfig.statisticPrefix) {
        if let value = entry.value { configs[entry.name] = value }
      }
      let refusal = await alter(resource.resourceType, resource.resourceName) { () async throws(TopicError) in
        switch resource.resourceType {
        case Self.topicResource:
          try await broker.topics.setConfigs(
            resource.resourceName, configs, validateOnly: request.validateOnly)
        default:
          try await broker.topics.setBrokerConfigs(
            configs, node: !resource.resourceName.isEmpty, validateOnly: request.validateOnly)
        }
      }
      result.errorCode = refusal?.code.rawValue ?? 0
      result.errorMessage = refusal?.message
      response.responses.append(result)
    }
    return response
  }

  func incrementalAlterConfigs(_ request: IncrementalAlterConfigsRequest, access: Access) async
    -> IncrementalAlterConfigsResponse
  {
    var response = IncrementalAlterConfigsResponse()
    for resource in request.resources {
      var result = IncrementalAlterConfigsResponse.AlterConfigsResourceResponse(
        resourceType: resource.resourceType, resourceName: resource.resourceName)
      if let denial = configDenial(resource.resourceType, resource.resourceName, .alterConfigs, access) {
        result.errorCode = denial.code.rawValue
        result.errorMessage = denial.message
        response.responses.append(result)
        continue
      }
      var changes: [ConfigChange] = []
      var problem: BrokerError?
      if Set(resource.configs.map(\.name)).count != resource.configs.count {
        problem = BrokerError(.invalidRequest, "Error due to duplicate config keys")
      }
      for entry in resource.configs where problem == nil {
        switch (entry.configOperation, entry.value) {
        case (0, let value?): changes.append(.set(entry.name, value))
        case (0, nil): problem = BrokerError(.invalidConfig, "SET \(entry.name) without a value")
        case (1, _): changes.append(.delete(entry.name))
        case (2, let value): changes.append(.append(entry.name, value ?? ""))
        case (3, let value): changes.append(.subtract(entry.name, value ?? ""))
        default: problem = BrokerError(.invalidRequest, "Unknown config operation \(entry.configOperation)")
        }
      }
      let refusal: BrokerError?
      if let problem {
        refusal = problem
      } else if resource.resourceType == Self.groupResource {
        refusal = await alterGroupConfigs(resource.resourceName, changes, validateOnly: request.validateOnly)
      } else {
        refusal = await alter(resource.resourceType, resource.resourceName) { () async throws(TopicError) in
          switch resource.resourceType {
          case Self.topicResource:
            try await broker.topics.alterConfigs(
              resource.resourceName, changes, validateOnly: request.validateOnly)
          default:
            try await broker.topics.alterBrokerConfigs(
              changes, node: !resource.resourceName.isEmpty, validateOnly: request.validateOnly)
          }
        }
      }
      result.errorCode = refusal?.code.rawValue ?? 0
      result.errorMessage = refusal?.message
      response.responses.append(result)
    }
    return response
  }

  /// Runs an alteration of a topic's or the broker's configs after checking the resource
  /// exists; the refusal, if any.
  func alter(_ type: Int8, _ name: String, _ work: () async throws(TopicError) -> Void) async -> BrokerError?
  {
    switch type {
    case Self.topicResource:
      guard broker.topic(name) != nil else {
        return BrokerError(.unknownTopicOrPartition, "Topic \(name) does not exist")
      }
    case Self.brokerResource:
      if let refusal = unknownBroker(name) { return refusal }
    default:
      return BrokerError(.invalidRequest, "Configs of resource type \(type) cannot be altered")
    }
    do {
      try await work()
      return nil
    } catch {
      return BrokerError(error.code, error.message)
    }
  }

  /// IncrementalAlterConfigs on a GROUP resource: SET and DELETE of share-group configs.
  func alterGroupConfigs(_ group: String, _ changes: [ConfigChange], validateOnly: Bool) async -> BrokerError?
  {
    guard !group.isEmpty else { return BrokerError(.invalidRequest, "A group name is required") }
    var configs = broker.shares.configs(group)
    for change in changes {
      switch change {
      case .set(let name, let value): configs[name] = value
      case .delete(let name): configs[name] = nil
      case .append(let name, _), .subtract(let name, _):
        return BrokerError(.invalidConfig, "\(name) is not a list: APPEND and SUBTRACT do not apply")
      }
    }
    do {
      try await broker.shares.setConfigs(group, configs, validateOnly: validateOnly)
      return nil
    } catch {
      return error
    }
  }

  func unknownBroker(_ name: String) -> BrokerError? {
    guard !name.isEmpty, name != String(broker.config.nodeId) else { return nil }
    return BrokerError(.invalidRequest, "Unknown broker \(name); this is broker \(broker.config.nodeId)")
  }
}
