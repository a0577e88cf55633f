import KafkaProtocol

/// librdkafka-named option values for ``KafkaProducerConfig`` and ``KafkaConsumerConfig``
/// (swift-kafka-client's `KafkaConfig`): each is a string-backed value whose
/// `description` is the librdkafka setting's text.
public enum KafkaConfig {
  /// `security.protocol`.
  public struct SecurityProtocol: Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public static let plaintext = SecurityProtocol(description: "plaintext")
    public static let ssl = SecurityProtocol(description: "ssl")
    public static let sasl_plaintext = SecurityProtocol(description: "sasl_plaintext")
    public static let sasl_ssl = SecurityProtocol(description: "sasl_ssl")
  }

  /// `auto.offset.reset`.
  public struct AutoOffsetReset: Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public static let smallest = AutoOffsetReset(description: "smallest")
    public static let earliest = AutoOffsetReset(description: "earliest")
    public static let beginning = AutoOffsetReset(description: "beginning")
    public static let largest = AutoOffsetReset(description: "largest")
    public static let latest = AutoOffsetReset(description: "latest")
    public static let end = AutoOffsetReset(description: "end")
    /// Fail instead of resetting (a consumer without a position stops with an error).
    public static let error = AutoOffsetReset(description: "error")
  }

  /// `isolation.level`.
  public struct IsolationLevel: Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public static let read_uncommitted = IsolationLevel(description: "read_uncommitted")
    public static let read_committed = IsolationLevel(description: "read_committed")
  }

  /// `compression.type` (and its alias `compression.codec`).
  public struct CompressionType: Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public static let none = CompressionType(description: "none")
    public static let gzip = CompressionType(description: "gzip")
    public static let snappy = CompressionType(description: "snappy")
    public static let lz4 = CompressionType(description: "lz4")
    public static let zstd = CompressionType(description: "zstd")
  }
  public typealias CompressionCodec = CompressionType

  /// `ssl.endpoint.identification.algorithm`.
  public struct SslEndpointIdentificationAlgorithm: Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public static let none = SslEndpointIdentificationAlgorithm(description: "none")
    public static let https = SslEndpointIdentificationAlgorithm(description: "https")
  }
}

/// Settings every ``KafkaProducerConfig`` and ``KafkaConsumerConfig`` share, under
/// librdkafka's names (nil: the default shown). Both configurations expose them as their
/// own properties (`config.bootstrapServers = […]`) through dynamic member lookup.
public struct KafkaCommonConfig: Sendable {
  /// `bootstrap.servers`: `HOST:PORT` of brokers to fetch metadata from first.
  public var bootstrapServers: [String]?
  /// `client.id` (sluice-swift).
  public var clientId: String?
  /// `request.timeout.ms` (30000).
  public var requestTimeoutMs: Int?
  /// `socket.connection.setup.timeout.ms`: give up reaching any broker after this (10000).
  public var socketConnectionSetupTimeoutMs: Int?
  /// `reconnect.backoff.ms` (100) and `reconnect.backoff.max.ms` (2000).
  public var reconnectBackoffMs: Int?
  public var reconnectBackoffMaxMs: Int?
  /// `metadata.max.age.ms` (300000).
  public var metadataMaxAgeMs: Int?
  /// `receive.message.max.bytes`: largest response accepted (104857600).
  public var receiveMessageMaxBytes: Int?
  /// `security.protocol` (plaintext).
  public var securityProtocol: KafkaConfig.SecurityProtocol?
  /// `sasl.mechanisms` (or `sasl.mechanism`): PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (PLAIN).
  public var saslMechanisms: String?
  public var saslMechanism: String?
  public var saslUsername: String?
  public var saslPassword: String?
  /// `ssl.ca.location` (nil: the system's trust store), `ssl.certificate.location` and
  /// `ssl.key.location` (a client certificate).
  public var sslCaLocation: String?
  public var sslCertificateLocation: String?
  public var sslKeyLocation: String?
  /// `ssl.endpoint.identification.algorithm` (https).
  public var sslEndpointIdentificationAlgorithm: KafkaConfig.SslEndpointIdentificationAlgorithm?
  /// `enable.ssl.certificate.verification` (true); false is refused (give the CA instead).
  public var enableSslCertificateVerification: Bool?
  /// Sluice's addition: TCP, or a broker embedded in this process.
  public var transport: KafkaConfiguration.Transport = .tcp

  public init() {}
}

extension KafkaCommonConfig {
  /// The bootstrap addresses and connection settings these options give; throws `.config`
  /// for a malformed value.
  func connectionSettings() throws(KafkaError) -> (
    [KafkaConfiguration.BrokerAddress], KafkaConfiguration.Connection
  ) {
    var addresses: [KafkaConfiguration.BrokerAddress] = []
    for text in bootstrapServers ?? [] {
      for part in text.split(separator: ",") {
        let trimmed = String(part).trimmedSpaces()
        guard let address = KafkaConfiguration.BrokerAddress(trimmed) else {
          throw KafkaError(.config, "bootstrap.servers: \"\(trimmed)\" is not HOST:PORT")
        }
        addresses.append(address)
      }
    }
    var connection = KafkaConfiguration.Connection()
    if let clientId { connection.clientId = clientId }
    func duration(_ name: String, _ value: Int?, _ target: inout Duration) throws(KafkaError) {
      guard let value else { return }
      guard value >= 0 else { throw KafkaError(.config, "\(name) must not be negative") }
      target = .milliseconds(value)
    }
    try duration("request.timeout.ms", requestTimeoutMs, &connection.requestTimeout)
    try duration(
      "socket.connection.setup.timeout.ms", socketConnectionSetupTimeoutMs, &connection.connectTimeout)
    try duration("reconnect.backoff.ms", reconnectBackoffMs, &connection.reconnectBackoff)
    try duration("reconnect.backoff.max.ms", reconnectBackoffMaxMs, &connection.reconnectBackoffMax)
    try duration("metadata.max.age.ms", metadataMaxAgeMs, &connection.metadataMaxAge)
    if let receiveMessageMaxBytes {
      guard receiveMessageMaxBytes >= 1000 else {
        throw KafkaError(.config, "receive.message.max.bytes < 1000")
      }
      connection.maximumFrameSize = receiveMessageMaxBytes
    }
    connection.transport = transport
    var security = KafkaConfiguration.Security()
    if let securityProtocol { try security.set("security.protocol", securityProtocol.description) }
    if let mechanism = saslMechanisms ?? saslMechanism { try security.set("sasl.mechanism", mechanism) }
    security.saslUsername = saslUsername
    security.saslPassword = saslPassword
    security.caLocation = sslCaLocation
    security.certificateLocation = sslCertificateLocation
    security.keyLocation = sslKeyLocation
    if let sslEndpointIdentificationAlgorithm {
      try security.set(
        "ssl.endpoint.identification.algorithm", sslEndpointIdentificationAlgorithm.description)
    }
    if enableSslCertificateVerification == false {
      throw KafkaError(
        .config,
        "enable.ssl.certificate.verification=false is not supported: give the broker's CA with sslCaLocation")
    }
    connection.security = security
    return (addresses, connection)
  }
}

extension String {
  fileprivate func trimmedSpaces() -> String {
    String(String(drop { $0 == " " }.reversed()).drop { $0 == " " }.reversed())
  }
}

/// Producer settings under librdkafka's names (swift-kafka-client's `KafkaProducerConfig`):
/// every option is nil until set, and nil means the default shown.
///
/// ```swift
/// var config = KafkaProducerConfig()
/// config.bootstrapServers = ["localhost:9092"]
/// let producer = try KafkaProducer(config: config, logger: logger)
/// ```
@dynamicMemberLookup
public struct KafkaProducerConfig: Sendable {
  /// How often ``KafkaProducer/run()`` checks for shutdown (unused: delivery reports are
  /// pushed as they arrive; kept for source compatibility).
  public var pollInterval: Duration = .milliseconds(100)
  /// Accepted for source compatibility and not used: graceful shutdown waits until every
  /// buffered record is delivered or has failed, which ``messageTimeoutMs`` bounds.
  public var shutdownFlushTimeoutMs = 10_000
  /// Connection and security settings, also reachable as this configuration's own
  /// properties (`config.bootstrapServers`).
  public var common = KafkaCommonConfig()
  public subscript<T>(dynamicMember path: WritableKeyPath<KafkaCommonConfig, T>) -> T {
    get { common[keyPath: path] }
    set { common[keyPath: path] = newValue }
  }

  /// `acks` (or `request.required.acks`): 0, 1 or -1 (all, the default).
  public var acks: Int?
  public var requestRequiredAcks: Int?
  /// `enable.idempotence` (true here; librdkafka's default is false). Needs acks=-1.
  public var enableIdempotence: Bool?
  /// `linger.ms` (or `queue.buffering.max.ms`): how long a batch waits for more records (5).
  public var lingerMs: Double?
  public var queueBufferingMaxMs: Double?
  /// `batch.size`: uncompressed bytes after which a batch leaves (1000000).
  public var batchSize: Int?
  /// `queue.buffering.max.kbytes`: records buffered before ``KafkaProducer/send(_:)``
  /// throws a queue-full error (65536 KiB).
  public var queueBufferingMaxKbytes: Int?
  /// `compression.type` (or `compression.codec`, none).
  public var compressionType: KafkaConfig.CompressionType?
  public var compressionCodec: KafkaConfig.CompressionCodec?
  /// `message.timeout.ms` (or `delivery.timeout.ms`): a record not acknowledged within this
  /// time, whatever the connection state, fails (120000 here; librdkafka's is 300000).
  public var messageTimeoutMs: Int?
  public var deliveryTimeoutMs: Int?
  /// `retry.backoff.ms` (100).
  public var retryBackoffMs: Int?
  /// `allow.auto.create.topics` (true).
  public var allowAutoCreateTopics: Bool?

  public init() {}

  /// The equivalent ``KafkaProducerConfiguration``; throws `.config` for a bad value.
  public func configuration() throws(KafkaError) -> KafkaProducerConfiguration {
    let (addresses, connection) = try common.connectionSettings()
    var configuration = KafkaProducerConfiguration(bootstrapAddresses: addresses)
    configuration.connection = connection
    if let acks = acks ?? requestRequiredAcks {
      guard let value = Int16(exactly: acks), let parsed = KafkaConfiguration.Acks(rawValue: value) else {
        throw KafkaError(.config, "acks: \(acks) is not 0, 1 or -1")
      }
      configuration.acks = parsed
    }
    if let enableIdempotence { configuration.enableIdempotence = enableIdempotence }
    if let linger = lingerMs ?? queueBufferingMaxMs {
      guard linger >= 0, linger <= 900_000 else {
        throw KafkaError(.config, "linger.ms: \(linger) out of range")
      }
      configuration.linger = .microseconds(Int64(linger * 1000))
    }
    if let batchSize { configuration.batchSize = batchSize }
    if let kbytes = queueBufferingMaxKbytes {
      guard kbytes > 0, kbytes <= Int(Int32.max) else {
        throw KafkaError(.config, "queue.buffering.max.kbytes: \(kbytes) out of range")
      }
      configuration.bufferMemory = kbytes * 1024
    }
    if let codec = compressionType ?? compressionCodec {
      guard let parsed = CompressionCodec(name: codec.description) else {
        throw KafkaError(.config, "compression.type: \(codec) is unknown")
      }
      configuration.compression = parsed
    }
    if let timeout = messageTimeoutMs ?? deliveryTimeoutMs {
      guard timeout > 0 else { throw KafkaError(.config, "message.timeout.ms must be positive") }
      configuration.deliveryTimeout = .milliseconds(timeout)
    }
    if let retryBackoffMs { configuration.retryBackoff = .milliseconds(max(0, retryBackoffMs)) }
    if let allowAutoCreateTopics { configuration.allowAutoTopicCreation = allowAutoCreateTopics }
    return configuration
  }
}

/// Consumer settings under librdkafka's names (swift-kafka-client's `KafkaConsumerConfig`):
/// every option is nil until set, and nil means the default shown.
///
/// ```swift
/// var config = KafkaConsumerConfig()
/// config.bootstrapServers = ["localhost:9092"]
/// config.consumptionStrategy = .group(id: "example-group", topics: ["topic-name"])
/// let consumer = try KafkaConsumer(config: config, logger: logger)
/// ```
@dynamicMemberLookup
public struct KafkaConsumerConfig: Sendable {
  /// How often ``KafkaConsumer/run()`` checks for shutdown (unused; kept for source
  /// compatibility).
  public var pollInterval: Duration = .milliseconds(100)
  /// What to read: a group subscription or partitions. nil: nothing until
  /// ``KafkaConsumer/subscribe(topics:)`` (which needs ``groupId``).
  public var consumptionStrategy: KafkaConsumptionStrategy?
  /// Connection and security settings, also reachable as this configuration's own
  /// properties (`config.bootstrapServers`).
  public var common = KafkaCommonConfig()
  public subscript<T>(dynamicMember path: WritableKeyPath<KafkaCommonConfig, T>) -> T {
    get { common[keyPath: path] }
    set { common[keyPath: path] = newValue }
  }

  /// `group.id`: the group of ``KafkaConsumer/subscribe(topics:)`` when
  /// ``consumptionStrategy`` does not name one.
  public var groupId: String?
  /// `group.instance.id`: static membership (KIP-345).
  public var groupInstanceId: String?
  /// `enable.auto.commit` (true) and `auto.commit.interval.ms` (5000).
  public var enableAutoCommit: Bool?
  public var autoCommitIntervalMs: Int?
  /// `enable.auto.offset.store` (true): every message handed out counts as processed.
  /// false: only what ``KafkaConsumer/storeOffset(_:)`` stores is committed.
  public var enableAutoOffsetStore: Bool?
  /// `auto.offset.reset`: where to start without a committed offset (latest).
  public var autoOffsetReset: KafkaConfig.AutoOffsetReset?
  /// `isolation.level` (read_committed, as librdkafka).
  public var isolationLevel: KafkaConfig.IsolationLevel?
  /// `session.timeout.ms` (45000), `heartbeat.interval.ms` (3000), `max.poll.interval.ms`
  /// (the rebalance timeout, 300000).
  public var sessionTimeoutMs: Int?
  public var heartbeatIntervalMs: Int?
  public var maxPollIntervalMs: Int?
  /// `partition.assignment.strategy`: comma-separated `range`, `roundrobin`
  /// ("range,roundrobin").
  public var partitionAssignmentStrategy: String?
  /// `fetch.wait.max.ms` (500), `fetch.min.bytes` (1), `fetch.max.bytes` (52428800),
  /// `max.partition.fetch.bytes` (1048576).
  public var fetchWaitMaxMs: Int?
  public var fetchMinBytes: Int?
  public var fetchMaxBytes: Int?
  public var maxPartitionFetchBytes: Int?
  /// Sluice's addition (the Java client's `max.poll.records`): at most this many fetched
  /// records are handed out between two rebalance checks (500).
  public var maxPollRecords: Int?

  public init() {}

  /// The equivalent ``KafkaConsumerConfiguration``; throws `.config` for a bad value.
  public func configuration() throws(KafkaError) -> KafkaConsumerConfiguration {
    let (addresses, connection) = try common.connectionSettings()
    let strategy: KafkaConsumptionStrategy
    switch consumptionStrategy?.base {
    case .group(let id, let topics) where !id.isEmpty || consumptionStrategy?.allPartitionsOffset == nil:
      strategy = .group(id: id.isEmpty ? groupId ?? "" : id, topics: topics)
    case .some:
      strategy = consumptionStrategy!
    case .none:
      strategy = .group(id: groupId ?? "", topics: [])
    }
    var configuration = KafkaConsumerConfiguration(
      consumptionStrategy: strategy, bootstrapAddresses: addresses)
    configuration.connection = connection
    if enableAutoCommit == false {
      configuration.autoCommitInterval = nil
    } else if let autoCommitIntervalMs {
      guard autoCommitIntervalMs > 0 else {
        throw KafkaError(.config, "auto.commit.interval.ms must be positive")
      }
      configuration.autoCommitInterval = .milliseconds(autoCommitIntervalMs)
    }
    configuration.enableAutoOffsetStore = enableAutoOffsetStore ?? true
    if let autoOffsetReset {
      switch autoOffsetReset.description {
      case "smallest", "earliest", "beginning": configuration.autoOffsetReset = .beginning
      case "largest", "latest", "end": configuration.autoOffsetReset = .end
      default: throw KafkaError(.config, "auto.offset.reset=\(autoOffsetReset) is not supported")
      }
    }
    configuration.isolationLevel = isolationLevel == .read_uncommitted ? .readUncommitted : .readCommitted
    if let groupInstanceId { configuration.groupInstanceId = groupInstanceId }
    if let sessionTimeoutMs { configuration.sessionTimeout = .milliseconds(sessionTimeoutMs) }
    if let heartbeatIntervalMs { configuration.heartbeatInterval = .milliseconds(heartbeatIntervalMs) }
    if let maxPollIntervalMs { configuration.rebalanceTimeout = .milliseconds(maxPollIntervalMs) }
    if let partitionAssignmentStrategy {
      configuration.partitionAssignors = try partitionAssignmentStrategy.split(separator: ",").map {
        (name: Substring) throws(KafkaError) -> KafkaPartitionAssignor in
        let trimmed = String(name).trimmedSpaces()
        guard trimmed == "range" || trimmed == "roundrobin" else {
          throw KafkaError(.config, "partition.assignment.strategy: \(trimmed) is not range or roundrobin")
        }
        return KafkaPartitionAssignor(name: trimmed)
      }
    }
    if let fetchWaitMaxMs { configuration.fetchMaxWait = .milliseconds(max(0, fetchWaitMaxMs)) }
    func bytes(_ name: String, _ value: Int?, _ target: inout Int32) throws(KafkaError) {
      guard let value else { return }
      guard let exact = Int32(exactly: value), exact > 0 else {
        throw KafkaError(.config, "\(name) out of range")
      }
      target = exact
    }
    try bytes("fetch.min.bytes", fetchMinBytes, &configuration.fetchMinBytes)
    try bytes("fetch.max.bytes", fetchMaxBytes, &configuration.fetchMaxBytes)
    try bytes("max.partition.fetch.bytes", maxPartitionFetchBytes, &configuration.fetchPartitionMaxBytes)
    if let maxPollRecords { configuration.maxPollRecords = maxPollRecords }
    return configuration
  }
}
