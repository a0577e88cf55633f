/// Aggregates StatsD lines per flush interval, Brubeck-style, as a value type (no sockets, no
/// clock: the shell passes the time to `flush`). Memory is bounded by `maxMetrics` metrics
/// per interval and `maxSamples` samples (or set members) per metric.
public struct StatsDAggregator: Sendable {
  public struct Configuration: Sendable {
    public var percentiles: [Double] = [50, 90, 95, 99]
    public var maxMetrics = 10_000
    public var maxSamples = 100_000
    /// Samples and set members kept in one interval, all metrics together (memory: about
    /// 8 bytes a sample, a member's length plus ~40).
    public var maxTotalSamples = 1_000_000
    /// A gauge not updated for this many intervals is forgotten (a later `+N` starts at 0).
    public var gaugeIdleIntervals = 60

    public init() {}

    /// Parses `50,90,95,99`: each 0 < p ≤ 100, at most 16.
    public static func percentiles(_ text: String) -> [Double]? {
      let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: " ") }
      guard !parts.isEmpty, parts.count <= 16 else { return nil }
      var result: [Double] = []
      for part in parts {
        guard let value = Double(part), value > 0, value <= 100 else { return nil }
        result.append(value)
      }
      return result
    }
  }

  /// The intake's own accuracy over an interval.
  public struct Intake: Sendable, Equatable {
    public var packets = 0
    public var lines = 0
    public var malformed = 0
    public var kernelDrops = 0
    public var metricsDropped = 0

    public init() {}

    public var isEmpty: Bool { self == Intake() }
  }

  struct Key: Hashable, Sendable {
    var type: StatsDLine.MetricType
    var name: String
    var tags: [StatsDLine.Tag]
  }

  enum Aggregate: Sendable {
    case counter(Double)
    case gauge(Double)
    case samples(Samples)
    case set(Set<String>)
  }

  struct Samples: Sendable {
    var kept: [Double] = []
    var seen = 0
    var weightedCount = 0.0
    var sum = 0.0
    var min = Double.infinity
    var max = -Double.infinity
  }

  public let configuration: Configuration
  public private(set) var intake = Intake()
  var metrics: [Key: Aggregate] = [:]
  /// Gauge values kept across intervals (for `+N`/`-N`) with the interval of their last
  /// update, at most `maxMetrics`.
  var gauges: [Key: (value: Double, interval: Int)] = [:]
  var interval = 0
  /// Samples and members kept this interval.
  var kept = 0
  var random: SplitMix64

  public init(configuration: Configuration = Configuration(), seed: UInt64 = 0x5EED) {
    self.configuration = configuration
    random = SplitMix64(seed: seed)
  }

  /// The errors of malformed lines are returned for logging (the count is kept here).
  /// `packet`: count it as a datagram (a TCP line is not one).
  public mutating func ingest(datagram: some Collection<UInt8>, packet: Bool = true) -> StatsDLine.ParseError?
  {
    if packet { intake.packets += 1 }
    var firstError: StatsDLine.ParseError?
    for line in StatsDLine.lines(datagram) {
      intake.lines += 1
      do {
        add(try StatsDLine(parsing: line))
      } catch {
        intake.malformed += 1
        if firstError == nil { firstError = error }
      }
    }
    return firstError
  }

  /// A line refused before parsing (too long for its transport).
  public mutating func countMalformed() {
    intake.lines += 1
    intake.malformed += 1
  }

  /// A datagram dropped by the kernel (counted in the next flush).
  public mutating func kernelDropped(_ count: Int) {
    intake.kernelDrops += count
  }

  public mutating func add(_ line: StatsDLine) {
    let key = Key(type: line.type, name: line.name, tags: line.tags)
    // Taken out of the dictionary and put back, so that the sample array or member set is
    // uniquely referenced and grows in place (a copy per line would cost O(n) each).
    var aggregate: Aggregate
    if let existing = metrics.removeValue(forKey: key) {
      aggregate = existing
    } else {
      guard metrics.count < configuration.maxMetrics else {
        intake.metricsDropped += 1
        return
      }
      switch line.type {
      case .counter: aggregate = .counter(0)
      case .gauge: aggregate = .gauge(gauges[key]?.value ?? 0)
      case .timer, .histogram: aggregate = .samples(Samples())
      case .set: aggregate = .set([])
      }
    }
    for value in line.values {
      // (Not `switch (aggregate, value)`: the tuple would hold a second reference.)
      switch aggregate {
      case .counter(let sum):
        if case .number(let number) = value { aggregate = .counter(sum + number / line.sampleRate) }
      case .gauge(let current):
        if case .number(let number) = value { aggregate = .gauge(number) }
        if case .delta(let delta) = value { aggregate = .gauge(current + delta) }
      case .samples(var samples):
        guard case .number(let number) = value else { break }
        aggregate = .counter(0)  // release the enum's reference before mutating the array
        samples.seen += 1
        samples.weightedCount += 1 / line.sampleRate
        samples.sum += number
        samples.min = Swift.min(samples.min, number)
        samples.max = Swift.max(samples.max, number)
        if samples.kept.count < configuration.maxSamples && kept < configuration.maxTotalSamples {
          samples.kept.append(number)
          kept += 1
        } else if !samples.kept.isEmpty {
          // Reservoir sampling (Algorithm R): every sample kept with equal probability.
          let slot = Int(random.next() % UInt64(samples.seen))
          if slot < samples.kept.count { samples.kept[slot] = number }
        }
        aggregate = .samples(samples)
      case .set(var members):
        guard case .member(let member) = value else { break }
        aggregate = .counter(0)
        if members.count < configuration.maxSamples && kept < configuration.maxTotalSamples,
          members.insert(member).inserted
        {
          kept += 1
        }
        aggregate = .set(members)
      }
    }
    metrics[key] = aggregate
    if case .gauge(let value) = aggregate, gauges[key] != nil || gauges.count < configuration.maxMetrics {
      gauges[key] = (value, interval)
    }
  }

  /// What one interval gathered, taken out of the aggregator by `takeInterval`.
  public struct Interval: Sendable {
    var metrics: [Key: Aggregate]
    public var intake: Intake
    let percentiles: [Double]

    public var metricCount: Int { metrics.count }
  }

  /// Ends the interval: its metrics and intake, to render off the ingest path.
  public mutating func takeInterval() -> Interval {
    defer {
      metrics = [:]
      intake = Intake()
      kept = 0
      interval += 1
      let oldest = interval - configuration.gaugeIdleIntervals
      gauges = gauges.filter { $0.value.interval >= oldest }
    }
    return Interval(metrics: metrics, intake: intake, percentiles: configuration.percentiles)
  }

  /// Ends the interval and renders it (`takeInterval` then `render`).
  public mutating func flush(timestampMs: Int64, intervalMs: Int64) -> [(key: String, value: String)] {
    Self.render(takeInterval(), timestampMs: timestampMs, intervalMs: intervalMs)
  }

  /// One record per metric of the interval (key: the metric name; value: JSON), plus an
  /// `intake` record when the interval had intake but no metric.
  public static func render(_ interval: Interval, timestampMs: Int64, intervalMs: Int64) -> [(
    key: String, value: String
  )] {
    let intake = interval.intake
    let intakeJSON =
      "{\"packets\":\(intake.packets),\"lines\":\(intake.lines),\"malformed\":\(intake.malformed),"
      + "\"kernel_drops\":\(intake.kernelDrops),\"metrics_dropped\":\(intake.metricsDropped)}"
    var records: [(key: String, value: String)] = []
    records.reserveCapacity(interval.metrics.count + 1)
    let seconds = Double(max(intervalMs, 1)) / 1000
    for (key, aggregate) in interval.metrics.sorted(by: {
      ($0.key.name, $0.key.type.rawValue) < ($1.key.name, $1.key.type.rawValue)
    }) {
      var json = "{\"name\":" + jsonString(key.name) + ",\"type\":\"" + key.type.name + "\",\"tags\":{"
      json += key.tags.map { jsonString($0.name) + ":" + jsonString($0.value) }.joined(separator: ",")
      json += "},\"timestamp\":\(timestampMs),\"interval_ms\":\(intervalMs)"
      switch aggregate {
      case .counter(let sum):
        json += ",\"value\":" + jsonNumber(sum) + ",\"rate\":" + jsonNumber(sum / seconds)
      case .gauge(let value):
        json += ",\"value\":" + jsonNumber(value)
      case .samples(var samples):
        samples.kept.sort()
        json += ",\"count\":" + jsonNumber(samples.weightedCount)
        json += ",\"min\":" + jsonNumber(samples.min) + ",\"max\":" + jsonNumber(samples.max)
        json +=
          ",\"mean\":" + jsonNumber(samples.sum / Double(samples.seen)) + ",\"sum\":"
          + jsonNumber(samples.sum)
        for percentile in interval.percentiles {
          json +=
            ",\"" + percentileField(percentile) + "\":" + jsonNumber(nearestRank(samples.kept, percentile))
        }
      case .set(let members):
        json += ",\"value\":\(members.count)"
      }
      json += ",\"intake\":" + intakeJSON + "}"
      records.append((key.name, json))
    }
    if records.isEmpty && !intake.isEmpty {
      records.append(
        (
          "sluice.statsd",
          "{\"name\":\"sluice.statsd\",\"type\":\"intake\",\"tags\":{},\"timestamp\":\(timestampMs),"
            + "\"interval_ms\":\(intervalMs),\"intake\":" + intakeJSON + "}"
        ))
    }
    return records
  }

  /// `p50`, `p99_9`.
  public static func percentileField(_ percentile: Double) -> String {
    let text = percentile == percentile.rounded() ? String(Int(percentile)) : String(percentile)
    return "p" + String(text.map { $0 == "." ? "_" : $0 })
  }

  /// The nearest-rank percentile of sorted samples: the element at ⌈p/100 · n⌉ (from 1).
  public static func nearestRank(_ sorted: [Double], _ percentile: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }  // no sample kept: null in JSON
    let rank = Int((percentile * Double(sorted.count) / 100).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
  }
}

/// A small, fast, seedable generator for reservoir sampling.
struct SplitMix64: Sendable {
  var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// A JSON number: integers without a fraction, others in Swift's shortest round-trip form.
func jsonNumber(_ value: Double) -> String {
  guard value.isFinite else { return "null" }
  if value == value.rounded(), abs(value) < 9.0e15 { return String(Int64(value)) }
  return String(value)
}

func jsonString(_ text: String) -> String {
  var out = "\""
  for scalar in text.unicodeScalars {
    switch scalar {
    case "\"": out += "\\\""
    case "\\": out += "\\\\"
    case "\n": out += "\\n"
    case "\r": out += "\\r"
    case "\t": out += "\\t"
    case let c where c.value < 0x20:
      let hex = String(c.value, radix: 16)
      out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
    default: out.unicodeScalars.append(scalar)
    }
  }
  return out + "\""
}

extension StringProtocol {
  fileprivate func trimmingCharacters(in set: Character) -> String {
    String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
  }
}
