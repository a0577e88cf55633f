import CoreMetrics
public import Prometheus
import Synchronization

/// The Prometheus exposition of a process: swift-prometheus' registry, which holds both the
/// instruments made through the `MetricsSystem` factory (when the process bootstrapped it
/// with ``makeFactory()``) and the figures the collectors report at each scrape (each
/// front door and component adds one: ``addCollector(_:)``).
public final class MetricsExporter: Sendable {
  public let registry: PrometheusCollectorRegistry
  let collection: Mutex<MetricsCollection>
  let collectors = Mutex<[@Sendable (MetricsCollection) -> Void]>([])

  public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
    self.registry = registry
    self.collection = Mutex(MetricsCollection(factory: Self.makeFactory(registry: registry)))
  }

  /// A swift-metrics factory that makes instruments in `registry`, with latency buckets
  /// fit for sub-millisecond requests. `sluice serve` bootstraps `MetricsSystem` with it.
  public static func makeFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
    var factory = PrometheusMetricsFactory(registry: registry)
    factory.defaultDurationHistogramBuckets = SluiceMetrics.latencyBuckets
    return factory
  }

  /// Bootstraps the process's `MetricsSystem` with this exporter's registry (once per
  /// process: swift-metrics allows one bootstrap).
  public func bootstrapMetricsSystem() {
    MetricsSystem.bootstrap(Self.makeFactory(registry: registry))
  }

  /// Adds figures read at each scrape.
  public func addCollector(_ collector: @escaping @Sendable (MetricsCollection) -> Void) {
    collectors.withLock { $0.append(collector) }
  }

  /// Runs the collectors and returns what they reported, by family (the web console's
  /// figures: connections per listener, feeds, StatsD).
  public func collectFigures() -> [String: [MetricsCollection.Figure]] {
    let collectors = self.collectors.withLock { $0 }
    return collection.withLock { collection in
      for collector in collectors { collector(collection) }
      collection.finishRound()
      return collection.lastRound
    }
  }

  /// The exposition text (format 0.0.4): runs the collectors, then emits the registry with
  /// a `# HELP` line for every family. One scrape at a time.
  public func render() -> String {
    let collectors = self.collectors.withLock { $0 }
    let help = collection.withLock { collection -> [String: String] in
      for collector in collectors { collector(collection) }
      collection.finishRound()
      return collection.help
    }
    let text = registry.emitToString()
    var out = ""
    out.reserveCapacity(text.utf8.count + 4096)
    var previous: Substring = ""
    for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
      if line.hasPrefix("# TYPE "), !previous.hasPrefix("# HELP ") {
        let name = String(line.dropFirst(7).prefix { $0 != " " })
        if let text = help[name] ?? SluiceMetrics.help[name] {
          out += "# HELP \(name) "
          for character in text { out += character == "\\" ? "\\\\" : String(character) }
          out += "\n"
        }
      }
      out += line
      out += "\n"
      previous = line
    }
    return out
  }
}
