import Foundation
import KafkaProtocol
import NIOCore
import SluiceBroker
import SluiceHTTP
import SluiceTestSupport
import Testing

/// REST Proxy v2 consumer instances over a real HTTP server and broker.
@Suite struct RestConsumerTests {
  static let v2 = "Content-Type: application/vnd.kafka.v2+json"
  static let binary = "Accept: application/vnd.kafka.binary.v2+json"
  static let json = "Accept: application/vnd.kafka.json.v2+json"

  static func json(_ text: String) -> Any? {
    try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
  }

  static func produce(_ broker: Broker, _ topic: String, _ partition: Int32, _ values: [String]) async {
    _ = await broker.produce(
      [PartitionRecords(topic: topic, partition: partition, records: TestBatches.batch(values))],
      options: ProduceOptions(acks: .all))
  }

  struct Got: Sendable {
    var partition: Int
    var offset: Int
    var value: String
  }

  /// The records an answer holds, with the decoded (base64) values.
  static func records(_ body: String) -> [Got] {
    let entries = (json(body) as? [[String: Any]]) ?? []
    return entries.map { entry in
      let value = (entry["value"] as? String).flatMap { Data(base64Encoded: $0) }.map {
        String(decoding: $0, as: UTF8.self)
      }
      return Got(
        partition: entry["partition"] as? Int ?? -1, offset: entry["offset"] as? Int ?? -1, value: value ?? ""
      )
    }
  }

  /// The partitions an instance is assigned now.
  static func assigned(_ client: RawHTTP, _ name: String) async -> Set<Int> {
    let body = await client.request("GET", "/consumers/g1/instances/\(name)/assignments")?.body ?? ""
    let partitions = ((json(body) as? [String: Any])?["partitions"] as? [[String: Any]]) ?? []
    return Set(partitions.compactMap { $0["partition"] as? Int })
  }

  /// Reads from both instances until every one of the eight records arrived and both hold
  /// two partitions of the same generation (or 20 s passed). Which instance read which
  /// record depends on whether the first fetched before the second joined, so only the
  /// settled assignment is compared.
  static func readBoth(_ client: RawHTTP) async -> (values: Set<String>, one: Set<Int>, two: Set<Int>) {
    var values: Set<String> = []
    var one: Set<Int> = []
    var two: Set<Int> = []
    let deadline = ContinuousClock.now + .seconds(20)
    repeat {
      for name in ["one", "two"] {
        let got = await client.request(
          "GET", "/consumers/g1/instances/\(name)/records?timeout=200", headers: [binary])
        values.formUnion(records(got?.body ?? "[]").map(\.value))
      }
      one = await assigned(client, "one")
      two = await assigned(client, "two")
    } while (values.count < 8 || one.count != 2 || two.count != 2 || !one.isDisjoint(with: two))
      && ContinuousClock.now < deadline
    return (values, one, two)
  }

  @Test func twoInstancesOfOneGroupSplitPartitionsAndCommit() async throws {
    try await withHTTPServer { broker, port, _ in try await Self.split(broker, port) }
  }

  static func split(_ broker: Broker, _ port: Int) async throws {
    _ = try await broker.createTopic(name: "work", partitions: 4, configs: [:])
    for partition in Int32(0)..<4 {
      await produce(broker, "work", partition, ["a\(partition)", "b\(partition)"])
    }
    let client = try #require(RawHTTP(port: port))
    for name in ["one", "two"] {
      let created = await client.request(
        "POST", "/consumers/g1", body: #"{"name":"\#(name)","auto.offset.reset":"earliest"}"#, headers: [v2])
      #expect(created?.status == 200)
      #expect(created?.body.contains(#""base_uri":"http://test/consumers/g1/instances/\#(name)""#) == true)
      let subscribed = await client.request(
        "POST", "/consumers/g1/instances/\(name)/subscription", body: #"{"topics":["work"]}"#, headers: [v2])
      #expect(subscribed?.status == 204)
    }
    // Both join one generation; each gets two partitions.
    let (values, one, two) = await readBoth(client)
    #expect(one.count == 2 && two.count == 2 && one.isDisjoint(with: two))
    #expect(values == Set((0..<4).flatMap { ["a\($0)", "b\($0)"] }))
    let assignments = await client.request("GET", "/consumers/g1/instances/one/assignments")
    #expect(assignments?.body.contains(#""topic":"work""#) == true)
    // A Kafka-side view: the group has two members.
    #expect(broker.groups.describe("g1")?.members.count == 2)
    // Committing the last consumed offset stores the next one.
    let partition = try #require(one.min())
    let commit = await client.request(
      "POST", "/consumers/g1/instances/one/offsets",
      body: #"{"offsets":[{"topic":"work","partition":\#(partition),"offset":1}]}"#, headers: [v2])
    #expect(commit?.status == 200)
    #expect(commit?.body == "[]")
    let committed = await client.request(
      "GET", "/consumers/g1/instances/one/offsets",
      body: #"{"partitions":[{"topic":"work","partition":\#(partition)}]}"#, headers: [v2])
    #expect(committed?.body.contains(#""partition":\#(partition),"offset":2"#) == true)
    // Deleting one instance: it leaves, and the other takes every partition.
    #expect(await client.request("DELETE", "/consumers/g1/instances/one")?.status == 204)
    #expect(
      await client.request("GET", "/consumers/g1/instances/one/assignments")?.body.contains("40403") == true)
    var all = 0
    let rebalanced = ContinuousClock.now + .seconds(20)
    while all != 4 && ContinuousClock.now < rebalanced {
      _ = await client.request("GET", "/consumers/g1/instances/two/records?timeout=100", headers: [binary])
      let body = await client.request("GET", "/consumers/g1/instances/two/assignments")?.body ?? ""
      all = ((json(body) as? [String: Any])?["partitions"] as? [Any])?.count ?? 0
    }
    #expect(all == 4)
    #expect(await client.request("DELETE", "/consumers/g1/instances/two")?.status == 204)
  }

  /// A subscription changed while its first join is still waiting must not leave a member
  /// behind (a ghost leader would hold every member in CompletingRebalance until its session
  /// expires, 30 s).
  @Test func resubscribingDuringTheFirstJoinLeavesNoGhost() async throws {
    try await withHTTPServer { broker, port, _ in try await Self.noGhost(broker, port) }
  }

  static func noGhost(_ broker: Broker, _ port: Int) async throws {
    _ = try await broker.createTopic(name: "ga", partitions: 2, configs: [:])
    _ = try await broker.createTopic(name: "gb", partitions: 2, configs: [:])
    let client = try #require(RawHTTP(port: port))
    for name in ["a", "b"] {
      #expect(
        await client.request("POST", "/consumers/g4", body: #"{"name":"\#(name)"}"#, headers: [v2])?.status
          == 200)
    }
    let path = "/consumers/g4/instances/a/subscription"
    #expect(await client.request("POST", path, body: #"{"topics":["ga"]}"#, headers: [v2])?.status == 204)
    #expect(
      await client.request("POST", path, body: #"{"topics":["ga","gb"]}"#, headers: [v2])?.status == 204)
    #expect(
      await client.request(
        "POST", "/consumers/g4/instances/b/subscription", body: #"{"topics":["ga","gb"]}"#, headers: [v2])?
        .status
        == 204)
    let started = ContinuousClock.now
    var settled = false
    while !settled && ContinuousClock.now - started < .seconds(10) {
      var total = 0
      for name in ["a", "b"] {
        let body = await client.request("GET", "/consumers/g4/instances/\(name)/assignments")?.body ?? ""
        total += ((json(body) as? [String: Any])?["partitions"] as? [Any])?.count ?? 0
      }
      settled = total == 4 && broker.groups.describe("g4")?.members.count == 2
      if !settled { try await Task.sleep(for: .milliseconds(100)) }
    }
    #expect(settled, "the group did not settle with two members within 10 s")
  }

  @Test func manualAssignmentSeeksAndFormats() async throws {
    try await withHTTPServer { broker, port, _ in
      _ = try await broker.createTopic(name: "docs", partitions: 1, configs: [:])
      await Self.produce(broker, "docs", 0, [#"{"n":1}"#, #"[2]"#, #""three""#])
      let client = try #require(RawHTTP(port: port))
      #expect(
        await client.request(
          "POST", "/consumers/g2", body: #"{"name":"j","format":"json"}"#, headers: [Self.v2])?
          .status == 200)
      // The same name again: 40902.
      let again = await client.request("POST", "/consumers/g2", body: #"{"name":"j"}"#, headers: [Self.v2])
      #expect(again?.status == 409 && again?.body.contains("40902") == true)
      // Reading before subscribing or assigning: 40903.
      #expect(
        await client.request("GET", "/consumers/g2/instances/j/records", headers: [Self.json])?.body.contains(
          "40903") == true)
      #expect(
        await client.request(
          "POST", "/consumers/g2/instances/j/assignments",
          body: #"{"partitions":[{"topic":"docs","partition":0}]}"#, headers: [Self.v2])?.status == 204)
      // Subscribing while assigned: 40903.
      let mixed = await client.request(
        "POST", "/consumers/g2/instances/j/subscription", body: #"{"topics":["docs"]}"#, headers: [Self.v2])
      #expect(mixed?.status == 409 && mixed?.body.contains("40903") == true)
      #expect(
        await client.request(
          "POST", "/consumers/g2/instances/j/positions/beginning",
          body: #"{"partitions":[{"topic":"docs","partition":0}]}"#, headers: [Self.v2])?.status == 204)
      // The binary Accept on a json instance: 40601.
      let wrong = await client.request("GET", "/consumers/g2/instances/j/records", headers: [Self.binary])
      #expect(wrong?.status == 406 && wrong?.body.contains("40601") == true)
      let read = await client.request("GET", "/consumers/g2/instances/j/records", headers: [Self.json])
      #expect(read?.headers["content-type"] == "application/vnd.kafka.json.v2+json")
      #expect(read?.body.contains(#""value":{"n":1},"partition":0,"offset":0"#) == true)
      #expect(read?.body.contains(#""value":"three","partition":0,"offset":2"#) == true)
      // Seek to an offset, then by time (the test records have timestamps 1000, 1001, 1002 ms).
      #expect(
        await client.request(
          "POST", "/consumers/g2/instances/j/positions",
          body: #"{"offsets":[{"topic":"docs","partition":0,"offset":2}]}"#, headers: [Self.v2])?.status
          == 204)
      let tail = await client.request("GET", "/consumers/g2/instances/j/records", headers: [Self.json])
      #expect(tail?.body.contains(#""offset":2"#) == true && tail?.body.contains(#""offset":1"#) == false)
      #expect(
        await client.request(
          "POST", "/consumers/g2/instances/j/positions",
          body: #"{"timestamps":[{"topic":"docs","partition":0,"timestamp":"1970-01-01T00:00:01.001Z"}]}"#,
          headers: [Self.v2])?.status == 204)
      let byTime = await client.request("GET", "/consumers/g2/instances/j/records", headers: [Self.json])
      #expect(byTime?.body.contains(#""offset":1"#) == true && byTime?.body.contains(#""offset":0"#) == false)
      // Seeking a partition not assigned: 40903.
      let unowned = await client.request(
        "POST", "/consumers/g2/instances/j/positions/end",
        body: #"{"partitions":[{"topic":"docs","partition":7}]}"#, headers: [Self.v2])
      #expect(unowned?.status == 409)
      // A value that is not JSON: 40801, and the position stays.
      await Self.produce(broker, "docs", 0, ["not json"])
      let bad = await client.request("GET", "/consumers/g2/instances/j/records", headers: [Self.json])
      #expect(bad?.status == 408 && bad?.body.contains("40801") == true)
      // Unknown fields and bad settings.
      let unknown = await client.request("POST", "/consumers/g2", body: #"{"nme":"x"}"#, headers: [Self.v2])
      #expect(unknown?.status == 422 && unknown?.body.contains("Unrecognized field: nme") == true)
      let reset = await client.request(
        "POST", "/consumers/g2", body: #"{"auto.offset.reset":"smallest"}"#, headers: [Self.v2])
      #expect(reset?.body.contains("42204") == true)
      let minBytes = await client.request(
        "POST", "/consumers/g2", body: #"{"fetch.min.bytes":20000000}"#, headers: [Self.v2])
      #expect(minBytes?.body.contains("40001") == true)
    }
  }

  @Test func idleInstancesExpireAndTheCountIsBounded() async throws {
    try await withHTTPServer(
      testConfiguration {
        // Long enough that the first instance does not expire before the third is asked
        // for, even on a loaded machine (the suites run in parallel on two cores).
        $0.consumerInstanceTimeoutMs = 1500
        $0.maxConsumers = 2
      }
    ) { _, port, _ in
      let client = try #require(RawHTTP(port: port))
      #expect(
        await client.request("POST", "/consumers/g3", body: #"{"name":"a"}"#, headers: [Self.v2])?.status
          == 200)
      #expect(
        await client.request("POST", "/consumers/g3", body: #"{"name":"b"}"#, headers: [Self.v2])?.status
          == 200)
      let third = await client.request("POST", "/consumers/g3", body: #"{"name":"c"}"#, headers: [Self.v2])
      #expect(third?.status == 429)
      try await Task.sleep(for: .milliseconds(4000))
      #expect(await client.request("GET", "/consumers/g3/instances/a/subscription")?.status == 404)
      #expect(
        await client.request("POST", "/consumers/g3", body: #"{"name":"c"}"#, headers: [Self.v2])?.status
          == 200)
    }
  }

  @Test func iso8601Instants() {
    #expect(ISO8601.milliseconds("1970-01-01T00:00:00Z") == 0)
    #expect(ISO8601.milliseconds("2001-09-09T01:46:40.5Z") == 1_000_000_000_500)
    #expect(ISO8601.milliseconds("2001-09-09T03:46:40+02:00") == 1_000_000_000_000)
    #expect(ISO8601.milliseconds("2024-02-29T12:00:00.123456Z") == 1_709_208_000_123)
    #expect(ISO8601.milliseconds("2024-02-29 12:00:00Z") == nil)
    #expect(ISO8601.milliseconds("2024-13-01T00:00:00Z") == nil)
    #expect(ISO8601.milliseconds("2024-01-01T00:00:00") == nil)
  }
}
