public import SluiceStorage

/// Broker-wide settings. Topic-level settings default to ``defaultLog``.
public struct BrokerConfig: Sendable {
  /// Where topics and metadata live.
  public var dataDirectory: String = "./sluice-data"
  /// The address clients are told to connect to (Metadata, FindCoordinator).
  public var advertisedHost: String = "127.0.0.1"
  public var advertisedPort: Int32 = 9092
  public var nodeId: Int32 = 0
  /// `auto.create.topics.enable`.
  public var autoCreateTopics = true
  /// `num.partitions`: partitions of an auto-created topic.
  public var defaultPartitions: Int32 = 1
  /// `message.max.bytes`: default `max.message.bytes` for topics.
  public var maxMessageBytes: Int = 1_048_588
  /// Topic-level defaults (retention, segments, flushing, storage kind).
  public var defaultLog = LogConfig()
  /// How often retention and time-based flushes run.
  public var housekeepingIntervalMs: Int64 = 1000
  /// Upper bound on partitions per topic (a hostile CreateTopics cannot ask for millions).
  public var maxPartitionsPerTopic: Int32 = 10_000

  public init() {}
}
