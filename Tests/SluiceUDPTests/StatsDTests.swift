import Foundation
import Testing

@testable import SluiceStatsD

/// The StatsD line parser and the per-interval aggregator (the real `statsd` client and raw
/// datagrams through `sluice serve` are in compat/test_statsd.py).
@Suite struct StatsDTests {
  func parse(_ line: String) throws -> StatsDLine { try StatsDLine(parsing: Array(line.utf8)) }

  func json(_ records: [(key: String, value: String)]) throws -> [String: [String: Any]] {
    var result: [String: [String: Any]] = [:]
    for record in records {
      let object = try JSONSerialization.jsonObject(with: Data(record.value.utf8)) as! [String: Any]
      result["\(object["type"]!):\(record.key)"] = object
    }
    return result
  }

  @Test func linesOfEveryTypeParse() throws {
    #expect(try parse("hits:1|c") == StatsDLine(name: "hits", type: .counter, values: [.number(1)]))
    #expect(try parse("hits:3|c|@0.25").sampleRate == 0.25)
    #expect(try parse("temp:-4.5|g").values == [.delta(-4.5)])
    #expect(try parse("temp:4.5|g").values == [.number(4.5)])
    #expect(try parse("temp:+2|g").values == [.delta(2)])
    #expect(try parse("db.query:12.5|ms").type == .timer)
    #expect(try parse("size:1:2:3|h").values == [.number(1), .number(2), .number(3)])
    #expect(try parse("users:alice|s").values == [.member("alice")])
    let tagged = try parse("req:1|c|@0.5|#route:/a,env:prod,canary|c:abc123|T1700000000")
    #expect(
      tagged.tags == [
        .init(name: "canary", value: ""), .init(name: "env", value: "prod"),
        .init(name: "route", value: "/a"),
      ])
    #expect(tagged.sampleRate == 0.5)
  }

  @Test func malformedLinesAreRefused() {
    let cases: [(String, StatsDLine.ParseError)] = [
      ("novalue", .noValue), (":1|c", .badName), ("a b:1|c", .badName), ("x:1", .noType),
      ("x:1|q", .badType), ("x:abc|c", .badValue), ("x:nan|ms", .badValue), ("x:|c", .badValue),
      ("x:1|c|@0", .badSampleRate), ("x:1|c|@1.5", .badSampleRate), ("x:1|c|@abc", .badSampleRate),
      (String(repeating: "n", count: 1025) + ":1|c", .nameTooLong),
    ]
    for (line, error) in cases {
      #expect(throws: error, "\(line)") { try parse(line) }
    }
    #expect(throws: StatsDLine.ParseError.badName) {
      try StatsDLine(parsing: [0xFF, 0x3A, 0x31, 0x7C, 0x63])
    }
  }

  @Test func countersApplySampleRatesAndRates() throws {
    var aggregator = StatsDAggregator()
    #expect(aggregator.ingest(datagram: Array("hits:1|c\nhits:2|c|@0.5\n\nhits:1|c|@0.1\r\n".utf8)) == nil)
    let records = try json(aggregator.flush(timestampMs: 5000, intervalMs: 2000))
    let hits = records["counter:hits"]!
    #expect(hits["value"] as? Double == 15)  // 1 + 2/0.5 + 1/0.1
    #expect(hits["rate"] as? Double == 7.5)
    #expect(hits["timestamp"] as? Int == 5000 && hits["interval_ms"] as? Int == 2000)
    let intake = hits["intake"] as! [String: Int]
    #expect(intake == ["packets": 1, "lines": 3, "malformed": 0, "kernel_drops": 0, "metrics_dropped": 0])
  }

  @Test func gaugesKeepTheirValueAcrossIntervalsForDeltas() throws {
    var aggregator = StatsDAggregator()
    _ = aggregator.ingest(datagram: Array("g:10|g\ng:+5|g\ng:-2|g".utf8))
    #expect(
      try json(aggregator.flush(timestampMs: 0, intervalMs: 1000))["gauge:g"]!["value"] as? Double == 13)
    // Unchanged: not reported. Then a delta applies to the kept value.
    #expect(aggregator.flush(timestampMs: 0, intervalMs: 1000).isEmpty)
    _ = aggregator.ingest(datagram: Array("g:+1|g".utf8))
    #expect(
      try json(aggregator.flush(timestampMs: 0, intervalMs: 1000))["gauge:g"]!["value"] as? Double == 14)
  }

  @Test func timersAndHistogramsGiveNearestRankPercentiles() throws {
    var aggregator = StatsDAggregator()
    let samples = (1...100).map { Double($0) }.shuffled()
    for sample in samples { _ = aggregator.ingest(datagram: Array("t:\(sample)|ms".utf8)) }
    _ = aggregator.ingest(datagram: Array("h:4|h|@0.5\nh:8|h|@0.5".utf8))
    let records = try json(aggregator.flush(timestampMs: 0, intervalMs: 1000))
    let timer = records["timer:t"]!
    #expect(timer["count"] as? Double == 100 && timer["sum"] as? Double == 5050)
    #expect(
      timer["min"] as? Double == 1 && timer["max"] as? Double == 100 && timer["mean"] as? Double == 50.5)
    #expect(timer["p50"] as? Double == 50 && timer["p90"] as? Double == 90)
    #expect(timer["p95"] as? Double == 95 && timer["p99"] as? Double == 99)
    let histogram = records["histogram:h"]!
    #expect(histogram["count"] as? Double == 4)  // two samples at rate 0.5
    #expect(histogram["mean"] as? Double == 6 && histogram["p50"] as? Double == 4)
    #expect(StatsDAggregator.nearestRank([1, 2, 3], 50) == 2)
    #expect(StatsDAggregator.nearestRank([7], 99) == 7)
    #expect(StatsDAggregator.percentileField(99.9) == "p99_9")
  }

  @Test func setsCountDistinctMembersAndTagsSeparateMetrics() throws {
    var aggregator = StatsDAggregator()
    _ = aggregator.ingest(datagram: Array("u:a|s\nu:b|s\nu:a|s\nc:1|c|#env:prod\nc:1|c|#env:dev".utf8))
    let records = aggregator.flush(timestampMs: 0, intervalMs: 1000)
    #expect(try json(records)["set:u"]!["value"] as? Int == 2)
    let counters = records.filter { $0.key == "c" }.map(\.value)
    #expect(counters.count == 2)
    #expect(counters.contains { $0.contains("\"tags\":{\"env\":\"prod\"}") })
  }

  @Test func boundsDropAndCountInsteadOfGrowing() throws {
    var configuration = StatsDAggregator.Configuration()
    configuration.maxMetrics = 3
    configuration.maxSamples = 10
    var aggregator = StatsDAggregator(configuration: configuration)
    for value in 1...1000 {
      aggregator.add(StatsDLine(name: "t", type: .timer, values: [.number(Double(value))]))
    }
    for index in 0..<10 { _ = aggregator.ingest(datagram: Array("m\(index):1|c".utf8)) }
    #expect(aggregator.intake.metricsDropped == 8)
    let interval = aggregator.takeInterval()
    #expect(interval.metricCount == 3)
    guard case .samples(let samples) = interval.metrics.first(where: { $0.key.type == .timer })?.value else {
      Issue.record("no timer")
      return
    }
    // Exact count, sum, min and max; percentiles from a 10-sample reservoir.
    #expect(samples.kept.count == 10 && samples.seen == 1000)
    #expect(samples.sum == 500_500 && samples.min == 1 && samples.max == 1000)
  }

  @Test func anIntervalWithOnlyMalformedLinesStillReportsItsIntake() throws {
    var aggregator = StatsDAggregator()
    #expect(aggregator.ingest(datagram: Array("garbage\nx:1|zz".utf8)) == .noValue)
    aggregator.kernelDropped(4)
    let records = aggregator.flush(timestampMs: 0, intervalMs: 1000)
    #expect(records.count == 1 && records[0].key == "sluice.statsd")
    let intake = try json(records)["intake:sluice.statsd"]!["intake"] as! [String: Int]
    #expect(intake["malformed"] == 2 && intake["lines"] == 2 && intake["kernel_drops"] == 4)
    #expect(aggregator.flush(timestampMs: 0, intervalMs: 1000).isEmpty)
  }

  @Test func tagsAndMembersAreBoundedAndATagGivenTwiceKeepsItsLastValue() throws {
    let long = String(repeating: "t", count: 1025)
    #expect(throws: StatsDLine.ParseError.badTags) { try parse("x:1|c|#\(long)") }
    #expect(throws: StatsDLine.ParseError.badValue) { try parse("x:\(long)|s") }
    #expect(try parse("x:1|c|#env:a,env:b").tags == [.init(name: "env", value: "b")])
  }

  @Test func allMetricsTogetherKeepABoundedNumberOfSamples() throws {
    var configuration = StatsDAggregator.Configuration()
    configuration.maxTotalSamples = 5
    var aggregator = StatsDAggregator(configuration: configuration)
    for value in 1...4 {
      aggregator.add(StatsDLine(name: "a", type: .timer, values: [.number(Double(value))]))
    }
    for value in 1...4 { aggregator.add(StatsDLine(name: "b", type: .set, values: [.member("m\(value)")])) }
    aggregator.add(StatsDLine(name: "c", type: .timer, values: [.number(1)]))
    let records = try json(aggregator.flush(timestampMs: 0, intervalMs: 1000))
    #expect(records["timer:a"]!["p99"] as? Double == 4)
    #expect(records["set:b"]!["value"] as? Int == 1)  // 4 + 1 kept: the budget is spent
    #expect(records["timer:c"]!["count"] as? Double == 1)  // counted, no sample kept…
    #expect(records["timer:c"]!["p50"] is NSNull)  // …so no percentile
  }

  @Test func idleGaugesAreForgotten() throws {
    var configuration = StatsDAggregator.Configuration()
    configuration.gaugeIdleIntervals = 2
    var aggregator = StatsDAggregator(configuration: configuration)
    _ = aggregator.ingest(datagram: Array("g:10|g".utf8))
    _ = aggregator.flush(timestampMs: 0, intervalMs: 1000)
    _ = aggregator.flush(timestampMs: 0, intervalMs: 1000)
    _ = aggregator.ingest(datagram: Array("g:+1|g".utf8))
    #expect(
      try json(aggregator.flush(timestampMs: 0, intervalMs: 1000))["gauge:g"]!["value"] as? Double == 11)
    for _ in 0..<3 { _ = aggregator.flush(timestampMs: 0, intervalMs: 1000) }
    _ = aggregator.ingest(datagram: Array("g:+1|g".utf8))
    #expect(try json(aggregator.flush(timestampMs: 0, intervalMs: 1000))["gauge:g"]!["value"] as? Double == 1)
  }
}
