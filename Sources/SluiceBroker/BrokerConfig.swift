public import SluiceStorage

/// Broker-wide settings. Topic-level settings default to ``defaultLog``.
public struct BrokerConfig: Sendable {
  /// Where topics and metadata live.
  public var dataDirectory: String = "./sluice-data"
  /// The address clients are told to connect to (Metadata, FindCoordinator).
  public var advertisedHost: String = "127.0.0.1"
  public var advertisedPort: Int32 = 9092
  public var nodeId: Int32 = 0
  /// `super.users`: principals (`User:alice`) every ACL check lets through.
  public var superUsers: Set<String> = []
  /// `allow.everyone.if.no.acl.found`: whether a resource no ACL covers is open to all.
  /// nil: true, unless a listener authenticates (`sluice serve` and `EmbeddedBroker` decide
  /// it from their listeners).
  public var allowEveryoneIfNoAclFound: Bool?
  /// `auto.create.topics.enable`.
  public var autoCreateTopics = true
  /// `sluice.slow.request.log.ms`: Kafka requests that take longer than this are logged
  /// (warning, logger `sluice.slow`); 0 turns the log off.
  public var slowRequestLogMs: Int64 = 0
  /// `sluice.audit.log.enable`: log every admin request (who created, deleted or changed
  /// what, and the outcome; logger `sluice.audit`). `sluice serve` turns it on; off for an
  /// embedded broker unless asked.
  public var auditLog = false
  /// `num.partitions`: partitions of an auto-created topic.
  public var defaultPartitions: Int32 = 1
  /// `message.max.bytes`: default `max.message.bytes` for topics.
  public var maxMessageBytes: Int = 1_048_588
  /// Produce decompresses a compressed batch to check its records (it is stored as it came);
  /// one that expands beyond this is refused with MESSAGE_TOO_LARGE, and no more than this
  /// is ever allocated for it (decompression bombs). See docs/compression.md.
  public var maxDecompressedBatchBytes: Int = 64 << 20
  /// Topic-level defaults (retention, segments, flushing, storage kind).
  public var defaultLog = LogConfig()
  /// Topic-level defaults of the overflow policy (`sluice.overflow.*`).
  public var defaultOverflow = OverflowConfig()
  /// A consumer group with no members counts towards a partition's backlog (reject,
  /// backpressure) only if it committed an offset this recently (docs/overflow.md).
  public var overflowGroupActiveMs: Int64 = 300_000
  /// How often time-based flushes (`flush.ms`), the drop-oldest bound and offline checks run.
  public var housekeepingIntervalMs: Int64 = 1000
  /// `log.retention.check.interval.ms`: how often `retention.ms` and `retention.bytes` are
  /// applied. Kafka's default, 5 minutes: retention is a lower bound on how long data is
  /// kept (nothing goes before `retention.ms` after it was written), and a check that
  /// finds expired segments deletes files, so it runs as rarely as Kafka's and existing
  /// configurations behave alike. Memory topics are bounded by bytes at every append.
  public var retentionCheckIntervalMs: Int64 = 300_000
  /// `log.message.timestamp.before.max.ms` / `after.max.ms` (KIP-937): defaults of the
  /// topic configs bounding how far a CreateTime record's timestamp may lie from the
  /// broker's clock.
  ///
  /// `after.max.ms` is one hour by default, Kafka 4's value (3.x had no bound): a record
  /// stamped far in the future would otherwise hold its segment, and every later one, past
  /// retention.
  public var messageTimestampBeforeMaxMs: Int64 = Int64.max
  public var messageTimestampAfterMaxMs: Int64 = 3_600_000
  /// `compression.type`: the default codec topics store batches with.
  public var defaultCompression: TopicCompression = .producer
  /// `compression.gzip.level`, `compression.lz4.level`, `compression.zstd.level`.
  public var defaultCompressionLevels = CompressionLevels()
  /// `min.insync.replicas`: the default for topics.
  public var minInsyncReplicas = 1
  /// Upper bound on partitions per topic (a hostile CreateTopics cannot ask for millions).
  public var maxPartitionsPerTopic: Int32 = 10_000
  /// `sluice.log.max.open.files`: descriptors of log files (segments, indexes) kept open at
  /// most, process-wide; the least recently used are closed beyond it. Nil: a quarter of
  /// the process's descriptor limit (RLIMIT_NOFILE), at least 64.
  public var maxOpenLogFiles: Int?

  // Consumer groups (see docs/groups.md).
  /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an Empty group
  /// waits for more members after the last one joined. Kafka's default is 3000 ms; 300 ms
  /// still batches consumers started together while keeping a lone consumer's start fast.
  public var groupInitialRebalanceDelayMs: Int64 = 300
  /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms` (Kafka's defaults).
  public var groupMinSessionTimeoutMs: Int32 = 6000
  public var groupMaxSessionTimeoutMs: Int32 = 1_800_000
  /// `group.max.size`: members per group (GROUP_MAX_SIZE_REACHED beyond).
  public var groupMaxSize: Int = 1000
  /// `sluice.max.groups`: groups with members or committed offsets; a JoinGroup or
  /// OffsetCommit that would create one more gets GROUP_MAX_SIZE_REACHED.
  public var maxGroups: Int = 10_000
  /// `offset.metadata.max.bytes`: OFFSET_METADATA_TOO_LARGE beyond.
  public var offsetMetadataMaxBytes: Int = 4096
  /// `offsets.retention.minutes`: offsets of a group that has been Empty this long go.
  public var offsetsRetentionMinutes: Int64 = 7 * 24 * 60
  /// `offsets.retention.check.interval.ms`.
  public var offsetsRetentionCheckIntervalMs: Int64 = 600_000
  /// Compact the committed-offsets log into a snapshot once it exceeds this (and the
  /// previous snapshot).
  public var offsetsLogCompactionBytes: Int = 4 << 20

  // Share groups (KIP-932; see docs/queues.md).
  /// `group.share.record.lock.duration.ms`: how long a record handed to a share consumer
  /// stays locked to it before another member may get it.
  public var shareRecordLockDurationMs: Int64 = 30_000
  /// `group.share.delivery.count.limit`: deliveries of one record at most; released or
  /// timed out once more, it is archived (and dead-lettered).
  public var shareDeliveryCountLimit: Int16 = 5
  /// `group.share.partition.max.record.locks`: in-flight records per share partition.
  public var sharePartitionMaxRecordLocks: Int = 2000
  /// `group.share.session.timeout.ms`: a share consumer silent this long leaves its group.
  public var shareSessionTimeoutMs: Int64 = 45_000
  /// `group.share.heartbeat.interval.ms`.
  public var shareHeartbeatIntervalMs: Int32 = 5000
  /// `group.share.max.size`: members per share group.
  public var shareMaxSize: Int = 200
  /// `group.share.max.share.sessions`: share sessions on this broker.
  public var shareMaxSessions: Int = 2000
  /// `sluice.share.dlq.topic`: where rejected records and records that used up their
  /// delivery count go, as a name pattern (`{topic}` and `{group}` are replaced); empty:
  /// they are archived silently, as Kafka does.
  public var shareDeadLetterTopic: String = ""

  public init() {}
}
