import Foundation
import KafkaProtocol
import NIOCore
import NIOPosix
import SluiceBroker
import SluiceKafka
import SluiceTestSupport
import Synchronization
import Testing

/// Fetch as the network layer drives it: zero-copy decisions, records as values to the
/// encoder, and parked fetches timed by the broker's clock (a manual one here, so the tests
/// assert what wakes a fetch, not how long it took) and resumed on the connection's loop.
@Suite struct FetchPathTests {
  static func fetchRequest(topic: String, offset: Int64, maxWaitMs: Int32, version: Int16 = 12)
    -> KafkaRequest
  {
    let request = FetchRequest(
      maxWaitMs: maxWaitMs, minBytes: 1, maxBytes: 50 << 20,
      topics: [
        .init(
          topic: topic, partitions: [.init(partition: 0, fetchOffset: offset, partitionMaxBytes: 1 << 20)])
      ])
    return KafkaRequest(correlationId: 3, clientId: "t", apiVersion: version, body: .fetch(request))
  }

  static func partition(_ reply: KafkaReply?) -> FetchResponse.PartitionData? {
    guard case .fetch(let body)? = reply?.body else { return nil }
    return body.responses.first?.partitions.first
  }

  /// Waits (in real time, briefly) until `count` timers are armed on the manual clock: the
  /// fetch has parked.
  static func waitForTimers(_ clock: ManualClock, _ count: Int = 1) async throws {
    for _ in 0..<1000 where clock.pendingTimers < count { try await Task.sleep(for: .milliseconds(5)) }
    #expect(clock.pendingTimers >= count, "the fetch did not park")
  }

  @Test func zeroCopyFetchCopiesSmallReadsAndLeavesLargeOnesInTheFile() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    let door = KafkaFrontDoor(broker: broker)
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    _ = await BrokerTests.produce(broker, topic: "t", records: try BrokerTests.batch(["a", "b", "c"]))
    let context = RequestContext(zeroCopy: true)

    // A small read: its bytes come back inline, nothing travels beside the body.
    let small = await door.reply(to: Self.fetchRequest(topic: "t", offset: 0, maxWaitMs: 0), context: context)
    #expect(small?.records.isEmpty == true)
    #expect(try BrokerTests.values(Self.partition(small)?.records) == ["a", "b", "c"])

    let big = String(repeating: "x", count: 20_000)
    _ = await BrokerTests.produce(broker, topic: "t", records: try BrokerTests.batch([big, big, big]))
    // From offset 3 the read is the big batch alone (60 KB > 32 KiB): it travels beside the
    // body as a file region, and the body's records field is left empty.
    let large = await door.reply(to: Self.fetchRequest(topic: "t", offset: 3, maxWaitMs: 0), context: context)
    let records = try #require(large?.records.first ?? nil)
    #expect(large?.records.count == 1)
    #expect(records.count > 60_000 && records.hasFileRegions)
    #expect(Self.partition(large)?.records?.readableBytes == 0)
    await broker.shutdown()
  }

  /// The encoder puts record data that travels beside the body exactly where the inline
  /// encoding would have it: the pieces, concatenated, are the in-memory frame byte for byte
  /// (flexible and non-flexible versions, several partitions, some inline, some not).
  @Test(arguments: [Int16(10), 11, 12])
  func encodedPiecesEqualTheInlineFrame(version: Int16) async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    let door = KafkaFrontDoor(broker: broker)
    try await broker.createTopic(name: "t", partitions: 3, configs: [:])
    let big = String(repeating: "y", count: 40_000)
    for partition: Int32 in [0, 2] {
      _ = await BrokerTests.produce(
        broker, topic: "t", partition: partition, records: try BrokerTests.batch([big, big]))
    }
    _ = await BrokerTests.produce(broker, topic: "t", partition: 1, records: try BrokerTests.batch(["small"]))
    let request = FetchRequest(
      maxWaitMs: 0, minBytes: 1, maxBytes: 50 << 20,
      topics: [
        .init(
          topic: "t",
          partitions: (0..<3).map { .init(partition: $0, fetchOffset: 0, partitionMaxBytes: 1 << 20) })
      ])
    let kafkaRequest = KafkaRequest(
      correlationId: 9, clientId: "t", apiVersion: version, body: .fetch(request))
    let reply = try #require(await door.reply(to: kafkaRequest, context: RequestContext(zeroCopy: true)))
    #expect(reply.records.compactMap { $0 }.count == 2)
    let pieces = try KafkaResponseEncoder.encode(reply, correlationId: 9, apiVersion: version)
    var spliced = ByteBuffer()
    for piece in pieces {
      switch piece {
      case .bytes(var bytes): spliced.writeBuffer(&bytes)
      case .records(let record):
        var bytes = try record.load()
        spliced.writeBuffer(&bytes)
      }
    }
    // The same response with every record in memory, encoded by the plain encoder.
    guard case .fetch(var inline) = reply.body else { throw Failure() }
    var external = reply.records.makeIterator()
    for topic in inline.responses.indices {
      for partition in inline.responses[topic].partitions.indices {
        if let data = external.next() ?? nil {
          inline.responses[topic].partitions[partition].records = try data.load()
        }
      }
    }
    var expected = ByteBuffer()
    try KafkaResponse(correlationId: 9, body: .fetch(inline)).encodeFrame(
      into: &expected, apiVersion: version)
    #expect(spliced == expected)
    await broker.shutdown()
  }

  @Test func parkedFetchOnAnEventLoopEndsAtItsDeadlineOrWhenWokenOnItsLoop() async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let loop = group.next()
    let clock = ManualClock()
    let (broker, _) = try Broker.makeForTest(clock: clock)
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    let context = RequestContext(zeroCopy: false, eventLoop: loop)
    let door = KafkaFrontDoor(broker: broker)

    // Nothing to read: the deadline ends the wait, and not a millisecond before.
    let ended = Atomic<Bool>(false)
    async let empty = { () async -> KafkaReply? in
      defer { ended.store(true, ordering: .relaxed) }
      return await door.reply(to: Self.fetchRequest(topic: "t", offset: 0, maxWaitMs: 300), context: context)
    }()
    try await Self.waitForTimers(clock)
    clock.advance(ms: 299)
    try await Task.sleep(for: .milliseconds(50))
    let endedEarly = ended.load(ordering: .relaxed)
    #expect(!endedEarly, "ended before its MaxWaitMs")
    clock.advance(ms: 1)
    let reply = await empty
    #expect(Self.partition(reply)?.errorCode == 0 && Self.partition(reply)?.records?.readableBytes == 0)

    // Parked with a 5 s deadline, woken by an append made off the loop: the clock does not
    // move, so only the append can have ended it.
    async let parked = door.reply(
      to: Self.fetchRequest(topic: "t", offset: 0, maxWaitMs: 5000), context: context)
    try await Self.waitForTimers(clock)
    _ = await BrokerTests.produce(broker, topic: "t", records: try BrokerTests.batch(["wake"]))
    let data = await parked
    #expect(try BrokerTests.values(Self.partition(data)?.records) == ["wake"])
    await broker.shutdown()
    try await group.shutdownGracefully()
  }
}

extension FetchPathTests {
  @Test func parkedFetchEndsAtShutdownAndWhenItsClientHasGone() async throws {
    let clock = ManualClock()
    let (broker, _) = try Broker.makeForTest(clock: clock)
    let door = KafkaFrontDoor(broker: broker)
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])

    // A client gone: the fetch looks again after a park slice (5 s), not at MaxWaitMs (1 h).
    let open = Mutex(true)
    let gone = RequestContext(zeroCopy: false, connectionOpen: { open.withLock { $0 } })
    async let abandoned = door.reply(
      to: Self.fetchRequest(topic: "t", offset: 0, maxWaitMs: 3_600_000), context: gone)
    try await Self.waitForTimers(clock)
    open.withLock { $0 = false }
    clock.advance(ms: 5000)
    let answer = await abandoned
    #expect(Self.partition(answer)?.records?.readableBytes == 0)

    // Graceful shutdown: a fetch parked for an hour answers at once (the clock stands still).
    async let parked = door.reply(
      to: Self.fetchRequest(topic: "t", offset: 0, maxWaitMs: 3_600_000), context: RequestContext())
    try await Self.waitForTimers(clock)
    broker.beginShutdown()
    let data = await parked
    #expect(Self.partition(data)?.errorCode == 0)
    await broker.shutdown()
  }
}

/// A partition whose log fails is reported: once in the log, and by `offlinePartitions`.
@Suite struct OfflinePartitionTests {
  @Test func corruptionFoundAtOpenTakesThePartitionOfflineAndIsReported() async throws {
    let (broker, directory) = try BrokerTests.makeBroker()
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    try await broker.createTopic(name: "u", partitions: 1, configs: [:])
    for values in [["a", "b"], ["c"]] {
      _ = await BrokerTests.produce(broker, topic: "t", records: try BrokerTests.batch(values))
    }
    #expect(broker.offlinePartitions().isEmpty)
    await broker.shutdown()  // checkpoints the recovery point at the log end

    // Damage the first batch, below the recovery point, and drop the clean-shutdown marker
    // so that the next open verifies every batch (as after a crash).
    let partitionDirectory = directory + "/t-0/"
    let handle = try #require(
      FileHandle(forUpdatingAtPath: partitionDirectory + String(repeating: "0", count: 20) + ".log"))
    try handle.seek(toOffset: 70)
    try handle.write(contentsOf: Data([0xFF, 0xEE, 0xDD]))
    try handle.close()
    try? FileManager.default.removeItem(atPath: partitionDirectory + ".clean-shutdown")

    var config = BrokerConfig()
    config.dataDirectory = directory
    let reopened = try Broker(config: config)
    let offline = reopened.offlinePartitions()
    #expect(offline.count == 1 && offline.first?.topic == "t" && offline.first?.partition == 0)
    #expect(offline.first?.reason.contains("corrupt") == true, "\(String(describing: offline.first?.reason))")
    await reopened.housekeeping()  // logs it (once)
    let refused = await BrokerTests.produce(reopened, topic: "t", records: try BrokerTests.batch(["d"]))
    #expect(refused?.errorCode == ErrorCode.kafkaStorageError.rawValue)
    // The other topic keeps serving.
    let other = await BrokerTests.produce(reopened, topic: "u", records: try BrokerTests.batch(["x"]))
    #expect(other?.errorCode == 0)
    await reopened.shutdown()
  }
}
