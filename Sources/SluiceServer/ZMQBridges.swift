import KafkaProtocol
public import Logging
public import NIOCore
public import ServiceLifecycle
public import SluiceBroker
import SluiceDirect
import Synchronization

/// The ZeroMQ bridges of `sluice serve`, driven by topic configs (checked every second, so
/// `sluice topic alter` starts, moves or stops one while the broker runs):
/// - `sluice.zmq.pub=tcp://HOST:PORT` binds a PUB socket and publishes every record appended
///   to the topic from then on as `[topic, key, value]` (an empty frame for a null key or
///   value; headers are not sent). PUB semantics: a subscriber that is not connected, or
///   falls `sendHighWaterMark` messages behind, misses messages; the topic keeps them.
/// - `sluice.zmq.pull=tcp://HOST:PORT` binds a PULL socket and appends each message —
///   `[value]` or `[key, value]` — to the topic: keyed ones to murmur2(key)'s partition as
///   Kafka producers do, the others one batch per partition in turn. A message is durable
///   once appended (with the topic's durability); ZeroMQ has no acknowledgement, so what a
///   pusher sent but the broker had not yet appended is lost if the broker dies. While
///   appends are slow (a `backpressure` overflow policy, a slow disk) the bridge reads no
///   further, and TCP and the pusher's high-water mark make PUSH wait.
public final class ZMQBridges: Service, Sendable {
  let broker: Broker
  let group: any EventLoopGroup
  let logger: Logger
  let running = BridgeRegistry<Bridge>()

  /// One bridge: its socket (once bound), task and counters.
  final class Bridge: BridgeItem {
    let topic: String
    let kind: String
    let endpoint: String
    let socket = Mutex<ZMQSocket?>(nil)
    let task = TaskSlot()
    /// Records published (pub) or appended (pull).
    let records = Atomic<Int>(0)
    /// pull: messages that were not [value] or [key, value]; appends that failed.
    let malformed = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let lastError = Mutex<String?>(nil)

    init(topic: String, kind: String, endpoint: String) {
      self.topic = topic
      self.kind = kind
      self.endpoint = endpoint
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

  /// Starts the bridges topic configs ask for and stops the others.
  func reconcile() {
    var wanted: [String: (topic: String, kind: String, endpoint: String)] = [:]
    for topic in broker.allTopics {
      let overrides = topic.config.overrides
      for kind in ["pub", "pull"] {
        guard let value = overrides["sluice.zmq.\(kind)"],
          let endpoint = value.split(whereSeparator: \.isWhitespace).first.map(String.init)
        else { continue }
        wanted["\(topic.id)|\(kind)|\(endpoint)"] = (topic.name, kind, endpoint)
      }
    }
    let makers = wanted.mapValues { spec in
      { Bridge(topic: spec.topic, kind: spec.kind, endpoint: spec.endpoint) }
    }
    let (_, stopped) = running.reconcile(makers) { await self.serve($0) }
    for bridge in stopped {
      logger.info("ZeroMQ \(bridge.kind) bridge of topic \(bridge.topic) at \(bridge.endpoint) stopped")
    }
  }

  func stopAll() async { await running.stopAll() }

  /// Binds (retrying every 5 s while the address is taken), then publishes or appends until
  /// cancelled; the socket is closed at the end.
  private func serve(_ bridge: Bridge) async {
    let socket = ZMQSocket(bridge.kind == "pub" ? .pub : .pull, group: group, logger: logger)
    while !Task.isCancelled {
      do {
        let bound = try await socket.bind(bridge.endpoint)
        logger.info("ZeroMQ \(bridge.kind) bridge of topic \(bridge.topic) bound to \(bound)")
        bridge.lastError.withLock { $0 = nil }
        break
      } catch {
        let message = "cannot bind \(bridge.endpoint): \(error)"
        let repeated = bridge.lastError.withLock { last in
          defer { last = message }
          return last == message
        }
        if !repeated {
          logger.error("ZeroMQ \(bridge.kind) bridge of topic \(bridge.topic): \(message); retrying")
        }
        try? await Task.sleep(for: .seconds(5))
      }
    }
    bridge.socket.withLock { $0 = socket }
    if !Task.isCancelled {
      if bridge.kind == "pub" { await publish(bridge, socket) } else { await append(bridge, socket) }
    }
    await socket.close(linger: .milliseconds(500))
  }

  // MARK: pub: topic → subscribers

  private func publish(_ bridge: Bridge, _ socket: ZMQSocket) async {
    await withTaskGroup(of: Void.self) { workers in
      var started: Set<Int32> = []
      var first = true
      while !Task.isCancelled {
        let partitions = broker.topic(bridge.topic)?.partitions ?? []
        for partition in partitions where !started.contains(partition.index) {
          started.insert(partition.index)
          // From the end at start; a partition added later from its beginning.
          let start = first ? partition.highWatermark : partition.logStartOffset
          workers.addTask { await self.tail(bridge, socket, partition.index, from: start) }
        }
        first = false
        try? await Task.sleep(for: .seconds(2))
      }
      workers.cancelAll()
    }
  }

  private func tail(_ bridge: Bridge, _ socket: ZMQSocket, _ partition: Int32, from start: Int64) async {
    let topicFrame = ByteBuffer(string: bridge.topic)
    var position = start
    while !Task.isCancelled {
      let results = await broker.read(
        [PartitionRead(topic: bridge.topic, partition: partition, offset: position, maxBytes: 1 << 20)],
        options: ReadOptions(maxBytes: 1 << 20, minBytes: 1, maxWaitMs: 500), context: CallContext())
      guard let result = results.first else { continue }
      if let failure = result.error {
        if failure.code == .offsetOutOfRange {
          position = position < result.logStartOffset ? result.logStartOffset : result.highWatermark
        } else {
          // Deleted topics stop their bridge when reconcile sees the config gone; anything
          // else (a partition offline for a moment) is retried, not given up.
          try? await Task.sleep(for: .seconds(1))
        }
        continue
      }
      guard result.records.count > 0 else { continue }
      var messages: [ZMQMessage] = []
      var failure: String?
      do {
        let bytes = try result.records.load()
        position = try RecordWalk.walk(
          bytes, from: position, maxDecompressedSize: broker.config.maxDecompressedBatchBytes
        ) { record in
          messages.append(ZMQMessage([topicFrame, record.key ?? ByteBuffer(), record.value ?? ByteBuffer()]))
          position = record.offset + 1
          return true
        }
      } catch {
        // Records that cannot be read (a damaged log): the good ones before them go out,
        // then the bad batch is retried slowly (said once), not skipped.
        failure = "partition \(partition) at offset \(position): cannot read records: \(error)"
      }
      // In slices well under the high-water mark (a PUB drops what does not fit below it).
      var start = 0
      while start < messages.count {
        let end = min(messages.count, start + 256)
        try? await socket.send(contentsOf: Array(messages[start..<end]))
        start = end
      }
      bridge.records.add(messages.count, ordering: .relaxed)
      if let failure {
        let repeated = bridge.lastError.withLock { last in
          defer { last = failure }
          return last == failure
        }
        if !repeated { logger.error("ZeroMQ pub bridge of topic \(bridge.topic): \(failure)") }
        try? await Task.sleep(for: .seconds(1))
      }
    }
  }

  // MARK: pull: pushers → topic

  private func append(_ bridge: Bridge, _ socket: ZMQSocket) async {
    var nextPartition: Int32 = 0
    while !Task.isCancelled {
      guard let first = try? await socket.receive() else { continue }
      var messages = [first]
      while messages.count < 1000, let message = socket.tryReceive() { messages.append(message) }
      guard let topic = broker.topic(bridge.topic) else { return }
      let count = Int32(topic.partitions.count)
      let now = broker.clock.now()
      var batches = TopicBatches(topic: bridge.topic, maxBytes: topic.config.maxMessageBytes)
      let unkeyed = nextPartition % max(count, 1)
      nextPartition &+= 1
      for message in messages {
        guard message.frames.count == 1 || message.frames.count == 2 else {
          bridge.malformed.add(1, ordering: .relaxed)
          bridge.lastError.withLock {
            $0 = "a message of \(message.frames.count) frames (expected [value] or [key, value])"
          }
          continue
        }
        let key = message.frames.count == 2 ? message.frames[0] : nil
        let value = message.frames[message.frames.count - 1]
        batches.add(
          key: key, value: value, timestamp: now,
          partition: key.map { kafkaKeyPartition($0, count: count) } ?? unkeyed)
      }
      let (writes, counts, failed) = batches.take()
      bridge.failed.add(failed, ordering: .relaxed)
      guard !writes.isEmpty else { continue }
      let result = await broker.produce(writes, options: ProduceOptions(acks: .all), context: CallContext())
      for ((write, records), outcome) in zip(zip(writes, counts), result.results) {
        switch outcome {
        case .appended, .duplicate:
          bridge.records.add(records, ordering: .relaxed)
        case .failed(let failure):
          bridge.failed.add(records, ordering: .relaxed)
          let message =
            "appending to partition \(write.partition) failed: \(failure.code.name) \(failure.message)"
          let repeated = bridge.lastError.withLock { last in
            defer { last = message }
            return last == message
          }
          if !repeated { logger.warning("ZeroMQ pull bridge of topic \(bridge.topic): \(message)") }
        }
      }
    }
  }

  // MARK: metrics

  /// The bridges' counters, at a scrape.
  public func collectMetrics(into metrics: MetricsCollection) {
    for bridge in running.items {
      let labels = [("topic", bridge.topic), ("bridge", bridge.kind)]
      let statistics = bridge.socket.withLock { $0?.statistics }
      metrics.counter(
        "sluice_zmq_bridge_records_total", "Records published (pub) or appended (pull).", labels,
        bridge.records.load(ordering: .relaxed))
      metrics.gauge("sluice_zmq_bridge_peers", "Connected ZeroMQ peers.", labels, statistics?.peers ?? 0)
      metrics.counter(
        "sluice_zmq_bridge_protocol_errors_total",
        "Connections closed for a protocol error, a wrong socket type or a handshake timeout.", labels,
        statistics?.protocolErrors ?? 0)
      if bridge.kind == "pub" {
        metrics.counter(
          "sluice_zmq_bridge_dropped_total", "pub: copies not sent to a subscriber at its high-water mark.",
          labels,
          statistics?.dropped ?? 0)
      } else {
        metrics.counter(
          "sluice_zmq_bridge_malformed_total", "pull: messages that were not [value] or [key, value].",
          labels,
          bridge.malformed.load(ordering: .relaxed))
        metrics.counter(
          "sluice_zmq_bridge_failed_total", "pull: records whose append failed.", labels,
          bridge.failed.load(ordering: .relaxed))
      }
    }
  }
}
