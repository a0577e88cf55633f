public import KafkaProtocol
public import SluiceStorage

/// A topic's configuration: Kafka's topic-level config names (``TopicConfigEntry/all``)
/// mapped onto ``LogConfig`` and the broker's per-topic rules, with validation that turns a
/// bad value into INVALID_CONFIG and a message.
public struct TopicConfig: Hashable, Sendable {
  /// Only the configs set explicitly on the topic (what DescribeConfigs reports as
  /// DYNAMIC_TOPIC_CONFIG); everything else comes from the broker's defaults.
  public var overrides: [String: String]
  public var log: LogConfig
  public var maxMessageBytes: Int
  /// What happens when producers outrun consumers (docs/overflow.md).
  public var overflow: OverflowConfig
  /// `segment.bytes` as configured; ``log`` may roll smaller segments (drop-oldest).
  public var configuredSegmentBytes: Int
  /// `cleanup.policy`: "delete", "compact", both, or neither.
  public var cleanupPolicy: Set<String> = ["delete"]
  /// `compression.type`.
  public var compression: TopicCompression
  /// `compression.<codec>.level`.
  public var compressionLevels: CompressionLevels
  /// `message.timestamp.before.max.ms` / `after.max.ms` (KIP-937), after the fallback to
  /// the deprecated `message.timestamp.difference.max.ms`.
  public var timestampBeforeMaxMs: Int64
  public var timestampAfterMaxMs: Int64
  /// `min.insync.replicas`.
  public var minInsyncReplicas: Int
  /// The defaults the broker's dynamic configs set (topic config names), for no-effect
  /// configs whose reported value is the broker's.
  var brokerDefaults: [String: String] = [:]

  public struct Invalid: Error, Sendable {
    public var message: String
  }

  public static var names: [String] { TopicConfigEntry.all.map(\.name) }

  /// Builds a config from explicit overrides over the broker's defaults — `broker`, then
  /// `brokerDefaults` (topic config names with the values the broker's dynamic configs set);
  /// throws ``Invalid`` for unknown names and bad values.
  public init(overrides: [String: String], broker: BrokerConfig, brokerDefaults: [String: String] = [:])
    throws(Invalid)
  {
    self.overrides = overrides
    self.log = broker.defaultLog
    self.maxMessageBytes = broker.maxMessageBytes
    self.overflow = broker.defaultOverflow
    self.configuredSegmentBytes = broker.defaultLog.segmentBytes
    self.compression = broker.defaultCompression
    self.compressionLevels = broker.defaultCompressionLevels
    self.timestampBeforeMaxMs = broker.messageTimestampBeforeMaxMs
    self.timestampAfterMaxMs = broker.messageTimestampAfterMaxMs
    self.minInsyncReplicas = broker.minInsyncReplicas
    for (name, value) in brokerDefaults.sorted(by: { $0.key < $1.key }) {
      guard let entry = TopicConfigEntry.byName[name], entry.problem(value) == nil else { continue }
      entry.apply(&self, value)
    }
    for (name, value) in overrides.sorted(by: { $0.key < $1.key }) {
      if name.hasPrefix(Self.statisticPrefix) {
        throw Invalid(message: "\(name) is a read-only statistic, not a config")
      }
      guard let entry = TopicConfigEntry.byName[name] else {
        throw Invalid(message: "Unknown topic config name: \(name)")
      }
      if let problem = entry.problem(value) { throw Invalid(message: problem) }
      entry.apply(&self, value)
    }
    // Kafka 3.x: before/after.max.ms not set on the topic fall back to the deprecated
    // difference.max.ms where that is set.
    let merged = brokerDefaults.merging(overrides) { $1 }
    if let difference = merged["message.timestamp.difference.max.ms"].flatMap({ Int64($0.trimmingSpaces) }) {
      if merged["message.timestamp.before.max.ms"] == nil { timestampBeforeMaxMs = difference }
      if merged["message.timestamp.after.max.ms"] == nil { timestampAfterMaxMs = difference }
    }
    self.brokerDefaults = brokerDefaults
    if overrides["remote.storage.enable"]?.trimmingSpaces.lowercased() == "true" {
      throw Invalid(message: "Tiered storage (remote.storage.enable=true) is not available in Sluice")
    }
    if let min = overrides["min.compaction.lag.ms"].flatMap({ Int64($0.trimmingSpaces) }),
      let max = overrides["max.compaction.lag.ms"].flatMap({ Int64($0.trimmingSpaces) }), min > max
    {
      throw Invalid(
        message:
          "conflict topic config setting min.compaction.lag.ms (\(min)) > max.compaction.lag.ms (\(max))")
    }
    log.retentionApplies = cleanupPolicy.contains("delete")
    configuredSegmentBytes = log.segmentBytes
    if let problem = overflow.problem { throw Invalid(message: problem) }
    if overflow.policy == .dropOldest {
      // Disk space comes back a whole segment at a time: roll small enough segments that
      // the files stay near the bound too.
      log.segmentBytes = min(log.segmentBytes, max(Int(overflow.maxBytes / 4), 65536))
    }
  }

  /// Names of the read-only statistics DescribeConfigs lists beside the configs.
  public static let statisticPrefix = "sluice.stats."

  /// The effective value of every config, for DescribeConfigs.
  public func effectiveValues() -> [(name: String, value: String, isDefault: Bool, doc: String)] {
    TopicConfigEntry.all.map { entry in
      let explicit = overrides[entry.name]
      var doc = entry.doc
      if case .none(let reason) = entry.effect { doc += " No effect in Sluice: \(reason)." }
      return (entry.name, explicit ?? entry.value(self), explicit == nil, doc)
    }
  }

  /// Kafka's config type code of a topic config (DescribeConfigs v3+).
  public static func typeCode(_ name: String) -> Int8 {
    TopicConfigEntry.byName[name]?.typeCode ?? 0
  }

  /// The codec batches are stored with, nil when the producer's is kept.
  public var storedCodec: CompressionCodec? { compression.storedCodec }

  /// The level for recompressing to ``storedCodec``.
  public var compressionLevel: Int32? { storedCodec.flatMap { compressionLevels.level(for: $0) } }

  /// Where a CreateTime record's timestamp must lie at `now`, or nil when anything goes.
  public func timestampBounds(now: Int64) -> ClosedRange<Int64>? {
    guard timestampBeforeMaxMs != Int64.max || timestampAfterMaxMs != Int64.max else { return nil }
    let (low, lowOverflow) = now.subtractingReportingOverflow(timestampBeforeMaxMs)
    let (high, highOverflow) = now.addingReportingOverflow(timestampAfterMaxMs)
    return (lowOverflow ? Int64.min : low)...(highOverflow ? Int64.max : high)
  }

  /// Whether `retention.ms` / `retention.bytes` and DeleteRecords apply (`cleanup.policy`
  /// includes delete).
  public var deletesByRetention: Bool { cleanupPolicy.contains("delete") }
}

/// Kafka's rules for topic names: 1-249 characters of [a-zA-Z0-9._-], not "." or "..".
public func validateTopicName(_ name: String) -> String? {
  if name.isEmpty { return "Topic name is empty" }
  if name == "." || name == ".." { return "Topic name cannot be \".\" or \"..\"" }
  if name.utf8.count > 249 { return "Topic name is longer than 249 characters" }
  for byte in name.utf8 {
    let ok =
      (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39)
      || byte == 0x2E || byte == 0x5F || byte == 0x2D
    if !ok {
      return "Topic name \"\(name)\" contains characters other than ASCII alphanumerics, '.', '_' and '-'"
    }
  }
  return nil
}

extension ErrorCode {
  /// The Kafka error code for a storage failure.
  static func from(_ error: StorageError) -> ErrorCode {
    switch error.code {
    case .offsetOutOfRange: .offsetOutOfRange
    case .invalidBatch: .corruptMessage
    default: .kafkaStorageError
    }
  }
}

/// A topic's answer to producers outrunning its consumers (docs/overflow.md).
public struct OverflowConfig: Hashable, Sendable {
  public enum Policy: String, CaseIterable, Sendable {
    /// Keep everything up to retention; producers are never slowed.
    case buffer
    /// Keep at most `maxBytes` per partition; the oldest batches go first.
    case dropOldest = "drop-oldest"
    /// Refuse produce requests that would take the backlog past `maxBytes`.
    case reject
    /// Hold produce requests while the backlog is above the high-water mark `maxBytes`,
    /// until it is back at the low-water mark.
    case backpressure
  }

  /// `sluice.overflow.policy`.
  public var policy: Policy = .buffer
  /// `sluice.overflow.max.bytes`: the bound (drop-oldest, reject) or the high-water mark
  /// (backpressure); -1: none.
  public var maxBytes: Int64 = -1
  /// `sluice.overflow.resume.bytes`: the low-water mark; -1: 80% of `maxBytes`.
  public var resumeBytes: Int64 = -1
  /// `sluice.overflow.max.wait.ms`: the longest backpressure holds one produce request.
  public var maxWaitMs: Int64 = 5000

  public init() {}

  public var lowWaterMark: Int64 { resumeBytes >= 0 ? resumeBytes : maxBytes / 5 * 4 }

  /// Why this combination cannot work, or nil.
  public var problem: String? {
    if policy != .buffer && maxBytes <= 0 {
      return "sluice.overflow.policy=\(policy.rawValue) needs sluice.overflow.max.bytes > 0"
    }
    if policy == .backpressure && resumeBytes > maxBytes {
      return
        "sluice.overflow.resume.bytes (\(resumeBytes)) must not exceed sluice.overflow.max.bytes (\(maxBytes))"
    }
    return nil
  }
}
