import KafkaProtocol
import Logging
import NIOCore
import NIOPosix

/// What the client knows of one topic from Metadata.
struct TopicMetadata: Sendable {
  var name: String
  var topicId: KafkaUUID
  var isInternal: Bool
  /// Leader node per partition index (-1 while leaderless).
  var leaders: [Int32: Int32]
  var partitionErrors: [Int32: ErrorCode]
  var partitionCount: Int { leaders.count }
  var fetchedAt: ContinuousClock.Instant
}

/// The client's view of the cluster: bootstrap, connections per broker, and cached metadata.
///
/// Connections are opened lazily and replaced when they die; reaching the first broker
/// retries the bootstrap addresses in turn with exponential backoff until
/// `connectTimeout`. Shared by one producer, consumer or admin client.
actor KafkaCluster {
  let settings: KafkaConfiguration.Connection
  let bootstrap: [KafkaConfiguration.BrokerAddress]
  let group: any EventLoopGroup
  let logger: Logger

  private var brokers: [Int32: KafkaConfiguration.BrokerAddress] = [:]
  private var connections: [Int32: KafkaConnection] = [:]
  private var connecting: [Int32: Task<KafkaConnection, any Error>] = [:]
  private var bootstrapConnection: KafkaConnection?
  private var bootstrapTask: Task<KafkaConnection, any Error>?
  private var topics: [String: TopicMetadata] = [:]
  private(set) var clusterId: String?
  private(set) var controllerId: Int32 = -1
  private var closed = false

  init(bootstrap: [KafkaConfiguration.BrokerAddress], settings: KafkaConfiguration.Connection, logger: Logger)
    throws(KafkaError)
  {
    if bootstrap.isEmpty && !settings.transport.isInProcess {
      throw KafkaError(.config, "no bootstrap broker addresses")
    }
    self.bootstrap =
      bootstrap.isEmpty ? [KafkaConfiguration.BrokerAddress(host: "in-process", port: 1)] : bootstrap
    self.settings = settings
    self.group = MultiThreadedEventLoopGroup.singleton
    self.logger = logger
  }

  /// Any live connection (the bootstrap connection, or one to a known broker).
  func anyConnection() async throws -> KafkaConnection {
    guard !closed else { throw KafkaError(.closed, "client is closed") }
    if let connection = bootstrapConnection, connection.isActive { return connection }
    if let connection = connections.values.first(where: \.isActive) { return connection }
    if let task = bootstrapTask { return try await task.value }
    let addresses = brokers.isEmpty ? bootstrap : Array(brokers.values) + bootstrap
    let settings = self.settings
    let group = self.group
    let logger = self.logger
    let task = Task {
      try await Self.connectWithBackoff(addresses, settings: settings, group: group, logger: logger)
    }
    bootstrapTask = task
    defer { bootstrapTask = nil }
    let connection = try await task.value
    bootstrapConnection = connection
    return connection
  }

  private static func connectWithBackoff(
    _ addresses: [KafkaConfiguration.BrokerAddress], settings: KafkaConfiguration.Connection,
    group: any EventLoopGroup, logger: Logger
  ) async throws -> KafkaConnection {
    let deadline = ContinuousClock.now + settings.connectTimeout
    var backoff = settings.reconnectBackoff
    var attempt = 0
    var lastError: (any Error)?
    while true {
      let address = addresses[attempt % addresses.count]
      do {
        return try await KafkaConnection.connect(
          to: address, settings: settings, group: group, logger: logger)
      } catch let error as KafkaError
        where error.code == .broker && !error.isRetriable || error.code == .config
      {
        // A refused login (SASL_AUTHENTICATION_FAILED) or bad settings: trying again cannot help.
        throw error
      } catch {
        lastError = error
        logger.debug("connecting to \(address) failed: \(error)")
      }
      attempt += 1
      if attempt % addresses.count == 0 {
        if ContinuousClock.now + backoff > deadline { break }
        try await Task.sleep(for: backoff)
        backoff = min(backoff * 2, settings.reconnectBackoffMax)
      }
    }
    throw KafkaError(
      .connectionFailed,
      "no broker reachable at \(addresses.map(\.description).joined(separator: ", ")): \(lastError.map { "\($0)" } ?? "")"
    )
  }

  /// The open connection to `nodeId`, if there is one (no waiting).
  func openConnection(node nodeId: Int32) -> KafkaConnection? {
    guard !closed, let connection = connections[nodeId], connection.isActive else { return nil }
    return connection
  }

  /// Metadata for `name` when cached and fresh (no request).
  func cachedTopic(_ name: String) -> TopicMetadata? {
    guard let cached = topics[name], ContinuousClock.now - cached.fetchedAt < settings.metadataMaxAge,
      cached.partitionCount > 0
    else { return nil }
    return cached
  }

  /// A connection to broker `nodeId` (from metadata).
  func connection(node nodeId: Int32) async throws -> KafkaConnection {
    guard !closed else { throw KafkaError(.closed, "client is closed") }
    if let connection = connections[nodeId], connection.isActive { return connection }
    if let task = connecting[nodeId] { return try await task.value }
    guard let address = brokers[nodeId] else {
      _ = try await refreshMetadata(topics: [])
      guard let address = brokers[nodeId] else {
        throw KafkaError(.connectionFailed, "unknown broker \(nodeId)")
      }
      return try await open(nodeId, address)
    }
    return try await open(nodeId, address)
  }

  /// A connection to broker `nodeId` at `address` (a group coordinator from
  /// FindCoordinator), remembering the address when metadata has not named the node yet.
  func connection(node nodeId: Int32, address: KafkaConfiguration.BrokerAddress) async throws
    -> KafkaConnection
  {
    if brokers[nodeId] == nil { brokers[nodeId] = address }
    return try await connection(node: nodeId)
  }

  private func open(_ nodeId: Int32, _ address: KafkaConfiguration.BrokerAddress) async throws
    -> KafkaConnection
  {
    if let connection = connections[nodeId], connection.isActive { return connection }
    if let task = connecting[nodeId] { return try await task.value }
    let settings = self.settings
    let group = self.group
    let logger = self.logger
    let task = Task {
      try await Self.connectWithBackoff([address], settings: settings, group: group, logger: logger)
    }
    connecting[nodeId] = task
    defer { connecting[nodeId] = nil }
    let connection = try await task.value
    connections[nodeId] = connection
    return connection
  }

  /// Known brokers (from the last metadata).
  var knownBrokers: [(nodeId: Int32, address: KafkaConfiguration.BrokerAddress)] {
    brokers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
  }

  /// Fetches metadata: `topics` nil for every topic, empty for brokers only.
  @discardableResult
  func refreshMetadata(topics names: [String]?, allowAutoTopicCreation: Bool = false) async throws
    -> MetadataResponse
  {
    let connection = try await anyConnection()
    let version = try connection.version(for: .metadata, max: 12)
    var request = MetadataRequest()
    if let names {
      request.topics = names.map { MetadataRequest.MetadataRequestTopic(topicId: .zero, name: $0) }
    } else {
      request.topics = version == 0 ? [] : nil
    }
    request.allowAutoTopicCreation = allowAutoTopicCreation
    guard case .metadata(let response) = try await connection.send(.metadata(request), version: version)
    else {
      throw KafkaError(.protocolError, "not a Metadata response")
    }
    var seen: [Int32: KafkaConfiguration.BrokerAddress] = [:]
    for broker in response.brokers {
      seen[broker.nodeId] = KafkaConfiguration.BrokerAddress(host: broker.host, port: Int(broker.port))
    }
    if !seen.isEmpty {
      for (node, connection) in connections where seen[node] != connection.address {
        connection.close()
        connections[node] = nil
      }
      brokers = seen
    }
    clusterId = response.clusterId
    controllerId = response.controllerId
    let now = ContinuousClock.now
    for topic in response.topics {
      guard let name = topic.name else { continue }
      guard ErrorCode(rawValue: topic.errorCode) == .none else {
        self.topics[name] = nil
        continue
      }
      var leaders: [Int32: Int32] = [:]
      var errors: [Int32: ErrorCode] = [:]
      for partition in topic.partitions {
        leaders[partition.partitionIndex] = partition.leaderId
        errors[partition.partitionIndex] = ErrorCode(rawValue: partition.errorCode)
      }
      self.topics[name] = TopicMetadata(
        name: name, topicId: topic.topicId, isInternal: topic.isInternal, leaders: leaders,
        partitionErrors: errors,
        fetchedAt: now)
    }
    return response
  }

  /// Cached metadata for `topic`, fetched when missing or stale. Throws the topic's error
  /// (e.g. UNKNOWN_TOPIC_OR_PARTITION) when the broker reports one.
  func topic(_ name: String, allowAutoTopicCreation: Bool = false, refresh: Bool = false) async throws
    -> TopicMetadata
  {
    if !refresh, let cached = topics[name], ContinuousClock.now - cached.fetchedAt < settings.metadataMaxAge,
      cached.partitionCount > 0
    {
      return cached
    }
    var attempts = 0
    while true {
      let response = try await refreshMetadata(topics: [name], allowAutoTopicCreation: allowAutoTopicCreation)
      if let cached = topics[name], cached.partitionCount > 0 { return cached }
      let code =
        response.topics.first { $0.name == name }.map { ErrorCode(rawValue: $0.errorCode) }
        ?? .unknownTopicOrPartition
      attempts += 1
      // A topic being auto-created reports LEADER_NOT_AVAILABLE briefly.
      if code == .leaderNotAvailable && attempts < 20 {
        try await Task.sleep(for: .milliseconds(50))
        continue
      }
      throw KafkaError.broker(code == .none ? .unknownTopicOrPartition : code, "metadata for topic \(name)")
    }
  }

  func invalidate(topic: String) { topics[topic] = nil }

  /// Closes every connection; later calls fail with `.closed`.
  func close() {
    closed = true
    bootstrapConnection?.close()
    for connection in connections.values { connection.close() }
    connections = [:]
    bootstrapConnection = nil
  }
}
