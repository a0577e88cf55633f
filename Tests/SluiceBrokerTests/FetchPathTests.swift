import Foundation
import KafkaProtocol
import NIOCore
import NIOPosix
import SluiceBroker
import Synchronization
import Testing

/// Fetch as the network layer drives it: zero-copy decisions, and parked fetches timed and
/// resumed on the connection's event loop.
@Suite struct FetchPathTests {
  static func fetchRequest(topic: String, offset: Int64, maxWaitMs: Int32) -> KafkaRequest {
    let request = FetchRequest(
      maxWaitMs: maxWaitMs, minBytes: 1, maxBytes: 50 << 20,
      topics: [
        .init(
          topic: topic, partitions: [.init(partition: 0, fetchOffset: offset, partitionMaxBytes: 1 << 20)])
      ])
    return KafkaRequest(correlationId: 3, clientId: "t", apiVersion: 12, body: .fetch(request))
  }

  static func partition(_ reply: WireReply?) -> FetchResponse.PartitionData? {
    guard case .fetch(let body)? = reply?.body else { return nil }
    return body.responses.first?.partitions.first
  }

  @Test func zeroCopyFetchCopiesSmallReadsAndLeavesLargeOnesInTheFile() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    try broker.createTopic(name: "t", partitions: 1, configs: [:])
    _ = await BrokerTests.produce(broker, topic: "t", records: try BrokerTests.batch(["a", "b", "c"]))
    let context = RequestContext(zeroCopy: true)

    // A small read: its bytes come back inline, nothing is left for sendfile.
    let small = await broker.handleForWire(
      Self.fetchRequest(topic: "t", offset: 0, maxWaitMs: 0), context: context)
    #expect(small?.fileRecords.isEmpty == true)
    #expect(try BrokerTests.values(Self.partition(small)?.records) == ["a", "b", "c"])

    let big = String(repeating: "x", count: 20_000)
    _ = await BrokerTests.produce(broker, topic: "t", records: try BrokerTests.batch([big, big, big]))
    // From offset 3 the read is the big batch alone (60 KB > 32 KiB): an 8-byte marker stands
    // in for it and the file region goes out with sendfile.
    let large = await broker.handleForWire(
      Self.fetchRequest(topic: "t", offset: 3, maxWaitMs: 0), context: context)
    let chunks = try #require(large?.fileRecords.values.first)
    #expect(large?.fileRecords.count == 1)
    #expect(chunks.reduce(0) { $0 + $1.length } > 60_000)
    #expect(Self.partition(large)?.records?.readableBytes == 8)
    await broker.shutdown()
  }

  @Test func parkedFetchOnAnEventLoopTimesOutThenIsWokenOnItsLoop() async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let loop = group.next()
    let (broker, _) = try BrokerTests.makeBroker()
    try broker.createTopic(name: "t", partitions: 1, configs: [:])
    let context = RequestContext(zeroCopy: false, eventLoop: loop)

    // Nothing to read: the loop's timer ends the wait, not before MaxWaitMs.
    let started = ContinuousClock.now
    let empty = await broker.handleForWire(
      Self.fetchRequest(topic: "t", offset: 0, maxWaitMs: 300), context: context)
    let elapsed = ContinuousClock.now - started
    #expect(Self.partition(empty)?.errorCode == 0 && Self.partition(empty)?.records?.readableBytes == 0)
    #expect(elapsed >= .milliseconds(280) && elapsed < .seconds(10))

    // Parked with a 5 s deadline, woken by an append made off the loop.
    async let parked = broker.handleForWire(
      Self.fetchRequest(topic: "t", offset: 0, maxWaitMs: 5000), context: context)
    try await Task.sleep(for: .milliseconds(100))
    let appendedAt = ContinuousClock.now
    _ = await BrokerTests.produce(broker, topic: "t", records: try BrokerTests.batch(["wake"]))
    let data = await parked
    #expect(try BrokerTests.values(Self.partition(data)?.records) == ["wake"])
    #expect(ContinuousClock.now - appendedAt < .milliseconds(2000), "woken by the append, not the deadline")
    await broker.shutdown()
    try await group.shutdownGracefully()
  }
}

extension FetchPathTests {
  @Test func parkedFetchEndsAtShutdownAndWhenItsClientHasGone() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    try broker.createTopic(name: "t", partitions: 1, configs: [:])

    // A client gone: the fetch looks again within a park slice (5 s), not at MaxWaitMs (1 h).
    let open = Mutex(true)
    let gone = RequestContext(zeroCopy: false, connectionOpen: { open.withLock { $0 } })
    let started = ContinuousClock.now
    async let abandoned = broker.handleForWire(
      Self.fetchRequest(topic: "t", offset: 0, maxWaitMs: 3_600_000), context: gone)
    try await Task.sleep(for: .milliseconds(100))
    open.withLock { $0 = false }
    let answer = await abandoned
    #expect(Self.partition(answer)?.records?.readableBytes == 0)
    #expect(ContinuousClock.now - started < .seconds(30), "returned after \(ContinuousClock.now - started)")

    // Graceful shutdown: a fetch parked for an hour answers at once.
    let parkedAt = ContinuousClock.now
    async let parked = broker.handleForWire(
      Self.fetchRequest(topic: "t", offset: 0, maxWaitMs: 3_600_000), context: RequestContext())
    try await Task.sleep(for: .milliseconds(100))
    broker.beginShutdown()
    let data = await parked
    #expect(Self.partition(data)?.errorCode == 0)
    #expect(ContinuousClock.now - parkedAt < .seconds(3), "returned after \(ContinuousClock.now - parkedAt)")
    await broker.shutdown()
  }
}

/// A partition whose log fails is reported: once in the log, and by `offlinePartitions`.
@Suite struct OfflinePartitionTests {
  @Test func corruptionFoundAtOpenTakesThePartitionOfflineAndIsReported() async throws {
    let (broker, directory) = try BrokerTests.makeBroker()
    try broker.createTopic(name: "t", partitions: 1, configs: [:])
    try broker.createTopic(name: "u", partitions: 1, configs: [:])
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
    reopened.housekeeping()  // logs it (once)
    let refused = await BrokerTests.produce(reopened, topic: "t", records: try BrokerTests.batch(["d"]))
    #expect(refused?.errorCode == ErrorCode.kafkaStorageError.rawValue)
    // The other topic keeps serving.
    let other = await BrokerTests.produce(reopened, topic: "u", records: try BrokerTests.batch(["x"]))
    #expect(other?.errorCode == 0)
    await reopened.shutdown()
  }
}
