import KafkaProtocol
public import Logging
public import NIOCore
import NIOPosix
public import ServiceLifecycle
public import SluiceBroker
public import SluiceStatsD
import Synchronization

/// Settings of the StatsD intake (`sluice serve --statsd-listen`, docs/udp.md).
public struct StatsDConfiguration: Sendable {
  public var host: String
  public var port: Int
  public var flushMs: Int64 = 10_000
  public var topic = "statsd"
  /// One record per valid line instead of aggregates.
  public var raw = false
  public var aggregation = StatsDAggregator.Configuration()
  /// SO_RCVBUF; 0: the system default.
  public var receiveBufferBytes = 0

  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }
}

/// The StatsD intake: a UDP socket whose lines are aggregated per interval
/// (``StatsDAggregator``) and appended to a topic as JSON records, one per metric, keyed by
/// the metric name; in raw mode, one record per valid line. It counts its own losses:
/// malformed lines, lines over the metric cap, and datagrams the kernel dropped for its socket.
public final class StatsDIntake: Service, Sendable {
  let broker: Broker
  let configuration: StatsDConfiguration
  let group: any EventLoopGroup
  let logger: Logger
  let aggregator: Mutex<StatsDAggregator>
  /// Raw mode: lines waiting for the next append (at most `maxRawPending`).
  let rawPending = Mutex<[(key: String, value: String)]>([])
  static let maxRawPending = 100_000
  static let vectorReads = 32
  let totals = Totals()
  let bound = Mutex<(any Channel)?>(nil)
  let lastMalformedLog = Mutex<NIODeadline?>(nil)
  let tcpConnections = Atomic<Int>(0)
  let tcpChannels = Mutex<[ObjectIdentifier: any Channel]>([:])
  static let maxTCPConnections = 1024

  final class Totals: Sendable {
    let packets = Atomic<Int>(0)
    let lines = Atomic<Int>(0)
    let malformed = Atomic<Int>(0)
    let kernelDrops = Atomic<Int>(0)
    let metricsDropped = Atomic<Int>(0)
    let records = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
  }

  public init(broker: Broker, configuration: StatsDConfiguration, group: any EventLoopGroup, logger: Logger) {
    self.broker = broker
    self.configuration = configuration
    self.group = group
    self.logger = logger
    aggregator = Mutex(
      StatsDAggregator(configuration: configuration.aggregation, seed: UInt64(configuration.port)))
  }

  /// The bound port (for port 0), once listening.
  public var port: Int? { bound.withLock { $0?.localAddress?.port } }

  public func run() async throws {
    var bootstrap = DatagramBootstrap(group: group)
      // recvmmsg: up to 32 datagrams per system call (profiled: one recvmsg per datagram
      // led). NIO splits the receive buffer evenly among them, so it holds 32 of the largest
      // datagram (a smaller share would truncate long multi-line datagrams).
      .channelOption(
        .recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: Self.vectorReads << 16)
      )
      .channelOption(.maxMessagesPerRead, value: 4)
      .channelOption(.datagramVectorReadMessageCount, value: Self.vectorReads)
    if configuration.receiveBufferBytes > 0 {
      bootstrap = bootstrap.channelOption(
        .socketOption(.so_rcvbuf), value: SocketOptionValue(clamping: configuration.receiveBufferBytes))
    }
    let channel = try await bootstrap.channelInitializer { channel in
      channel.eventLoop.makeCompletedFuture {
        try channel.pipeline.syncOperations.addHandler(Handler(intake: self))
      }
    }
    .bind(host: configuration.host, port: configuration.port).get()
    bound.withLock { $0 = channel }
    // TCP on the same port: newline-separated lines, as the statsd daemon's TCP server takes
    // them (each line counts as a line, not a packet).
    let tcp = try await ServerBootstrap(group: group)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          guard self.tcpConnections.add(1, ordering: .relaxed).newValue <= Self.maxTCPConnections else {
            self.tcpConnections.subtract(1, ordering: .relaxed)
            throw StatsDTCPError.tooManyConnections
          }
          let id = ObjectIdentifier(channel)
          self.tcpChannels.withLock { $0[id] = channel }
          channel.closeFuture.whenComplete { _ in
            self.tcpConnections.subtract(1, ordering: .relaxed)
            self.tcpChannels.withLock { $0[id] = nil }
          }
          try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(StatsDLineDecoder()))
          try channel.pipeline.syncOperations.addHandler(TCPHandler(intake: self))
        }
      }
      .bind(host: configuration.host, port: channel.localAddress?.port ?? configuration.port).get()
    defer {
      // Stop accepting, then close what is connected: nothing flushes its lines any more.
      tcp.close(promise: nil)
      for channel in tcpChannels.withLock({ Array($0.values) }) { channel.close(promise: nil) }
    }
    logger.info(
      "StatsD intake on \(channel.localAddress?.description ?? "?") → topic \(configuration.topic) every \(configuration.flushMs) ms"
    )
    let localPort = channel.localAddress?.port ?? configuration.port
    let interval = configuration.raw ? min(configuration.flushMs, 100) : configuration.flushMs
    await cancelWhenGracefulShutdown {
      var lastDrops = await self.kernelDrops(port: localPort)
      var intervalStart = self.broker.clock.now()
      var stopping = false
      while !stopping {
        try? await Task.sleep(for: .milliseconds(interval))
        // What arrived since the last interval is flushed at shutdown too.
        stopping = Task.isCancelled
        let drops = await self.kernelDrops(port: localPort)
        let dropped = max(0, (drops ?? 0) - (lastDrops ?? 0))
        lastDrops = drops ?? lastDrops
        let now = self.broker.clock.now()
        await self.flush(kernelDrops: dropped, timestampMs: now, intervalMs: max(1, now - intervalStart))
        intervalStart = now
      }
    }
    try? await channel.close()
  }

  /// Renders the interval and appends it.
  func flush(kernelDrops: Int, timestampMs: Int64, intervalMs: Int64) async {
    totals.kernelDrops.add(kernelDrops, ordering: .relaxed)
    var records: [(key: String, value: String)]
    if configuration.raw {
      records = rawPending.withLock { pending in
        defer { pending = [] }
        return pending
      }
      _ = aggregator.withLock { $0.takeInterval() }
    } else {
      let interval = aggregator.withLock { aggregator in
        aggregator.kernelDropped(kernelDrops)
        return aggregator.takeInterval()
      }
      totals.metricsDropped.add(interval.intake.metricsDropped, ordering: .relaxed)
      records = StatsDAggregator.render(interval, timestampMs: timestampMs, intervalMs: intervalMs)
    }
    guard !records.isEmpty else { return }
    await append(records, timestampMs: timestampMs)
  }

  private func append(_ records: [(key: String, value: String)], timestampMs: Int64) async {
    if broker.topic(configuration.topic) == nil {
      do {
        try await broker.createTopic(name: configuration.topic, partitions: 1, configs: [:])
      } catch {
        // Created meanwhile by someone else is fine; anything else is said below.
      }
    }
    guard let topic = broker.topic(configuration.topic) else {
      totals.failed.add(records.count, ordering: .relaxed)
      logger.error(
        "StatsD intake: topic \(configuration.topic) cannot be created; \(records.count) records lost")
      return
    }
    let count = Int32(topic.partitions.count)
    var batches = TopicBatches(topic: configuration.topic, maxBytes: topic.config.maxMessageBytes)
    for record in records {
      let key = ByteBuffer(string: record.key)
      batches.add(
        key: key, value: ByteBuffer(string: record.value), timestamp: timestampMs,
        partition: kafkaKeyPartition(key, count: count))
    }
    let (writes, counts, failed) = batches.take()
    totals.failed.add(failed, ordering: .relaxed)
    let result = await broker.produce(writes, options: ProduceOptions(acks: .all), context: CallContext())
    for (records, outcome) in zip(counts, result.results) {
      switch outcome {
      case .appended, .duplicate:
        totals.records.add(records, ordering: .relaxed)
      case .failed(let failure):
        totals.failed.add(records, ordering: .relaxed)
        logger.warning(
          "StatsD intake: appending \(records) records to \(configuration.topic) failed: \(failure.code.name) \(failure.message)"
        )
      }
    }
  }

  /// The kernel's count of datagrams dropped for the socket on `port` (the `drops` column of
  /// /proc/net/udp and udp6), read on the thread pool; nil when unreadable.
  func kernelDrops(port: Int) async -> Int? {
    let hex = String(port, radix: 16, uppercase: true)
    let hexPort = ":" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    return try? await NIOThreadPool.singleton.runIfActive { () -> Int? in
      var total: Int?
      for path in ["/proc/net/udp", "/proc/net/udp6"] {
        guard let table = readSmallFile(path) else { continue }
        for line in table.split(separator: "\n").dropFirst() {
          let fields = line.split(separator: " ")
          guard fields.count >= 13, fields[1].hasSuffix(hexPort), let drops = Int(fields[fields.count - 1])
          else {
            continue
          }
          total = (total ?? 0) + drops
        }
      }
      return total
    }.flatMap { $0 }
  }

  /// One datagram (UDP), or one line (TCP: `packet` false).
  func ingest(_ datagram: ByteBuffer, packet: Bool = true) {
    let (error, intake) = datagram.withUnsafeReadableBytes { bytes in
      aggregator.withLock { aggregator -> (StatsDLine.ParseError?, StatsDAggregator.Intake) in
        let before = aggregator.intake
        let error = aggregator.ingest(datagram: bytes, packet: packet)
        var delta = aggregator.intake
        delta.packets -= before.packets
        delta.lines -= before.lines
        delta.malformed -= before.malformed
        return (error, delta)
      }
    }
    totals.packets.add(intake.packets, ordering: .relaxed)
    totals.lines.add(intake.lines, ordering: .relaxed)
    totals.malformed.add(intake.malformed, ordering: .relaxed)
    if configuration.raw {
      var records: [(key: String, value: String)] = []
      datagram.withUnsafeReadableBytes { bytes in
        for line in StatsDLine.lines(bytes) {
          guard let parsed = try? StatsDLine(parsing: line) else { continue }
          records.append((parsed.name, String(decoding: line, as: UTF8.self)))
        }
      }
      let overflow = rawPending.withLock { pending -> Int in
        let room = max(0, Self.maxRawPending - pending.count)
        pending.append(contentsOf: records.prefix(room))
        return records.count - min(room, records.count)
      }
      if overflow > 0 { totals.metricsDropped.add(overflow, ordering: .relaxed) }
    }
    if let error {
      let now = NIODeadline.now()
      let log = lastMalformedLog.withLock { last -> Bool in
        guard last.map({ now - $0 >= .seconds(10) }) ?? true else { return false }
        last = now
        return true
      }
      if log {
        logger.warning(
          "StatsD intake: malformed line (\(error)); \(totals.malformed.load(ordering: .relaxed)) so far, logged at most every 10 s"
        )
      }
    }
  }

  final class Handler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let intake: StatsDIntake

    init(intake: StatsDIntake) { self.intake = intake }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      intake.ingest(unwrapInboundIn(data).data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
  }

  final class TCPHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let intake: StatsDIntake

    init(intake: StatsDIntake) { self.intake = intake }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      intake.ingest(unwrapInboundIn(data), packet: false)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
      // A line past 64 KiB: counted as malformed, and the connection closed (its framing is
      // lost). Other errors (a reset) just close it.
      if error as? StatsDTCPError == .lineTooLong {
        intake.aggregator.withLock { $0.countMalformed() }
        intake.totals.malformed.add(1, ordering: .relaxed)
      }
      context.close(promise: nil)
    }
  }

  /// The intake's counters, at a scrape.
  public func collectMetrics(into metrics: MetricsCollection) {
    metrics.counter(
      "sluice_statsd_packets_total", "Datagrams received.", [], totals.packets.load(ordering: .relaxed))
    metrics.counter("sluice_statsd_lines_total", "Lines received.", [], totals.lines.load(ordering: .relaxed))
    metrics.counter(
      "sluice_statsd_malformed_total", "Lines dropped as malformed.", [],
      totals.malformed.load(ordering: .relaxed))
    metrics.counter(
      "sluice_statsd_kernel_drops_total",
      "Datagrams the kernel dropped for the socket (receive buffer full).", [],
      totals.kernelDrops.load(ordering: .relaxed))
    metrics.counter(
      "sluice_statsd_metrics_dropped_total",
      "Lines dropped over sluice.statsd.max.metrics (or the raw-mode queue).",
      [], totals.metricsDropped.load(ordering: .relaxed))
    metrics.counter(
      "sluice_statsd_records_total", "Records appended.", [], totals.records.load(ordering: .relaxed))
    metrics.counter(
      "sluice_statsd_failed_total", "Records whose append failed.", [], totals.failed.load(ordering: .relaxed)
    )
  }
}

enum StatsDTCPError: Error {
  case tooManyConnections
  case lineTooLong
}

/// Splits a TCP stream into lines of at most 64 KiB (without the newline).
struct StatsDLineDecoder: ByteToMessageDecoder {
  typealias InboundOut = ByteBuffer
  static let maxLine = 65_536
  /// Bytes of the current line already searched for a newline (each byte is looked at once).
  var scanned = 0

  mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
    let view = buffer.readableBytesView
    guard let newline = view.dropFirst(scanned).firstIndex(of: UInt8(ascii: "\n")) else {
      scanned = view.count
      if scanned > Self.maxLine { throw StatsDTCPError.lineTooLong }
      return .needMoreData
    }
    let length = newline - buffer.readerIndex
    guard length <= Self.maxLine else { throw StatsDTCPError.lineTooLong }
    let line = buffer.readSlice(length: length)!
    buffer.moveReaderIndex(forwardBy: 1)
    scanned = 0
    context.fireChannelRead(NIOAny(line))
    return .continue
  }

  mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
    -> DecodingState
  {
    // A last line without its newline still counts.
    if try decode(context: context, buffer: &buffer) == .continue { return .continue }
    if buffer.readableBytes > 0, let line = buffer.readSlice(length: buffer.readableBytes) {
      context.fireChannelRead(NIOAny(line))
    }
    return .needMoreData
  }
}
