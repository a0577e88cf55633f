import Foundation
import Logging
import NIOPosix
import SluiceBroker
import SluiceServer
import SluiceTestSupport
import Synchronization
import Testing

/// The metrics endpoint over a real socket: the exposition is computed off the event loop,
/// and pipelined requests on one connection are still answered in order.
@Suite struct MetricsServerTests {
  /// Sends `request` on a new connection to `port` (then shuts down the sending side, if
  /// `halfClose`) and reads until the server closes it.
  static func exchange(port: Int, _ request: String, halfClose: Bool = false) async -> String {
    await withCheckedContinuation { continuation in
      Thread {
        guard let fd = IdleConnectionTests.connect(port) else {
          continuation.resume(returning: "")
          return
        }
        defer { close(fd) }
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
          let got = recv(fd, &chunk, chunk.count, 0)
          guard got > 0 else { break }
          received += chunk[0..<got]
        }
        continuation.resume(returning: String(decoding: received, as: UTF8.self))
      }.start()
    }
  }

  /// Runs `body` against a metrics server (on a free port) of a broker with one
  /// three-partition topic.
  static func withServer(_ body: (Int) async throws -> Void) async throws {
    let directory = NSTemporaryDirectory() + "metrics-tests-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var config = BrokerConfig()
    config.dataDirectory = directory
    let broker = try Broker(config: config)
    try await broker.createTopic(name: "scraped", partitions: 3, configs: [:])
    var logger = Logger(label: "metrics-test")
    logger.logLevel = .warning
    let server = MetricsServer(
      broker: broker, host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton, logger: logger
    )
    let task = Task { try await server.run() }
    var port = server.listeningPort
    let deadline = ContinuousClock.now + .seconds(10)
    while port == nil, ContinuousClock.now < deadline {
      try await Task.sleep(for: .milliseconds(10))
      port = server.listeningPort
    }
    do {
      try await body(try #require(port))
    } catch {
      task.cancel()
      await broker.shutdown()
      throw error
    }
    task.cancel()
    _ = try? await task.value
    await broker.shutdown()
  }

  /// Lines of the exposition for the test topic's partitions.
  static func partitionLines(_ answer: String) -> [String] {
    answer.components(separatedBy: "\n").filter {
      $0.hasPrefix("sluice_partition_log_end_offset{") && $0.contains("topic=\"scraped\"")
    }
  }

  @Test func pipelinedScrapesAreAnsweredInOrder() async throws {
    try await Self.withServer { port in
      // Three requests in one write: a scrape, a wrong path, a scrape that closes.
      let answer = await Self.exchange(
        port: port,
        "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n" + "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
          + "GET /metrics?x=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
      // Each response's status line (a body does not end with a line break).
      let statuses = answer.components(separatedBy: "HTTP/1.1 ").dropFirst().map {
        "HTTP/1.1 " + ($0.components(separatedBy: "\r\n").first ?? "")
      }
      #expect(
        statuses == ["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK"], "\(answer.prefix(300))")
      // Both scrapes have the exposition, with one line per partition of the topic.
      #expect(Self.partitionLines(answer).count == 6, "\(Self.partitionLines(answer))")
      #expect(answer.contains("Not found: try GET /metrics"))
    }
  }

  /// A client that shuts down its sending side after the request (`nc -N`) still gets the
  /// answer, though it is rendered off the event loop after the end of input arrived.
  @Test func aHalfClosingClientStillGetsItsAnswer() async throws {
    try await Self.withServer { port in
      let answer = await Self.exchange(port: port, "GET /metrics HTTP/1.0\r\n\r\n", halfClose: true)
      #expect(answer.hasPrefix("HTTP/1.0 200 OK"), "\(answer.prefix(200))")
      #expect(Self.partitionLines(answer).count == 3)
    }
  }

  /// Figures reported at each scrape become swift-metrics series in the registry: a
  /// counter follows its component's total (and resets when it goes down), a series not
  /// reported any more is removed, and every family gets its HELP line.
  @Test func collectedSeriesFollowTheState() {
    let exporter = MetricsExporter()
    let state = Mutex<[String: Int]>(["a": 5, "b": 7])
    exporter.addCollector { metrics in
      for (key, number) in state.withLock({ $0 }) {
        metrics.counter("test_things_total", "Things \\ counted.", [("k", key)], number)
        metrics.gauge("test_level", "A level.", [("k", key)], number)
      }
    }
    var text = exporter.render()
    #expect(
      text.contains("# HELP test_things_total Things \\\\ counted.\n# TYPE test_things_total counter\n"))
    #expect(
      text.contains("test_things_total{k=\"a\"} 5\n") && text.contains("test_things_total{k=\"b\"} 7\n"))
    #expect(text.contains("# HELP test_level A level.\n# TYPE test_level gauge\n"))
    #expect(text.contains("test_level{k=\"b\"} 7.0\n"))
    state.withLock { $0 = ["a": 9] }
    text = exporter.render()
    #expect(text.contains("test_things_total{k=\"a\"} 9\n"))
    #expect(!text.contains("k=\"b\""), "\(text)")
    state.withLock { $0 = ["a": 2] }
    text = exporter.render()
    #expect(text.contains("test_things_total{k=\"a\"} 2\n"), "\(text)")
  }
}
