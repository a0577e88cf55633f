public import KafkaProtocol

/// Namespace for configuration types shared by producer, consumer and admin client
/// (the names follow swift-kafka-client).
public enum KafkaConfiguration {
  /// A bootstrap broker.
  public struct BrokerAddress: Hashable, Sendable, CustomStringConvertible {
    /// A host name or IP address.
    public var host: String
    /// The TCP port.
    public var port: Int
    /// A broker at `host:port`.
    public init(host: String, port: Int) {
      self.host = host
      self.port = port
    }
    /// Parses `HOST:PORT` (`[v6]:PORT` for IPv6 literals); nil when malformed.
    public init?(_ text: String) {
      guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
        (1...65535).contains(port)
      else { return nil }
      var host = String(text[..<colon])
      if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
      guard !host.isEmpty else { return nil }
      self.init(host: host, port: port)
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
  }

  /// What a consumer reads of transactional records.
  public enum IsolationLevel: Int8, Sendable, Hashable {
    /// Every record, including those of open and aborted transactions.
    case readUncommitted = 0
    /// Only committed records, up to the last stable offset.
    case readCommitted = 1
  }

  /// Which replicas must have a record before the broker acknowledges it.
  public enum Acks: Int16, Sendable, Hashable {
    /// Fire and forget: the broker sends no response.
    case none = 0
    /// The leader appended it.
    case leader = 1
    /// Every in-sync replica has it (required for idempotence).
    case all = -1
  }

  /// Connection settings shared by every client.
  public struct Connection: Sendable, Hashable {
    /// `client.id` sent in every request header.
    public var clientId = "sluice-swift"
    /// A request not answered within this time fails and its connection is closed.
    public var requestTimeout: Duration = .seconds(30)
    /// First delay before reconnecting; doubles up to ``reconnectBackoffMax``.
    public var reconnectBackoff: Duration = .milliseconds(100)
    /// Longest delay between reconnection attempts.
    public var reconnectBackoffMax: Duration = .seconds(2)
    /// Give up reaching any broker after this long.
    public var connectTimeout: Duration = .seconds(10)
    /// Cached metadata is refreshed at least this often.
    public var metadataMaxAge: Duration = .seconds(300)
    /// Largest response frame accepted.
    public var maximumFrameSize = 104_857_600
    /// TCP (the default), or a broker embedded in this process (see ``Transport``).
    public var transport: Transport = .tcp
    /// TLS and SASL (librdkafka's `security.protocol`, `sasl.*`, `ssl.*`).
    public var security = Security()
    /// Kafka's defaults, TCP transport.
    public init() {}
  }

  /// Kafka's client security settings, under librdkafka's names.
  public struct Security: Sendable, Hashable {
    /// `security.protocol`.
    public typealias SecurityProtocol = KafkaSecurityProtocol

    /// `sasl.mechanism`.
    public enum SASLMechanism: String, Sendable, Hashable, CaseIterable {
      case plain = "PLAIN"
      case scramSHA256 = "SCRAM-SHA-256"
      case scramSHA512 = "SCRAM-SHA-512"
    }

    public var securityProtocol: SecurityProtocol = .plaintext
    public var saslMechanism: SASLMechanism = .plain
    /// `sasl.username` and `sasl.password`.
    public var saslUsername: String?
    public var saslPassword: String?
    /// `ssl.ca.location`: PEM file of the CAs that sign brokers' certificates (nil: the
    /// system's trust store).
    public var caLocation: String?
    /// `ssl.certificate.location` and `ssl.key.location`: a client certificate (PEM).
    public var certificateLocation: String?
    public var keyLocation: String?
    /// `ssl.endpoint.identification.algorithm`: `https` (the default) checks that the
    /// broker's certificate names the host connected to; `none` does not.
    public var verifyHostname = true

    public init() {}

    /// The settings ``set(_:_:)`` understands.
    public static let keys: Set<String> = [
      "security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password",
      "ssl.ca.location",
      "ssl.certificate.location", "ssl.key.location", "ssl.endpoint.identification.algorithm",
    ]

    /// Applies one librdkafka-style setting (`security.protocol=SASL_SSL`); throws a
    /// `.config` error for an unknown key or a bad value.
    public mutating func set(_ key: String, _ value: String) throws(KafkaError) {
      switch key {
      case "security.protocol":
        guard let parsed = SecurityProtocol(rawValue: value.uppercased()) else {
          throw KafkaError(
            .config, "security.protocol: \"\(value)\" is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
        }
        securityProtocol = parsed
      case "sasl.mechanism", "sasl.mechanisms":
        guard let parsed = SASLMechanism(rawValue: value.uppercased()) else {
          throw KafkaError(.config, "\(key): \"\(value)\" is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
        }
        saslMechanism = parsed
      case "sasl.username": saslUsername = value
      case "sasl.password": saslPassword = value
      case "ssl.ca.location": caLocation = value
      case "ssl.certificate.location": certificateLocation = value
      case "ssl.key.location": keyLocation = value
      case "ssl.endpoint.identification.algorithm":
        switch value.lowercased() {
        case "https": verifyHostname = true
        case "none", "": verifyHostname = false
        default:
          throw KafkaError(
            .config, "ssl.endpoint.identification.algorithm: \"\(value)\" is not https or none")
        }
      default:
        throw KafkaError(.config, "unknown client setting \"\(key)\"")
      }
    }
  }
}

/// Producer settings, Swift-typed (the librdkafka-named form is ``KafkaProducerConfig``).
public struct KafkaProducerConfiguration: Sendable {
  /// Brokers to fetch metadata from first (any one is enough; others are tried in turn).
  public var bootstrapAddresses: [KafkaConfiguration.BrokerAddress]
  /// Connection settings.
  public var connection = KafkaConfiguration.Connection()
  /// Which replicas must have a record before it counts as sent (`acks`).
  public var acks: KafkaConfiguration.Acks = .all
  /// Producer id + per-partition sequence numbers, so a retried batch is written once
  /// (Kafka's `enable.idempotence`, on by default). Takes effect only with `acks = .all`.
  public var enableIdempotence = true
  /// Codec for record batches (`compression.type`).
  public var compression: CompressionCodec = .none
  /// How long a partition's batch waits for more records (`linger.ms`).
  public var linger: Duration = .milliseconds(5)
  /// Uncompressed bytes after which a batch is sent at once (`batch.size`).
  public var batchSize = 1_000_000
  /// Bytes buffered across partitions before `send` waits (`buffer.memory`).
  public var bufferMemory = 64 << 20
  /// A record not acknowledged within this time fails (`delivery.timeout.ms`).
  public var deliveryTimeout: Duration = .seconds(120)
  /// Delay between retries of a failed batch (`retry.backoff.ms`).
  public var retryBackoff: Duration = .milliseconds(100)
  /// Whether an unknown topic is created on first use (if the broker allows it).
  public var allowAutoTopicCreation = true
  /// Test hook: send every produce request twice, as a lost response followed by a retry would.
  package var duplicateEveryProduceRequest = false

  /// Kafka's defaults; set the bootstrap addresses (or an in-process transport).
  public init(bootstrapAddresses: [KafkaConfiguration.BrokerAddress] = []) {
    self.bootstrapAddresses = bootstrapAddresses
  }
}

/// What a consumer reads (swift-kafka-client's `ConsumptionStrategy`).
public struct KafkaConsumptionStrategy: Sendable {
  enum Base: Sendable {
    case partitions([KafkaTopicPartition: KafkaOffset])
    case group(id: String, topics: [String])
  }
  let base: Base
  /// One partition, read from `offset`.
  public static func partition(_ partition: KafkaPartition, topic: String, offset: KafkaOffset = .end) -> Self
  {
    Self(base: .partitions([KafkaTopicPartition(topic: topic, partition: partition): offset]))
  }
  /// Manual assignment of several partitions.
  public static func partitions(_ assignment: [KafkaTopicPartition: KafkaOffset]) -> Self {
    Self(base: .partitions(assignment))
  }
  /// Every partition of `topics` (found through metadata at start), from `offset`.
  public static func topics(_ topics: [String], offset: KafkaOffset) -> Self {
    Self(base: .group(id: "", topics: topics)).withAllPartitionsFrom(offset)
  }
  /// Group subscription: partitions are shared among the group's members.
  public static func group(id: String, topics: [String]) -> Self {
    Self(base: .group(id: id, topics: topics))
  }
  var allPartitionsOffset: KafkaOffset? = nil
  private func withAllPartitionsFrom(_ offset: KafkaOffset) -> Self {
    var copy = self
    copy.allPartitionsOffset = offset
    return copy
  }
}

/// Consumer settings, Swift-typed (the librdkafka-named form is ``KafkaConsumerConfig``).
public struct KafkaConsumerConfiguration: Sendable {
  /// swift-kafka-client's name of ``KafkaConsumptionStrategy``.
  public typealias ConsumptionStrategy = KafkaConsumptionStrategy
  /// Partitions by assignment, or a group subscription.
  public var consumptionStrategy: KafkaConsumptionStrategy
  /// Brokers to fetch metadata from first.
  public var bootstrapAddresses: [KafkaConfiguration.BrokerAddress]
  /// Connection settings.
  public var connection = KafkaConfiguration.Connection()
  /// Where to start when there is no committed offset or the position is out of range.
  public var autoOffsetReset: KafkaOffset = .end
  /// Long-poll time of each fetch.
  public var fetchMaxWait: Duration = .milliseconds(500)
  /// A fetch returns once this many bytes are available (or ``fetchMaxWait`` passed).
  public var fetchMinBytes: Int32 = 1
  /// Most bytes one fetch response may carry (`fetch.max.bytes`).
  public var fetchMaxBytes: Int32 = 52_428_800
  /// Most bytes per partition in one fetch (`max.partition.fetch.bytes`).
  public var fetchPartitionMaxBytes: Int32 = 1_048_576
  /// Largest decompressed size of one record batch accepted.
  public var maxDecompressedBatchSize = 256 << 20
  /// Whether transactional records of aborted transactions are returned
  /// (`isolation.level`).
  public var isolationLevel: KafkaConfiguration.IsolationLevel = .readUncommitted
  /// Group membership (group strategy only): the coordinator removes a member it has not
  /// heard from for `sessionTimeout` (the broker bounds it, 6 s to 30 min by default).
  public var sessionTimeout: Duration = .seconds(45)
  /// How often a member tells the coordinator it is alive, and learns of rebalances.
  public var heartbeatInterval: Duration = .seconds(3)
  /// How long the coordinator waits for every member to rejoin during a rebalance.
  public var rebalanceTimeout: Duration = .seconds(60)
  /// Static membership (KIP-345, `group.instance.id`): a member that restarts with the same
  /// id within the session timeout gets its partitions back without a rebalance. Such a
  /// member does not leave the group on ``KafkaConsumer/close()``.
  public var groupInstanceId: String?
  /// Partition assignors offered to the group, preferred first.
  public var partitionAssignors: [KafkaPartitionAssignor] = [.range, .roundRobin]
  /// Commit the position of delivered messages every `autoCommitInterval`, before a
  /// rebalance takes partitions away, and on close (nil: only explicit `commit()`; Kafka's
  /// `enable.auto.commit` and `auto.commit.interval.ms`).
  public var autoCommitInterval: Duration? = .seconds(5)
  /// Whether every message handed out counts as processed for commits (true, librdkafka's
  /// `enable.auto.offset.store`); false: only offsets given to
  /// ``KafkaConsumer/storeOffset(_:)`` are committed (at-least-once after processing).
  public var enableAutoOffsetStore = true
  /// At most this many fetched records are handed out between two rebalance and
  /// auto-commit checks (the Java client's `max.poll.records`); the rest stay buffered, so
  /// a big fetch does not hold up a rebalance.
  public var maxPollRecords = 500

  public init(
    consumptionStrategy: KafkaConsumptionStrategy,
    bootstrapAddresses: [KafkaConfiguration.BrokerAddress] = []
  ) {
    self.consumptionStrategy = consumptionStrategy
    self.bootstrapAddresses = bootstrapAddresses
  }
}

/// Admin client settings.
public struct KafkaAdminConfiguration: Sendable {
  public var bootstrapAddresses: [KafkaConfiguration.BrokerAddress]
  public var connection = KafkaConfiguration.Connection()
  public init(bootstrapAddresses: [KafkaConfiguration.BrokerAddress] = []) {
    self.bootstrapAddresses = bootstrapAddresses
  }
}

/// A group partition assignor (the classic consumer protocol's `protocol_name`).
public struct KafkaPartitionAssignor: Hashable, Sendable {
  public var name: String
  public static let range = KafkaPartitionAssignor(name: "range")
  public static let roundRobin = KafkaPartitionAssignor(name: "roundrobin")
}

// MARK: Names of earlier releases

extension KafkaProducerConfiguration {
  @available(*, deprecated, renamed: "init(bootstrapAddresses:)")
  public init(bootstrapBrokerAddresses: [KafkaConfiguration.BrokerAddress]) {
    self.init(bootstrapAddresses: bootstrapBrokerAddresses)
  }
  @available(*, deprecated, renamed: "bootstrapAddresses")
  public var bootstrapBrokerAddresses: [KafkaConfiguration.BrokerAddress] {
    get { bootstrapAddresses }
    set { bootstrapAddresses = newValue }
  }
}

extension KafkaConsumerConfiguration {
  @available(*, deprecated, renamed: "init(consumptionStrategy:bootstrapAddresses:)")
  public init(
    consumptionStrategy: KafkaConsumptionStrategy,
    bootstrapBrokerAddresses: [KafkaConfiguration.BrokerAddress]
  ) {
    self.init(consumptionStrategy: consumptionStrategy, bootstrapAddresses: bootstrapBrokerAddresses)
  }
  @available(*, deprecated, renamed: "bootstrapAddresses")
  public var bootstrapBrokerAddresses: [KafkaConfiguration.BrokerAddress] {
    get { bootstrapAddresses }
    set { bootstrapAddresses = newValue }
  }
}

extension KafkaAdminConfiguration {
  @available(*, deprecated, renamed: "init(bootstrapAddresses:)")
  public init(bootstrapBrokerAddresses: [KafkaConfiguration.BrokerAddress]) {
    self.init(bootstrapAddresses: bootstrapBrokerAddresses)
  }
  @available(*, deprecated, renamed: "bootstrapAddresses")
  public var bootstrapBrokerAddresses: [KafkaConfiguration.BrokerAddress] {
    get { bootstrapAddresses }
    set { bootstrapAddresses = newValue }
  }
}
