import SluiceBroker
import SluiceHTTP
import SluiceServer
import SluiceStatsD

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif

/// The broker settings `sluice serve` understands, with Kafka's names where Kafka has one.
/// Each can come from (strongest first) `--set KEY=VALUE`, the environment
/// (`SLUICE_` + the key upper-cased with `.` → `_`), the `--config` file (Java properties),
/// or the default.
struct ServeSetting: Sendable {
  let key: String
  let defaultValue: String
  let help: String
  let apply: @Sendable (inout BrokerConfig, inout KafkaServer.Configuration, String) throws -> Void
}

struct ConfigurationError: Error, CustomStringConvertible {
  var description: String
}

func parseInt<T: FixedWidthInteger>(_ key: String, _ value: String, min: T, max: T = T.max) throws -> T {
  guard let number = T(value.trimmed()), number >= min, number <= max else {
    let range = max == T.max ? ">= \(min)" : "from \(min) to \(max)"
    throw ConfigurationError(description: "\(key): \"\(value)\" is not an integer \(range)")
  }
  return number
}

func parseBool(_ key: String, _ value: String) throws -> Bool {
  switch value.lowercased() {
  case "true", "1", "yes": return true
  case "false", "0", "no": return false
  default: throw ConfigurationError(description: "\(key): \"\(value)\" is not true or false")
  }
}

let serveSettings: [ServeSetting] = [
  ServeSetting(
    key: "sluice.audit.log.enable", defaultValue: "true",
    help: "Log every admin request (create, delete, alter; who and the outcome) to logger sluice.audit."
  ) {
    broker, _, value in broker.auditLog = try parseBool("sluice.audit.log.enable", value)
  },
  ServeSetting(
    key: "sluice.slow.request.log.ms", defaultValue: "0",
    help: "Log Kafka requests that take longer than this (logger sluice.slow); 0: off."
  ) {
    broker, _, value in broker.slowRequestLogMs = try parseInt("sluice.slow.request.log.ms", value, min: 0)
  },
  ServeSetting(
    key: "auto.create.topics.enable", defaultValue: "true",
    help: "Create unknown topics on Metadata requests."
  ) {
    broker, _, value in broker.autoCreateTopics = try parseBool("auto.create.topics.enable", value)
  },
  ServeSetting(key: "num.partitions", defaultValue: "1", help: "Partitions of an auto-created topic.") {
    broker, _, value in broker.defaultPartitions = try parseInt("num.partitions", value, min: 1)
  },
  ServeSetting(
    key: "message.max.bytes", defaultValue: "1048588", help: "Default max.message.bytes of topics."
  ) {
    broker, _, value in broker.maxMessageBytes = try parseInt("message.max.bytes", value, min: 0)
  },
  ServeSetting(
    key: "sluice.max.decompressed.batch.bytes", defaultValue: "67108864",
    help: "Produce decompresses compressed batches to check their records; one expanding beyond "
      + "this is refused (MESSAGE_TOO_LARGE)."
  ) {
    broker, _, value in
    broker.maxDecompressedBatchBytes = try parseInt("sluice.max.decompressed.batch.bytes", value, min: 1024)
  },
  ServeSetting(
    key: "socket.request.max.bytes", defaultValue: "104857600", help: "Largest request frame accepted."
  ) {
    _, server, value in server.maximumFrameSize = try parseInt("socket.request.max.bytes", value, min: 1024)
  },
  ServeSetting(
    key: "sluice.log.max.open.files", defaultValue: "0",
    help: "Log files (segments, indexes) kept open at most; the least recently used close beyond it. "
      + "0: a quarter of the process's descriptor limit (RLIMIT_NOFILE), at least 64."
  ) {
    broker, _, value in
    let limit = try parseInt("sluice.log.max.open.files", value, min: 0)
    broker.maxOpenLogFiles = limit == 0 ? nil : limit
  },
  ServeSetting(
    key: "group.share.record.lock.duration.ms", defaultValue: "30000",
    help: "How long a record handed to a share consumer stays locked to it (then it is delivered again)."
  ) {
    broker, _, value in
    broker.shareRecordLockDurationMs = try parseInt(
      "group.share.record.lock.duration.ms", value, min: 1000, max: 3_600_000)
  },
  ServeSetting(
    key: "group.share.delivery.count.limit", defaultValue: "5",
    help: "Deliveries of one record to share consumers at most; then it is archived (and dead-lettered)."
  ) {
    broker, _, value in
    broker.shareDeliveryCountLimit = try parseInt("group.share.delivery.count.limit", value, min: 2, max: 10)
  },
  ServeSetting(
    key: "group.share.partition.max.record.locks", defaultValue: "2000",
    help: "In-flight records per share partition (delivered, not yet acknowledged) at most."
  ) {
    broker, _, value in
    broker.sharePartitionMaxRecordLocks = try parseInt(
      "group.share.partition.max.record.locks", value, min: 100, max: 10_000)
  },
  ServeSetting(
    key: "group.share.session.timeout.ms", defaultValue: "45000",
    help: "A share consumer that has not heartbeated for this long leaves its group."
  ) {
    broker, _, value in
    broker.shareSessionTimeoutMs = try parseInt(
      "group.share.session.timeout.ms", value, min: 1000, max: 3_600_000)
  },
  ServeSetting(
    key: "group.share.heartbeat.interval.ms", defaultValue: "5000",
    help: "Share consumers' heartbeat interval."
  ) {
    broker, _, value in
    broker.shareHeartbeatIntervalMs = try parseInt(
      "group.share.heartbeat.interval.ms", value, min: 100, max: 3_600_000)
  },
  ServeSetting(key: "group.share.max.size", defaultValue: "200", help: "Members per share group at most.") {
    broker, _, value in broker.shareMaxSize = try parseInt("group.share.max.size", value, min: 1)
  },
  ServeSetting(
    key: "group.share.max.share.sessions", defaultValue: "2000",
    help: "Share sessions on this broker at most."
  ) {
    broker, _, value in
    broker.shareMaxSessions = try parseInt("group.share.max.share.sessions", value, min: 1)
  },
  ServeSetting(
    key: "sluice.share.dlq.topic", defaultValue: "",
    help: "Dead-letter topic of share groups, a pattern ({topic}, {group} replaced): rejected records and "
      + "records that used up their delivery count go there with headers saying why. Empty: off."
  ) {
    broker, _, value in broker.shareDeadLetterTopic = value.trimmed()
  },
  ServeSetting(key: "max.connections", defaultValue: "10000", help: "Connections beyond this are refused.") {
    _, server, value in server.maximumConnections = try parseInt("max.connections", value, min: 1)
  },
  ServeSetting(
    key: "max.connections.per.ip", defaultValue: String(Int.max),
    help: "Connections from one client address beyond this are refused."
  ) {
    _, server, value in
    server.maximumConnectionsPerHost = try parseInt("max.connections.per.ip", value, min: 1)
  },
  ServeSetting(
    key: "max.connection.creation.rate", defaultValue: String(Int.max),
    help:
      "New connections per second, broker-wide (the default means unlimited); beyond, accepting pauses until the rate allows. Per client address: ip quotas (connection_creation_rate)."
  ) {
    _, server, value in
    server.maximumConnectionCreationRate = try parseInt("max.connection.creation.rate", value, min: 1)
  },
  ServeSetting(
    key: "connections.max.idle.ms", defaultValue: "600000",
    help: "Close a connection that has completed no request for this long (partial frames do not count)."
  ) {
    _, server, value in server.maximumIdleMs = try parseInt("connections.max.idle.ms", value, min: 1)
  },
  ServeSetting(
    key: "log.retention.ms", defaultValue: "604800000", help: "Default retention.ms (-1: forever)."
  ) {
    broker, _, value in broker.defaultLog.retentionMs = try parseInt("log.retention.ms", value, min: -1)
  },
  ServeSetting(
    key: "log.retention.bytes", defaultValue: "-1", help: "Default retention.bytes per partition (-1: none)."
  ) {
    broker, _, value in broker.defaultLog.retentionBytes = try parseInt("log.retention.bytes", value, min: -1)
  },
  ServeSetting(key: "log.segment.bytes", defaultValue: "1073741824", help: "Default segment.bytes.") {
    broker, _, value in broker.defaultLog.segmentBytes = try parseInt("log.segment.bytes", value, min: 14)
  },
  ServeSetting(key: "log.roll.ms", defaultValue: "604800000", help: "Default segment.ms.") {
    broker, _, value in broker.defaultLog.segmentMs = try parseInt("log.roll.ms", value, min: 1)
  },
  ServeSetting(
    key: "log.flush.interval.messages", defaultValue: String(Int64.max),
    help: "Default flush.messages (1: fsync every append before acknowledging)."
  ) {
    broker, _, value in
    broker.defaultLog.flushMessages = try parseInt("log.flush.interval.messages", value, min: 1)
  },
  ServeSetting(
    key: "log.flush.interval.ms", defaultValue: "1000",
    help: "Default flush.ms: fsync data unflushed this long."
  ) {
    broker, _, value in broker.defaultLog.flushMs = try parseInt("log.flush.interval.ms", value, min: 0)
  },
  ServeSetting(
    key: "log.retention.check.interval.ms", defaultValue: "300000",
    help: "How often retention.ms and retention.bytes are applied (Kafka's default: 5 minutes)."
  ) {
    broker, _, value in
    broker.retentionCheckIntervalMs = try parseInt("log.retention.check.interval.ms", value, min: 1)
  },
  ServeSetting(
    key: "log.roll.jitter.ms", defaultValue: "0", help: "Default segment.jitter.ms."
  ) {
    broker, _, value in broker.defaultLog.segmentJitterMs = try parseInt("log.roll.jitter.ms", value, min: 0)
  },
  ServeSetting(
    key: "log.index.interval.bytes", defaultValue: "4096", help: "Default index.interval.bytes."
  ) {
    broker, _, value in
    broker.defaultLog.indexIntervalBytes = try parseInt("log.index.interval.bytes", value, min: 0)
  },
  ServeSetting(
    key: "log.message.timestamp.type", defaultValue: "CreateTime",
    help: "Default message.timestamp.type: CreateTime or LogAppendTime."
  ) {
    broker, _, value in
    guard value == "CreateTime" || value == "LogAppendTime" else {
      throw ConfigurationError(
        description: "log.message.timestamp.type: \"\(value)\" is not CreateTime or LogAppendTime")
    }
    broker.defaultLog.logAppendTime = value == "LogAppendTime"
  },
  ServeSetting(
    key: "log.message.timestamp.before.max.ms", defaultValue: String(Int64.max),
    help: "Default message.timestamp.before.max.ms: how far in the past a CreateTime may be."
  ) {
    broker, _, value in
    broker.messageTimestampBeforeMaxMs = try parseInt("log.message.timestamp.before.max.ms", value, min: 0)
  },
  ServeSetting(
    key: "log.message.timestamp.after.max.ms", defaultValue: "3600000",
    help: "Default message.timestamp.after.max.ms: how far in the future a CreateTime may be (Kafka 4's 1 h)."
  ) {
    broker, _, value in
    broker.messageTimestampAfterMaxMs = try parseInt("log.message.timestamp.after.max.ms", value, min: 0)
  },
  ServeSetting(
    key: "compression.type", defaultValue: "producer",
    help: "Default compression.type of topics: producer, uncompressed, gzip, snappy, lz4 or zstd."
  ) {
    broker, _, value in
    guard let compression = TopicCompression(name: value) else {
      throw ConfigurationError(
        description:
          "compression.type: \"\(value)\" is not one of \(TopicCompression.names.joined(separator: ", "))")
    }
    broker.defaultCompression = compression
  },
  ServeSetting(key: "compression.gzip.level", defaultValue: "-1", help: "Default compression.gzip.level.") {
    broker, _, value in
    let level: Int32 = try parseInt("compression.gzip.level", value, min: -1)
    guard level == -1 || (1...9).contains(level) else {
      throw ConfigurationError(description: "compression.gzip.level: must be -1 or 1-9")
    }
    broker.defaultCompressionLevels.gzip = level
  },
  ServeSetting(key: "compression.lz4.level", defaultValue: "9", help: "Default compression.lz4.level (1-17).")
  {
    broker, _, value in
    let level: Int32 = try parseInt("compression.lz4.level", value, min: 1)
    guard level <= 17 else { throw ConfigurationError(description: "compression.lz4.level: must be 1-17") }
    broker.defaultCompressionLevels.lz4 = level
  },
  ServeSetting(
    key: "compression.zstd.level", defaultValue: "3", help: "Default compression.zstd.level (-131072 to 22)."
  ) {
    broker, _, value in
    let level: Int32 = try parseInt("compression.zstd.level", value, min: -131072)
    guard level <= 22 else {
      throw ConfigurationError(description: "compression.zstd.level: must be at most 22")
    }
    broker.defaultCompressionLevels.zstd = level
  },
  ServeSetting(
    key: "min.insync.replicas", defaultValue: "1",
    help:
      "Default min.insync.replicas; above 1, acks=all produces fail with NOT_ENOUGH_REPLICAS on one broker."
  ) {
    broker, _, value in broker.minInsyncReplicas = try parseInt("min.insync.replicas", value, min: 1)
  },
  ServeSetting(
    key: "sluice.storage", defaultValue: "disk", help: "Default sluice.storage of topics: disk or memory."
  ) {
    broker, _, value in
    guard value == "disk" || value == "memory" else {
      throw ConfigurationError(description: "sluice.storage: \"\(value)\" is not disk or memory")
    }
    broker.defaultLog.storage = value == "memory" ? .memory : .disk
  },
  ServeSetting(
    key: "group.initial.rebalance.delay.ms", defaultValue: "300",
    help: "How long the first rebalance of an empty group waits for more members (Kafka: 3000)."
  ) {
    broker, _, value in
    broker.groupInitialRebalanceDelayMs = try parseInt("group.initial.rebalance.delay.ms", value, min: 0)
  },
  ServeSetting(
    key: "group.min.session.timeout.ms", defaultValue: "6000",
    help: "Smallest session.timeout.ms accepted."
  ) {
    broker, _, value in
    broker.groupMinSessionTimeoutMs = try parseInt("group.min.session.timeout.ms", value, min: 1)
  },
  ServeSetting(
    key: "group.max.session.timeout.ms", defaultValue: "1800000",
    help: "Largest session.timeout.ms accepted."
  ) {
    broker, _, value in
    broker.groupMaxSessionTimeoutMs = try parseInt("group.max.session.timeout.ms", value, min: 1)
  },
  ServeSetting(
    key: "group.max.size", defaultValue: "1000",
    help: "Members per consumer group."
  ) {
    broker, _, value in
    broker.groupMaxSize = try parseInt("group.max.size", value, min: 1)
  },
  ServeSetting(
    key: "sluice.max.groups", defaultValue: "10000",
    help: "Consumer groups (with members or offsets); beyond: GROUP_MAX_SIZE_REACHED."
  ) {
    broker, _, value in
    broker.maxGroups = try parseInt("sluice.max.groups", value, min: 1)
  },
  ServeSetting(
    key: "offset.metadata.max.bytes", defaultValue: "4096",
    help: "Largest metadata of a committed offset."
  ) {
    broker, _, value in
    broker.offsetMetadataMaxBytes = try parseInt("offset.metadata.max.bytes", value, min: 0)
  },
  ServeSetting(
    key: "offsets.retention.minutes", defaultValue: "10080",
    help: "Committed offsets of a group that has been empty this long are deleted."
  ) {
    broker, _, value in
    broker.offsetsRetentionMinutes = try parseInt("offsets.retention.minutes", value, min: 1)
  },
  ServeSetting(
    key: "offsets.retention.check.interval.ms", defaultValue: "600000",
    help: "How often offset retention runs."
  ) {
    broker, _, value in
    broker.offsetsRetentionCheckIntervalMs = try parseInt(
      "offsets.retention.check.interval.ms", value, min: 1)
  },
  ServeSetting(
    key: "sluice.overflow.policy", defaultValue: "buffer",
    help: "Default sluice.overflow.policy of topics: buffer, drop-oldest, reject or backpressure."
  ) {
    broker, _, value in
    guard let policy = OverflowConfig.Policy(rawValue: value) else {
      throw ConfigurationError(
        description: "sluice.overflow.policy: \"\(value)\" is not buffer, drop-oldest, reject or backpressure"
      )
    }
    broker.defaultOverflow.policy = policy
  },
  ServeSetting(
    key: "sluice.overflow.max.bytes", defaultValue: "-1",
    help: "Default sluice.overflow.max.bytes: the backlog bound per partition (-1: none)."
  ) {
    broker, _, value in
    broker.defaultOverflow.maxBytes = try parseInt("sluice.overflow.max.bytes", value, min: -1)
  },
  ServeSetting(
    key: "sluice.overflow.resume.bytes", defaultValue: "-1",
    help: "Default sluice.overflow.resume.bytes: backpressure's low-water mark (-1: 80% of max.bytes)."
  ) {
    broker, _, value in
    broker.defaultOverflow.resumeBytes = try parseInt("sluice.overflow.resume.bytes", value, min: -1)
  },
  ServeSetting(
    key: "sluice.overflow.max.wait.ms", defaultValue: "5000",
    help: "Default sluice.overflow.max.wait.ms: the longest backpressure holds a produce request."
  ) {
    broker, _, value in
    broker.defaultOverflow.maxWaitMs = try parseInt("sluice.overflow.max.wait.ms", value, min: 0)
  },
  ServeSetting(
    key: "sluice.overflow.group.active.ms", defaultValue: "300000",
    help: "A consumer group without members counts in backlogs if it committed within this long."
  ) {
    broker, _, value in
    broker.overflowGroupActiveMs = try parseInt("sluice.overflow.group.active.ms", value, min: 0)
  },
]

func environmentName(_ key: String) -> String {
  "SLUICE_" + String(key.uppercased().map { $0 == "." ? "_" : $0 })
}

/// Reads a Java-properties style file: `key=value` (or `key: value`), `#`/`!` comments.
func readProperties(_ path: String) throws -> [String: String] {
  guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
    throw ConfigurationError(description: "cannot read config file \(path)")
  }
  var result: [String: String] = [:]
  for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
    let line = raw.trimmed()
    if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("!") { continue }
    guard let separator = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
      throw ConfigurationError(description: "\(path):\(number + 1): expected key=value")
    }
    let key = line[..<separator].trimmed()
    let value = line[line.index(after: separator)...].trimmed()
    result[key] = value
  }
  return result
}

/// Splits "host:port" (IPv6 in brackets).
func parseHostPort(_ text: String, option: String) throws -> (String, Int) {
  var host = text
  var portText = ""
  if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
    host = String(text[text.index(after: text.startIndex)..<close])
    portText = String(text[close...].dropFirst().drop(while: { $0 == ":" }))
  } else if let colon = text.lastIndex(of: ":") {
    host = String(text[..<colon])
    portText = String(text[text.index(after: colon)...])
  }
  guard let port = Int(portText), (0...65535).contains(port), !host.isEmpty else {
    throw ConfigurationError(description: "\(option): expected HOST:PORT, got \"\(text)\"")
  }
  return (host, port)
}

/// A setting of a front door that is off unless its listener is set: HTTP (`http.listen`,
/// docs/http.md) and StatsD (`statsd.listen`, docs/udp.md).
struct FrontDoorSetting<Config>: Sendable {
  let key: String
  let defaultValue: String
  let help: String
  let apply: @Sendable (inout Config, String) throws -> Void
}

typealias HTTPSetting = FrontDoorSetting<HTTPServerConfiguration>
typealias StatsDSetting = FrontDoorSetting<StatsDConfiguration>

extension Array {
  /// Applies each setting `value` finds (explicit, environment or file) to `config`.
  func apply<Config>(to config: inout Config, _ value: (String) -> String?) throws
  where Element == FrontDoorSetting<Config> {
    for setting in self {
      if let value = value(setting.key) { try setting.apply(&config, value) }
    }
  }

  /// `  key (default value): help` lines for `sluice serve --help`.
  func helpLines<Config>() -> String where Element == FrontDoorSetting<Config> {
    map { "  \($0.key) (default \($0.defaultValue)): \($0.help)" }.joined(separator: "\n")
  }
}

let httpSettings: [HTTPSetting] = [
  HTTPSetting(key: "http.max.connections", defaultValue: "1024", help: "Open HTTP connections at most.") {
    config, value in config.maxConnections = try parseInt("http.max.connections", value, min: 1)
  },
  HTTPSetting(
    key: "http.max.body.bytes", defaultValue: "16777216", help: "Request body bytes at most (413 beyond)."
  ) {
    config, value in config.maxBodyBytes = try parseInt("http.max.body.bytes", value, min: 1024)
  },
  HTTPSetting(
    key: "http.idle.timeout.ms", defaultValue: "30000",
    help: "Close a connection that sends no complete request head for this long."
  ) {
    config, value in config.idleTimeoutMs = try parseInt("http.idle.timeout.ms", value, min: 1)
  },
  HTTPSetting(
    key: "http.request.timeout.ms", defaultValue: "30000",
    help: "Close a connection whose request body has not arrived this long after its head."
  ) {
    config, value in config.requestTimeoutMs = try parseInt("http.request.timeout.ms", value, min: 1)
  },
  HTTPSetting(
    key: "http.sse.heartbeat.ms", defaultValue: "15000",
    help: "Send a comment on an idle Server-Sent Events stream this often."
  ) {
    config, value in config.heartbeatMs = try parseInt("http.sse.heartbeat.ms", value, min: 10)
  },
  HTTPSetting(
    key: "http.consumer.max.instances", defaultValue: "1000",
    help: "REST consumer instances at most (429 beyond)."
  ) {
    config, value in config.maxConsumers = try parseInt("http.consumer.max.instances", value, min: 1)
  },
  HTTPSetting(
    key: "http.consumer.instance.timeout.ms", defaultValue: "300000",
    help: "Close a REST consumer instance (it leaves its group) after this long unused."
  ) {
    config, value in
    config.consumerInstanceTimeoutMs = try parseInt("http.consumer.instance.timeout.ms", value, min: 1000)
  },
  HTTPSetting(
    key: "http.consumer.request.timeout.ms", defaultValue: "1000",
    help: "How long GET .../records waits for records at most (instances may set less or more)."
  ) {
    config, value in
    config.consumerRequestTimeoutMs = try parseInt("http.consumer.request.timeout.ms", value, min: 0)
  },
  HTTPSetting(
    key: "http.consumer.request.max.bytes", defaultValue: "16777216",
    help: "Key and value bytes in one GET .../records answer at most."
  ) {
    config, value in
    config.consumerRequestMaxBytes = try parseInt("http.consumer.request.max.bytes", value, min: 1024)
  },
]

let statsdSettings: [StatsDSetting] = [
  StatsDSetting(key: "sluice.statsd.flush.ms", defaultValue: "10000", help: "Aggregation interval.") {
    config, value in config.flushMs = try parseInt("sluice.statsd.flush.ms", value, min: 10)
  },
  StatsDSetting(
    key: "sluice.statsd.topic", defaultValue: "statsd", help: "Topic the records go to (created if missing)."
  ) {
    config, value in
    let name = value.trimmed()
    guard !name.isEmpty, name.count <= 249,
      name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") })
    else {
      throw ConfigurationError(description: "sluice.statsd.topic: \"\(value)\" is not a valid topic name")
    }
    config.topic = name
  },
  StatsDSetting(
    key: "sluice.statsd.mode", defaultValue: "aggregate",
    help: "aggregate: one record per metric per interval; raw: one record per valid line."
  ) {
    config, value in
    switch value.trimmed() {
    case "aggregate": config.raw = false
    case "raw": config.raw = true
    default: throw ConfigurationError(description: "sluice.statsd.mode: \"\(value)\" is not aggregate or raw")
    }
  },
  StatsDSetting(
    key: "sluice.statsd.percentiles", defaultValue: "50,90,95,99",
    help: "Percentiles of timers and histograms."
  ) {
    config, value in
    guard let percentiles = StatsDAggregator.Configuration.percentiles(value) else {
      throw ConfigurationError(
        description: "sluice.statsd.percentiles: \"\(value)\" is not a list of 1 to 16 numbers in (0, 100]")
    }
    config.aggregation.percentiles = percentiles
  },
  StatsDSetting(
    key: "sluice.statsd.max.metrics", defaultValue: "10000",
    help: "Distinct metrics (name + tags) per interval; lines for more are dropped and counted."
  ) {
    config, value in config.aggregation.maxMetrics = try parseInt("sluice.statsd.max.metrics", value, min: 1)
  },
  StatsDSetting(
    key: "sluice.statsd.max.samples", defaultValue: "100000",
    help:
      "Samples kept per timer or histogram per interval (a uniform sample beyond); distinct set members counted."
  ) {
    config, value in config.aggregation.maxSamples = try parseInt("sluice.statsd.max.samples", value, min: 1)
  },
  StatsDSetting(
    key: "sluice.statsd.receive.buffer.bytes", defaultValue: "0",
    help: "SO_RCVBUF of the socket; 0: the system default."
  ) {
    config, value in
    config.receiveBufferBytes = try parseInt("sluice.statsd.receive.buffer.bytes", value, min: 0)
  },
]
