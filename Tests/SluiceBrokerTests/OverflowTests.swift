import Foundation
import KafkaProtocol
import NIOCore
import SluiceBroker
import SluiceStorage
import SluiceTestSupport
import Testing

/// The overflow policies and client quotas, in-process (docs/overflow.md); the real-client
/// versions are in compat/test_overflow.py.
@Suite struct OverflowTests {
  static let batchSize = try! BrokerTests.batch(["0123456789"]).readableBytes

  static func commit(_ broker: Broker, group: String, topic: String, offset: Int64) async throws {
    let request = OffsetCommitRequest(
      groupId: group, generationIdOrMemberEpoch: -1, memberId: "",
      topics: [.init(name: topic, partitions: [.init(partitionIndex: 0, committedOffset: offset)])])
    let reply = await broker.handle(
      KafkaRequest(correlationId: 3, clientId: "t", apiVersion: 8, body: .offsetCommit(request)))
    guard case .offsetCommit(let response) = reply else { throw StorageError(.io, "no OffsetCommit reply") }
    #expect(response.topics.first?.partitions.first?.errorCode == 0)
  }

  static func stat(_ broker: Broker, _ topic: String) -> OverflowStatistics {
    broker.overflowStatistics(broker.topic(topic)!)
  }

  @Test func invalidCombinationsAreRefused() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    await #expect(throws: TopicError.self) {
      try await broker.createTopic(
        name: "a", partitions: 1, configs: ["sluice.overflow.policy": "backpressure"])
    }
    await #expect(throws: TopicError.self) {
      try await broker.createTopic(
        name: "b", partitions: 1,
        configs: [
          "sluice.overflow.policy": "backpressure", "sluice.overflow.max.bytes": "100",
          "sluice.overflow.resume.bytes": "200",
        ])
    }
    await #expect(throws: TopicError.self) {
      try await broker.createTopic(name: "c", partitions: 1, configs: ["sluice.stats.backlog.bytes": "1"])
    }
    let topic = try await broker.createTopic(
      name: "d", partitions: 1,
      configs: ["sluice.overflow.policy": "drop-oldest", "sluice.overflow.max.bytes": "1000000"])
    // drop-oldest rolls segments at a quarter of the bound; DescribeConfigs shows the setting.
    #expect(topic?.config.log.segmentBytes == 250_000)
    #expect(topic?.config.effectiveValues().first { $0.name == "segment.bytes" }?.value == "1073741824")
  }

  @Test func rejectRefusesBeyondTheBoundUntilAGroupCommits() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    try await broker.createTopic(
      name: "r", partitions: 1,
      configs: ["sluice.overflow.policy": "reject", "sluice.overflow.max.bytes": String(3 * Self.batchSize)])
    for index in 0..<3 {
      let ok = await BrokerTests.produce(
        broker, topic: "r", records: try BrokerTests.batch(["012345678\(index)"]))
      #expect(ok?.errorCode == 0)
    }
    // No group has committed: the backlog is the whole log, which is full.
    let refused = await BrokerTests.produce(
      broker, topic: "r", records: try BrokerTests.batch(["0123456789"]))
    #expect(refused?.errorCode == ErrorCode.policyViolation.rawValue)
    #expect(refused?.errorMessage?.contains("sluice.overflow.max.bytes") == true)
    #expect(broker.topic("r")!.partition(0)!.log.logEndOffset == 3)
    #expect(Self.stat(broker, "r").rejectedRequests == 1)
    // A group that has read two records makes room for two more.
    try await Self.commit(broker, group: "g", topic: "r", offset: 2)
    #expect(Self.stat(broker, "r").backlogBytes == Int64(Self.batchSize))
    #expect(Self.stat(broker, "r").groupBacklogBytes == ["g": Int64(Self.batchSize)])
    for _ in 0..<2 {
      let ok = await BrokerTests.produce(broker, topic: "r", records: try BrokerTests.batch(["0123456789"]))
      #expect(ok?.errorCode == 0)
    }
    let again = await BrokerTests.produce(broker, topic: "r", records: try BrokerTests.batch(["0123456789"]))
    #expect(again?.errorCode == ErrorCode.policyViolation.rawValue)
  }

  @Test func rejectStillAnswersRetriesOfAcknowledgedBatches() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    try await broker.createTopic(
      name: "r", partitions: 1,
      configs: ["sluice.overflow.policy": "reject", "sluice.overflow.max.bytes": String(Self.batchSize)])
    let first = try BrokerTests.batch(["0123456789"], producerId: 7, epoch: 0, sequence: 0)
    #expect(await BrokerTests.produce(broker, topic: "r", records: first)?.errorCode == 0)
    // The retry of an acknowledged batch gets its offset, not a refusal.
    let retry = await BrokerTests.produce(broker, topic: "r", records: first)
    #expect(retry?.errorCode == 0)
    #expect(retry?.baseOffset == 0)
    let next = try BrokerTests.batch(["0123456789"], producerId: 7, epoch: 0, sequence: 1)
    #expect(
      await BrokerTests.produce(broker, topic: "r", records: next)?.errorCode
        == ErrorCode.policyViolation.rawValue)
  }

  @Test func dropOldestTrimsOnProduceAndCounts() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    try await broker.createTopic(
      name: "d", partitions: 1,
      configs: [
        "sluice.overflow.policy": "drop-oldest", "sluice.overflow.max.bytes": String(2 * Self.batchSize),
      ])
    for index in 0..<5 {
      let ok = await BrokerTests.produce(
        broker, topic: "d", records: try BrokerTests.batch(["012345678\(index)"]))
      #expect(ok?.errorCode == 0)
    }
    let log = broker.topic("d")!.partition(0)!.log
    #expect(log.logStartOffset == 3)
    #expect(log.retainedBytes(from: 3) == Int64(2 * Self.batchSize))
    let stats = Self.stat(broker, "d")
    #expect(stats.droppedRecords == 3)
    #expect(stats.droppedBytes == Int64(3 * Self.batchSize))
    // A fetch below the start is out of range; from the start it reads the newest two.
    #expect(
      await BrokerTests.fetch(broker, topic: "d", offset: 1)?.errorCode == ErrorCode.offsetOutOfRange.rawValue
    )
    #expect(
      try BrokerTests.values(await BrokerTests.fetch(broker, topic: "d", offset: 3)?.records) == [
        "0123456783", "0123456784",
      ])
  }

  @Test func backpressureHoldsProduceUntilTheBacklogFallsToTheLowMark() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    let size = Self.batchSize
    try await broker.createTopic(
      name: "b", partitions: 1,
      configs: [
        "sluice.overflow.policy": "backpressure", "sluice.overflow.max.bytes": String(3 * size),
        "sluice.overflow.resume.bytes": String(size), "sluice.overflow.max.wait.ms": "10000",
      ])
    for _ in 0..<3 {
      #expect(
        await BrokerTests.produce(broker, topic: "b", records: try BrokerTests.batch(["0123456789"]))?
          .errorCode == 0)
    }
    // The fourth would pass the high-water mark: it waits. Timed from when the broker has
    // counted it as held (the task may start late on a loaded machine).
    let held = Task {
      await BrokerTests.produce(broker, topic: "b", records: try BrokerTests.batch(["0123456789"]))
    }
    let deadline = ContinuousClock.now + .seconds(60)
    while Self.stat(broker, "b").throttledRequests == 0, ContinuousClock.now < deadline {
      try await Task.sleep(for: .milliseconds(2))
    }
    let started = ContinuousClock.now
    try await Task.sleep(for: .milliseconds(200))
    #expect(broker.topic("b")!.partition(0)!.log.logEndOffset == 3)
    // Consumers reach offset 1: backlog 2 batches, still above the low mark (1 batch).
    try await Self.commit(broker, group: "g", topic: "b", offset: 1)
    try await Task.sleep(for: .milliseconds(200))
    #expect(broker.topic("b")!.partition(0)!.log.logEndOffset == 3)
    // At the low mark: released.
    try await Self.commit(broker, group: "g", topic: "b", offset: 2)
    let released = try await held.value
    #expect(released?.errorCode == 0)
    #expect(released?.baseOffset == 3)
    #expect(ContinuousClock.now - started >= .milliseconds(400))
    let stats = Self.stat(broker, "b")
    #expect(stats.throttledRequests == 1)
    #expect(stats.throttleMs >= 300)
  }

  @Test func backpressureGivesUpAfterMaxWaitWithoutAppending() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    try await broker.createTopic(
      name: "b", partitions: 1,
      configs: [
        "sluice.overflow.policy": "backpressure", "sluice.overflow.max.bytes": String(Self.batchSize),
        "sluice.overflow.max.wait.ms": "150",
      ])
    #expect(
      await BrokerTests.produce(broker, topic: "b", records: try BrokerTests.batch(["0123456789"]))?.errorCode
        == 0)
    let request = ProduceRequest(
      acks: -1, timeoutMs: 1000,
      topicData: [.init(name: "b", partitionData: [.init(index: 0, records: try BrokerTests.batch(["x"]))])])
    let reply = await broker.handle(
      KafkaRequest(correlationId: 1, clientId: "t", apiVersion: 9, body: .produce(request)))
    guard case .produce(let response) = reply else {
      Issue.record("no produce response")
      return
    }
    #expect(response.responses[0].partitionResponses[0].errorCode == ErrorCode.requestTimedOut.rawValue)
    #expect(response.throttleTimeMs >= 150)
    #expect(broker.topic("b")!.partition(0)!.log.logEndOffset == 1)
    #expect(Self.stat(broker, "b").timedOutRequests == 1)
  }

  @Test func backpressureHoldsAcksZeroBeyondMaxWaitRatherThanDropSilently() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    try await broker.createTopic(
      name: "b", partitions: 1,
      configs: [
        "sluice.overflow.policy": "backpressure", "sluice.overflow.max.bytes": String(Self.batchSize),
        "sluice.overflow.max.wait.ms": "50",
      ])
    #expect(
      await BrokerTests.produce(broker, topic: "b", records: try BrokerTests.batch(["0123456789"]))?.errorCode
        == 0)
    let held = Task {
      await BrokerTests.produce(broker, topic: "b", records: try BrokerTests.batch(["0123456789"]), acks: 0)
    }
    try await Task.sleep(for: .milliseconds(300))
    #expect(broker.topic("b")!.partition(0)!.log.logEndOffset == 1)
    try await Self.commit(broker, group: "g", topic: "b", offset: 1)
    #expect(try await held.value == nil)  // acks=0: no response
    #expect(broker.topic("b")!.partition(0)!.log.logEndOffset == 2)
  }

  @Test func backpressureAdmitsARequestForAllItsPartitionsAtOnceAndFollowsTopicChanges() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    let configs = [
      "sluice.overflow.policy": "backpressure", "sluice.overflow.max.bytes": String(Self.batchSize),
      "sluice.overflow.max.wait.ms": "10000",
    ]
    var roomy = configs
    roomy["sluice.overflow.max.bytes"] = String(2 * Self.batchSize)
    try await broker.createTopic(name: "a", partitions: 1, configs: roomy)
    try await broker.createTopic(name: "b", partitions: 1, configs: configs)
    #expect(
      await BrokerTests.produce(broker, topic: "b", records: try BrokerTests.batch(["0123456789"]))?.errorCode
        == 0)
    // One request for a (room for 2 batches) and b (full): held, reserving nothing on a
    // meanwhile, so two other batches fit in a.
    let both = ProduceRequest(
      acks: -1, timeoutMs: 1000,
      topicData: [
        .init(name: "a", partitionData: [.init(index: 0, records: try BrokerTests.batch(["0123456789"]))]),
        .init(name: "b", partitionData: [.init(index: 0, records: try BrokerTests.batch(["0123456789"]))]),
      ])
    let held = Task {
      await broker.handle(KafkaRequest(correlationId: 1, clientId: "t", apiVersion: 9, body: .produce(both)))
    }
    try await Task.sleep(for: .milliseconds(150))
    for _ in 0..<2 {
      let other = await BrokerTests.produce(
        broker, topic: "a", records: try BrokerTests.batch(["0123456789"]))
      #expect(other?.errorCode == 0)
    }
    // Lifting a's bound, then switching b to buffer, releases the held request.
    roomy["sluice.overflow.max.bytes"] = String(10 * Self.batchSize)
    try await broker.topics.setConfigs("a", roomy, validateOnly: false)
    try await broker.topics.setConfigs("b", [:], validateOnly: false)
    guard case .produce(let response)? = await held.value else {
      Issue.record("no produce response")
      return
    }
    #expect(response.responses.map { $0.partitionResponses[0].errorCode } == [0, 0])
    #expect(broker.topic("b")!.partition(0)!.log.logEndOffset == 2)
    #expect(broker.topic("a")!.partition(0)!.log.logEndOffset == 3)
  }

  @Test func aHeldRequestGivesUpWhenItsTopicIsDeleted() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    try await broker.createTopic(
      name: "d", partitions: 1,
      configs: [
        "sluice.overflow.policy": "backpressure", "sluice.overflow.max.bytes": String(Self.batchSize),
        "sluice.overflow.max.wait.ms": "60000",
      ])
    #expect(
      await BrokerTests.produce(broker, topic: "d", records: try BrokerTests.batch(["0123456789"]))?.errorCode
        == 0)
    let held = Task {
      await BrokerTests.produce(broker, topic: "d", records: try BrokerTests.batch(["0123456789"]))
    }
    try await Task.sleep(for: .milliseconds(100))
    _ = try await broker.deleteTopic("d")
    let answer = try await held.value
    #expect(answer?.errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
  }

  // MARK: Quotas

  static func alter(_ broker: Broker, _ clientId: String?, _ key: String, _ value: Double?) async -> Int16? {
    let request = AlterClientQuotasRequest(entries: [
      .init(
        entity: [.init(entityType: "client-id", entityName: clientId)],
        ops: [.init(key: key, value: value ?? 0, remove: value == nil)])
    ])
    let reply = await broker.handle(
      KafkaRequest(correlationId: 4, clientId: "t", apiVersion: 1, body: .alterClientQuotas(request)))
    guard case .alterClientQuotas(let response) = reply else { return nil }
    return response.entries.first?.errorCode
  }

  @Test func quotasThrottleByByteRateWithTheDefaultAsFallback() async throws {
    let (broker, directory) = try BrokerTests.makeBroker()
    #expect(await Self.alter(broker, "slow", ClientQuotas.producerByteRate, 10_000) == 0)
    #expect(await Self.alter(broker, nil, ClientQuotas.producerByteRate, 1_000_000) == 0)
    #expect(await Self.alter(broker, "slow", "request_percentage", 10) == ErrorCode.invalidRequest.rawValue)
    // A rate so low that one request would be centuries of debt is refused, not a crash.
    #expect(
      await Self.alter(broker, "tiny", ClientQuotas.producerByteRate, 1e-6)
        == ErrorCode.invalidRequest.rawValue)
    #expect(await Self.alter(broker, "tiny", ClientQuotas.producerByteRate, .leastNonzeroMagnitude) != 0)
    // 1 KB is within the 200 ms burst at 10 KB/s; 5 KB more puts "slow" 0.4 s past it.
    #expect(broker.quotas.record(clientId: "slow", kind: .produce, bytes: 1000) == 0)
    let throttle = broker.quotas.record(clientId: "slow", kind: .produce, bytes: 5000)
    #expect((350...410).contains(throttle), "throttle \(throttle) ms")
    // Fetches are not limited (no consumer quota); other clients get the default.
    #expect(broker.quotas.record(clientId: "slow", kind: .fetch, bytes: 10_000_000) == 0)
    #expect(broker.quotas.record(clientId: "other", kind: .produce, bytes: 100_000) == 0)
    #expect(broker.quotas.record(clientId: "other", kind: .produce, bytes: 1_000_000) > 800)
    // Capped like Kafka's (11 s there, 10 s here).
    #expect(broker.quotas.record(clientId: "slow", kind: .produce, bytes: 10_000_000) == 10_000)

    // Stored: a broker reopened on the same directory describes and enforces them.
    await broker.shutdown()
    var config = BrokerConfig()
    config.dataDirectory = directory
    let reopened = try Broker(config: config)
    let request = DescribeClientQuotasRequest(components: [
      .init(entityType: "client-id", matchType: 0, match: "slow")
    ])
    let reply = await reopened.handle(
      KafkaRequest(correlationId: 5, clientId: "t", apiVersion: 1, body: .describeClientQuotas(request)))
    guard case .describeClientQuotas(let described) = reply else {
      Issue.record("no DescribeClientQuotas response")
      return
    }
    #expect(described.entries?.count == 1)
    #expect(described.entries?.first?.values.map(\.key) == [ClientQuotas.producerByteRate])
    #expect(described.entries?.first?.values.first?.value == 10_000)
    #expect(reopened.quotas.record(clientId: "slow", kind: .produce, bytes: 10_000) > 500)
    #expect(await Self.alter(reopened, "slow", ClientQuotas.producerByteRate, nil) == 0)
    #expect(reopened.quotas.record(clientId: "fresh", kind: .produce, bytes: 100_000) == 0)
  }
}
