import KafkaProtocol
public import SluiceStorage

/// A topic's configuration: Kafka's topic-level config names mapped onto ``LogConfig``,
/// with validation that turns a bad value into INVALID_CONFIG and a message.
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

  public struct Invalid: Error, Sendable {
    public var message: String
  }

  enum Kind {
    case long(min: Int64)
    case int(min: Int64)
    case choice([String])
  }

  static let definitions: [(name: String, kind: Kind, doc: String)] = [
    (
      "cleanup.policy", .choice(["delete"]),
      "Retention policy; only \"delete\" is supported (no compaction yet)."
    ),
    (
      "flush.messages", .long(min: 1),
      "Force an fsync after this many records; 1 makes every append durable before it is acknowledged."
    ),
    ("flush.ms", .long(min: 0), "Force an fsync of data that has been unflushed this long."),
    ("max.message.bytes", .int(min: 0), "Largest record batch the topic accepts."),
    (
      "message.timestamp.type", .choice(["CreateTime", "LogAppendTime"]),
      "Whether record timestamps are the producer's or the broker's."
    ),
    (
      "retention.bytes", .long(min: -1),
      "Delete oldest segments while a partition is larger than this; -1: no limit."
    ),
    (
      "retention.ms", .long(min: -1),
      "Delete segments whose newest record is older than this; -1: keep forever."
    ),
    ("segment.bytes", .int(min: 14), "Roll a new segment file at this size."),
    ("segment.ms", .long(min: 1), "Roll a new segment file after this long."),
    (
      "sluice.overflow.max.bytes", .long(min: -1),
      "Backlog bound per partition: drop-oldest keeps at most this many bytes, reject refuses produce "
        + "requests beyond it, backpressure slows producers above it; -1: none."
    ),
    (
      "sluice.overflow.max.wait.ms", .long(min: 0),
      "backpressure: the longest a produce request is held; still over the mark then, it fails with "
        + "REQUEST_TIMED_OUT (retriable) and nothing is appended."
    ),
    (
      "sluice.overflow.policy", .choice(OverflowConfig.Policy.allCases.map(\.rawValue)),
      "When producers outrun consumers: buffer (keep everything up to retention), drop-oldest, reject "
        + "or backpressure."
    ),
    (
      "sluice.overflow.resume.bytes", .long(min: -1),
      "backpressure: the low-water mark below which producers get full speed again; -1: 80% of "
        + "sluice.overflow.max.bytes."
    ),
    (
      "sluice.storage", .choice(["disk", "memory"]),
      "disk: segment files; memory: in memory only, lost on restart."
    ),
  ]

  public static var names: [String] { definitions.map(\.name) }

  /// Builds a config from explicit overrides over the broker's defaults; throws ``Invalid``
  /// for unknown names and bad values.
  public init(overrides: [String: String], broker: BrokerConfig) throws(Invalid) {
    self.overrides = overrides
    self.log = broker.defaultLog
    self.maxMessageBytes = broker.maxMessageBytes
    self.overflow = broker.defaultOverflow
    self.configuredSegmentBytes = broker.defaultLog.segmentBytes
    for (name, value) in overrides.sorted(by: { $0.key < $1.key }) {
      if name.hasPrefix(Self.statisticPrefix) {
        throw Invalid(message: "\(name) is a read-only statistic, not a config")
      }
      guard let definition = Self.definitions.first(where: { $0.name == name }) else {
        throw Invalid(message: "Unknown topic config name: \(name)")
      }
      switch definition.kind {
      case .long(let min), .int(let min):
        guard let number = Int64(value), number >= min else {
          throw Invalid(
            message: "Invalid value \(value) for configuration \(name): must be an integer >= \(min)")
        }
        if case .int = definition.kind, number > Int64(Int32.max) {
          throw Invalid(message: "Invalid value \(value) for configuration \(name): must fit in int32")
        }
        switch name {
        case "flush.messages": log.flushMessages = number
        case "flush.ms": log.flushMs = number
        case "max.message.bytes": maxMessageBytes = Int(number)
        case "retention.bytes": log.retentionBytes = number
        case "retention.ms": log.retentionMs = number
        case "segment.bytes": log.segmentBytes = Int(number)
        case "segment.ms": log.segmentMs = number
        case "sluice.overflow.max.bytes": overflow.maxBytes = number
        case "sluice.overflow.max.wait.ms": overflow.maxWaitMs = number
        case "sluice.overflow.resume.bytes": overflow.resumeBytes = number
        default: break
        }
      case .choice(let choices):
        guard choices.contains(value) else {
          throw Invalid(
            message:
              "Invalid value \(value) for configuration \(name): must be one of \(choices.joined(separator: ", "))"
          )
        }
        switch name {
        case "message.timestamp.type": log.logAppendTime = value == "LogAppendTime"
        case "sluice.storage": log.storage = value == "memory" ? .memory : .disk
        case "sluice.overflow.policy": overflow.policy = OverflowConfig.Policy(rawValue: value) ?? .buffer
        default: break
        }
      }
    }
    configuredSegmentBytes = log.segmentBytes
    if let problem = overflow.problem { throw Invalid(message: problem) }
    if overflow.policy == .dropOldest {
      // Disk space comes back a whole segment at a time: roll small enough segments that
      // the files stay near the bound too.
      log.segmentBytes = min(log.segmentBytes, max(Int(overflow.maxBytes / 4), 65536))
    }
  }

  /// Names of the read-only statistics DescribeConfigs lists beside the configs.
  static let statisticPrefix = "sluice.stats."

  /// The effective value of every config, for DescribeConfigs.
  public func effectiveValues() -> [(name: String, value: String, isDefault: Bool, doc: String)] {
    Self.definitions.map { definition in
      let value: String
      switch definition.name {
      case "cleanup.policy": value = "delete"
      case "flush.messages": value = String(log.flushMessages)
      case "flush.ms": value = String(log.flushMs)
      case "max.message.bytes": value = String(maxMessageBytes)
      case "message.timestamp.type": value = log.logAppendTime ? "LogAppendTime" : "CreateTime"
      case "retention.bytes": value = String(log.retentionBytes)
      case "retention.ms": value = String(log.retentionMs)
      case "segment.bytes": value = String(configuredSegmentBytes)
      case "segment.ms": value = String(log.segmentMs)
      case "sluice.storage": value = log.storage.rawValue
      case "sluice.overflow.policy": value = overflow.policy.rawValue
      case "sluice.overflow.max.bytes": value = String(overflow.maxBytes)
      case "sluice.overflow.resume.bytes": value = String(overflow.resumeBytes)
      case "sluice.overflow.max.wait.ms": value = String(overflow.maxWaitMs)
      default: value = ""
      }
      return (
        definition.name, overrides[definition.name] ?? value, overrides[definition.name] == nil,
        definition.doc
      )
    }
  }

  /// Kafka's config type codes (DescribeConfigs v3+): 1 BOOLEAN, 2 STRING, 3 INT, 4 SHORT,
  /// 5 LONG, 6 DOUBLE, 7 LIST, 8 CLASS, 9 PASSWORD.
  static func typeCode(_ name: String) -> Int8 {
    switch definitions.first(where: { $0.name == name })?.kind {
    case .long: 5
    case .int: 3
    case .choice: name == "cleanup.policy" ? 7 : 2
    case nil: 0
    }
  }
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
