import KafkaProtocol
public import Logging
public import NIOCore
import NIOPosix
public import ServiceLifecycle
public import SluiceBroker
import SluiceFeed
import Synchronization

/// The multicast feeds of `sluice serve` (docs/udp.md), driven by topic configs checked every
/// second: `sluice.feed.multicast=GROUP:PORT` publishes each record appended to the topic
/// from then on as MoldUDP64, one session per partition with sequence number = offset + 1;
/// `sluice.feed.retransmit=HOST:PORT` answers gap requests from the log. A change to any
/// `sluice.feed.*` config restarts the feed (ending its sessions).
public final class FeedBridges: Service, Sendable {
  let broker: Broker
  let group: any EventLoopGroup
  let logger: Logger
  let running = BridgeRegistry<Feed>()

  /// A feed's settings, from the topic's configs.
  struct Spec: Hashable, Sendable {
    var group: String
    var port: Int
    var retransmit: (host: String, port: Int)?
    var ttl: Int
    var interface: String?
    var payload: FeedSession.Payload
    var maxDatagram: Int
    var heartbeatMs: Int64
    var rate: Int

    static func == (lhs: Spec, rhs: Spec) -> Bool { lhs.key == rhs.key }
    func hash(into hasher: inout Hasher) { hasher.combine(key) }

    var key: String {
      "\(group):\(port)|\(retransmit.map { "\($0.host):\($0.port)" } ?? "")|\(ttl)|\(interface ?? "")|"
        + "\(payload.rawValue)|\(maxDatagram)|\(heartbeatMs)|\(rate)"
    }

    /// From the topic's effective configs (its own values, else the catalogue's defaults,
    /// which are checked when set); nil when it has no feed.
    init?(_ config: TopicConfig) {
      guard config.overrides["sluice.feed.multicast"]?.trimmingCharacters().isEmpty == false else {
        return nil
      }
      var values: [String: String] = [:]
      for entry in config.effectiveValues() where entry.name.hasPrefix("sluice.feed.") {
        values[String(entry.name.dropFirst("sluice.feed.".count))] = entry.value.trimmingCharacters()
      }
      func text(_ name: String) -> String? { values[name].flatMap { $0.isEmpty ? nil : $0 } }
      guard let multicast = text("multicast"), let colon = multicast.lastIndex(of: ":"),
        let port = Int(multicast[multicast.index(after: colon)...]),
        let ttl = text("ttl").flatMap({ Int($0) }),
        let maxDatagram = text("max.datagram.bytes").flatMap({ Int($0) }),
        let heartbeatMs = text("heartbeat.ms").flatMap({ Int64($0) }),
        let rate = text("retransmit.rate").flatMap({ Int($0) }),
        let payload = text("payload").flatMap(FeedSession.Payload.init(rawValue:))
      else { return nil }
      group = String(multicast[..<colon])
      self.port = port
      if let value = text("retransmit"), let colon = value.lastIndex(of: ":"),
        let port = Int(value[value.index(after: colon)...])
      {
        retransmit = (String(value[..<colon]), port)
      }
      self.ttl = ttl
      interface = text("interface")
      self.payload = payload
      self.maxDatagram = maxDatagram
      self.heartbeatMs = heartbeatMs
      self.rate = max(1, rate)
    }
  }

  /// One running feed: its settings, task and counters.
  final class Feed: BridgeItem {
    let topic: String
    let spec: Spec
    let task = TaskSlot()
    let records = Atomic<Int>(0)
    let datagrams = Atomic<Int>(0)
    let heartbeats = Atomic<Int>(0)
    let oversize = Atomic<Int>(0)
    let requests = Atomic<Int>(0)
    let retransmitted = Atomic<Int>(0)
    let limited = Atomic<Int>(0)
    let malformed = Atomic<Int>(0)
    let inFlight = Atomic<Int>(0)
    let lastError = Mutex<String?>(nil)
    let limiter = Mutex(RequestLimiter())
    /// The datagram capacity, once the interface is known.
    let capacity = Atomic<Int>(1472)

    init(topic: String, spec: Spec) {
      self.topic = topic
      self.spec = spec
    }

    /// Logs `message` unless it repeats the last one.
    func noteError(_ message: String, _ logger: Logger) {
      let repeated = lastError.withLock { last in
        defer { last = message }
        return last == message
      }
      if !repeated { logger.error("multicast feed of topic \(topic): \(message)") }
    }
  }

  public init(broker: Broker, group: any EventLoopGroup, logger: Logger) {
    self.broker = broker
    self.group = group
    self.logger = logger
  }

  public func run() async throws {
    await cancelWhenGracefulShutdown {
      while !Task.isCancelled {
        self.reconcile()
        try? await Task.sleep(for: .seconds(1))
      }
    }
    await stopAll()
  }

  func reconcile() {
    var wanted: [String: (topic: String, spec: Spec)] = [:]
    for topic in broker.allTopics {
      guard let spec = Spec(topic.config) else { continue }
      wanted["\(topic.id)|\(spec.key)"] = (topic.name, spec)
    }
    let makers = wanted.mapValues { wanted in { Feed(topic: wanted.topic, spec: wanted.spec) } }
    let (_, stopped) = running.reconcile(makers) { await self.serve($0) }
    for feed in stopped {
      logger.info("multicast feed of topic \(feed.topic) to \(feed.spec.group):\(feed.spec.port) stopped")
    }
  }

  func stopAll() async { await running.stopAll() }

  // MARK: sending

  private func serve(_ feed: Feed) async {
    let spec = feed.spec
    let groupAddress: SocketAddress
    do {
      groupAddress = try SocketAddress(ipAddress: spec.group, port: spec.port)
    } catch {
      feed.noteError("\(spec.group) is not an IPv4 address", logger)
      return
    }
    // Open the sending socket, retrying every 5 s (an interface not up yet); the
    // retransmission server binds on its own, so that a port in use there does not stop
    // the multicast.
    var sender: (any Channel)?
    while !Task.isCancelled && sender == nil {
      do {
        sender = try await openSender(feed)
        feed.lastError.withLock { $0 = nil }
      } catch {
        feed.noteError("cannot open its sending socket: \(error); retrying", logger)
        try? await Task.sleep(for: .seconds(5))
      }
    }
    guard let sender else { return }
    logger.info(
      "multicast feed of topic \(feed.topic) to \(spec.group):\(spec.port), datagrams up to \(feed.capacity.load(ordering: .relaxed)) bytes"
    )
    await withTaskGroup(of: Void.self) { tasks in
      if let retransmit = spec.retransmit {
        tasks.addTask { await self.serveRetransmissions(feed, at: retransmit) }
      }
      await publish(feed, sender, to: groupAddress)
      tasks.cancelAll()
    }
    try? await sender.close()
  }

  /// Binds the retransmission server (retrying every 5 s while the address is taken) and
  /// keeps it until cancelled.
  private func serveRetransmissions(_ feed: Feed, at address: (host: String, port: Int)) async {
    while !Task.isCancelled {
      do {
        let server = try await DatagramBootstrap(group: group)
          .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 2048))
          .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
              try channel.pipeline.syncOperations.addHandler(RetransmitHandler(bridges: self, feed: feed))
            }
          }
          .bind(host: address.host, port: address.port).get()
        logger.info(
          "multicast feed of topic \(feed.topic): retransmission server on \(address.host):\(address.port)")
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        try? await server.close()
        return
      } catch {
        feed.noteError(
          "cannot bind its retransmission server at \(address.host):\(address.port): \(error); retrying",
          logger)
        try? await Task.sleep(for: .seconds(5))
      }
    }
  }

  /// The sending socket: TTL, interface and loopback set; the datagram capacity from the
  /// interface's MTU unless the topic sets it.
  private func openSender(_ feed: Feed) async throws -> any Channel {
    let spec = feed.spec
    var interfaceAddress: String?
    var interfaceName: String?
    if let interface = spec.interface {
      let devices = (try? System.enumerateDevices()) ?? []
      if let device = devices.first(where: {
        $0.address?.protocol == .inet && ($0.name == interface || $0.address?.ipAddress == interface)
      }) {
        interfaceAddress = device.address?.ipAddress
        interfaceName = device.name
      } else {
        throw FeedError(description: "no IPv4 interface \(interface)")
      }
    }
    let channel = try await DatagramBootstrap(group: group)
      .bind(host: interfaceAddress ?? "0.0.0.0", port: 0).get()
    do {
      guard let options = channel as? any SocketOptionProvider else {
        throw FeedError(description: "datagram channel has no socket options")
      }
      try await options.setIPMulticastTTL(CUnsignedChar(spec.ttl)).get()
      try await options.setIPMulticastLoop(1).get()
      if let interfaceAddress {
        var address = in_addr()
        _ = inet_pton(AF_INET, interfaceAddress, &address)
        try await options.setIPMulticastIF(address).get()
      }
      var capacity = spec.maxDatagram
      if capacity == 0 {
        let group = spec.group
        let name = interfaceName
        let mtu = try? await NIOThreadPool.singleton.runIfActive {
          interfaceMTU(name: name ?? routeInterface(for: group))
        }
        capacity = mtu.flatMap { $0 }.map { min(MoldUDP64.maxDatagram, $0 - 28) } ?? 1472
      }
      feed.capacity.store(max(capacity, MoldUDP64.headerSize + 2), ordering: .relaxed)
      return channel
    } catch {
      try? await channel.close()
      throw error
    }
  }

  private func publish(_ feed: Feed, _ sender: any Channel, to groupAddress: SocketAddress) async {
    await withTaskGroup(of: Void.self) { workers in
      var started: Set<Int32> = []
      var first = true
      while !Task.isCancelled {
        let partitions = broker.topic(feed.topic)?.partitions ?? []
        for partition in partitions where !started.contains(partition.index) {
          started.insert(partition.index)
          // From the end at start; a partition added later from its beginning.
          let start = first ? partition.highWatermark : partition.logStartOffset
          workers.addTask {
            await self.tail(feed, sender, groupAddress, partition.index, from: start)
          }
        }
        first = false
        try? await Task.sleep(for: .seconds(2))
      }
      workers.cancelAll()
    }
  }

  /// Multicasts one partition from `start` on; heartbeats while idle; the end of the session
  /// when cancelled.
  private func tail(
    _ feed: Feed, _ sender: any Channel, _ groupAddress: SocketAddress, _ partition: Int32, from start: Int64
  ) async {
    let session = FeedSession.session(partition: partition, payload: feed.spec.payload)
    var position = start
    var lastSent = NIODeadline.now()
    let heartbeat = TimeAmount.milliseconds(feed.spec.heartbeatMs)
    func send(_ datagrams: [ByteBuffer]) async {
      guard let last = datagrams.last else { return }
      for datagram in datagrams.dropLast() {
        sender.write(AddressedEnvelope(remoteAddress: groupAddress, data: datagram), promise: nil)
      }
      // Waiting for the last write keeps at most one read's datagrams queued in the channel.
      try? await sender.writeAndFlush(AddressedEnvelope(remoteAddress: groupAddress, data: last)).get()
      lastSent = NIODeadline.now()
    }
    await send([MoldUDP64.heartbeat(session, next: UInt64(max(position, 0)) + 1)])
    feed.heartbeats.add(1, ordering: .relaxed)
    while !Task.isCancelled {
      let results = await broker.read(
        [PartitionRead(topic: feed.topic, partition: partition, offset: position, maxBytes: 1 << 20)],
        options: ReadOptions(maxBytes: 1 << 20, minBytes: 1, maxWaitMs: min(feed.spec.heartbeatMs, 500)),
        context: CallContext())
      guard !Task.isCancelled else { break }
      guard let result = results.first else { continue }
      if let failure = result.error {
        if failure.code == .offsetOutOfRange {
          // Records deleted under the feed (retention): go on from the log start; the
          // receivers see the gap and learn from the server that it is gone.
          position = position < result.logStartOffset ? result.logStartOffset : result.highWatermark
        } else {
          try? await Task.sleep(for: .seconds(1))
        }
        continue
      }
      if result.records.count == 0 {
        if NIODeadline.now() - lastSent >= heartbeat {
          await send([MoldUDP64.heartbeat(session, next: UInt64(position) + 1)])
          feed.heartbeats.add(1, ordering: .relaxed)
        }
        continue
      }
      do {
        let bytes = try result.records.load()
        let (datagrams, next, records) = try pack(
          feed, session, bytes, from: position, maxCount: Int.max,
          capacity: feed.capacity.load(ordering: .relaxed),
          maxDatagrams: Int.max)
        position = next
        await send(datagrams)
        feed.records.add(records, ordering: .relaxed)
        feed.datagrams.add(datagrams.count, ordering: .relaxed)
      } catch {
        feed.noteError("partition \(partition) at offset \(position): cannot read records: \(error)", logger)
        try? await Task.sleep(for: .seconds(1))
      }
    }
    // The end of the session, so receivers know it stopped rather than went quiet.
    try? await sender.writeAndFlush(
      AddressedEnvelope(
        remoteAddress: groupAddress, data: MoldUDP64.endOfSession(session, next: UInt64(position) + 1))
    ).get()
  }

  /// Packs the records of `bytes` from `position` into datagrams: at most `maxCount`
  /// messages and `maxDatagrams` datagrams. Returns them, the next position and the number
  /// of records packed. A gap in offsets (no data record there) starts a new datagram.
  func pack(
    _ feed: Feed, _ session: MoldUDP64.Session, _ bytes: ByteBuffer, from position: Int64, maxCount: Int,
    capacity: Int, maxDatagrams: Int
  ) throws -> (datagrams: [ByteBuffer], next: Int64, records: Int) {
    var datagrams: [ByteBuffer] = []
    var builder: MoldUDP64.PacketBuilder?
    var next = position
    var packed = 0
    let payload = feed.spec.payload
    next = try RecordWalk.walk(
      bytes, from: position, maxDecompressedSize: broker.config.maxDecompressedBatchBytes
    ) { record in
      guard packed < maxCount else { return false }
      let sequence = UInt64(record.offset) + 1
      let headers = payload == .record ? record.headers.map { (name: $0.key, value: $0.value) } : []
      var length =
        payload == .value
        ? record.value?.readableBytes ?? 0
        : FeedRecord.encodedSize(key: record.key, value: record.value, headers: headers)
      let oversize = length > MoldUDP64.maxMessage
      if oversize { length = 0 }
      if let current = builder,
        !current.fits(length) || current.sequence + UInt64(current.count) != sequence
      {
        datagrams.append(current.finish())
        builder = nil
        if datagrams.count >= maxDatagrams { return false }
      }
      if builder == nil {
        builder = MoldUDP64.PacketBuilder(session: session, sequence: sequence, capacity: capacity)
      }
      if oversize {
        // Counted where it is packed (a retransmission that stops before it does not count it).
        feed.oversize.add(1, ordering: .relaxed)
        builder!.append(ByteBuffer())
      } else if payload == .value {
        builder!.append(record.value ?? ByteBuffer())
      } else {
        builder!.append(length: length) { buffer in
          FeedRecord.encode(
            timestamp: record.timestamp, key: record.key, value: record.value, headers: headers, into: &buffer
          )
        }
      }
      packed += 1
      next = record.offset + 1
      return true
    }
    if let builder, builder.count > 0 { datagrams.append(builder.finish()) }
    return (datagrams, next, packed)
  }

  // MARK: retransmission

  /// Answers one request (already parsed and admitted by the rate limiter).
  func answer(_ request: MoldUDP64.Request, from requester: SocketAddress, feed: Feed, channel: any Channel)
    async
  {
    defer { feed.inFlight.subtract(1, ordering: .relaxed) }
    guard let partition = FeedSession.partition(request.session) else { return }
    let offset = Int64(clamping: request.sequence) - 1
    // One datagram's worth is wanted: the read is sized to it (a batch comes whole anyway).
    let readBytes = max(feed.capacity.load(ordering: .relaxed), 1 << 16)
    let results = await broker.read(
      [PartitionRead(topic: feed.topic, partition: partition, offset: max(offset, 0), maxBytes: readBytes)],
      options: ReadOptions(maxBytes: readBytes, minBytes: 0, maxWaitMs: 0), context: CallContext())
    guard let result = results.first else { return }
    var reply: ByteBuffer
    if let failure = result.error {
      guard failure.code == .offsetOutOfRange else {
        // A partition the topic does not have is a session of another feed.
        if failure.code == .unknownTopicOrPartition { feed.malformed.add(1, ordering: .relaxed) }
        return
      }
      // Gone (below the log start) or not there yet: a heartbeat with where the log is.
      let next = offset < result.logStartOffset ? result.logStartOffset : result.highWatermark
      reply = MoldUDP64.heartbeat(request.session, next: UInt64(max(next, 0)) + 1)
    } else {
      do {
        let bytes = try result.records.load()
        let (datagrams, _, _) = try pack(
          feed, request.session, bytes, from: max(offset, 0), maxCount: Int(request.count),
          capacity: feed.capacity.load(ordering: .relaxed), maxDatagrams: 1)
        if let first = datagrams.first {
          reply = first
          // The first record after the requested one (no data record there): say where the
          // data resumes, as for records that are gone.
          let sequence =
            first.getInteger(at: first.readerIndex + MoldUDP64.sessionLength, as: UInt64.self) ?? 0
          if sequence > request.sequence { reply = MoldUDP64.heartbeat(request.session, next: sequence) }
        } else {
          reply = MoldUDP64.heartbeat(request.session, next: UInt64(max(result.highWatermark, 0)) + 1)
        }
      } catch {
        feed.noteError("retransmission of partition \(partition) at offset \(offset): \(error)", logger)
        return
      }
    }
    feed.retransmitted.add(1, ordering: .relaxed)
    try? await channel.writeAndFlush(AddressedEnvelope(remoteAddress: requester, data: reply)).get()
  }

  final class RetransmitHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let bridges: FeedBridges
    let feed: Feed

    init(bridges: FeedBridges, feed: Feed) {
      self.bridges = bridges
      self.feed = feed
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      let envelope = unwrapInboundIn(data)
      feed.requests.add(1, ordering: .relaxed)
      guard let request = try? MoldUDP64.decodeRequest(envelope.data),
        FeedSession.payload(request.session) == feed.spec.payload,
        FeedSession.partition(request.session) != nil
      else {
        feed.malformed.add(1, ordering: .relaxed)
        return
      }
      let now = NIODeadline.now()
      let rate = feed.spec.rate
      let admitted = feed.limiter.withLock { $0.admit(envelope.remoteAddress, rate: rate, now: now) }
      // At most 64 reads in flight per feed: beyond that a flood is answered by dropping.
      guard admitted, feed.inFlight.add(1, ordering: .relaxed).newValue <= 64 else {
        if admitted { feed.inFlight.subtract(1, ordering: .relaxed) }
        feed.limited.add(1, ordering: .relaxed)
        return
      }
      let channel = context.channel
      let (bridges, current) = (self.bridges, self.feed)
      Task { await bridges.answer(request, from: envelope.remoteAddress, feed: current, channel: channel) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
      // Per-datagram errors (ICMP unreachable from a requester gone away): keep serving.
    }
  }

  // MARK: metrics

  /// The feeds' counters, at a scrape.
  public func collectMetrics(into metrics: MetricsCollection) {
    for feed in running.items {
      let labels = [("topic", feed.topic)]
      func counter(_ name: String, _ help: String, _ value: Int) {
        metrics.counter(name, help, labels, value)
      }
      counter("sluice_feed_records_total", "Records multicast.", feed.records.load(ordering: .relaxed))
      counter(
        "sluice_feed_datagrams_total", "Datagrams multicast (not counting heartbeats).",
        feed.datagrams.load(ordering: .relaxed))
      counter(
        "sluice_feed_heartbeats_total", "Heartbeats multicast.", feed.heartbeats.load(ordering: .relaxed))
      counter(
        "sluice_feed_oversize_total", "Records too large for MoldUDP64, sent as empty messages.",
        feed.oversize.load(ordering: .relaxed))
      counter(
        "sluice_feed_retransmit_requests_total", "Datagrams received by the retransmission server.",
        feed.requests.load(ordering: .relaxed))
      counter(
        "sluice_feed_retransmit_datagrams_total", "Answers sent by the retransmission server.",
        feed.retransmitted.load(ordering: .relaxed))
      counter(
        "sluice_feed_retransmit_limited_total", "Requests dropped by the per-requester rate limit.",
        feed.limited.load(ordering: .relaxed))
      counter(
        "sluice_feed_retransmit_malformed_total", "Requests that were not MoldUDP64 requests for this feed.",
        feed.malformed.load(ordering: .relaxed))
    }
  }
}

struct FeedError: Error, CustomStringConvertible {
  var description: String
}

/// A token bucket per requester: `rate` answers per second, a burst of one second's worth;
/// at most 10,000 requesters tracked (idle ones are forgotten first).
struct RequestLimiter: Sendable {
  var buckets: [SocketAddress: (tokens: Double, at: NIODeadline)] = [:]
  var lastSweep: NIODeadline?
  static let maxRequesters = 10_000

  mutating func admit(_ requester: SocketAddress, rate: Int, now: NIODeadline) -> Bool {
    let capacity = Double(rate)
    var bucket = buckets[requester] ?? (capacity, now)
    if buckets[requester] == nil && buckets.count >= Self.maxRequesters {
      // Forget requesters whose bucket is full again (idle for a second or more); at most
      // one sweep a second, so a flood from new addresses costs no more than that.
      guard lastSweep.map({ now - $0 >= .seconds(1) }) ?? true else { return false }
      lastSweep = now
      buckets = buckets.filter { now - $0.value.at < .seconds(1) }
      if buckets.count >= Self.maxRequesters { return false }
    }
    let elapsed = Double((now - bucket.at).nanoseconds) / 1e9
    bucket.tokens = min(capacity, bucket.tokens + elapsed * Double(rate))
    bucket.at = now
    guard bucket.tokens >= 1 else {
      buckets[requester] = bucket
      return false
    }
    bucket.tokens -= 1
    buckets[requester] = bucket
    return true
  }
}

/// The MTU of a network interface (`/sys/class/net/NAME/mtu`); blocking, for the thread pool.
func interfaceMTU(name: String?) -> Int? {
  guard let name, !name.contains("/") else { return nil }
  return readSmallFile("/sys/class/net/\(name)/mtu").flatMap { Int($0.trimmingCharacters()) }
}

/// The interface of the most specific IPv4 route to `group` (`/proc/net/route`); blocking.
func routeInterface(for group: String) -> String? {
  var address = in_addr()
  guard inet_pton(AF_INET, group, &address) == 1, let table = readSmallFile("/proc/net/route") else {
    return nil
  }
  var best: (name: String, maskBits: Int)?
  for line in table.split(separator: "\n").dropFirst() {
    let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
    guard fields.count >= 8, let destination = UInt32(fields[1], radix: 16),
      let mask = UInt32(fields[7], radix: 16)
    else { continue }
    // The table holds addresses in network byte order, printed as host-order hex.
    guard address.s_addr & mask == destination else { continue }
    if best == nil || mask.nonzeroBitCount > best!.maskBits {
      best = (String(fields[0]), mask.nonzeroBitCount)
    }
  }
  return best?.name
}

/// A file of /proc or /sys (at most 16 MiB read); blocking, for the thread pool.
func readSmallFile(_ path: String) -> String? {
  let fd = open(path, O_RDONLY)
  guard fd >= 0 else { return nil }
  defer { close(fd) }
  var bytes: [UInt8] = []
  var chunk = [UInt8](repeating: 0, count: 16_384)
  while bytes.count < 16 << 20 {
    let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 16_384) }
    if count <= 0 { break }
    bytes.append(contentsOf: chunk[..<count])
  }
  return String(decoding: bytes, as: UTF8.self)
}

extension StringProtocol {
  fileprivate func trimmingCharacters() -> String {
    String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
  }
}
