import Foundation
import Logging
import NIOCore
import NIOPosix
import SluiceBroker
import SluiceTestSupport
import Testing

@testable import SluiceHTTP

/// A blocking HTTP/1.1 client on a raw socket; its calls run on threads of its own, so a
/// blocked read never holds a thread the server's tasks need.
final class RawHTTP: Sendable {
  /// The client's own threads: blocked reads must not hold the shared pool the server uses.
  static let pool: NIOThreadPool = {
    let pool = NIOThreadPool(numberOfThreads: 16)
    pool.start()
    return pool
  }()

  let fd: Int32

  init?(port: Int, timeout: Int = 5) {
    guard let fd = LoopbackSocket.connect(port, timeout: timeout) else { return nil }
    self.fd = fd
  }

  deinit { close(fd) }

  func send(_ text: String) async {
    let fd = self.fd
    _ = try? await Self.pool.runIfActive {
      var bytes = Array(text.utf8)
      var sent = 0
      while sent < bytes.count {
        let n = bytes.withUnsafeMutableBytes {
          Foundation.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
        }
        if n <= 0 { return }
        sent += n
      }
    }
  }

  /// Bytes until `done` says the text so far is enough, the peer closes, or the read times out.
  func read(until done: @escaping @Sendable (String) -> Bool) async -> (text: String, closed: Bool) {
    let fd = self.fd
    return
      (try? await Self.pool.runIfActive {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
          let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
          if n == 0 { return (String(decoding: data, as: UTF8.self), true) }
          if n < 0 { return (String(decoding: data, as: UTF8.self), false) }
          data.append(contentsOf: buffer[0..<n])
          let text = String(decoding: data, as: UTF8.self)
          if done(text) { return (text, false) }
        }
      }) ?? ("", false)
  }

  /// One response with a Content-Length body.
  func response() async -> (status: Int, headers: [String: String], body: String)? {
    let (text, _) = await read { text in
      guard let end = text.range(of: "\r\n\r\n") else { return false }
      let length = Self.headers(String(text[..<end.lowerBound]))["content-length"].flatMap { Int($0) } ?? 0
      return text.utf8.count - text[..<end.upperBound].utf8.count >= length
    }
    guard let end = text.range(of: "\r\n\r\n") else { return nil }
    let head = String(text[..<end.lowerBound])
    let status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    return (status, Self.headers(head), String(text[end.upperBound...]))
  }

  static func headers(_ head: String) -> [String: String] {
    var headers: [String: String] = [:]
    for line in head.components(separatedBy: "\r\n").dropFirst() {
      guard let colon = line.firstIndex(of: ":") else { continue }
      headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
        in: .whitespaces)
    }
    return headers
  }

  func request(_ method: String, _ path: String, body: String? = nil, headers: [String] = [])
    async -> (status: Int, headers: [String: String], body: String)?
  {
    var text = "\(method) \(path) HTTP/1.1\r\nHost: test\r\n"
    for header in headers { text += header + "\r\n" }
    if let body { text += "Content-Length: \(body.utf8.count)\r\n\r\n" + body } else { text += "\r\n" }
    await send(text)
    return await response()
  }
}

/// A loopback configuration on an ephemeral port, adjusted by `change`.
func testConfiguration(_ change: (inout HTTPServerConfiguration) -> Void) -> HTTPServerConfiguration {
  var configuration = HTTPServerConfiguration(host: "127.0.0.1", port: 0)
  change(&configuration)
  return configuration
}

func withHTTPServer(
  _ configuration: HTTPServerConfiguration = testConfiguration { _ in },
  _ body: (Broker, Int, HTTPServer) async throws -> Void
) async throws {
  let (broker, directory) = try Broker.makeForTest()
  let server = HTTPServer(
    broker: broker, configuration: configuration, group: .singleton, logger: Logger(label: "http-test"))
  let task = Task { try await server.run() }
  var port: Int?
  for _ in 0..<1000 {
    port = server.listeningPort
    if port != nil { break }
    try await Task.sleep(for: .milliseconds(5))
  }
  do {
    try await body(broker, try #require(port), server)
  } catch {
    task.cancel()
    _ = try? await task.value
    await broker.shutdown()
    try? FileManager.default.removeItem(atPath: directory)
    throw error
  }
  task.cancel()
  _ = try? await task.value
  await broker.shutdown()
  try? FileManager.default.removeItem(atPath: directory)
}

@Suite struct HTTPServerTests {
  @Test func producesAndDescribes() async throws {
    try await withHTTPServer { broker, port, _ in
      _ = try await broker.createTopic(name: "orders", partitions: 3, configs: [:])
      let client = try #require(RawHTTP(port: port))
      let produced = try #require(
        await client.request(
          "POST", "/topics/orders",
          body: #"{"records":[{"key":"a","value":{"n":1}},{"key":"a","value":{"n":2}}]}"#,
          headers: ["Content-Type: application/vnd.kafka.json.v2+json"]))
      #expect(produced.status == 200)
      #expect(produced.headers["content-type"] == "application/vnd.kafka.v2+json")
      let document = try JSONParser.parse(ByteBuffer(string: produced.body))
      let offsets = try #require(document["offsets"]?.array)
      let expected = RestPartitioner.partition(key: ByteBuffer(string: #""a""#), count: 3)
      #expect(offsets.map { $0["partition"]?.integer(Int32.self) } == [expected, expected])
      #expect(offsets.map { $0["offset"]?.integer(Int64.self) } == [0, 1])
      #expect(offsets.allSatisfy { $0["error_code"]?.isNull == true })
      // Keep-alive: the same connection answers again.
      let partition = try #require(
        await client.request("GET", "/topics/orders/partitions/\(expected)/offsets"))
      #expect(partition.body == #"{"beginning_offset":0,"end_offset":2}"#)
      let missing = try #require(await client.request("GET", "/topics/nope"))
      #expect(missing.status == 404)
      #expect(missing.body == #"{"error_code":40401,"message":"Topic not found."}"#)
      let badPartition = try #require(await client.request("GET", "/topics/orders/partitions/9"))
      #expect(badPartition.status == 404 && badPartition.body.contains("40402"))
      // What was stored reads back through the broker.
      let read = await broker.read(
        [PartitionRead(topic: "orders", partition: expected, offset: 0, maxBytes: 1 << 20)],
        options: ReadOptions(maxBytes: 1 << 20))
      #expect(read[0].highWatermark == 2)
    }
  }

  @Test func bodyLimitAnswers413BeforeReadingTheBody() async throws {
    try await withHTTPServer(testConfiguration { $0.maxBodyBytes = 1024 }) { _, port, _ in
      let client = try #require(RawHTTP(port: port))
      await client.send(
        "POST /topics/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.kafka.json.v2+json\r\n"
          + "Content-Length: 100000000\r\n\r\n")
      let answer = try #require(await client.response())
      #expect(answer.status == 413)
      #expect(answer.body.contains("\"error_code\":413"))
      // Chunked bodies are counted as they arrive.
      let chunked = try #require(RawHTTP(port: port))
      await chunked.send(
        "POST /topics/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.kafka.json.v2+json\r\n"
          + "Transfer-Encoding: chunked\r\n\r\n800\r\n" + String(repeating: "x", count: 2048) + "\r\n")
      #expect(await chunked.response()?.status == 413)
    }
  }

  @Test func slowClientsAreClosed() async throws {
    try await withHTTPServer(
      testConfiguration {
        $0.idleTimeoutMs = 200
        $0.requestTimeoutMs = 200
      }
    ) { _, port, server in
      // Headers that never end.
      let slowHead = try #require(RawHTTP(port: port))
      await slowHead.send("GET /topics HTTP/1.1\r\nHost: x\r\n")
      let start = ContinuousClock.now
      #expect(await slowHead.read { _ in false }.closed)
      #expect(ContinuousClock.now - start < .seconds(3))
      // A body that never completes.
      let slowBody = try #require(RawHTTP(port: port))
      await slowBody.send("POST /topics/t HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
      #expect(await slowBody.read { _ in false }.closed)
      #expect(server.counters.timedOut.load(ordering: .relaxed) >= 2)
    }
  }

  @Test func connectionCap() async throws {
    try await withHTTPServer(testConfiguration { $0.maxConnections = 2 }) { _, port, server in
      let first = try #require(RawHTTP(port: port))
      let second = try #require(RawHTTP(port: port))
      #expect(await first.request("GET", "/")?.status == 200)
      #expect(await second.request("GET", "/")?.status == 200)
      let third = try #require(RawHTTP(port: port))
      #expect(await third.read { _ in false }.closed)
      #expect(server.counters.refusedConnections.load(ordering: .relaxed) == 1)
    }
  }

  @Test func hugeHeadersAreRefused() async throws {
    try await withHTTPServer(testConfiguration { $0.maxHeaderBytes = 4096 }) { _, port, _ in
      let client = try #require(RawHTTP(port: port))
      await client.send("GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 10000) + "\r\n\r\n")
      let (text, _) = await client.read { _ in false }
      #expect(text.hasPrefix("HTTP/1.1 4"))
    }
  }

  @Test func eventStreamDeliversAppendsAndResumes() async throws {
    try await withHTTPServer(testConfiguration { $0.heartbeatMs = 200 }) { broker, port, _ in
      _ = try await broker.createTopic(name: "feed", partitions: 2, configs: [:])
      let stream = try #require(RawHTTP(port: port))
      await stream.send(
        "GET /v1/topics/feed/events?from=end HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
      let opened = await stream.read { $0.contains("id: 0:-1,1:-1\n\n") }
      #expect(opened.text.lowercased().contains("content-type: text/event-stream"))
      // Appended after the stream opened: pushed, not polled.
      let result = await broker.produce(
        [PartitionRecords(topic: "feed", partition: 1, records: TestBatches.batch(["hello", "world"]))],
        options: ProduceOptions(acks: .all))
      guard case .appended = result.results[0] else {
        Issue.record("produce failed")
        return
      }
      let events = await stream.read { $0.contains("id: 1:1\n") && $0.contains("id: 0:-1,1:1\n\n") }
      #expect(events.text.contains(#""partition":1,"offset":0"#))
      #expect(events.text.contains(#""value":"world""#))
      // Idle: a heartbeat comment.
      #expect(await stream.read { $0.contains(": heartbeat") }.text.contains(": heartbeat"))
      // Resume after 1:0 from the checkpoint id: only offset 1 of partition 1.
      let resumed = try #require(RawHTTP(port: port))
      await resumed.send(
        "GET /v1/topics/feed/events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 0:-1,1:0\r\n\r\n")
      let again = await resumed.read { $0.contains("id: 1:1\n") }
      #expect(!again.text.contains("id: 1:0\n"))
      #expect(again.text.contains(#""value":"world""#))
    }
  }

  @Test func eventStreamWithGroupCommitsWhatItSent() async throws {
    try await withHTTPServer(testConfiguration { $0.heartbeatMs = 100 }) { broker, port, _ in
      _ = try await broker.createTopic(name: "audit", partitions: 1, configs: [:])
      _ = await broker.produce(
        [PartitionRecords(topic: "audit", partition: 0, records: TestBatches.batch(["a", "b", "c"]))],
        options: ProduceOptions(acks: .all))
      let stream = try #require(RawHTTP(port: port))
      await stream.send("GET /v1/topics/audit/events?from=beginning&group=g1 HTTP/1.1\r\nHost: x\r\n\r\n")
      _ = await stream.read { $0.contains("id: 0:2\n") }
      var committed: Int64?
      for _ in 0..<100 {
        committed =
          broker.committedOffsets(group: "g1", topics: [("audit", [0])]).first?.partitions.first?
          .committed?.offset
        if committed == 3 { break }
        try await Task.sleep(for: .milliseconds(50))
      }
      #expect(committed == 3)
    }
  }

  @Test func routingErrors() async throws {
    try await withHTTPServer { _, port, _ in
      let client = try #require(RawHTTP(port: port))
      #expect(
        await client.request("GET", "/nowhere")?.body == #"{"error_code":404,"message":"HTTP 404 Not Found"}"#
      )
      #expect(await client.request("DELETE", "/topics")?.status == 405)
      #expect(await client.request("GET", "/topics", headers: ["Accept: text/html"])?.status == 406)
      #expect(await client.request("GET", "/v1/topics/none/events")?.status == 404)
      let metrics = try #require(await client.request("GET", "/metrics"))
      #expect(metrics.body.contains("sluice_http_responses_total{route=\"unmatched\",code=\"404\"} 1"))
      let openapi = try #require(await client.request("GET", "/openapi.json"))
      #expect(openapi.headers["content-type"] == "application/json")
    }
  }
}
