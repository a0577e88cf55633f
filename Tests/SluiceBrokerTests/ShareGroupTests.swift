import Foundation
import KafkaProtocol
import SluiceBroker
import SluiceKafka
import SluiceTestSupport
import Testing

/// Share groups through the broker's domain API: sessions, parked fetches woken by lock
/// expiry on a manual clock, and share state that survives a restart.
@Suite struct ShareGroupTests {
  static func setUp(_ broker: Broker, topic: String = "q", records: Int = 5) async throws {
    try await broker.createTopic(name: topic, partitions: 1, configs: [:])
    try await broker.shares.setConfigs("g", ["share.auto.offset.reset": "earliest"], validateOnly: false)
    let values = (0..<records).map { "v\($0)" }
    let result = await broker.produce(
      [PartitionRecords(topic: topic, partition: 0, records: TestBatches.batch(values))],
      options: ProduceOptions(acks: .all))
    guard case .appended? = result.results.first else {
      throw BrokerError(.unknownServerError, "produce failed")
    }
  }

  static func join(_ broker: Broker, _ member: String, topic: String = "q") async -> Int32 {
    let result = await broker.shareHeartbeat(
      .init(
        groupId: "g", memberId: member, memberEpoch: 0, rackId: nil, subscribedTopicNames: [topic],
        clientId: "c",
        clientHost: "h"))
    #expect(result.error == nil)
    #expect(result.assignment == [SharePartitionKey(topic: topic, partition: 0)])
    return result.memberEpoch
  }

  static func fetch(
    _ broker: Broker, _ member: String, epoch: Int32, maxWaitMs: Int64 = 0, acks: [ShareAcknowledgement] = []
  ) async -> ShareFetchResult {
    var call = ShareFetchCall(groupId: "g", memberId: member, sessionEpoch: epoch)
    call.partitions = [SharePartitionKey(topic: "q", partition: 0)]
    call.maxWaitMs = maxWaitMs
    call.acknowledgements = acks
    return await broker.shareFetch(call)
  }

  @Test func sessionEpochsAreChecked() async throws {
    let (broker, _) = try Broker.makeForTest()
    try await Self.setUp(broker)
    _ = await Self.join(broker, "a")
    #expect(await Self.fetch(broker, "a", epoch: 3).error?.code == .shareSessionNotFound)
    #expect(await Self.fetch(broker, "nobody", epoch: 0).error?.code == .unknownMemberId)
    let opened = await Self.fetch(broker, "a", epoch: 0)
    #expect(opened.error == nil)
    #expect(opened.partitions.first?.acquired == [.init(first: 0, last: 4, deliveryCount: 1)])
    #expect(await Self.fetch(broker, "a", epoch: 2).error?.code == .invalidShareSessionEpoch)
    #expect(await Self.fetch(broker, "a", epoch: 1).error == nil)
    #expect(await Self.fetch(broker, "a", epoch: 2).error == nil)
  }

  @Test func aParkedFetchWakesWhenAnotherMembersLockExpires() async throws {
    let clock = ManualClock()
    let (broker, _) = try Broker.makeForTest(clock: clock) { $0.shareRecordLockDurationMs = 1000 }
    try await Self.setUp(broker)
    _ = await Self.join(broker, "a")
    _ = await Self.join(broker, "b")
    #expect(await Self.fetch(broker, "a", epoch: 0).partitions.first?.acquired.count == 1)
    // b finds nothing available and parks for up to 10 s.
    let parked = Task { await Self.fetch(broker, "b", epoch: 0, maxWaitMs: 10_000) }
    try await Task.sleep(for: .milliseconds(50))
    clock.advance(ms: 999)
    try await Task.sleep(for: .milliseconds(50))
    clock.advance(ms: 1)
    let result = await parked.value
    #expect(result.partitions.first?.acquired == [.init(first: 0, last: 4, deliveryCount: 2)])
    // a's acknowledgement comes too late: the records are b's.
    let late = await Self.fetch(
      broker, "a", epoch: 1,
      acks: [.init(key: .init(topic: "q", partition: 0), first: 0, last: 4, types: [.accept])])
    #expect(late.partitions.first?.acknowledgeError?.code == .invalidRecordState)
  }

  @Test func acknowledgementsAndDeliveryCountsSurviveARestart() async throws {
    let (broker, directory) = try Broker.makeForTest()
    try await Self.setUp(broker)
    _ = await Self.join(broker, "a")
    #expect(await Self.fetch(broker, "a", epoch: 0).partitions.first?.acquired.count == 1)
    let key = SharePartitionKey(topic: "q", partition: 0)
    let settled = await Self.fetch(
      broker, "a", epoch: 1,
      acks: [
        .init(key: key, first: 0, last: 1, types: [.accept]),
        .init(key: key, first: 2, last: 2, types: [.release]),
      ])
    #expect(settled.partitions.first?.acknowledgeError == nil)
    // 2 was released and handed out again (count 2) in the same call; 3 and 4 are held.
    #expect(settled.partitions.first?.acquired == [.init(first: 2, last: 2, deliveryCount: 2)])
    await broker.shutdown()

    let (reopened, _) = try Broker.makeForTest(directory: directory)
    _ = await Self.join(reopened, "b")
    let after = await Self.fetch(reopened, "b", epoch: 0)
    #expect(
      after.partitions.first?.acquired == [
        .init(first: 2, last: 2, deliveryCount: 3), .init(first: 3, last: 4, deliveryCount: 2),
      ])
    await reopened.shutdown()
  }

  @Test func aTopicCreatedAnewUnderTheSameNameStartsAfresh() async throws {
    let (broker, _) = try Broker.makeForTest()
    try await Self.setUp(broker)
    _ = await Self.join(broker, "a")
    let key = SharePartitionKey(topic: "q", partition: 0)
    _ = await Self.fetch(broker, "a", epoch: 0)
    _ = await Self.fetch(broker, "a", epoch: 1, acks: [.init(key: key, first: 0, last: 4, types: [.accept])])
    try await broker.deleteTopic("q")
    try await broker.createTopic(name: "q", partitions: 1, configs: [:])
    _ = await broker.produce(
      [PartitionRecords(topic: "q", partition: 0, records: TestBatches.batch(["n0", "n1"]))],
      options: ProduceOptions(acks: .all))
    // The old state (start offset 5) would hide the new records 0 and 1.
    let fresh = await Self.fetch(broker, "a", epoch: 2)
    #expect(fresh.partitions.first?.acquired == [.init(first: 0, last: 1, deliveryCount: 1)])
  }

  @Test func aMemoryTopicsShareStateStartsAgainAfterARestart() async throws {
    let (broker, directory) = try Broker.makeForTest()
    try await broker.createTopic(name: "m", partitions: 1, configs: ["sluice.storage": "memory"])
    try await broker.shares.setConfigs("g", ["share.auto.offset.reset": "earliest"], validateOnly: false)
    _ = await broker.produce(
      [PartitionRecords(topic: "m", partition: 0, records: TestBatches.batch(["a", "b", "c"]))],
      options: ProduceOptions(acks: .all))
    _ = await Self.join(broker, "a", topic: "m")
    var open = ShareFetchCall(groupId: "g", memberId: "a", sessionEpoch: 0)
    open.partitions = [SharePartitionKey(topic: "m", partition: 0)]
    #expect(await broker.shareFetch(open).partitions.first?.acquired.count == 1)
    await broker.shutdown()

    let (reopened, _) = try Broker.makeForTest(directory: directory)
    _ = await reopened.produce(
      [PartitionRecords(topic: "m", partition: 0, records: TestBatches.batch(["x", "y"]))],
      options: ProduceOptions(acks: .all))
    _ = await Self.join(reopened, "b", topic: "m")
    var again = ShareFetchCall(groupId: "g", memberId: "b", sessionEpoch: 0)
    again.partitions = [SharePartitionKey(topic: "m", partition: 0)]
    #expect(
      await reopened.shareFetch(again).partitions.first?.acquired == [
        .init(first: 0, last: 1, deliveryCount: 1)
      ])
    await reopened.shutdown()
  }

  @Test func deadLettersGoInTheBackgroundAndAnUnusablePatternBlocksNothing() async throws {
    for pattern in ["{topic}.dlq", "bad/{topic}"] {
      let (broker, _) = try Broker.makeForTest { $0.shareDeadLetterTopic = pattern }
      try await Self.setUp(broker)
      _ = await Self.join(broker, "a")
      let key = SharePartitionKey(topic: "q", partition: 0)
      _ = await Self.fetch(broker, "a", epoch: 0)
      let rejected = await Self.fetch(
        broker, "a", epoch: 1, acks: [.init(key: key, first: 0, last: 4, types: [.reject])])
      #expect(rejected.partitions.first?.acknowledgeError == nil)
      if pattern == "{topic}.dlq" {
        var stored: Int64 = 0
        for _ in 0..<200 where stored < 5 {
          stored = broker.topic("q.dlq")?.partition(0)?.highWatermark ?? 0
          try await Task.sleep(for: .milliseconds(10))
        }
        #expect(stored == 5)
      } else {
        // The topic name is invalid: the dead letters are dropped (logged); nothing waits.
        try await Task.sleep(for: .milliseconds(100))
        #expect(broker.topic("bad/q") == nil)
      }
      await broker.shutdown()
    }
  }

  @Test func listGroupsNamesShareGroupsByType() async throws {
    let (broker, _) = try Broker.makeForTest()
    try await Self.setUp(broker)
    _ = await Self.join(broker, "a")
    func list(_ types: [String]) async -> [String] {
      var request = ListGroupsRequest()
      request.typesFilter = types
      guard
        case .listGroups(let response)? = await broker.handle(
          KafkaRequest(correlationId: 1, clientId: "t", apiVersion: 5, body: .listGroups(request)))
      else { return [] }
      return response.groups.map { "\($0.groupId)/\($0.groupType)/\($0.groupState)" }
    }
    #expect(await list(["share"]) == ["g/share/Stable"])
    #expect(await list([]) == ["g/share/Stable"])
    #expect(await list(["classic"]) == [])
  }
}
