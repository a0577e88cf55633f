import Foundation
import KafkaProtocol
import NIOCore
import SluiceBroker
import SluiceKafka
import SluiceStorage
import SluiceTestSupport
import Synchronization
import Testing

/// The broker in-process, driven with decoded requests (no sockets).
@Suite struct BrokerTests {
  static func makeBroker(_ configure: (inout BrokerConfig) -> Void = { _ in }) throws -> (Broker, String) {
    let directory = NSTemporaryDirectory() + "sluice-broker-\(UUID().uuidString)"
    var config = BrokerConfig()
    config.dataDirectory = directory
    configure(&config)
    return (try Broker(config: config), directory)
  }

  static func batch(
    _ values: [String], producerId: Int64 = -1, epoch: Int16 = -1, sequence: Int32 = -1,
    timestamp: Int64 = 1000
  ) throws -> ByteBuffer {
    var builder = RecordBatchBuilder(producerId: producerId, producerEpoch: epoch, baseSequence: sequence)
    for (index, value) in values.enumerated() {
      builder.append(key: nil, value: ByteBuffer(string: value), timestamp: timestamp + Int64(index))
    }
    return try builder.build().buffer
  }

  static func produce(
    _ broker: Broker, topic: String, partition: Int32 = 0, records: ByteBuffer, acks: Int16 = -1,
    version: Int16 = 9
  ) async -> ProduceResponse.PartitionProduceResponse? {
    let request = ProduceRequest(
      acks: acks, timeoutMs: 1000,
      topicData: [.init(name: topic, partitionData: [.init(index: partition, records: records)])])
    let reply = await broker.handle(
      KafkaRequest(correlationId: 1, clientId: "t", apiVersion: version, body: .produce(request)))
    guard case .produce(let response) = reply else { return nil }
    return response.responses.first?.partitionResponses.first
  }

  static func fetch(
    _ broker: Broker, topic: String, offset: Int64, maxWaitMs: Int32 = 0, minBytes: Int32 = 1,
    partitionMaxBytes: Int32 = 1 << 20
  ) async -> FetchResponse.PartitionData? {
    let request = FetchRequest(
      maxWaitMs: maxWaitMs, minBytes: minBytes, maxBytes: 50 << 20,
      topics: [
        .init(
          topic: topic,
          partitions: [.init(partition: 0, fetchOffset: offset, partitionMaxBytes: partitionMaxBytes)])
      ])
    let reply = await broker.handle(
      KafkaRequest(correlationId: 2, clientId: "t", apiVersion: 11, body: .fetch(request)))
    guard case .fetch(let response) = reply else { return nil }
    return response.responses.first?.partitions.first
  }

  static func values(_ records: ByteBuffer?) throws -> [String] { try recordValues(records) }

  @Test func produceThenFetch() async throws {
    let (broker, _) = try Self.makeBroker()
    try await broker.createTopic(name: "orders", partitions: 1, configs: [:])
    let first = await Self.produce(broker, topic: "orders", records: try Self.batch(["a", "b"]))
    #expect(first?.errorCode == 0 && first?.baseOffset == 0)
    let second = await Self.produce(broker, topic: "orders", records: try Self.batch(["c"]))
    #expect(second?.baseOffset == 2)
    let data = await Self.fetch(broker, topic: "orders", offset: 0)
    #expect(data?.errorCode == 0 && data?.highWatermark == 3)
    #expect(try Self.values(data?.records) == ["a", "b", "c"])
    // From the middle of a batch: the whole batch comes back (clients skip what they passed).
    #expect(
      try Self.values(await Self.fetch(broker, topic: "orders", offset: 1)?.records) == ["a", "b", "c"])
    #expect(
      await Self.fetch(broker, topic: "orders", offset: 4)?.errorCode == ErrorCode.offsetOutOfRange.rawValue)
    await broker.shutdown()
  }

  @Test func unknownTopicAndBadAcks() async throws {
    let (broker, _) = try Self.makeBroker()
    #expect(await Self.produce(broker, topic: "nope", records: try Self.batch(["x"]))?.errorCode == 3)
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    #expect(await Self.produce(broker, topic: "t", records: try Self.batch(["x"]), acks: 2)?.errorCode == 21)
    await broker.shutdown()
  }

  @Test func corruptBatchIsRejectedAndNothingAppended() async throws {
    let (broker, _) = try Self.makeBroker()
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    var records = try Self.batch(["x", "y"])
    records.setInteger(UInt8(0xFF), at: records.writerIndex - 1)  // flip the last byte: CRC mismatch
    #expect(
      await Self.produce(broker, topic: "t", records: records)?.errorCode == ErrorCode.corruptMessage.rawValue
    )
    #expect(broker.topic("t")?.partition(0)?.log.logEndOffset == 0)
    await broker.shutdown()
  }

  @Test func idempotentDuplicatesAndGaps() async throws {
    let (broker, directory) = try Self.makeBroker()
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    let batch0 = try Self.batch(["a", "b"], producerId: 7, epoch: 0, sequence: 0)
    #expect(await Self.produce(broker, topic: "t", records: batch0)?.baseOffset == 0)
    // A retry of the same batch: original offset, nothing appended.
    #expect(await Self.produce(broker, topic: "t", records: batch0)?.baseOffset == 0)
    #expect(broker.topic("t")?.partition(0)?.log.logEndOffset == 2)
    // A gap in sequences: OUT_OF_ORDER_SEQUENCE_NUMBER.
    let gap = try Self.batch(["c"], producerId: 7, epoch: 0, sequence: 5)
    #expect(await Self.produce(broker, topic: "t", records: gap)?.errorCode == 45)
    let next = try Self.batch(["c"], producerId: 7, epoch: 0, sequence: 2)
    #expect(await Self.produce(broker, topic: "t", records: next)?.baseOffset == 2)
    // A bumped epoch restarts at sequence 0; the old epoch is then fenced.
    let bumped = try Self.batch(["d"], producerId: 7, epoch: 1, sequence: 0)
    #expect(await Self.produce(broker, topic: "t", records: bumped)?.baseOffset == 3)
    let stale = try Self.batch(["e"], producerId: 7, epoch: 0, sequence: 3)
    #expect(await Self.produce(broker, topic: "t", records: stale)?.errorCode == 47)
    await broker.shutdown()

    // Producer state survives a restart: the retry is still recognised.
    var config = BrokerConfig()
    config.dataDirectory = directory
    let reopened = try Broker(config: config)
    #expect(await Self.produce(reopened, topic: "t", records: bumped)?.baseOffset == 3)
    #expect(reopened.topic("t")?.partition(0)?.log.logEndOffset == 4)
    await reopened.shutdown()
  }

  /// A parked fetch is woken by an append: the broker's clock stands still, so neither its
  /// deadline nor a poll can have ended it.
  @Test func parkedFetchIsWokenByAppend() async throws {
    let clock = ManualClock()
    let (broker, _) = try Broker.makeForTest(clock: clock)
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    async let parked = Self.fetch(broker, topic: "t", offset: 0, maxWaitMs: 5000)
    try await FetchPathTests.waitForTimers(clock)
    _ = await Self.produce(broker, topic: "t", records: try Self.batch(["wake"]))
    let data = await parked
    #expect(try Self.values(data?.records) == ["wake"])
    await broker.shutdown()
  }

  /// An empty fetch returns at MaxWaitMs on the broker's clock, not before.
  @Test func parkedFetchTimesOutEmpty() async throws {
    let clock = ManualClock()
    let (broker, _) = try Broker.makeForTest(clock: clock)
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    let ended = Mutex(false)
    async let data = { () async -> FetchResponse.PartitionData? in
      defer { ended.withLock { $0 = true } }
      return await Self.fetch(broker, topic: "t", offset: 0, maxWaitMs: 300)
    }()
    try await FetchPathTests.waitForTimers(clock)
    clock.advance(ms: 299)
    try await Task.sleep(for: .milliseconds(50))
    #expect(ended.withLock { $0 } == false, "ended before its MaxWaitMs")
    clock.advance(ms: 1)
    let result = await data
    #expect(result?.errorCode == 0 && result?.records?.readableBytes == 0)
    await broker.shutdown()
  }

  @Test func kip74FirstBatchAlwaysWhole() async throws {
    let (broker, _) = try Self.makeBroker()
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    let big = String(repeating: "x", count: 5000)
    _ = await Self.produce(broker, topic: "t", records: try Self.batch([big]))
    _ = await Self.produce(broker, topic: "t", records: try Self.batch([big]))
    let data = await Self.fetch(broker, topic: "t", offset: 0, partitionMaxBytes: 100)
    #expect(try Self.values(data?.records).count == 1)
    await broker.shutdown()
  }

  @Test func topicConfigsValidated() async throws {
    let (broker, _) = try Self.makeBroker()
    await #expect(throws: TopicError.self) {
      try await broker.createTopic(name: "bad name!", partitions: 1, configs: [:])
    }
    await #expect(throws: TopicError.self) {
      try await broker.createTopic(name: "t", partitions: 1, configs: ["retention.ms": "soon"])
    }
    await #expect(throws: TopicError.self) {
      try await broker.createTopic(name: "t", partitions: 1, configs: ["no.such.config": "1"])
    }
    await #expect(throws: TopicError.self) {
      try await broker.createTopic(name: "t", partitions: 1, configs: ["cleanup.policy": "shred"])
    }
    await #expect(throws: TopicError.self) {
      try await broker.createTopic(name: "t", partitions: 1, configs: ["remote.storage.enable": "true"])
    }
    await #expect(throws: TopicError.self) {
      try await broker.createTopic(name: "t", partitions: 1, configs: ["compression.zstd.level": "23"])
    }
    // Known configs Sluice cannot act on are accepted (and documented as having no effect).
    try await broker.createTopic(
      name: "compact", partitions: 1,
      configs: ["cleanup.policy": "compact,delete", "message.format.version": "2.8", "preallocate": "true"])
    #expect(broker.topic("compact")?.config.deletesByRetention == true)
    try await broker.createTopic(
      name: "t", partitions: 2, configs: ["retention.ms": "1000", "sluice.storage": "memory"])
    #expect(broker.topic("t")?.config.log.retentionMs == 1000)
    #expect(broker.topic("t")?.partition(1)?.log is MemoryLog)
    await #expect(throws: TopicError.self) {
      try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    }
  }

  @Test func metadataAutoCreatesAndRestartKeepsTopics() async throws {
    let (broker, directory) = try Self.makeBroker { $0.defaultPartitions = 3 }
    let request = MetadataRequest(topics: [.init(name: "auto")], allowAutoTopicCreation: true)
    let reply = await broker.handle(
      KafkaRequest(correlationId: 1, clientId: nil, apiVersion: 12, body: .metadata(request)))
    guard case .metadata(let metadata) = reply else {
      Issue.record("no metadata")
      return
    }
    #expect(metadata.topics.first?.errorCode == 0)
    #expect(metadata.topics.first?.partitions.count == 3)
    let id = try #require(metadata.topics.first?.topicId)
    #expect(id != .zero)
    _ = await Self.produce(broker, topic: "auto", records: try Self.batch(["kept"]))
    await broker.shutdown()

    var config = BrokerConfig()
    config.dataDirectory = directory
    let reopened = try Broker(config: config)
    #expect(reopened.topic("auto")?.id == id)
    #expect(try Self.values(await Self.fetch(reopened, topic: "auto", offset: 0)?.records) == ["kept"])
    let noCreate = MetadataRequest(topics: [.init(name: "other")], allowAutoTopicCreation: false)
    let reply2 = await reopened.handle(
      KafkaRequest(correlationId: 1, clientId: nil, apiVersion: 12, body: .metadata(noCreate)))
    guard case .metadata(let m2) = reply2 else {
      Issue.record("no metadata")
      return
    }
    #expect(m2.topics.first?.errorCode == 3)
    await reopened.shutdown()
  }

  @Test func everyAdvertisedApiIsHandled() async throws {
    let (broker, _) = try Self.makeBroker()
    for (key, versions) in KafkaFrontDoor.supportedApis {
      #expect(
        key.definedVersions.map { $0.contains(versions.lowerBound) && $0.contains(versions.upperBound) }
          == true)
      guard let type = key.requestType else { continue }
      var encoded = try type.init().encoded(version: versions.upperBound)
      let body = try KafkaRequestBody.decode(apiKey: key, version: versions.upperBound, from: &encoded)
      let reply = await broker.handle(
        KafkaRequest(correlationId: 1, clientId: nil, apiVersion: versions.upperBound, body: body))
      // acks=0 (the default of an empty ProduceRequest) is the one request without a reply.
      if key != .produce { #expect(reply?.apiKey == key, "\(key)") }
      if let reply {
        var out = ByteBuffer()
        try KafkaResponse(correlationId: 1, body: reply).encodeFrame(
          into: &out, apiVersion: versions.upperBound)
      }
    }
    await broker.shutdown()
  }
}

@Suite struct ProducerStateTests {
  @Test func sequencesEpochsAndDuplicates() {
    var table = ProducerStateTable()
    #expect(table.check(producerId: 1, epoch: 0, firstSequence: 0, count: 3) == .append)
    table.record(producerId: 1, epoch: 0, firstSequence: 0, count: 3, firstOffset: 10, lastOffset: 12)
    #expect(table.check(producerId: 1, epoch: 0, firstSequence: 0, count: 3) == .duplicate(firstOffset: 10))
    #expect(table.check(producerId: 1, epoch: 0, firstSequence: 3, count: 1) == .append)
    #expect(table.check(producerId: 1, epoch: 0, firstSequence: 4, count: 1) == .outOfOrder(expected: 3))
    #expect(table.check(producerId: 1, epoch: -1, firstSequence: 3, count: 1) == .fencedEpoch)
    #expect(table.check(producerId: 1, epoch: 1, firstSequence: 0, count: 1) == .append)
    #expect(table.check(producerId: 1, epoch: 1, firstSequence: 7, count: 1) == .outOfOrder(expected: 0))
  }

  @Test func onlyTheLastFiveBatchesAreRemembered() {
    var table = ProducerStateTable()
    for batch in 0..<7 {
      table.record(
        producerId: 1, epoch: 0, firstSequence: Int32(batch), count: 1, firstOffset: Int64(batch),
        lastOffset: Int64(batch))
    }
    #expect(table.check(producerId: 1, epoch: 0, firstSequence: 6, count: 1) == .duplicate(firstOffset: 6))
    #expect(table.check(producerId: 1, epoch: 0, firstSequence: 2, count: 1) == .duplicate(firstOffset: 2))
    #expect(table.check(producerId: 1, epoch: 0, firstSequence: 1, count: 1) == .outOfOrder(expected: 7))
  }

  @Test func sequenceWrapsAfterInt32Max() {
    var table = ProducerStateTable()
    table.record(
      producerId: 1, epoch: 0, firstSequence: Int32.max - 1, count: 2, firstOffset: 0, lastOffset: 1)
    #expect(table.check(producerId: 1, epoch: 0, firstSequence: 0, count: 1) == .append)
  }
}
