public import KafkaProtocol

/// Every topic-level config Sluice accepts: all of Kafka 3.9's (the last 3.x; 4.0 removed
/// `message.format.version` and `message.timestamp.difference.max.ms`, which a 4.x broker
/// refuses) and Sluice's own `sluice.*`. Each entry says how a value is checked, what it
/// does here, how DescribeConfigs shows it, and where it goes in ``TopicConfig``.
///
/// Entries whose `effect` is `.none` are accepted and reported (so admin tools and client
/// test suites that set them work) but change nothing, for the reason given; docs/topics.md
/// lists them. Unknown names are refused with INVALID_CONFIG, as Kafka refuses them.
struct TopicConfigEntry: Sendable {
  enum Kind: Sendable {
    case long(min: Int64, max: Int64 = Int64.max)
    case int(min: Int64, max: Int64 = Int64(Int32.max))
    case double(min: Double, max: Double)
    case bool
    case choice([String])
    /// A comma-separated list, each element one of these (empty allowed when `allowEmpty`).
    case list([String], allowEmpty: Bool)
    /// Free text checked by a rule (nil: anything goes).
    case text((@Sendable (String) -> String?)?)
  }

  enum Effect: Sendable {
    case applied
    /// Accepted and reported, with no effect in Sluice, for this reason.
    case none(String)
  }

  var name: String
  /// The broker config that supplies its default (Kafka's ServerTopicConfigSynonyms), which
  /// AlterConfigs on the broker may change while it runs; nil when there is none.
  var brokerName: String? = nil
  var kind: Kind
  var doc: String
  var effect: Effect = .applied
  /// The effective value when the topic does not set it (the broker's default).
  var value: @Sendable (TopicConfig) -> String
  /// Stores a checked value into the config.
  var apply: @Sendable (inout TopicConfig, String) -> Void = { _, _ in }

  /// Kafka's config type codes (DescribeConfigs v3+): 1 BOOLEAN, 2 STRING, 3 INT, 5 LONG,
  /// 6 DOUBLE, 7 LIST.
  var typeCode: Int8 {
    switch kind {
    case .bool: 1
    case .choice, .text: 2
    case .int: 3
    case .long: 5
    case .double: 6
    case .list: 7
    }
  }

  /// Why `value` is not acceptable, or nil.
  func problem(_ value: String) -> String? {
    let prefix = "Invalid value \(value) for configuration \(name)"
    switch kind {
    case .long(let min, let max), .int(let min, let max):
      guard let number = Int64(value.trimmingSpaces), number >= min else {
        return "\(prefix): must be an integer >= \(min)"
      }
      guard number <= max else { return "\(prefix): must be an integer <= \(max)" }
    case .double(let min, let max):
      guard let number = Double(value.trimmingSpaces), number >= min, number <= max else {
        return "\(prefix): must be a number between \(min) and \(max)"
      }
    case .bool:
      guard ["true", "false"].contains(value.trimmingSpaces.lowercased()) else {
        return "\(prefix): Expected value to be either true or false"
      }
    case .choice(let choices):
      guard choices.contains(value.trimmingSpaces) else {
        return "\(prefix): must be one of \(choices.joined(separator: ", "))"
      }
    case .list(let choices, let allowEmpty):
      let items = Self.listItems(value)
      if items.isEmpty && !allowEmpty { return "\(prefix): the list must not be empty" }
      for item in items where !choices.contains(item) {
        return "\(prefix): \(item) is not one of \(choices.joined(separator: ", "))"
      }
    case .text(let rule):
      if let reason = rule?(value) { return "\(prefix): \(reason)" }
    }
    return nil
  }

  static func listItems(_ value: String) -> [String] {
    value.split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
  }
}

extension String {
  var trimmingSpaces: String {
    var text = Substring(self)
    while text.first?.isWhitespace == true { text.removeFirst() }
    while text.last?.isWhitespace == true { text.removeLast() }
    return String(text)
  }
}

extension TopicConfigEntry {
  private static func long(_ text: String) -> Int64 { Int64(text.trimmingSpaces) ?? 0 }

  private static let noCompaction =
    "a compaction setting: Sluice does not compact yet, so a topic with cleanup.policy=compact keeps every record"
  private static let noReplication = "replication: a single Sluice broker holds one replica of each partition"
  private static let noTieredStorage =
    "tiered storage, which Sluice does not have (only \"false\" is accepted)"

  /// The catalogue, in name order (DescribeConfigs lists it so). A data table, one entry per
  /// config: long, not complex.
  static let all: [TopicConfigEntry] = [
    TopicConfigEntry(
      name: "cleanup.policy", brokerName: "log.cleanup.policy",
      kind: .list(["compact", "delete"], allowEmpty: true),
      doc:
        "delete: time and size retention remove old segments. compact: accepted, but Sluice does not compact "
        + "yet, so a compact-only topic keeps every record (retention does not apply to it, as in Kafka).",
      value: { $0.cleanupPolicy.sorted().joined(separator: ",") },
      apply: { config, value in config.cleanupPolicy = Set(listItems(value)) }),
    TopicConfigEntry(
      name: "compression.gzip.level", brokerName: "compression.gzip.level", kind: .text(gzipLevelRule),
      doc: "Level of gzip when the topic recompresses to gzip: 1-9, or -1 for zlib's default.",
      value: { String($0.compressionLevels.gzip) },
      apply: { config, value in config.compressionLevels.gzip = Int32(long(value)) }),
    TopicConfigEntry(
      name: "compression.lz4.level", brokerName: "compression.lz4.level", kind: .int(min: 1, max: 17),
      doc: "Level of lz4 when the topic recompresses to lz4 (3 and above is LZ4 HC).",
      value: { String($0.compressionLevels.lz4) },
      apply: { config, value in config.compressionLevels.lz4 = Int32(long(value)) }),
    TopicConfigEntry(
      name: "compression.type", brokerName: "compression.type", kind: .choice(TopicCompression.names),
      doc:
        "The codec batches are stored with: producer keeps the producer's; uncompressed or a codec "
        + "recompresses batches that arrive otherwise.",
      value: { $0.compression.name },
      apply: { config, value in config.compression = TopicCompression(name: value.trimmingSpaces) ?? .producer
      }),
    TopicConfigEntry(
      name: "compression.zstd.level", brokerName: "compression.zstd.level", kind: .int(min: -131072, max: 22),
      doc: "Level of zstd when the topic recompresses to zstd.",
      value: { String($0.compressionLevels.zstd) },
      apply: { config, value in config.compressionLevels.zstd = Int32(long(value)) }),
    TopicConfigEntry(
      name: "delete.retention.ms", brokerName: "log.cleaner.delete.retention.ms", kind: .long(min: 0),
      doc: "How long tombstones stay on compacted topics.",
      effect: .none(noCompaction),
      value: { $0.overrides["delete.retention.ms"] ?? $0.brokerDefaults["delete.retention.ms"] ?? "86400000" }
    ),
    TopicConfigEntry(
      name: "file.delete.delay.ms", brokerName: "log.segment.delete.delay.ms", kind: .long(min: 0),
      doc: "Delay before a deleted segment's files are removed.",
      effect: .none(
        "Sluice removes a deleted segment's files at once; reads in progress keep their open files"),
      value: { $0.overrides["file.delete.delay.ms"] ?? $0.brokerDefaults["file.delete.delay.ms"] ?? "60000" }),
    TopicConfigEntry(
      name: "flush.messages", brokerName: "log.flush.interval.messages", kind: .long(min: 1),
      doc: "Force an fsync after this many records; 1 makes every append durable before it is acknowledged.",
      value: { String($0.log.flushMessages) },
      apply: { config, value in config.log.flushMessages = long(value) }),
    TopicConfigEntry(
      name: "flush.ms", brokerName: "log.flush.interval.ms", kind: .long(min: 0),
      doc: "Force an fsync of data that has been unflushed this long.",
      value: { String($0.log.flushMs) },
      apply: { config, value in config.log.flushMs = long(value) }),
    TopicConfigEntry(
      name: "follower.replication.throttled.replicas", kind: .text(throttledReplicasRule),
      doc: "Replicas throttled on the follower side.", effect: .none(noReplication),
      value: {
        $0.overrides["follower.replication.throttled.replicas"] ?? $0.brokerDefaults[
          "follower.replication.throttled.replicas"] ?? ""
      }),
    TopicConfigEntry(
      name: "index.interval.bytes", brokerName: "log.index.interval.bytes", kind: .int(min: 0),
      doc: "Bytes between entries of the sparse indexes.",
      value: { String($0.log.indexIntervalBytes) },
      apply: { config, value in config.log.indexIntervalBytes = Int(long(value)) }),
    TopicConfigEntry(
      name: "leader.replication.throttled.replicas", kind: .text(throttledReplicasRule),
      doc: "Replicas throttled on the leader side.", effect: .none(noReplication),
      value: {
        $0.overrides["leader.replication.throttled.replicas"] ?? $0.brokerDefaults[
          "leader.replication.throttled.replicas"] ?? ""
      }),
    TopicConfigEntry(
      name: "local.retention.bytes", brokerName: "log.local.retention.bytes", kind: .long(min: -2),
      doc: "Tiered storage: bytes kept locally.",
      effect: .none(noTieredStorage),
      value: { $0.overrides["local.retention.bytes"] ?? $0.brokerDefaults["local.retention.bytes"] ?? "-2" }),
    TopicConfigEntry(
      name: "local.retention.ms", brokerName: "log.local.retention.ms", kind: .long(min: -2),
      doc: "Tiered storage: time kept locally.",
      effect: .none(noTieredStorage),
      value: { $0.overrides["local.retention.ms"] ?? $0.brokerDefaults["local.retention.ms"] ?? "-2" }),
    TopicConfigEntry(
      name: "max.compaction.lag.ms", brokerName: "log.cleaner.max.compaction.lag.ms", kind: .long(min: 1),
      doc: "Longest a record may stay ineligible for compaction.", effect: .none(noCompaction),
      value: {
        $0.overrides["max.compaction.lag.ms"] ?? $0.brokerDefaults["max.compaction.lag.ms"]
          ?? String(Int64.max)
      }),
    TopicConfigEntry(
      name: "max.message.bytes", brokerName: "message.max.bytes", kind: .int(min: 0),
      doc: "Largest record batch the topic accepts.",
      value: { String($0.maxMessageBytes) },
      apply: { config, value in config.maxMessageBytes = Int(long(value)) }),
    TopicConfigEntry(
      name: "message.downconversion.enable", brokerName: "log.message.downconversion.enable", kind: .bool,
      doc: "Down-convert batches for consumers of old fetch versions.",
      effect: .none(
        "Sluice serves record batches v2 only and never down-converts (Kafka 4 made it a no-op too)"),
      value: {
        $0.overrides["message.downconversion.enable"] ?? $0.brokerDefaults["message.downconversion.enable"]
          ?? "true"
      }),
    TopicConfigEntry(
      name: "message.format.version", brokerName: "log.message.format.version", kind: .text(nil),
      doc: "Deprecated record format version.",
      effect: .none("ignored by Kafka since 3.0 and removed in 4.0; Sluice always stores record batches v2"),
      value: {
        $0.overrides["message.format.version"] ?? $0.brokerDefaults["message.format.version"] ?? "3.0-IV1"
      }),
    TopicConfigEntry(
      name: "message.timestamp.after.max.ms", brokerName: "log.message.timestamp.after.max.ms",
      kind: .long(min: 0),
      doc:
        "How far in the future a CreateTime record's timestamp may be (INVALID_TIMESTAMP beyond); "
        + "1 hour by default, as in Kafka 4.",
      value: { String($0.timestampAfterMaxMs) },
      apply: { config, value in config.timestampAfterMaxMs = long(value) }),
    TopicConfigEntry(
      name: "message.timestamp.before.max.ms", brokerName: "log.message.timestamp.before.max.ms",
      kind: .long(min: 0),
      doc: "How far in the past a CreateTime record's timestamp may be (INVALID_TIMESTAMP beyond).",
      value: { String($0.timestampBeforeMaxMs) },
      apply: { config, value in config.timestampBeforeMaxMs = long(value) }),
    TopicConfigEntry(
      name: "message.timestamp.difference.max.ms", brokerName: "log.message.timestamp.difference.max.ms",
      kind: .long(min: 0),
      doc:
        "Deprecated (Kafka 3.6; removed in 4.0): the bound for before.max.ms and after.max.ms where "
        + "those are not set.",
      value: {
        $0.overrides["message.timestamp.difference.max.ms"] ?? $0.brokerDefaults[
          "message.timestamp.difference.max.ms"] ?? String(Int64.max)
      }),
    TopicConfigEntry(
      name: "message.timestamp.type", brokerName: "log.message.timestamp.type",
      kind: .choice(["CreateTime", "LogAppendTime"]),
      doc: "Whether record timestamps are the producer's or the broker's.",
      value: { $0.log.logAppendTime ? "LogAppendTime" : "CreateTime" },
      apply: { config, value in config.log.logAppendTime = value.trimmingSpaces == "LogAppendTime" }),
    TopicConfigEntry(
      name: "min.cleanable.dirty.ratio", brokerName: "log.cleaner.min.cleanable.ratio",
      kind: .double(min: 0, max: 1),
      doc: "Share of a log that must be uncompacted before compaction runs.", effect: .none(noCompaction),
      value: {
        $0.overrides["min.cleanable.dirty.ratio"] ?? $0.brokerDefaults["min.cleanable.dirty.ratio"] ?? "0.5"
      }),
    TopicConfigEntry(
      name: "min.compaction.lag.ms", brokerName: "log.cleaner.min.compaction.lag.ms", kind: .long(min: 0),
      doc: "Shortest time a record stays uncompacted.", effect: .none(noCompaction),
      value: { $0.overrides["min.compaction.lag.ms"] ?? $0.brokerDefaults["min.compaction.lag.ms"] ?? "0" }),
    TopicConfigEntry(
      name: "min.insync.replicas", brokerName: "min.insync.replicas", kind: .int(min: 1),
      doc:
        "Replicas that must hold a record before acks=all is acknowledged. A single broker holds one, so "
        + "above 1 acks=all produces fail with NOT_ENOUGH_REPLICAS, as on a Kafka topic with one replica.",
      value: { String($0.minInsyncReplicas) },
      apply: { config, value in config.minInsyncReplicas = Int(long(value)) }),
    TopicConfigEntry(
      name: "preallocate", brokerName: "log.preallocate", kind: .bool, doc: "Preallocate segment files.",
      effect: .none("Sluice grows segment files as it appends"),
      value: { $0.overrides["preallocate"] ?? $0.brokerDefaults["preallocate"] ?? "false" }),
    TopicConfigEntry(
      name: "remote.log.copy.disable", kind: .bool,
      doc: "Tiered storage: stop copying segments to remote storage.", effect: .none(noTieredStorage),
      value: {
        $0.overrides["remote.log.copy.disable"] ?? $0.brokerDefaults["remote.log.copy.disable"] ?? "false"
      }),
    TopicConfigEntry(
      name: "remote.log.delete.on.disable", kind: .bool,
      doc: "Tiered storage: delete remote data when tiered storage is turned off.",
      effect: .none(noTieredStorage),
      value: {
        $0.overrides["remote.log.delete.on.disable"] ?? $0.brokerDefaults["remote.log.delete.on.disable"]
          ?? "false"
      }),
    TopicConfigEntry(
      name: "remote.storage.enable", kind: .bool,
      doc: "Tiered storage for the topic; not available in Sluice, so only false is accepted.",
      effect: .none(noTieredStorage),
      value: { _ in "false" }),
    TopicConfigEntry(
      name: "retention.bytes", brokerName: "log.retention.bytes", kind: .long(min: -1),
      doc: "Delete oldest segments while a partition is larger than this; -1: no limit.",
      value: { String($0.log.retentionBytes) },
      apply: { config, value in config.log.retentionBytes = long(value) }),
    TopicConfigEntry(
      name: "retention.ms", brokerName: "log.retention.ms", kind: .long(min: -1),
      doc:
        "Delete segments whose records are all older than this, counted from the newer of their "
        + "timestamps and when they were written; -1: keep forever.",
      value: { String($0.log.retentionMs) },
      apply: { config, value in config.log.retentionMs = long(value) }),
    TopicConfigEntry(
      name: "segment.bytes", brokerName: "log.segment.bytes", kind: .int(min: 14),
      doc: "Roll a new segment file at this size.",
      value: { String($0.configuredSegmentBytes) },
      apply: { config, value in config.log.segmentBytes = Int(long(value)) }),
    TopicConfigEntry(
      name: "segment.index.bytes", brokerName: "log.index.size.max.bytes", kind: .int(min: 4),
      doc: "Size of a segment's preallocated index files.",
      effect: .none("Sluice's index files grow with their segment and never force a roll"),
      value: { $0.overrides["segment.index.bytes"] ?? $0.brokerDefaults["segment.index.bytes"] ?? "10485760" }
    ),
    TopicConfigEntry(
      name: "segment.jitter.ms", brokerName: "log.roll.jitter.ms", kind: .long(min: 0),
      doc: "A random time up to this much is taken off segment.ms for each segment, so rolls spread out.",
      value: { String($0.log.segmentJitterMs) },
      apply: { config, value in config.log.segmentJitterMs = long(value) }),
    TopicConfigEntry(
      name: "segment.ms", brokerName: "log.roll.ms", kind: .long(min: 1),
      doc: "Roll a new segment file after this long.",
      value: { String($0.log.segmentMs) },
      apply: { config, value in config.log.segmentMs = long(value) }),
    TopicConfigEntry(
      name: "sluice.feed.heartbeat.ms", kind: .int(min: 10, max: 3_600_000),
      doc: "Multicast feed: a heartbeat goes out for a session idle this long (docs/udp.md).",
      value: { $0.overrides["sluice.feed.heartbeat.ms"] ?? "1000" }),
    TopicConfigEntry(
      name: "sluice.feed.interface", kind: .text(nil),
      doc: "Multicast feed: IPv4 address or name of the interface to send on; empty: the kernel's route.",
      value: { $0.overrides["sluice.feed.interface"] ?? "" }),
    TopicConfigEntry(
      name: "sluice.feed.max.datagram.bytes", kind: .int(min: 0, max: 65_507),
      doc:
        "Multicast feed: records are packed into datagrams up to this size; 0: the interface's MTU less "
        + "28 (1472 when unknown).",
      value: { $0.overrides["sluice.feed.max.datagram.bytes"] ?? "0" }),
    TopicConfigEntry(
      name: "sluice.feed.multicast", kind: .text(multicastRule),
      doc:
        "Publish each new record to this IPv4 multicast GROUP:PORT as MoldUDP64, one session per partition "
        + "(docs/udp.md); empty: none.",
      value: { $0.overrides["sluice.feed.multicast"] ?? "" }),
    TopicConfigEntry(
      name: "sluice.feed.payload", kind: .choice(["value", "record"]),
      doc:
        "Multicast feed: each message is the record's value, or a record envelope (timestamp, key, value, headers).",
      value: { $0.overrides["sluice.feed.payload"] ?? "value" }),
    TopicConfigEntry(
      name: "sluice.feed.retransmit", kind: .text(hostPortRule),
      doc:
        "Multicast feed: HOST:PORT of the retransmission server (unicast UDP, MoldUDP64 requests); empty: none.",
      value: { $0.overrides["sluice.feed.retransmit"] ?? "" }),
    TopicConfigEntry(
      name: "sluice.feed.retransmit.rate", kind: .int(min: 1),
      doc: "Multicast feed: retransmission answers per second one requester may receive.",
      value: { $0.overrides["sluice.feed.retransmit.rate"] ?? "1000" }),
    TopicConfigEntry(
      name: "sluice.feed.ttl", kind: .int(min: 0, max: 255),
      doc: "Multicast feed: IP_MULTICAST_TTL (1 stays on the local network).",
      value: { $0.overrides["sluice.feed.ttl"] ?? "1" }),
    TopicConfigEntry(
      name: "sluice.overflow.max.bytes", brokerName: "sluice.overflow.max.bytes", kind: .long(min: -1),
      doc:
        "Backlog bound per partition: drop-oldest keeps at most this many bytes, reject refuses produce "
        + "requests beyond it, backpressure slows producers above it; -1: none.",
      value: { String($0.overflow.maxBytes) },
      apply: { config, value in config.overflow.maxBytes = long(value) }),
    TopicConfigEntry(
      name: "sluice.overflow.max.wait.ms", brokerName: "sluice.overflow.max.wait.ms", kind: .long(min: 0),
      doc:
        "backpressure: the longest a produce request is held; still over the mark then, it fails with "
        + "REQUEST_TIMED_OUT (retriable) and nothing is appended.",
      value: { String($0.overflow.maxWaitMs) },
      apply: { config, value in config.overflow.maxWaitMs = long(value) }),
    TopicConfigEntry(
      name: "sluice.overflow.policy", brokerName: "sluice.overflow.policy",
      kind: .choice(OverflowConfig.Policy.allCases.map(\.rawValue)),
      doc:
        "When producers outrun consumers: buffer (keep everything up to retention), drop-oldest, reject "
        + "or backpressure.",
      value: { $0.overflow.policy.rawValue },
      apply: { config, value in
        config.overflow.policy = OverflowConfig.Policy(rawValue: value.trimmingSpaces) ?? .buffer
      }),
    TopicConfigEntry(
      name: "sluice.overflow.resume.bytes", brokerName: "sluice.overflow.resume.bytes", kind: .long(min: -1),
      doc:
        "backpressure: the low-water mark below which producers get full speed again; -1: 80% of "
        + "sluice.overflow.max.bytes.",
      value: { String($0.overflow.resumeBytes) },
      apply: { config, value in config.overflow.resumeBytes = long(value) }),
    TopicConfigEntry(
      name: "sluice.storage", kind: .choice(["disk", "memory"]),
      doc: "disk: segment files; memory: in memory only, lost on restart.",
      value: { $0.log.storage.rawValue },
      apply: { config, value in config.log.storage = value.trimmingSpaces == "memory" ? .memory : .disk }),
    TopicConfigEntry(
      name: "sluice.zmq.pub", kind: .text(zmqEndpointRule),
      doc:
        "Bind a ZeroMQ PUB socket at tcp://HOST:PORT and publish each new record as [topic, key, value] "
        + "(docs/direct.md); empty: none.",
      value: { $0.overrides["sluice.zmq.pub"] ?? "" }),
    TopicConfigEntry(
      name: "sluice.zmq.pull", kind: .text(zmqEndpointRule),
      doc:
        "Bind a ZeroMQ PULL socket at tcp://HOST:PORT and append each message ([value] or [key, value]) "
        + "to the topic (docs/direct.md); empty: none.",
      value: { $0.overrides["sluice.zmq.pull"] ?? "" }),
    TopicConfigEntry(
      name: "unclean.leader.election.enable", brokerName: "unclean.leader.election.enable", kind: .bool,
      doc: "Let a replica outside the ISR become leader.", effect: .none(noReplication),
      value: {
        $0.overrides["unclean.leader.election.enable"] ?? $0.brokerDefaults["unclean.leader.election.enable"]
          ?? "false"
      }),
  ]

  /// A bridge endpoint: empty (none) or tcp://HOST:PORT with a fixed port (peers must know it).
  private static let zmqEndpointRule: @Sendable (String) -> String? = { value in
    let text = value.trimmingSpaces
    if text.isEmpty { return nil }
    guard text.hasPrefix("tcp://"), let colon = text.lastIndex(of: ":"),
      text.distance(from: text.startIndex, to: colon) > "tcp://".count,
      let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
    else { return "must be tcp://HOST:PORT with a port from 1 to 65535 (HOST may be *), or empty" }
    return nil
  }

  /// HOST:PORT with a port from 1 to 65535, or empty.
  private static let hostPortRule: @Sendable (String) -> String? = { value in
    let text = value.trimmingSpaces
    if text.isEmpty { return nil }
    guard let colon = text.lastIndex(of: ":"), colon > text.startIndex,
      let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
    else { return "must be HOST:PORT with a port from 1 to 65535, or empty" }
    return nil
  }

  /// An IPv4 multicast group (224.0.0.0/4) and a port, or empty.
  private static let multicastRule: @Sendable (String) -> String? = { value in
    let text = value.trimmingSpaces
    if text.isEmpty { return nil }
    let problem =
      "must be GROUP:PORT with an IPv4 multicast group (224.0.0.0 to 239.255.255.255) and a port from 1 to 65535, or empty"
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
      (1...65535).contains(port)
    else { return problem }
    let octets = text[..<colon].split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
    guard octets.count == 4, octets.allSatisfy({ $0.map { (0...255).contains($0) } ?? false }),
      (224...239).contains(octets[0]!)
    else { return problem }
    return nil
  }

  /// gzip levels: 1–9, or -1 for the codec's default (Kafka's rule).
  /// Kafka's form for throttled replicas: "*", or "partition:broker" pairs separated by commas.
  private static let throttledReplicasRule: @Sendable (String) -> String? = { value in
    let text = value.trimmingSpaces
    if text.isEmpty || text == "*" { return nil }
    for pair in text.split(separator: ",", omittingEmptySubsequences: false) {
      let parts = pair.split(separator: ":", omittingEmptySubsequences: false)
      guard parts.count == 2, parts.allSatisfy({ Int(String($0).trimmingSpaces) != nil }) else {
        return "must be * or a list of partition:broker pairs separated by commas"
      }
    }
    return nil
  }

  private static let gzipLevelRule: @Sendable (String) -> String? = { value in
    guard let level = Int(value.trimmingSpaces), level == -1 || (1...9).contains(level) else {
      return "must be -1 or between 1 and 9"
    }
    return nil
  }

  static let byName: [String: TopicConfigEntry] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

  /// Entries by the broker config that supplies their default.
  static let byBrokerName: [String: TopicConfigEntry] = Dictionary(
    uniqueKeysWithValues: all.compactMap { entry in entry.brokerName.map { ($0, entry) } })
}

/// `compression.type`: what codec a topic stores its batches with.
public enum TopicCompression: Hashable, Sendable {
  /// Store each batch as the producer compressed it (Kafka's default).
  case producer
  /// Store every batch with this codec (`uncompressed` is `.none`), recompressing those that
  /// arrive with another.
  case codec(CompressionCodec)

  /// The `compression.type` values, as Kafka lists them.
  public static let names = ["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]

  public init?(name: String) {
    switch name {
    case "producer": self = .producer
    case "uncompressed": self = .codec(.none)
    case "gzip": self = .codec(.gzip)
    case "snappy": self = .codec(.snappy)
    case "lz4": self = .codec(.lz4)
    case "zstd": self = .codec(.zstd)
    default: return nil
    }
  }

  public var name: String {
    switch self {
    case .producer: "producer"
    case .codec(.none): "uncompressed"
    case .codec(let codec): codec.name
    }
  }

  /// The codec every stored batch has, or nil for "producer".
  public var storedCodec: CompressionCodec? {
    if case .codec(let codec) = self { return codec }
    return nil
  }
}

/// `compression.<codec>.level` (KIP-390), with Kafka's defaults.
public struct CompressionLevels: Hashable, Sendable {
  public var gzip: Int32 = -1
  public var lz4: Int32 = 9
  public var zstd: Int32 = 3

  public init() {}

  /// The level for `codec`, nil for codecs without levels.
  public func level(for codec: CompressionCodec) -> Int32? {
    switch codec {
    case .gzip: gzip
    case .lz4: lz4
    case .zstd: zstd
    case .none, .snappy: nil
    }
  }
}
