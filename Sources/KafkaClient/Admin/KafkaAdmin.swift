public import KafkaProtocol
public import Logging

/// Cluster and topic administration: create/delete/list/describe topics, add partitions,
/// describe/alter configs, describe the cluster. Requests go to the controller when
/// metadata names one, else to any broker.
public final class KafkaAdmin: Sendable {
  /// The configuration the admin client was created with.
  public let configuration: KafkaAdminConfiguration
  let cluster: KafkaCluster

  /// Creates an admin client; connections open on first use.
  public init(configuration: KafkaAdminConfiguration, logger: Logger = Logger(label: "KafkaAdmin")) throws {
    self.configuration = configuration
    self.cluster = try KafkaCluster(
      bootstrap: configuration.bootstrapAddresses, settings: configuration.connection, logger: logger)
  }

  /// A topic to create.
  public struct NewTopic: Sendable, Hashable {
    /// The topic's name.
    public var name: String
    /// -1: the broker's default.
    public var partitions: Int32
    /// -1: the broker's default.
    public var replicationFactor: Int16
    /// Topic configs (`retention.ms`, `cleanup.policy`, …).
    public var configs: [String: String]
    public init(
      name: String, partitions: Int32 = -1, replicationFactor: Int16 = -1, configs: [String: String] = [:]
    ) {
      self.name = name
      self.partitions = partitions
      self.replicationFactor = replicationFactor
      self.configs = configs
    }
  }

  /// One partition of a described topic: leader, replicas, in-sync replicas.
  public struct PartitionDescription: Sendable, Hashable {
    public var partition: Int32
    public var leader: Int32
    public var replicas: [Int32]
    public var isr: [Int32]
    public var error: ErrorCode
  }

  /// A topic as Metadata describes it.
  public struct TopicDescription: Sendable, Hashable {
    public var name: String
    public var topicId: KafkaUUID
    public var isInternal: Bool
    public var partitions: [PartitionDescription]
  }

  /// The cluster: its id, controller and brokers.
  public struct ClusterDescription: Sendable, Hashable {
    public var clusterId: String?
    public var controllerId: Int32
    public var brokers: [(nodeId: Int32, address: KafkaConfiguration.BrokerAddress)]
    public static func == (a: Self, b: Self) -> Bool {
      a.clusterId == b.clusterId && a.controllerId == b.controllerId
        && a.brokers.map(\.nodeId) == b.brokers.map(\.nodeId)
        && a.brokers.map(\.address) == b.brokers.map(\.address)
    }
    public func hash(into hasher: inout Hasher) {
      hasher.combine(clusterId)
      hasher.combine(controllerId)
    }
  }

  /// One config of a topic or broker, as DescribeConfigs reports it.
  public struct ConfigEntry: Sendable, Hashable {
    public var name: String
    public var value: String?
    public var isDefault: Bool
    public var isReadOnly: Bool
    public var isSensitive: Bool
    /// Kafka's config source (1 topic, 4 static broker, 5 default, …; -1 unknown).
    public var source: Int8
  }

  /// Kafka's config resource types.
  public enum ResourceType: Int8, Sendable {
    case topic = 2
    case broker = 4
    /// A consumer or share group (Kafka 4's group configs, e.g. `share.auto.offset.reset`).
    case group = 32
  }

  /// An incremental config change.
  public enum ConfigChange: Sendable, Hashable {
    case set(String, String)
    case delete(String)
  }

  private func controller() async throws -> KafkaConnection {
    let controllerId = await cluster.controllerId
    if controllerId >= 0, let connection = try? await cluster.connection(node: controllerId) {
      return connection
    }
    return try await cluster.anyConnection()
  }

  func send(_ body: KafkaRequestBody, key: ApiKey, max: Int16) async throws -> KafkaResponseBody {
    let connection = try await controller()
    let version = try connection.version(for: key, max: max)
    return try await connection.send(body, version: version)
  }

  /// Creates topics; throws the first per-topic error (TOPIC_ALREADY_EXISTS, …).
  public func createTopics(_ topics: [NewTopic], validateOnly: Bool = false, timeout: Duration = .seconds(30))
    async throws
  {
    var request = CreateTopicsRequest()
    request.timeoutMs = Int32(clamping: timeout.milliseconds)
    request.validateOnly = validateOnly
    request.topics = topics.map { topic in
      var creatable = CreateTopicsRequest.CreatableTopic()
      creatable.name = topic.name
      creatable.numPartitions = topic.partitions
      creatable.replicationFactor = topic.replicationFactor
      creatable.configs = topic.configs.sorted { $0.key < $1.key }.map {
        CreateTopicsRequest.CreatableTopicConfig(name: $0.key, value: $0.value)
      }
      return creatable
    }
    guard
      case .createTopics(let response) = try await send(.createTopics(request), key: .createTopics, max: 7)
    else {
      throw KafkaError(.protocolError, "not a CreateTopics response")
    }
    for result in response.topics {
      try ErrorCode(rawValue: result.errorCode).check(
        "create topic \(result.name)", message: result.errorMessage)
    }
  }

  /// Creates one topic (see ``createTopics(_:validateOnly:timeout:)``).
  public func createTopic(
    _ name: String, partitions: Int32 = -1, replicationFactor: Int16 = -1, configs: [String: String] = [:]
  )
    async throws
  {
    try await createTopics([
      NewTopic(name: name, partitions: partitions, replicationFactor: replicationFactor, configs: configs)
    ])
  }

  /// Deletes topics; throws the first per-topic error (UNKNOWN_TOPIC_OR_PARTITION, …).
  public func deleteTopics(_ names: [String], timeout: Duration = .seconds(30)) async throws {
    var request = DeleteTopicsRequest()
    request.timeoutMs = Int32(clamping: timeout.milliseconds)
    let connection = try await controller()
    let version = try connection.version(for: .deleteTopics, max: 6)
    if version >= 6 {
      request.topics = names.map { DeleteTopicsRequest.DeleteTopicState(name: $0, topicId: .zero) }
    } else {
      request.topicNames = names
    }
    guard
      case .deleteTopics(let response) = try await connection.send(.deleteTopics(request), version: version)
    else {
      throw KafkaError(.protocolError, "not a DeleteTopics response")
    }
    for result in response.responses {
      try ErrorCode(rawValue: result.errorCode).check(
        "delete topic \(result.name ?? "?")", message: result.errorMessage)
    }
    for name in names { await cluster.invalidate(topic: name) }
  }

  /// Names of all topics (internal ones only with `includeInternal`).
  public func listTopics(includeInternal: Bool = false) async throws -> [String] {
    let response = try await cluster.refreshMetadata(topics: nil)
    return response.topics.filter {
      ErrorCode(rawValue: $0.errorCode) == .none && (includeInternal || !$0.isInternal)
    }
    .compactMap(\.name).sorted()
  }

  /// Describes topics (nil: all). Throws for an unknown topic.
  public func describeTopics(_ names: [String]? = nil) async throws -> [TopicDescription] {
    let response = try await cluster.refreshMetadata(topics: names)
    return try response.topics.map { topic in
      try ErrorCode(rawValue: topic.errorCode).check("describe topic \(topic.name ?? "?")")
      return TopicDescription(
        name: topic.name ?? "", topicId: topic.topicId, isInternal: topic.isInternal,
        partitions: topic.partitions.sorted { $0.partitionIndex < $1.partitionIndex }.map {
          PartitionDescription(
            partition: $0.partitionIndex, leader: $0.leaderId, replicas: $0.replicaNodes, isr: $0.isrNodes,
            error: ErrorCode(rawValue: $0.errorCode))
        })
    }.sorted { $0.name < $1.name }
  }

  /// Raises the partition count of `topic` to `totalCount`.
  public func createPartitions(topic: String, totalCount: Int32, timeout: Duration = .seconds(30))
    async throws
  {
    var request = CreatePartitionsRequest()
    request.timeoutMs = Int32(clamping: timeout.milliseconds)
    request.topics = [
      CreatePartitionsRequest.CreatePartitionsTopic(name: topic, count: totalCount, assignments: nil)
    ]
    guard
      case .createPartitions(let response) = try await send(
        .createPartitions(request), key: .createPartitions, max: 3)
    else { throw KafkaError(.protocolError, "not a CreatePartitions response") }
    for result in response.results {
      try ErrorCode(rawValue: result.errorCode).check(
        "create partitions of \(result.name)", message: result.errorMessage)
    }
    await cluster.invalidate(topic: topic)
  }

  /// Configs of a topic or broker (`keys` nil: all).
  public func describeConfigs(_ type: ResourceType, name: String, keys: [String]? = nil) async throws
    -> [ConfigEntry]
  {
    var request = DescribeConfigsRequest()
    request.resources = [
      DescribeConfigsRequest.DescribeConfigsResource(
        resourceType: type.rawValue, resourceName: name, configurationKeys: keys)
    ]
    guard
      case .describeConfigs(let response) = try await send(
        .describeConfigs(request), key: .describeConfigs, max: 4)
    else { throw KafkaError(.protocolError, "not a DescribeConfigs response") }
    var entries: [ConfigEntry] = []
    for result in response.results {
      try ErrorCode(rawValue: result.errorCode).check(
        "describe configs of \(result.resourceName)", message: result.errorMessage)
      for config in result.configs {
        entries.append(
          ConfigEntry(
            name: config.name, value: config.value, isDefault: config.isDefault || config.configSource == 5,
            isReadOnly: config.readOnly, isSensitive: config.isSensitive, source: config.configSource))
      }
    }
    return entries.sorted { $0.name < $1.name }
  }

  /// Changes configs of a topic or broker (IncrementalAlterConfigs).
  public func alterConfigs(
    _ type: ResourceType, name: String, _ changes: [ConfigChange], validateOnly: Bool = false
  )
    async throws
  {
    var request = IncrementalAlterConfigsRequest()
    request.validateOnly = validateOnly
    request.resources = [
      IncrementalAlterConfigsRequest.AlterConfigsResource(
        resourceType: type.rawValue, resourceName: name,
        configs: changes.map {
          switch $0 {
          case .set(let key, let value):
            IncrementalAlterConfigsRequest.AlterableConfig(name: key, configOperation: 0, value: value)
          case .delete(let key):
            IncrementalAlterConfigsRequest.AlterableConfig(name: key, configOperation: 1, value: nil)
          }
        })
    ]
    guard
      case .incrementalAlterConfigs(let response) = try await send(
        .incrementalAlterConfigs(request), key: .incrementalAlterConfigs, max: 1)
    else { throw KafkaError(.protocolError, "not an IncrementalAlterConfigs response") }
    for result in response.responses {
      try ErrorCode(rawValue: result.errorCode).check(
        "alter configs of \(result.resourceName)", message: result.errorMessage)
    }
  }

  /// Cluster id, controller and brokers (DescribeCluster when offered, else Metadata).
  public func describeCluster() async throws -> ClusterDescription {
    let connection = try await cluster.anyConnection()
    if connection.supports(.describeCluster) {
      let version = try connection.version(for: .describeCluster, max: 1)
      guard
        case .describeCluster(let response) = try await connection.send(
          .describeCluster(DescribeClusterRequest()), version: version)
      else { throw KafkaError(.protocolError, "not a DescribeCluster response") }
      try ErrorCode(rawValue: response.errorCode).check("DescribeCluster", message: response.errorMessage)
      return ClusterDescription(
        clusterId: response.clusterId, controllerId: response.controllerId,
        brokers: response.brokers.map {
          ($0.brokerId, KafkaConfiguration.BrokerAddress(host: $0.host, port: Int($0.port)))
        })
    }
    _ = try await cluster.refreshMetadata(topics: [])
    return ClusterDescription(
      clusterId: await cluster.clusterId, controllerId: await cluster.controllerId,
      brokers: await cluster.knownBrokers)
  }

  /// Closes the connections; later calls fail with `.closed`.
  public func close() async {
    await cluster.close()
  }
}
