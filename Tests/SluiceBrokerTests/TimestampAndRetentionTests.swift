import Foundation
import KafkaProtocol
import NIOCore
import SluiceBroker
import SluiceStorage
import SluiceTestSupport
import Testing

/// What the broker does with producers' timestamps (recomputed max timestamp, KIP-937
/// bounds), `compression.type`, and every decision that deletes or hides acknowledged
/// records: that none of them trusts a value a client wrote.
@Suite struct TimestampAndRetentionTests {
  static let start: Int64 = 1_800_000_000_000

  static func makeBroker(clock: ManualClock, _ configure: (inout BrokerConfig) -> Void = { _ in }) throws
    -> Broker
  {
    var config = BrokerConfig()
    config.dataDirectory = NSTemporaryDirectory() + "sluice-retention-\(UUID().uuidString)"
    configure(&config)
    return try Broker(config: config, clock: clock)
  }

  /// A batch whose records carry `timestamps`, with its header's max timestamp set to
  /// `headerMax` when given (what librdkafka writes for records without a timestamp: 0).
  static func batch(
    _ timestamps: [Int64], headerMax: Int64? = nil, codec: CompressionCodec = .none,
    timestampType: TimestampType = .createTime
  ) throws -> ByteBuffer {
    var builder = RecordBatchBuilder(compression: codec)
    for (index, timestamp) in timestamps.enumerated() {
      builder.append(key: nil, value: ByteBuffer(string: "r\(index)"), timestamp: timestamp)
    }
    var batch = try builder.build()
    if let headerMax { batch.setMaxTimestamp(headerMax, timestampType: timestampType) }
    return batch.buffer
  }

  static func storedBatches(_ broker: Broker, _ topic: String) throws -> [RecordBatch] {
    guard let log = broker.topic(topic)?.partition(0)?.log else { return [] }
    var splitter = RecordBatchSplitter(
      try log.read(from: log.logStartOffset, maxBytes: 1 << 20, upTo: nil, minOneBatch: true).loadBytes())
    var found: [RecordBatch] = []
    while let batch = try splitter.next() { found.append(batch) }
    return found
  }

  static func values(_ broker: Broker, _ topic: String) async -> [String] {
    let data = await BrokerTests.fetch(
      broker, topic: topic, offset: broker.topic(topic)?.partition(0)?.log.logStartOffset ?? 0)
    return (try? BrokerTests.values(data?.records)) ?? []
  }

  // MARK: Timestamps at append

  /// librdkafka's C++ producer without timestamps: records -1, header max 0. The broker
  /// stores max -1 (Kafka's rule) and the records stay until retention.ms after the append,
  /// through any number of retention checks.
  @Test func recordsWithoutTimestampsStayUntilRetentionAfterTheAppend() async throws {
    let clock = ManualClock(wallMs: Self.start)
    let broker = try Self.makeBroker(clock: clock) { $0.retentionCheckIntervalMs = 1000 }
    try await broker.createTopic(name: "t", partitions: 1, configs: ["retention.ms": "60000"])
    let response = await BrokerTests.produce(
      broker, topic: "t", records: try Self.batch([-1, -1, -1], headerMax: 0))
    #expect(response?.errorCode == 0)
    #expect(try Self.storedBatches(broker, "t").map(\.maxTimestamp) == [-1])
    for _ in 0..<59 {
      clock.advance(ms: 1000)
      await broker.housekeeping()
    }
    #expect(await Self.values(broker, "t") == ["r0", "r1", "r2"])
    clock.advance(ms: 1001)
    await broker.housekeeping()
    #expect(await Self.values(broker, "t").isEmpty)
    #expect(broker.topic("t")?.partition(0)?.log.logStartOffset == 3)
    await broker.shutdown()
  }

  /// Timestamp 0, and CreateTime an hour ago on a topic that keeps two hours, are kept;
  /// LogAppendTime topics are stamped with the broker's time.
  @Test func oldTimestampsAreKeptForRetentionAfterTheAppend() async throws {
    let clock = ManualClock(wallMs: Self.start)
    let broker = try Self.makeBroker(clock: clock) { $0.retentionCheckIntervalMs = 1 }
    try await broker.createTopic(name: "zero", partitions: 1, configs: ["retention.ms": "10000"])
    try await broker.createTopic(name: "past", partitions: 1, configs: ["retention.ms": "7200000"])
    try await broker.createTopic(
      name: "lat", partitions: 1,
      configs: ["retention.ms": "10000", "message.timestamp.type": "LogAppendTime"])
    #expect(
      await BrokerTests.produce(broker, topic: "zero", records: try Self.batch([0, 0]))?.errorCode == 0)
    #expect(
      await BrokerTests.produce(broker, topic: "past", records: try Self.batch([Self.start - 3_600_000]))?
        .errorCode == 0)
    let stamped = await BrokerTests.produce(broker, topic: "lat", records: try Self.batch([0]))
    #expect(stamped?.errorCode == 0 && stamped?.logAppendTimeMs == Self.start)
    clock.advance(ms: 9000)
    await broker.housekeeping()
    #expect(await Self.values(broker, "zero") == ["r0", "r1"])
    #expect(await Self.values(broker, "lat") == ["r0"])
    clock.advance(ms: 2000)
    await broker.housekeeping()
    #expect(await Self.values(broker, "zero").isEmpty)
    #expect(await Self.values(broker, "lat").isEmpty)
    // An hour-old CreateTime on a two-hour topic: Kafka deletes it an hour after the append;
    // here it goes two hours after the append (the newer of its timestamp and the append).
    clock.advance(ms: 3_600_000)
    await broker.housekeeping()
    #expect(await Self.values(broker, "past") == ["r0"])
    clock.advance(ms: 3_600_000)
    await broker.housekeeping()
    #expect(await Self.values(broker, "past").isEmpty)
    await broker.shutdown()
  }

  /// ListOffsets by time and the max-timestamp query agree with the recomputed headers.
  @Test func listOffsetsUsesTheRecomputedTimestamps() async throws {
    let clock = ManualClock(wallMs: Self.start)
    let broker = try Self.makeBroker(clock: clock)
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    // Header claims a max far above its records.
    _ = await BrokerTests.produce(
      broker, topic: "t", records: try Self.batch([100, 300, 200], headerMax: Self.start))
    _ = await BrokerTests.produce(broker, topic: "t", records: try Self.batch([-1], headerMax: 0))
    #expect(try Self.storedBatches(broker, "t").map(\.maxTimestamp) == [300, -1])
    let log = try #require(broker.topic("t")?.partition(0)?.log)
    #expect(try log.maxTimestamp().map { [$0.offset, $0.timestamp] } == [1, 300])
    #expect(try log.offset(forTimestamp: 250).map { [$0.offset, $0.timestamp] } == [1, 300])
    #expect(try log.offset(forTimestamp: 301) == nil)
    await broker.shutdown()
  }

  @Test func timestampBoundsRefuseWithInvalidTimestamp() async throws {
    let clock = ManualClock(wallMs: Self.start)
    let broker = try Self.makeBroker(clock: clock)
    try await broker.createTopic(
      name: "t", partitions: 1, configs: ["message.timestamp.before.max.ms": "60000"])
    try await broker.createTopic(name: "open", partitions: 1, configs: [:])
    let late = await BrokerTests.produce(
      broker, topic: "t", records: try Self.batch([Self.start, Self.start - 120_000]))
    #expect(late?.errorCode == ErrorCode.invalidTimestamp.rawValue)
    #expect(late?.recordErrors.map(\.batchIndex) == [1])
    #expect(late?.errorMessage?.contains("out of range") == true)
    // Records without a timestamp are never out of range.
    #expect(await BrokerTests.produce(broker, topic: "t", records: try Self.batch([-1, -1]))?.errorCode == 0)
    // The default after.max.ms is one hour (Kafka 4's): two hours ahead is refused.
    let future = await BrokerTests.produce(
      broker, topic: "open", records: try Self.batch([Self.start + 7_200_000]))
    #expect(future?.errorCode == ErrorCode.invalidTimestamp.rawValue)
    #expect(
      await BrokerTests.produce(broker, topic: "open", records: try Self.batch([Self.start + 1_800_000]))?
        .errorCode == 0)
    // The deprecated difference.max.ms bounds both sides where they are not set.
    try await broker.createTopic(
      name: "diff", partitions: 1, configs: ["message.timestamp.difference.max.ms": "1000"])
    #expect(
      await BrokerTests.produce(broker, topic: "diff", records: try Self.batch([Self.start + 5000]))?
        .errorCode
        == ErrorCode.invalidTimestamp.rawValue)
    #expect(
      await BrokerTests.produce(broker, topic: "diff", records: try Self.batch([Self.start - 5000]))?
        .errorCode
        == ErrorCode.invalidTimestamp.rawValue)
    // A producer may not set the LogAppendTime bit.
    let bit = await BrokerTests.produce(
      broker, topic: "open",
      records: try Self.batch([Self.start], headerMax: Self.start, timestampType: .logAppendTime))
    #expect(bit?.errorCode == ErrorCode.invalidTimestamp.rawValue)
    #expect(await Self.values(broker, "t") == ["r0", "r1"])
    await broker.shutdown()
  }

  // MARK: compression.type

  @Test(arguments: ["uncompressed", "gzip", "snappy", "lz4", "zstd"])
  func batchesAreStoredWithTheTopicsCodec(_ name: String) async throws {
    let clock = ManualClock(wallMs: Self.start)
    let broker = try Self.makeBroker(clock: clock)
    try await broker.createTopic(name: "t", partitions: 1, configs: ["compression.type": name])
    for codec in CompressionCodec.allCases {
      let response = await BrokerTests.produce(
        broker, topic: "t", records: try Self.batch([Self.start, Self.start + 1], codec: codec))
      #expect(response?.errorCode == 0, "\(codec) into \(name)")
    }
    let stored = try Self.storedBatches(broker, "t")
    let want = CompressionCodec.allCases.first { $0.name == name } ?? CompressionCodec.none
    #expect(stored.map(\.compression) == Array(repeating: want, count: CompressionCodec.allCases.count))
    #expect(stored.map(\.baseOffset) == [0, 2, 4, 6, 8])
    #expect(await Self.values(broker, "t") == Array(repeating: ["r0", "r1"], count: 5).flatMap { $0 })
    await broker.shutdown()
  }

  @Test func producerCompressionKeepsTheProducersBytes() async throws {
    let broker = try Self.makeBroker(clock: ManualClock(wallMs: Self.start))
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    let sent = try Self.batch([Self.start], codec: .lz4)
    _ = await BrokerTests.produce(broker, topic: "t", records: sent)
    let stored = try #require(Self.storedBatches(broker, "t").first)
    #expect(stored.compression == .lz4)
    #expect(stored.buffer.readableBytesView.dropFirst(8) == sent.readableBytesView.dropFirst(8))
    await broker.shutdown()
  }

  // MARK: Other configs

  @Test func minInsyncReplicasAboveOneRefusesAcksAll() async throws {
    let broker = try Self.makeBroker(clock: ManualClock(wallMs: Self.start))
    try await broker.createTopic(name: "t", partitions: 1, configs: ["min.insync.replicas": "2"])
    let all = await BrokerTests.produce(broker, topic: "t", records: try Self.batch([Self.start]), acks: -1)
    #expect(all?.errorCode == ErrorCode.notEnoughReplicas.rawValue)
    let one = await BrokerTests.produce(broker, topic: "t", records: try Self.batch([Self.start]), acks: 1)
    #expect(one?.errorCode == 0)
    #expect(await Self.values(broker, "t") == ["r0"])
    await broker.shutdown()
  }

  /// Retention runs every log.retention.check.interval.ms, not at every housekeeping tick.
  @Test func retentionRunsAtTheCheckInterval() async throws {
    let clock = ManualClock(wallMs: Self.start)
    let broker = try Self.makeBroker(clock: clock) { $0.retentionCheckIntervalMs = 10_000 }
    try await broker.createTopic(name: "t", partitions: 1, configs: ["retention.ms": "100"])
    await broker.housekeeping()  // the first check
    _ = await BrokerTests.produce(broker, topic: "t", records: try Self.batch([Self.start]))
    clock.advance(ms: 5000)
    await broker.housekeeping()  // expired, but no check is due
    #expect(await Self.values(broker, "t") == ["r0"])
    clock.advance(ms: 5000)
    await broker.housekeeping()
    #expect(await Self.values(broker, "t").isEmpty)
    await broker.shutdown()
  }

  // MARK: The audit: client-written values never delete or hide data

  /// DeleteRecords: bounded by the high watermark, refused on compact-only topics.
  @Test func deleteRecordsIsBoundedByTheHighWatermark() async throws {
    let broker = try Self.makeBroker(clock: ManualClock(wallMs: Self.start))
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    try await broker.createTopic(name: "c", partitions: 1, configs: ["cleanup.policy": "compact"])
    for topic in ["t", "c"] {
      _ = await BrokerTests.produce(broker, topic: topic, records: try Self.batch([Self.start, Self.start]))
    }
    func delete(_ topic: String, _ offset: Int64) async -> (Int16, Int64)? {
      let request = DeleteRecordsRequest(
        topics: [.init(name: topic, partitions: [.init(partitionIndex: 0, offset: offset)])], timeoutMs: 1000)
      let reply = await broker.handle(
        KafkaRequest(correlationId: 1, clientId: "t", apiVersion: 2, body: .deleteRecords(request)))
      guard case .deleteRecords(let response) = reply, let result = response.topics.first?.partitions.first
      else { return nil }
      return (result.errorCode, result.lowWatermark)
    }
    #expect(await delete("t", 3)?.0 == ErrorCode.offsetOutOfRange.rawValue)
    #expect(await delete("t", -2)?.0 == ErrorCode.offsetOutOfRange.rawValue)
    #expect(await Self.values(broker, "t") == ["r0", "r1"])
    #expect(await delete("c", 1)?.0 == ErrorCode.policyViolation.rawValue)
    #expect(await Self.values(broker, "c") == ["r0", "r1"])
    let done = await delete("t", -1)
    #expect(done?.0 == 0 && done?.1 == 2)
    await broker.shutdown()
  }

  /// OffsetCommit v2–v4 carries a client retention time; Kafka honours it (a tiny one
  /// expires the group's offsets at the next check). Sluice counts offsets.retention.minutes
  /// from its own clock only.
  @Test func aClientRetentionTimeDoesNotExpireCommittedOffsets() async throws {
    let clock = ManualClock(wallMs: Self.start)
    let broker = try Self.makeBroker(clock: clock) { $0.offsetsRetentionMinutes = 10 }
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    let request = OffsetCommitRequest(
      groupId: "g", generationIdOrMemberEpoch: -1, memberId: "", retentionTimeMs: 1,
      topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: 5)])])
    let reply = await broker.handle(
      KafkaRequest(correlationId: 1, clientId: "t", apiVersion: 2, body: .offsetCommit(request)))
    guard case .offsetCommit(let response) = reply else { throw Failure() }
    #expect(response.topics.first?.partitions.first?.errorCode == 0)
    clock.advance(ms: 60_000)
    await broker.groups.expireOffsets(now: clock.now())
    #expect(await GroupCoordinatorTests.fetch(broker, group: "g", topic: "t", partitions: [0])[0]?.0 == 5)
    clock.advance(ms: 10 * 60_000)
    await broker.groups.expireOffsets(now: clock.now())
    #expect(await GroupCoordinatorTests.fetch(broker, group: "g", topic: "t", partitions: [0])[0]?.0 == -1)
    await broker.shutdown()
  }

  /// drop-oldest trims by bytes the broker counted, and never past the newest batch, however
  /// large the producer's batch or whatever its header says about offsets.
  @Test func dropOldestKeepsTheNewestBatchWhateverItsHeaderClaims() async throws {
    let broker = try Self.makeBroker(clock: ManualClock(wallMs: Self.start))
    try await broker.createTopic(
      name: "t", partitions: 1,
      configs: ["sluice.overflow.policy": "drop-oldest", "sluice.overflow.max.bytes": "1"])
    var claimsOffset = try RecordBatch(try Self.batch([Self.start, Self.start]))
    claimsOffset.setBaseOffset(1_000_000)  // the broker assigns offsets itself
    _ = await BrokerTests.produce(broker, topic: "t", records: claimsOffset.buffer)
    _ = await BrokerTests.produce(broker, topic: "t", records: try Self.batch([Self.start]))
    let log = try #require(broker.topic("t")?.partition(0)?.log)
    #expect(log.logStartOffset == 2 && log.logEndOffset == 3)
    #expect(await Self.values(broker, "t") == ["r0"])
    await broker.shutdown()
  }
}

/// What the review of the domain-API change found, each pinned by a test.
@Suite struct FrontDoorEdgeTests {
  /// Fetch before v10 cannot carry zstd: that partition is refused and its bytes do not
  /// count, so the next partition still gets its records.
  @Test func oldFetchRefusesZstdPartitionsWithoutStarvingTheOthers() async throws {
    let (broker, _) = try Broker.makeForTest()
    try await broker.createTopic(name: "z", partitions: 1, configs: [:])
    try await broker.createTopic(name: "p", partitions: 1, configs: [:])
    // Random letters, which zstd cannot shrink much; the budget is a little under the batch.
    var rng = SplitMix64(seed: 5)
    let big = String((0..<900).map { _ in Character(UnicodeScalar(UInt8(97 + rng.next() % 26))) })
    let zstd = TestBatches.batch([big], codec: .zstd)
    #expect(zstd.readableBytes > 500)
    _ = await BrokerTests.produce(broker, topic: "z", records: zstd)
    _ = await BrokerTests.produce(broker, topic: "p", records: TestBatches.batch(["plain"]))
    let request = FetchRequest(
      maxWaitMs: 0, minBytes: 1, maxBytes: Int32(zstd.readableBytes - 10),
      topics: ["z", "p"].map {
        .init(topic: $0, partitions: [.init(partition: 0, fetchOffset: 0, partitionMaxBytes: 1 << 20)])
      })
    guard
      case .fetch(let response)? = await broker.handle(
        KafkaRequest(correlationId: 1, clientId: "t", apiVersion: 9, body: .fetch(request)))
    else { throw Failure() }
    let refused = try #require(response.responses.first?.partitions.first)
    let plain = try #require(response.responses.last?.partitions.first)
    #expect(
      refused.errorCode == ErrorCode.unsupportedCompressionType.rawValue
        && refused.records?.readableBytes == 0)
    #expect(try BrokerTests.values(plain.records) == ["plain"])
  }

  /// Two IncrementalAlterConfigs of one topic at once, each setting another config: both
  /// stay (the merge happens under the admin lock, not before it).
  @Test func concurrentIncrementalAltersDoNotUndoEachOther() async throws {
    let (broker, _) = try Broker.makeForTest()
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    try await withThrowingTaskGroup(of: Void.self) { group in
      for (index, name) in ["retention.ms", "segment.ms", "flush.ms", "retention.bytes"].enumerated() {
        group.addTask {
          try await broker.topics.alterConfigs(
            "t", [.set(name, String(1_000_000 + index))], validateOnly: false)
        }
      }
      try await group.waitForAll()
    }
    #expect(broker.topic("t")?.config.overrides.count == 4)
  }

  @Test func duplicateKeysInOneIncrementalAlterAreRefused() async throws {
    let (broker, _) = try Broker.makeForTest()
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    let request = IncrementalAlterConfigsRequest(
      resources: [
        .init(
          resourceType: 2, resourceName: "t",
          configs: [
            .init(name: "retention.ms", configOperation: 0, value: "1000"),
            .init(name: "retention.ms", configOperation: 0, value: "2000"),
          ])
      ])
    guard
      case .incrementalAlterConfigs(let response)? = await broker.handle(
        KafkaRequest(correlationId: 1, clientId: "t", apiVersion: 1, body: .incrementalAlterConfigs(request)))
    else { throw Failure() }
    #expect(response.responses.first?.errorCode == ErrorCode.invalidRequest.rawValue)
    #expect(broker.topic("t")?.config.overrides.isEmpty == true)
  }

  /// APPEND at the cluster-wide level starts from that level's value (here: the static
  /// default), not from this broker's own.
  @Test func clusterLevelAppendStartsFromTheClusterDefault() async throws {
    let (broker, _) = try Broker.makeForTest()
    try await broker.topics.setBrokerConfigs(
      ["log.cleanup.policy": "compact"], node: true, validateOnly: false)
    try await broker.topics.alterBrokerConfigs(
      [.append("log.cleanup.policy", "compact")], node: false, validateOnly: false)
    #expect(broker.topics.dynamicBrokerConfigs(node: false)["log.cleanup.policy"] == "delete,compact")
    #expect(broker.topics.dynamicBrokerConfigs(node: true)["log.cleanup.policy"] == "compact")
  }
}
