public import CoreMetrics
import KafkaProtocol
import Synchronization

/// The broker's metrics go through swift-metrics: the instruments counted as requests run
/// (counters and timers below, in the front doors and in storage) are made by the process's
/// `MetricsSystem` factory, which `sluice serve` bootstraps with swift-prometheus; figures
/// read from state at each scrape (offsets, sizes, lag, component counters kept as atomics)
/// go through a ``MetricsCollection``. Without a bootstrap (tests, an embedder that does not
/// export metrics) every instrument is swift-metrics' no-op.
///
/// Names follow Prometheus conventions (`sluice_` prefix, `_total` counters, base units:
/// seconds and bytes). ``help`` holds the help text of every family the hot paths make
/// (swift-metrics has no place for it; the exporter adds the `# HELP` lines).
public enum SluiceMetrics {
  /// Help text by family name, for the families made through the `MetricsSystem` factory.
  public static let help: [String: String] = [
    requests: "Kafka requests answered, by API.",
    requestErrors: "Kafka requests whose response carried an error code, by API and error.",
    requestDuration: "Time from a Kafka request's decoding to its response, by API.",
    recordsIn: "Records appended to a topic.",
    bytesIn: "Record batch bytes appended to a topic (as stored).",
    recordsOut: "Records sent to consumers from a topic (offsets at or past each fetch's position).",
    bytesOut: "Record batch bytes sent to consumers from a topic.",
    durableDuration:
      "Time from a produce's append to its records being durable (topics that fsync before acknowledging).",
    flushDuration: "Duration of one flush round of a partition log (its fsyncs).",
  ]

  public static let requests = "sluice_kafka_requests_total"
  public static let requestErrors = "sluice_kafka_request_errors_total"
  public static let requestDuration = "sluice_kafka_request_duration_seconds"
  public static let recordsIn = "sluice_topic_records_in_total"
  public static let bytesIn = "sluice_topic_bytes_in_total"
  public static let recordsOut = "sluice_topic_records_out_total"
  public static let bytesOut = "sluice_topic_bytes_out_total"
  public static let durableDuration = "sluice_produce_durable_duration_seconds"
  public static let flushDuration = "sluice_log_flush_duration_seconds"

  /// Histogram buckets for request and storage latencies: sub-millisecond requests are the
  /// common case, so the buckets start at 50 µs (swift-prometheus' default starts at 5 ms).
  public static let latencyBuckets: [Duration] = [
    .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
    .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
    .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500),
    .seconds(5), .seconds(10),
  ]

  /// Time spent making produced records durable (fsync-before-ack topics).
  static let durable = CoreMetrics.Timer(label: durableDuration)
}

/// A topic's traffic counters, shared by its partitions; destroyed with the topic.
final class TopicMetrics: Sendable {
  let recordsIn: Counter
  let bytesIn: Counter
  let recordsOut: Counter
  let bytesOut: Counter
  /// The same record counts, readable (the console's rates).
  let recordsInTotal = Atomic<Int64>(0)
  let recordsOutTotal = Atomic<Int64>(0)

  init(topic: String) {
    let dimensions = [("topic", topic)]
    recordsIn = Counter(label: SluiceMetrics.recordsIn, dimensions: dimensions)
    bytesIn = Counter(label: SluiceMetrics.bytesIn, dimensions: dimensions)
    recordsOut = Counter(label: SluiceMetrics.recordsOut, dimensions: dimensions)
    bytesOut = Counter(label: SluiceMetrics.bytesOut, dimensions: dimensions)
  }

  func destroy() {
    recordsIn.destroy()
    bytesIn.destroy()
    recordsOut.destroy()
    bytesOut.destroy()
  }
}

/// Figures read from state at each scrape, reported through swift-metrics: each
/// ``counter(_:_:_:_:)`` or ``gauge(_:_:_:_:)`` call sets one series (made on first use
/// with the factory, kept between scrapes); a series not reported in a round is destroyed
/// at ``finishRound()`` (a deleted topic's, a forgotten group's). Not thread-safe: the
/// exporter runs one round at a time.
public final class MetricsCollection {
  struct Key: Hashable {
    var name: String
    var labels: [String]
  }

  enum Series {
    case counter(Counter, last: Int64)
    case gauge(Gauge)
  }

  let factory: any MetricsFactory
  var series: [Key: Series] = [:]
  var seen: Set<Key> = []
  /// Help text by family name, as reported.
  public private(set) var help: [String: String] = [:]
  /// The values reported in the round under way, and in the last finished one.
  var round: [String: [Figure]] = [:]
  public private(set) var lastRound: [String: [Figure]] = [:]

  /// One reported value.
  public struct Figure: Sendable {
    public var labels: [(String, String)]
    public var value: Double

    public func label(_ name: String) -> String? { labels.first { $0.0 == name }?.1 }
  }

  public init(factory: any MetricsFactory) { self.factory = factory }

  static func key(_ name: String, _ labels: [(String, String)]) -> Key {
    var flat: [String] = []
    flat.reserveCapacity(labels.count * 2)
    for (label, value) in labels {
      flat.append(label)
      flat.append(value)
    }
    return Key(name: name, labels: flat)
  }

  /// A counter's current total (a value kept by its component). A lower value than the
  /// last one (a component restarted) resets the series.
  public func counter(_ name: String, _ help: String, _ labels: [(String, String)] = [], _ value: Int64) {
    let key = Self.key(name, labels)
    seen.insert(key)
    if self.help[name] == nil { self.help[name] = help }
    round[name, default: []].append(Figure(labels: labels, value: Double(value)))
    switch series[key] {
    case .counter(let counter, let last)?:
      if value >= last {
        if value > last { counter.increment(by: value - last) }
      } else {
        counter.reset()
        counter.increment(by: value)
      }
      series[key] = .counter(counter, last: value)
    default:
      let counter = Counter(label: name, dimensions: labels, factory: factory)
      counter.increment(by: value)
      series[key] = .counter(counter, last: value)
    }
  }

  public func counter(_ name: String, _ help: String, _ labels: [(String, String)] = [], _ value: Int) {
    counter(name, help, labels, Int64(value))
  }

  /// A gauge's current value.
  public func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = [], _ value: Double) {
    let key = Self.key(name, labels)
    seen.insert(key)
    if self.help[name] == nil { self.help[name] = help }
    round[name, default: []].append(Figure(labels: labels, value: value))
    if case .gauge(let gauge)? = series[key] {
      gauge.record(value)
    } else {
      let gauge = Gauge(label: name, dimensions: labels, factory: factory)
      gauge.record(value)
      series[key] = .gauge(gauge)
    }
  }

  public func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = [], _ value: Int64) {
    gauge(name, help, labels, Double(value))
  }

  public func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = [], _ value: Int) {
    gauge(name, help, labels, Double(value))
  }

  /// Ends a scrape: destroys the series not reported since the last call.
  public func finishRound() {
    for (key, entry) in series where !seen.contains(key) {
      switch entry {
      case .counter(let counter, _): counter.destroy()
      case .gauge(let gauge): gauge.destroy()
      }
      series[key] = nil
    }
    seen.removeAll(keepingCapacity: true)
    lastRound = round
    round = [:]
  }

  /// How many series are kept.
  public var seriesCount: Int { series.count }
}

extension Broker {
  /// Records appended to and sent from each topic since the broker started (or the topic
  /// was created), for rates.
  public func trafficTotals() -> [String: (recordsIn: Int64, recordsOut: Int64)] {
    topics.topicMetrics.withLock { table in
      table.mapValues {
        ($0.recordsInTotal.load(ordering: .relaxed), $0.recordsOutTotal.load(ordering: .relaxed))
      }
    }
  }

  /// The broker's figures read from state: per partition offsets, sizes and state, group
  /// lag, overflow and quota figures, parked reads.
  public func collectMetrics(into metrics: MetricsCollection) {
    metrics.gauge(
      "sluice_parked_fetches", "Fetches (and other reads) parked until records arrive or their wait ends.",
      [], parkedReads.load(ordering: .relaxed))
    for topic in allTopics {
      let t = ("topic", topic.name)
      for partition in topic.partitions {
        let p = [t, ("partition", String(partition.index))]
        let highWatermark = partition.highWatermark
        metrics.gauge(
          "sluice_partition_log_start_offset", "First offset still in the log.", p, partition.logStartOffset)
        metrics.gauge(
          "sluice_partition_log_end_offset", "Offset the next record will get.", p, partition.logEndOffset)
        metrics.gauge(
          "sluice_partition_high_watermark", "Offset up to which consumers may read.", p, highWatermark)
        metrics.gauge(
          "sluice_partition_size_bytes", "Bytes retained in the log.", p,
          partition.retainedBytes(from: partition.logStartOffset))
        metrics.gauge(
          "sluice_partition_offline",
          "1 when the partition's log has failed (write or fsync error, corruption) and refuses appends.", p,
          partition.offlineReason == nil ? 0 : 1)
        for entry in groups.offsets.commits(for: .init(topic: topic.name, partition: partition.index)) {
          metrics.gauge(
            "sluice_group_lag", "Records between a consumer group's committed offset and the high watermark.",
            [("group", entry.group), t, ("partition", String(partition.index))],
            max(0, highWatermark - entry.committed.offset))
        }
      }
      let stats = overflowStatistics(topic)
      metrics.gauge(
        "sluice_overflow_backlog_bytes",
        "Bytes between the slowest counted consumer group and the log end (docs/overflow.md).", [t],
        stats.backlogBytes)
      for (group, bytes) in stats.groupBacklogBytes.sorted(by: { $0.key < $1.key }) {
        metrics.gauge(
          "sluice_overflow_group_backlog_bytes",
          "Bytes between a consumer group's committed offsets and the log end.",
          [t, ("group", group)], bytes)
      }
      metrics.counter(
        "sluice_overflow_dropped_bytes_total", "Bytes dropped by the drop-oldest policy.", [t],
        stats.droppedBytes)
      metrics.counter(
        "sluice_overflow_dropped_records_total", "Records dropped by the drop-oldest policy.", [t],
        stats.droppedRecords)
      metrics.counter(
        "sluice_overflow_rejected_requests_total", "Partition writes refused by the reject policy.", [t],
        stats.rejectedRequests)
      metrics.counter(
        "sluice_overflow_throttled_requests_total", "Partition writes held by the backpressure policy.", [t],
        stats.throttledRequests)
      metrics.counter(
        "sluice_overflow_throttle_time_ms_total",
        "Milliseconds produce requests were held by the backpressure policy.",
        [t], stats.throttleMs)
      metrics.counter(
        "sluice_overflow_timed_out_requests_total",
        "Partition writes held for sluice.overflow.max.wait.ms and then refused.", [t], stats.timedOutRequests
      )
    }
    for entry in quotas.throttleTotals() {
      metrics.counter(
        "sluice_quota_throttle_time_ms_total",
        "Milliseconds clients were throttled for exceeding a byte-rate quota.",
        [
          ("client_id", entry.clientId), ("user", entry.user ?? ""),
          ("quota", entry.kind == .produce ? "produce" : "fetch"),
        ],
        entry.ms)
    }
  }
}

extension CoreMetrics.Timer {
  /// Records the time elapsed since `start`.
  public func recordInterval(since start: ContinuousClock.Instant) {
    recordNanoseconds((ContinuousClock.now - start).nanoseconds)
  }
}

/// Text from outside (client ids, names in requests) made safe for a log line in any
/// format: control characters (a line break would forge a line) are escaped as `\u{…}`,
/// and the text is cut at 512 characters.
public func printableForLog(_ text: String) -> String {
  var out = ""
  var count = 0
  for scalar in text.unicodeScalars {
    if count == 512 {
      out += "…"
      break
    }
    count += 1
    if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value)
      || scalar == "\u{2028}" || scalar == "\u{2029}"
    {
      out += "\\u{" + String(scalar.value, radix: 16) + "}"
    } else {
      out.unicodeScalars.append(scalar)
    }
  }
  return out
}
