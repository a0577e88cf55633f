import Dispatch
import KafkaProtocol
import NIOCore
import NIOPosix
import SluiceBroker
import SluiceTestSupport
import Synchronization
import Testing

/// Produce walks a compressed batch's records inline only up to a small decompression
/// budget; a batch expanding further is walked again, up to `maxDecompressedBatchBytes`,
/// on a thread pool, so a decompression bomb does not stall the event loop that received it.
/// Serialized: each test compresses and inflates megabytes, and together at start-up they
/// would hold the cooperative pool from timing-sensitive suites (OverflowTests).
@Suite(.serialized) struct ProduceDecompressionTests {
  static let budget = BatchPreparation.inlineDecompressionBudget

  /// Values for a batch whose records decompress to about `bytes`: distinct, compressible.
  static func values(totalling bytes: Int, each: Int = 64 << 10) -> [String] {
    (0..<(bytes / each)).map { index in
      let prefix = Array("value \(index): ".utf8)
      let filler = [UInt8](repeating: UInt8(ascii: "a") + UInt8(index % 26), count: each - prefix.count)
      return String(decoding: prefix + filler, as: UTF8.self)
    }
  }

  static func gzipBatch(_ values: [String]) throws -> ByteBuffer {
    var builder = RecordBatchBuilder(compression: .gzip)
    for (index, value) in values.enumerated() {
      builder.append(key: nil, value: ByteBuffer(string: value), timestamp: 1000 + Int64(index))
    }
    return try builder.build().buffer
  }

  /// The values of every record in partition 0, decompressing up to `limit` per batch.
  static func readBack(_ broker: Broker, topic: String, limit: Int) async throws -> [String] {
    let data = await BrokerTests.fetch(broker, topic: topic, offset: 0, partitionMaxBytes: 16 << 20)
    var splitter = RecordBatchSplitter(try #require(data?.records))
    var values: [String] = []
    while let batch = try splitter.next() {
      values += try batch.records(maxDecompressedSize: limit).map {
        $0.value.map { String(buffer: $0) } ?? ""
      }
    }
    return values
  }

  @Test func batchBeyondTheBudgetIsAcceptedIntact() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    let values = Self.values(totalling: 2 * Self.budget)
    let records = try Self.gzipBatch(values)
    #expect(records.readableBytes < 64 << 10, "compressed: \(records.readableBytes) bytes")
    // Too big for the inline walk on its own.
    let batch = try RecordBatch(records)
    #expect(throws: KafkaProtocolError.self) {
      try batch.validateRecords(.clientProduce, maxDecompressedSize: Self.budget)
    }

    let answer = await BrokerTests.produce(broker, topic: "t", records: records)
    #expect(answer?.errorCode == 0 && answer?.baseOffset == 0, "\(String(describing: answer))")
    let small = await BrokerTests.produce(broker, topic: "t", records: try Self.gzipBatch(["after"]))
    #expect(small?.errorCode == 0 && small?.baseOffset == Int64(values.count))
    #expect(try await Self.readBack(broker, topic: "t", limit: 3 * Self.budget) == values + ["after"])
    await broker.shutdown()
  }

  @Test func batchBeyondTheBoundIsRefusedOffTheLoopToo() async throws {
    let bound = 3 * Self.budget / 2
    let (broker, _) = try BrokerTests.makeBroker { $0.maxDecompressedBatchBytes = bound }
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    for version: Int16 in [7, 9] {
      let answer = await BrokerTests.produce(
        broker, topic: "t", records: try Self.gzipBatch(Self.values(totalling: 2 * Self.budget)),
        version: version)
      #expect(answer?.errorCode == ErrorCode.messageTooLarge.rawValue, "\(String(describing: answer))")
      #expect(answer?.baseOffset == -1)
      if version >= 8 {
        let message = answer?.errorMessage ?? ""
        #expect(message.hasPrefix("Batch 0: ") && message.contains("\(bound)"), "\(message)")
      } else {
        #expect(answer?.errorMessage == nil)
      }
      #expect(answer?.recordErrors == [])
      #expect(broker.topic("t")?.partition(0)?.log.logEndOffset == 0)
    }
    // Between the budget and the bound: accepted.
    let values = Self.values(totalling: 5 * Self.budget / 4)
    let accepted = await BrokerTests.produce(broker, topic: "t", records: try Self.gzipBatch(values))
    #expect(accepted?.errorCode == 0 && accepted?.baseOffset == 0, "\(String(describing: accepted))")
    #expect(try await Self.readBack(broker, topic: "t", limit: bound) == values)
    await broker.shutdown()
  }

  /// A malformed record found by the walk on the pool is reported like one found inline.
  @Test func invalidRecordBeyondTheBudget() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    let values = Self.values(totalling: 3 * Self.budget / 2, each: 4096)
    let deltas = (0..<Int32(values.count)).map { $0 == 300 ? 301 : $0 }
    let section = try ProduceRecordValidationTests.compressed(
      .gzip, ProduceRecordValidationTests.records(values, deltas: deltas))
    let records = try ProduceRecordValidationTests.rawBatch(section, count: Int32(values.count), codec: .gzip)
    let answer = await BrokerTests.produce(broker, topic: "t", records: records)
    #expect(answer?.errorCode == ErrorCode.invalidRecord.rawValue, "\(String(describing: answer))")
    #expect(answer?.errorMessage?.hasPrefix("Batch 0: record 300 of \(values.count)") == true)
    #expect(answer?.recordErrors.map(\.batchIndex) == [300])
    #expect(broker.topic("t")?.partition(0)?.log.logEndOffset == 0)
    await broker.shutdown()
  }

  /// Runs the jobs of tasks that prefer it on one event loop, as NIO does for every task
  /// once it is the global executor (the `sluice` binary).
  /// What happened, in order, across the loop and the task.
  final class Events: Sendable {
    let list = Mutex<[String]>([])
    func add(_ event: String) { list.withLock { $0.append(event) } }
    var all: [String] { list.withLock { $0 } }
  }

  /// Produce runs on an event loop and queues a job on that loop just before it starts; the
  /// loop is a FIFO, so that job runs at produce's first suspension. With the big walk on
  /// the pool that is while the walk is pending; were it inline, produce would have
  /// finished first (nothing else in it suspends for an in-memory topic). Every pool
  /// thread is held until that job has run: otherwise a pool thread could finish the walk
  /// before produce suspends, and produce would go on without yielding the loop.
  @Test func bigWalkLeavesTheEventLoopFree() async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let loop = group.next()
    let (broker, _) = try BrokerTests.makeBroker()
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    let records = try Self.gzipBatch(Self.values(totalling: 3 * Self.budget / 2))
    let events = Events()
    let probed = loop.makePromise(of: Void.self)
    // The pool runs its work in order: the walk queues behind these.
    let poolThreads = NIOSingletons.blockingPoolThreadCountSuggestion
    let gate = DispatchSemaphore(value: 0)
    for _ in 0..<poolThreads {
      NIOThreadPool.singleton.submit { _ in gate.wait() }
    }

    let produced = Task(executorPreference: EventLoopTaskExecutor(loop)) {
      #expect(loop.inEventLoop)
      loop.execute {
        events.add("loop free")
        for _ in 0..<poolThreads { gate.signal() }
        probed.succeed()
      }
      events.add("produce started")
      let answer = await BrokerTests.produce(broker, topic: "t", records: records)
      #expect(loop.inEventLoop)
      events.add("produce finished")
      return answer
    }
    let answer = await produced.value
    try await probed.futureResult.get()
    #expect(answer?.errorCode == 0, "\(String(describing: answer))")
    #expect(events.all == ["produce started", "loop free", "produce finished"])
    await broker.shutdown()
    try await group.shutdownGracefully()
  }
}
