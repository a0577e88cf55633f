import Foundation
import KafkaProtocol
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import SluiceBroker
import SluiceTestSupport
import Synchronization
import Testing

@testable import SluiceFeed
@testable import SluiceServer

/// The feed's retransmission server and the StatsD intake against an in-process broker, over
/// loopback unicast UDP. (Multicast itself needs a network namespace: compat/test_feed.py.)
@Suite struct UDPServiceTests {
  /// A UDP socket on loopback that collects what it receives.
  final class Probe: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let received = Mutex<[ByteBuffer]>([])
    let channel = Mutex<(any Channel)?>(nil)

    static func open() async throws -> Probe {
      let probe = Probe()
      let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelInitializer { channel in
          channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(probe) }
        }
        .bind(host: "127.0.0.1", port: 0).get()
      probe.channel.withLock { $0 = channel }
      return probe
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      let datagram = unwrapInboundIn(data).data
      received.withLock { $0.append(datagram) }
    }

    func send(_ datagram: ByteBuffer, to port: Int) async throws {
      let channel = self.channel.withLock { $0 }!
      try await channel.writeAndFlush(
        AddressedEnvelope(
          remoteAddress: try SocketAddress(ipAddress: "127.0.0.1", port: port), data: datagram)
      ).get()
    }

    func close() async { try? await channel.withLock { $0 }?.close().get() }
  }

  func eventually(_ condition: () async -> Bool, within: Duration = .seconds(15)) async -> Bool {
    let deadline = ContinuousClock.now + within
    while !(await condition()) {
      if ContinuousClock.now > deadline { return false }
      try? await Task.sleep(for: .milliseconds(10))
    }
    return true
  }

  func produce(_ broker: Broker, _ topic: String, _ values: [String], key: String? = nil) async throws {
    var builder = RecordBatchBuilder()
    for value in values {
      builder.append(
        key: key.map { ByteBuffer(string: $0) }, value: ByteBuffer(string: value),
        headers: key == nil ? [] : [RecordHeader(key: "h", value: ByteBuffer(string: "v"))], timestamp: 1_000)
    }
    let result = await broker.produce(
      [PartitionRecords(topic: topic, partition: 0, records: try builder.build().buffer)],
      options: ProduceOptions(acks: .all))
    guard case .appended = result.results[0] else { throw FeedError(description: "append failed") }
  }

  @Test func theRetransmissionServerAnswersFromTheLog() async throws {
    let (broker, _) = try Broker.makeForTest()
    let port = try LoopbackSocket.freePort()
    // TTL 0 on loopback: the feed's multicast never leaves this host.
    try await broker.createTopic(
      name: "ticks", partitions: 1,
      configs: [
        "sluice.feed.multicast": "239.255.77.1:\(try LoopbackSocket.freePort())", "sluice.feed.ttl": "0",
        "sluice.feed.interface": "127.0.0.1", "sluice.feed.retransmit": "127.0.0.1:\(port)",
        "sluice.feed.max.datagram.bytes": "200", "sluice.feed.retransmit.rate": "50",
      ])
    try await produce(broker, "ticks", (0..<100).map { "tick-\($0)" })
    let feeds = FeedBridges(
      broker: broker, group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
    feeds.reconcile()
    let feed = feeds.running.items.first!
    let probe = try await Probe.open()
    let session = FeedSession.session(partition: 0, payload: .value)

    // Asked until the server is bound: sequence 5 on, 50 wanted, as many as fit 200 bytes.
    let request = MoldUDP64.request(.init(session: session, sequence: 5, count: 50))
    #expect(
      await eventually {
        try? await probe.send(request, to: port)
        try? await Task.sleep(for: .milliseconds(50))
        return !probe.received.withLock { $0.isEmpty }
      })
    let answer = try MoldUDP64.decodePacket(probe.received.withLock { $0[0] })
    #expect(answer.session == session && answer.sequence == 5)
    #expect(answer.messages.first == ByteBuffer(string: "tick-4"))  // sequence = offset + 1
    // 20 header bytes, then "tick-4"…"tick-9" (8 bytes with their length) and "tick-10"…"tick-23"
    // (9 bytes): 20 of the 50 asked for fit 200 bytes.
    #expect(answer.messages.count == 20)
    #expect(probe.received.withLock { $0[0].readableBytes } <= 200)

    // Past the end: a heartbeat with the next sequence number.
    probe.received.withLock { $0 = [] }
    try await probe.send(MoldUDP64.request(.init(session: session, sequence: 500, count: 1)), to: port)
    #expect(await eventually { probe.received.withLock { $0.count } == 1 })
    let beyond = try MoldUDP64.decodePacket(probe.received.withLock { $0[0] })
    #expect(beyond.isHeartbeat && beyond.sequence == 101)

    // Malformed requests are counted and unanswered; the server keeps serving.
    probe.received.withLock { $0 = [] }
    let malformedBefore = feed.malformed.load(ordering: .relaxed)
    for garbage in [
      ByteBuffer(string: "x"), ByteBuffer(repeating: 0, count: 20),
      MoldUDP64.request(.init(session: MoldUDP64.Session("R000000000")!, sequence: 1, count: 1)),
      MoldUDP64.heartbeat(session, next: 1),  // a count of 0
    ] {
      try await probe.send(garbage, to: port)
    }
    #expect(await eventually { feed.malformed.load(ordering: .relaxed) == malformedBefore + 4 })
    try await probe.send(MoldUDP64.request(.init(session: session, sequence: 1, count: 1)), to: port)
    #expect(await eventually { probe.received.withLock { $0.count } == 1 })
    #expect(
      try MoldUDP64.decodePacket(probe.received.withLock { $0[0] }).messages == [ByteBuffer(string: "tick-0")]
    )

    // Rate limit: 50 per second with a burst of 50. Every request of a flood of 200 is
    // either answered or counted as limited, and no more are answered than the bucket held
    // plus what it refilled while the flood was being sent (slow on a loaded machine).
    probe.received.withLock { $0 = [] }
    try await Task.sleep(for: .seconds(1))  // let the bucket refill
    let limitedBefore = feed.limited.load(ordering: .relaxed)
    let started = ContinuousClock.now
    for _ in 0..<200 {
      try await probe.send(MoldUDP64.request(.init(session: session, sequence: 1, count: 1)), to: port)
    }
    let sending = ContinuousClock.now - started
    #expect(
      await eventually {
        probe.received.withLock { $0.count } + feed.limited.load(ordering: .relaxed) - limitedBefore == 200
      })
    let answered = probe.received.withLock { $0.count }
    let refill = Int(
      Double(sending.components.seconds) * 50 + Double(sending.components.attoseconds) / 1e18 * 50)
    #expect(answered >= 50 && answered <= 50 + refill + 2, "\(answered) answers in \(sending)")

    await probe.close()
    await feeds.stopAll()
    await broker.shutdown()
  }

  @Test func recordsPastRetentionAreAnsweredWithTheLogStart() async throws {
    let (broker, _) = try Broker.makeForTest()
    let port = try LoopbackSocket.freePort()
    try await broker.createTopic(
      name: "old", partitions: 1,
      configs: [
        "sluice.feed.multicast": "239.255.77.2:\(try LoopbackSocket.freePort())", "sluice.feed.ttl": "0",
        "sluice.feed.interface": "127.0.0.1", "sluice.feed.retransmit": "127.0.0.1:\(port)",
        "sluice.feed.payload": "record",
      ])
    try await produce(broker, "old", (0..<10).map { "r\($0)" }, key: "k")
    _ = try await broker.deleteRecords(topic: "old", partition: 0, before: 4)
    let feeds = FeedBridges(
      broker: broker, group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
    feeds.reconcile()
    let probe = try await Probe.open()
    let session = FeedSession.session(partition: 0, payload: .record)
    #expect(
      await eventually {
        try? await probe.send(MoldUDP64.request(.init(session: session, sequence: 1, count: 10)), to: port)
        try? await Task.sleep(for: .milliseconds(50))
        return !probe.received.withLock { $0.isEmpty }
      })
    let gone = try MoldUDP64.decodePacket(probe.received.withLock { $0[0] })
    #expect(gone.isHeartbeat && gone.sequence == 5)  // offsets 0…3 deleted: the log starts at sequence 5
    probe.received.withLock { $0 = [] }
    try await probe.send(MoldUDP64.request(.init(session: session, sequence: 5, count: 1)), to: port)
    #expect(await eventually { probe.received.withLock { $0.count } == 1 })
    let answer = try MoldUDP64.decodePacket(probe.received.withLock { $0[0] })
    let record = try FeedRecord(decoding: answer.messages[0])
    #expect(
      record
        == FeedRecord(
          timestamp: 1_000, key: ByteBuffer(string: "k"), value: ByteBuffer(string: "r4"),
          headers: [(name: "h", value: ByteBuffer(string: "v"))]))
    await probe.close()
    await feeds.stopAll()
    await broker.shutdown()
  }

  @Test func theStatsDIntakeAppendsAggregatesToItsTopic() async throws {
    let (broker, _) = try Broker.makeForTest()
    var configuration = StatsDConfiguration(host: "127.0.0.1", port: 0)
    configuration.flushMs = 100
    configuration.topic = "metrics"
    let intake = StatsDIntake(
      broker: broker, configuration: configuration, group: MultiThreadedEventLoopGroup.singleton,
      logger: Logger(label: "test"))
    let running = Task { try await intake.run() }
    #expect(await eventually { intake.port != nil })
    let probe = try await Probe.open()
    try await probe.send(
      ByteBuffer(string: "api.calls:2|c|@0.5\napi.calls:1|c\nbad\nlat:7|ms|#env:test"), to: intake.port!)
    // A long multi-line datagram arrives whole (a receive buffer split for recmmsg once cut
    // such datagrams at 2 KiB).
    let bulk = Array(repeating: "bulk.count:1|c", count: 2000).joined(separator: "\n")
    try await probe.send(ByteBuffer(string: bulk), to: intake.port!)
    // TCP on the same port: newline-separated lines, the last one may lack its newline.
    let tcp = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .connect(host: "127.0.0.1", port: intake.port!).get()
    try await tcp.writeAndFlush(ByteBuffer(string: "over.tcp:3|c\nover.tcp:4|c")).get()
    try await tcp.close()
    // Summed over records: an interval may end between two lines.
    var values: [String] = []
    func total(_ name: String) -> Double {
      values.compactMap { value -> Double? in
        guard let object = try? JSONSerialization.jsonObject(with: Data(value.utf8)) as? [String: Any],
          object["name"] as? String == name
        else { return nil }
        return (object["value"] as? NSNumber)?.doubleValue
      }.reduce(0, +)
    }
    #expect(
      await eventually {
        let result = await broker.read(
          [PartitionRead(topic: "metrics", partition: 0, offset: 0, maxBytes: 1 << 20)],
          options: ReadOptions(maxBytes: 1 << 20, minBytes: 0, maxWaitMs: 0))
        guard result[0].error == nil, let bytes = try? result[0].records.load() else { return false }
        values = []
        _ = try? RecordWalk.walk(bytes, from: 0, maxDecompressedSize: 1 << 20) { record in
          values.append(String(buffer: record.value!))
          return true
        }
        return total("api.calls") == 5 && total("over.tcp") == 7 && total("bulk.count") == 2000
          && values.contains { $0.contains("\"lat\"") }
      })
    let counter = try #require(values.first { $0.contains("\"name\":\"api.calls\"") })
    #expect(counter.contains("\"malformed\":1,"))  // "bad", the one malformed line
    let timer = try #require(values.first { $0.contains("\"name\":\"lat\"") })
    #expect(timer.contains("\"tags\":{\"env\":\"test\"}") && timer.contains("\"p99\":7"))
    let exporter = MetricsExporter()
    exporter.addCollector { intake.collectMetrics(into: $0) }
    #expect(exporter.render().contains("sluice_statsd_malformed_total 1\n"))
    running.cancel()
    _ = await running.result
    await probe.close()
    await broker.shutdown()
  }
}

/// The StatsD TCP line splitter, fed in pieces through an EmbeddedChannel.
@Suite struct StatsDLineDecoderTests {
  @Test func linesAreSplitAcrossReadsAndALongLineIsRefused() throws {
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(StatsDLineDecoder()))
    for piece in ["a:1|c\nb:", "2|c", "\nc:3|c\n"] { try channel.writeInbound(ByteBuffer(string: piece)) }
    var lines: [String] = []
    while let line = try channel.readInbound(as: ByteBuffer.self) { lines.append(String(buffer: line)) }
    #expect(lines == ["a:1|c", "b:2|c", "c:3|c"])
    // A line one byte over the limit, sent in pieces, is refused before its newline comes.
    let piece = ByteBuffer(repeating: UInt8(ascii: "x"), count: 16_385)
    #expect(throws: StatsDTCPError.lineTooLong) {
      for _ in 0..<4 { try channel.writeInbound(piece) }
    }
  }

  @Test func aLongLineWhoseNewlineArrivesWithItIsRefusedToo() throws {
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(StatsDLineDecoder()))
    var buffer = ByteBuffer(repeating: UInt8(ascii: "x"), count: StatsDLineDecoder.maxLine + 1)
    buffer.writeString("\n")
    #expect(throws: StatsDTCPError.lineTooLong) { try channel.writeInbound(buffer) }
  }
}
