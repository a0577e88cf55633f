import SluiceStorage
import Synchronization

/// Broker configs changed on a running broker (AlterConfigs / IncrementalAlterConfigs on the
/// BROKER resource, Kafka's dynamic broker configs): kept in the metadata file, so they
/// survive a restart, and applied at once.
///
/// What can be set: the broker defaults of topic configs (`log.retention.ms`,
/// `compression.type`, `log.cleanup.policy`, … — every ``TopicConfigEntry/brokerName``),
/// which change every topic that does not set the config itself; and the Kafka configs in
/// ``Broker/inertBrokerConfigs``, accepted and reported with no effect. Everything else
/// (listeners, data directory, connection limits) is set when `sluice serve` starts.
///
/// Two levels, as in Kafka: the cluster-wide default (resource name "") and this broker's
/// own (its node id), which wins.
struct DynamicBrokerConfigs: Hashable, Sendable {
  var clusterDefault: [String: String] = [:]
  var node: [String: String] = [:]

  static let defaultSection = "brokerConfigs.default"
  static let nodeSection = "brokerConfigs.node"

  init(clusterDefault: [String: String] = [:], node: [String: String] = [:]) {
    self.clusterDefault = clusterDefault
    self.node = node
  }

  init(_ document: MetadataStore.Document) {
    clusterDefault = document.sections[Self.defaultSection] ?? [:]
    node = document.sections[Self.nodeSection] ?? [:]
  }

  /// The value in force for a broker config name, and whether it is the node's own.
  func value(_ name: String) -> (value: String, isNode: Bool)? {
    if let value = node[name] { return (value, true) }
    return clusterDefault[name].map { ($0, false) }
  }

  /// The topic defaults these set, by topic config name.
  var topicDefaults: [String: String] {
    var result: [String: String] = [:]
    for (name, value) in clusterDefault.merging(node, uniquingKeysWith: { $1 }) {
      if let entry = TopicConfigEntry.byBrokerName[name] { result[entry.name] = value }
    }
    return result
  }
}

extension TopicRegistry {
  /// Kafka's dynamically updatable broker configs that Sluice accepts and reports but does
  /// not act on, with the reason.
  public static let inertBrokerConfigs: [String: String] = {
    var inert: [String: String] = [:]
    for name in [
      "background.threads", "num.io.threads", "num.network.threads", "num.recovery.threads.per.data.dir",
    ] {
      inert[name] = "Sluice runs one event loop per core and a fixed thread pool for disk work"
    }
    for name in [
      "log.cleaner.threads", "log.cleaner.io.max.bytes.per.second", "log.cleaner.dedupe.buffer.size",
      "log.cleaner.io.buffer.size", "log.cleaner.io.buffer.load.factor", "log.cleaner.backoff.ms",
    ] {
      inert[name] = "Sluice does not compact logs yet"
    }
    for name in [
      "sasl.kerberos.min.time.before.relogin", "sasl.kerberos.ticket.renew.jitter",
      "sasl.kerberos.ticket.renew.window.factor", "sasl.kerberos.kinit.cmd", "sasl.kerberos.service.name",
      "sasl.kerberos.principal.to.local.rules",
    ] {
      inert[name] = "Sluice has no Kerberos (GSSAPI) authentication"
    }
    for name in [
      "num.replica.fetchers", "follower.replication.throttled.rate", "leader.replication.throttled.rate",
      "replica.alter.log.dirs.io.max.bytes.per.second",
    ] {
      inert[name] = "a single Sluice broker does not replicate"
    }
    return inert
  }()

  /// The dynamic broker configs in force.
  var dynamicConfigs: DynamicBrokerConfigs { dynamicBrokerConfigs.withLock { $0 } }

  /// The dynamic configs set at one level (`node`: this broker's own; otherwise the
  /// cluster-wide default).
  public func dynamicBrokerConfigs(node: Bool) -> [String: String] {
    node ? dynamicConfigs.node : dynamicConfigs.clusterDefault
  }

  /// A topic's config from its explicit `overrides` over the broker's defaults, dynamic
  /// ones included.
  public func makeTopicConfig(_ overrides: [String: String]) throws(TopicConfig.Invalid) -> TopicConfig {
    try TopicConfig(overrides: overrides, broker: config, brokerDefaults: dynamicConfigs.topicDefaults)
  }

  /// Why `name=value` cannot be a dynamic broker config, or nil.
  static func dynamicBrokerConfigProblem(_ name: String, _ value: String) -> String? {
    if let entry = TopicConfigEntry.byBrokerName[name] {
      return entry.problem(value).map { "\(name) (the default of \(entry.name)): \($0)" }
    }
    if inertBrokerConfigs[name] != nil { return nil }
    return
      "\(name) cannot be changed while the broker runs (or is not a broker config Sluice knows); set it with "
      + "`sluice serve --set \(name)=…` and restart"
  }

  /// Replaces the dynamic configs of one level (`node`: this broker's own; otherwise the
  /// cluster-wide default) with `configs`, after checking every name and value and that
  /// every topic's config stays valid. Persists them, then applies them to every topic.
  public func setBrokerConfigs(_ configs: [String: String], node: Bool, validateOnly: Bool)
    async throws(TopicError)
  {
    for (name, value) in configs.sorted(by: { $0.key < $1.key }) {
      if let problem = Self.dynamicBrokerConfigProblem(name, value) { throw .invalidConfig(problem) }
    }
    try await offLoop { () throws(TopicError) in
      try self.adminLock.withLock { _ throws(TopicError) in
        try self.replaceBrokerConfigs(configs, node: node, validateOnly: validateOnly)
      }
    }
  }

  /// Applies `changes` to one level's dynamic configs (IncrementalAlterConfigs). APPEND and
  /// SUBTRACT start from the value in force at that level (for the cluster-wide default: its
  /// own value, else the static default); the merge happens under the admin lock.
  public func alterBrokerConfigs(_ changes: [ConfigChange], node: Bool, validateOnly: Bool)
    async throws(TopicError)
  {
    for change in changes {
      if case .set(let name, let value) = change, let problem = Self.dynamicBrokerConfigProblem(name, value) {
        throw .invalidConfig(problem)
      }
    }
    try await offLoop { () throws(TopicError) in
      try self.adminLock.withLock { _ throws(TopicError) in
        let level = self.dynamicBrokerConfigs(node: node)
        var values = Dictionary(
          self.brokerConfigEntries(node: true).map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
        if !node {
          // The cluster default's own value, else what applies without any dynamic value.
          let dynamic = self.dynamicConfigs
          for name in dynamic.node.keys {
            values[name] = dynamic.clusterDefault[name] ?? self.staticDefault(name)
          }
        }
        let merged = try ConfigChange.apply(changes, to: level) { values[$0] }
        for (name, value) in merged.sorted(by: { $0.key < $1.key }) {
          if let problem = Self.dynamicBrokerConfigProblem(name, value) { throw .invalidConfig(problem) }
        }
        try self.replaceBrokerConfigs(merged, node: node, validateOnly: validateOnly)
      }
    }
  }

  /// The value of a broker config with no dynamic value at any level.
  func staticDefault(_ name: String) -> String? {
    guard let entry = TopicConfigEntry.byBrokerName[name],
      let defaults = try? TopicConfig(overrides: [:], broker: config)
    else { return nil }
    return entry.value(defaults)
  }

  private func replaceBrokerConfigs(_ configs: [String: String], node: Bool, validateOnly: Bool)
    throws(TopicError)
  {
    var next = dynamicConfigs
    if node { next.node = configs } else { next.clusterDefault = configs }
    let defaults = next.topicDefaults
    var refreshed: [(Topic, TopicConfig)] = []
    do throws(TopicConfig.Invalid) {
      _ = try TopicConfig(overrides: [:], broker: config, brokerDefaults: defaults)
      for topic in all {
        refreshed.append(
          (
            topic,
            try TopicConfig(overrides: topic.config.overrides, broker: config, brokerDefaults: defaults)
          ))
      }
    } catch {
      throw .invalidConfig(error.message)
    }
    if validateOnly { return }
    do throws(StorageError) {
      try metadata.update { (document: inout MetadataStore.Document) throws(StorageError) in
        document.sections[DynamicBrokerConfigs.defaultSection] = next.clusterDefault
        document.sections[DynamicBrokerConfigs.nodeSection] = next.node
      }
    } catch {
      throw .storage(error.message)
    }
    dynamicBrokerConfigs.withLock { $0 = next }
    for (topic, topicConfig) in refreshed where topicConfig.log.storage == topic.config.log.storage {
      apply(topicConfig, to: topic)
    }
  }
}

/// One config of the broker as DescribeConfigs reports it.
public struct BrokerConfigEntry: Sendable, Hashable {
  public enum Source: Sendable, Hashable {
    /// Set on this broker while it runs.
    case dynamicNode
    /// Set as the cluster-wide default while the broker runs.
    case dynamicDefault
    /// Set when `sluice serve` started; read-only here.
    case `static`
    case defaultValue
  }

  public var name: String
  public var value: String
  public var source: Source
  public var readOnly: Bool
  /// Kafka's config type code (1 BOOLEAN, 2 STRING, 3 INT, 5 LONG, 6 DOUBLE, 7 LIST).
  public var typeCode: Int8
  public var doc: String
}

extension TopicRegistry {
  /// The broker's static settings (read-only here).
  var staticBrokerConfigValues: [(name: String, value: String)] {
    [
      ("auto.create.topics.enable", String(config.autoCreateTopics)),
      ("num.partitions", String(config.defaultPartitions)),
      ("log.dirs", config.dataDirectory),
      ("broker.id", String(config.nodeId)),
      ("node.id", String(config.nodeId)),
      ("advertised.listeners", "PLAINTEXT://\(config.advertisedHost):\(config.advertisedPort)"),
      ("log.retention.check.interval.ms", String(config.retentionCheckIntervalMs)),
      ("offsets.retention.minutes", String(config.offsetsRetentionMinutes)),
      ("group.initial.rebalance.delay.ms", String(config.groupInitialRebalanceDelayMs)),
    ]
  }

  /// The broker's configs: the static ones, the defaults of every topic config (which may be
  /// changed dynamically) and the inert dynamic ones that were set. `node` false: the
  /// cluster-default level, which lists only what was set at that level.
  public func brokerConfigEntries(node: Bool) -> [BrokerConfigEntry] {
    let dynamic = dynamicConfigs
    if !node {
      return dynamic.clusterDefault.sorted { $0.key < $1.key }.map { name, value in
        BrokerConfigEntry(
          name: name, value: value, source: .dynamicDefault, readOnly: false,
          typeCode: TopicConfigEntry.byBrokerName[name]?.typeCode ?? 2, doc: "")
      }
    }
    var entries = staticBrokerConfigValues.map {
      BrokerConfigEntry(
        name: $0.name, value: $0.value, source: .static, readOnly: true, typeCode: 2,
        doc: "Set when sluice serve starts (--set).")
    }
    let defaults = (try? makeTopicConfig([:])) ?? (try? TopicConfig(overrides: [:], broker: config))
    for entry in TopicConfigEntry.all {
      guard let brokerName = entry.brokerName else { continue }
      let set = dynamic.value(brokerName)
      entries.append(
        BrokerConfigEntry(
          name: brokerName, value: set?.value ?? defaults.map { entry.value($0) } ?? "",
          source: set.map { $0.isNode ? .dynamicNode : .dynamicDefault } ?? .defaultValue, readOnly: false,
          typeCode: entry.typeCode, doc: "Default of the topic config \(entry.name). \(entry.doc)"))
    }
    for (name, reason) in Self.inertBrokerConfigs.sorted(by: { $0.key < $1.key }) {
      guard let set = dynamic.value(name) else { continue }
      entries.append(
        BrokerConfigEntry(
          name: name, value: set.value, source: set.isNode ? .dynamicNode : .dynamicDefault, readOnly: false,
          typeCode: 2, doc: "Accepted with no effect: \(reason)."))
    }
    return entries
  }
}
