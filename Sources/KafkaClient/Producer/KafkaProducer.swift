import KafkaProtocol
public import Logging
public import NIOCore
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// Who learns a record's outcome: a caller of ``KafkaProducer/sendAndAwait(_:)``
/// (`continuation`), or else the events sequence. Keeps the key, value and headers for the
/// report.
@usableFromInline
struct RecordWaiter: Sendable {
  var id: KafkaProducerMessageID
  var continuation: CheckedContinuation<KafkaDeliveryReport, any Error>?
  var key: ByteBuffer?
  var value: ByteBuffer?
  var headers: [KafkaHeader]

  @usableFromInline
  init(
    id: KafkaProducerMessageID, continuation: CheckedContinuation<KafkaDeliveryReport, any Error>?,
    record: KafkaProducer.PendingRecord
  ) {
    self.id = id
    self.continuation = continuation
    self.key = record.key
    self.value = record.value
    self.headers = record.headers
  }
}

/// A record awaiting its acknowledgement: its index in the batch and who waits for it.
typealias DeliveryWaiter = (index: Int32, waiter: RecordWaiter)

/// One batch of one partition, from first append to acknowledgement.
struct ProducerBatch: Sendable {
  var topicPartition: KafkaTopicPartition
  var builder: RecordBatchBuilder
  var waiters: [DeliveryWaiter] = []
  var count: Int32 = 0
  var bytes = 0
  let created: ContinuousClock.Instant
  /// The encoded batch once built (kept for retries, so a retry resends identical bytes).
  var built: RecordBatch?
  /// Producer id, epoch and base sequence stamped into `built`; nil until first drained.
  var stamp: (producerId: Int64, epoch: Int16, sequence: Int32)?
  var attempts = 0
}

/// The producer's mutable state, guarded by one lock. Appending a record takes the lock
/// once and never suspends (except when the buffer is full).
struct ProducerState: Sendable {
  struct PartitionQueue: Sendable {
    var open: ProducerBatch?
    /// Sealed (full, or retried) batches, oldest first.
    var ready: [ProducerBatch] = []
    var inFlight = false
    var nextSequence: Int32 = 0

    /// Appends to the open batch in place (starting one if needed). Returns whether the
    /// sender must be woken and whether the batch filled up (and moved to `ready`).
    mutating func append(
      _ topicPartition: KafkaTopicPartition, key: ByteBuffer?, value: ByteBuffer?, headers: [RecordHeader],
      timestamp: Int64, size: Int, waiter: RecordWaiter?,
      batchSize: Int, compression: CompressionCodec
    ) -> (wake: Bool, full: Bool) {
      var started = false
      if open == nil {
        open = ProducerBatch(
          topicPartition: topicPartition,
          builder: RecordBatchBuilder(compression: compression, capacity: min(batchSize + 1024, 1 << 16)),
          created: .now)
        started = true
      }
      open!.builder.append(key: key, value: value, headers: headers, timestamp: timestamp)
      if let waiter { open!.waiters.append((open!.count, waiter)) }
      open!.count += 1
      open!.bytes += size
      if open!.bytes >= batchSize {
        ready.append(open.take()!)
        return (true, true)
      }
      return (started, false)
    }
  }
  /// Per topic: partition count (from metadata) and the sticky partition for records
  /// without a key (one lookup per record).
  var topics: [String: (partitionCount: Int, sticky: Int?)] = [:]
  var queues: [KafkaTopicPartition: PartitionQueue] = [:]
  var bufferedBytes = 0
  var pendingRecords = 0
  var spaceWaiters: [CheckedContinuation<Void, Never>] = []
  var flushWaiters: [CheckedContinuation<Void, Never>] = []
  var senderWakeup: CheckedContinuation<Void, Never>?
  var wakePending = false
  var flushing = 0
  var closing = false
  var closed = false
  var firstError: KafkaError?
  var producerId: Int64 = -1
  var producerEpoch: Int16 = -1
  var idempotent: Bool
  var needsProducerId: Bool
  /// Records given to the synchronous ``KafkaProducer/send(_:)`` that wait for their
  /// topic's metadata, in order (later sends queue behind them); counted in
  /// `pendingRecords`, their sizes in `backlogBytes`.
  var backlog:
    [(record: KafkaProducer.PendingRecord, waiter: RecordWaiter?, deadline: ContinuousClock.Instant)] =
      []
  var backlogBytes = 0
  var lastMessageId: UInt = 0

  /// Whether a record of `size` bytes fits in `limit` (an empty buffer takes any record);
  /// with `countingBacklog`, the backlog's bytes count as taken.
  func fits(_ size: Int, in limit: Int, countingBacklog: Bool) -> Bool {
    let taken = bufferedBytes + (countingBacklog ? backlogBytes : 0)
    return taken == 0 || taken + size <= limit
  }

  /// The flush waiters to resume once nothing is pending (none while something is).
  mutating func takeFlushWaitersIfIdle() -> [CheckedContinuation<Void, Never>] {
    guard pendingRecords == 0 else { return [] }
    defer {
      flushing -= flushWaiters.count
      flushWaiters = []
    }
    return flushWaiters
  }
}

/// Produces records to Kafka topics.
///
/// Records are batched per partition: a batch leaves when it reaches
/// ``KafkaProducerConfiguration/batchSize`` or has waited ``KafkaProducerConfiguration/linger``.
/// Partitions are chosen like the Java client and librdkafka's `murmur2_random`: murmur2 of
/// the key, or a sticky random partition (changed with each new batch) for records without
/// a key. With idempotence (the default, with acks=all) the producer gets a producer id
/// from the broker and numbers each partition's batches, so a batch retried after a lost
/// response is written once. One batch per partition is in flight at a time, which keeps
/// retries in order.
///
/// ``send(_:)`` waits for the acknowledgement; ``enqueue(_:)`` returns once the record is
/// buffered and reports failures from ``flush()`` — the fast path for bulk loads.
///
/// As a swift-service-lifecycle `Service`, ``run()`` waits for graceful shutdown and then
/// closes the producer (flushing what is buffered).
public final class KafkaProducer: Service, Sendable {
  /// The configuration the producer was created with.
  public let configuration: KafkaProducerConfiguration
  let cluster: KafkaCluster
  let logger: Logger
  let state: Mutex<ProducerState>
  private let sender: Mutex<Task<Void, Never>?> = Mutex(nil)
  private let closer: Mutex<Task<Void, any Error>?> = Mutex(nil)
  /// Where delivery reports of ``send(_:)`` go (nil: nobody asked for them).
  @usableFromInline
  let events: AsyncStream<KafkaProducerEvent>.Continuation?

  /// Creates a producer and starts its sender task; connections open on first use.
  /// Throws `.config` for an invalid configuration.
  public convenience init(
    configuration: KafkaProducerConfiguration, logger: Logger = Logger(label: "KafkaProducer")
  ) throws {
    try self.init(configuration: configuration, logger: logger, events: nil)
  }

  /// A producer with librdkafka-named settings (swift-kafka-client's initializer). Its
  /// ``send(_:)`` reports nothing; use ``makeProducerWithEvents(config:logger:)`` for
  /// delivery reports, or ``sendAndAwait(_:)``.
  public convenience init(config: KafkaProducerConfig, logger: Logger) throws {
    try self.init(configuration: config.configuration(), logger: logger, events: nil)
  }

  /// A producer and the sequence of its events: a delivery report for every message given
  /// to ``send(_:)`` (swift-kafka-client's factory).
  public static func makeProducerWithEvents(config: KafkaProducerConfig, logger: Logger) throws -> (
    KafkaProducer, KafkaProducerEvents
  ) {
    try makeProducerWithEvents(configuration: config.configuration(), logger: logger)
  }

  /// ``makeProducerWithEvents(config:logger:)`` with Swift-typed settings.
  public static func makeProducerWithEvents(
    configuration: KafkaProducerConfiguration, logger: Logger = Logger(label: "KafkaProducer")
  ) throws -> (KafkaProducer, KafkaProducerEvents) {
    let (stream, continuation) = AsyncStream.makeStream(of: KafkaProducerEvent.self)
    let producer = try KafkaProducer(configuration: configuration, logger: logger, events: continuation)
    return (producer, KafkaProducerEvents(stream: stream))
  }

  private init(
    configuration: KafkaProducerConfiguration, logger: Logger,
    events: AsyncStream<KafkaProducerEvent>.Continuation?
  ) throws {
    self.events = events
    guard configuration.batchSize > 0, configuration.bufferMemory >= configuration.batchSize else {
      throw KafkaError(.config, "batchSize must be positive and no larger than bufferMemory")
    }
    self.configuration = configuration
    self.logger = logger
    self.cluster = try KafkaCluster(
      bootstrap: configuration.bootstrapAddresses, settings: configuration.connection, logger: logger)
    let idempotent = configuration.enableIdempotence && configuration.acks == .all
    self.state = Mutex(ProducerState(idempotent: idempotent, needsProducerId: idempotent))
    let task = Task { [self] in await self.runSender() }
    sender.withLock { $0 = task }
  }

  /// swift-kafka-client's factory name.
  public static func makeProducer(
    configuration: KafkaProducerConfiguration, logger: Logger = Logger(label: "KafkaProducer")
  ) throws -> KafkaProducer {
    try KafkaProducer(configuration: configuration, logger: logger)
  }

  // MARK: Sending

  /// Sends one record and waits until the broker acknowledges it or it fails for good
  /// (``KafkaProducerConfiguration/deliveryTimeout`` bounds the wait, whatever the
  /// connection state). A delivery failure is the report's `.failure`; a closed producer
  /// or a partition that does not exist is thrown.
  @inlinable
  public func sendAndAwait<Key, Value>(_ message: KafkaProducerMessage<Key, Value>) async throws
    -> KafkaDeliveryReport
  {
    let record = PendingRecord(
      topic: message.topic, partition: message.partition, key: message.key?.kafkaByteBuffer,
      value: message.value?.kafkaByteBuffer, headers: message.headers, timestamp: message.timestamp)
    let id = nextMessageId()
    return try await withCheckedThrowingContinuation { continuation in
      let waiter = RecordWaiter(id: id, continuation: continuation, record: record)
      do {
        if try tryAppend(record, waiter: waiter) { return }
      } catch {
        continuation.resume(throwing: error)
        return
      }
      // Metadata or buffer space needed first. Nothing was appended, so exactly one of
      // `add` (through the batch) or the catch below resumes the continuation.
      let deadline = ContinuousClock.now + configuration.deliveryTimeout
      Task { [self] in
        do {
          try await self.add(record, waiter: waiter, deadline: deadline)
        } catch let error as KafkaError where error.code != .closed {
          continuation.resume(returning: KafkaDeliveryReport(status: .failure(error), id: id))
        } catch {
          continuation.resume(throwing: error)
        }
      }
    }
  }

  /// Hands one record to the producer and returns at once with its id
  /// (swift-kafka-client's fire-and-forget `send`). Its delivery report, with that id,
  /// comes through the events of ``makeProducerWithEvents(config:logger:)``; without
  /// them, a failure is thrown by the next ``flush()``.
  ///
  /// Throws `.queueFull` when ``KafkaProducerConfiguration/bufferMemory`` is taken (it
  /// does not wait, as librdkafka's), `.closed` after shutdown. Records sent before their
  /// topic's metadata is known wait for it in order; later sends queue behind them.
  @inlinable
  @discardableResult
  public func send<Key, Value>(_ message: KafkaProducerMessage<Key, Value>) throws -> KafkaProducerMessageID {
    let record = PendingRecord(
      topic: message.topic, partition: message.partition, key: message.key?.kafkaByteBuffer,
      value: message.value?.kafkaByteBuffer, headers: message.headers, timestamp: message.timestamp)
    let id = nextMessageId()
    let waiter = events == nil ? nil : RecordWaiter(id: id, continuation: nil, record: record)
    try sendNow(record, waiter: waiter)
    return id
  }

  @usableFromInline
  func nextMessageId() -> KafkaProducerMessageID {
    state.withLock { s in
      s.lastMessageId += 1
      return KafkaProducerMessageID(rawValue: s.lastMessageId)
    }
  }

  /// Buffers one record and returns without waiting for the broker. A failure to deliver
  /// it is thrown by the next ``flush()`` (or ``close()``).
  ///
  /// The common case — topic metadata known, buffer not full — appends under one lock
  /// acquisition without suspending.
  @inlinable
  public func enqueue<Key, Value>(_ message: KafkaProducerMessage<Key, Value>) async throws {
    let record = PendingRecord(
      topic: message.topic, partition: message.partition, key: message.key?.kafkaByteBuffer,
      value: message.value?.kafkaByteBuffer, headers: message.headers, timestamp: message.timestamp)
    if try tryAppend(record, waiter: nil) { return }
    try await add(record, waiter: nil)
  }

  /// Sends every buffered record now and waits until all are acknowledged or failed; throws
  /// the first failure since the last flush.
  public func flush() async throws {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let done = state.withLock { s -> Bool in
        if s.pendingRecords == 0 { return true }
        s.flushing += 1
        s.flushWaiters.append(continuation)
        return false
      }
      if done { continuation.resume() } else { wake() }
    }
    if let error = state.withLock({ s -> KafkaError? in
      defer { s.firstError = nil }
      return s.firstError
    }) {
      throw error
    }
  }

  /// Flushes, stops the sender and closes the connections. Idempotent: a second call
  /// waits for the first.
  public func close() async throws {
    let task = closer.withLock { task in
      if let task { return task }
      let new = Task { try await self.closeOnce() }
      task = new
      return new
    }
    try await task.value
  }

  private func closeOnce() async throws {
    state.withLock { $0.closing = true }
    var flushError: (any Error)?
    do { try await flush() } catch { flushError = error }
    state.withLock { $0.closed = true }
    wake()
    let task = sender.withLock { $0 }
    await task?.value
    events?.finish()
    await cluster.close()
    if let flushError { throw flushError }
  }

  /// Waits for graceful shutdown (or cancellation), then closes the producer
  /// (swift-service-lifecycle). Throws a delivery failure found while flushing.
  public func run() async throws {
    try? await gracefulShutdown()
    try await close()
  }

  /// Starts closing the producer without waiting (swift-kafka-client's name).
  public func triggerGracefulShutdown() {
    Task { try? await close() }
  }

  // MARK: Appending

  /// A record on its way into a batch, with its key and value as buffers.
  @usableFromInline
  struct PendingRecord: Sendable {
    var topic: String
    var partition: KafkaPartition
    var key: ByteBuffer?
    var value: ByteBuffer?
    var headers: [KafkaHeader]
    var timestamp: Int64?
    var size: Int

    @usableFromInline
    init(
      topic: String, partition: KafkaPartition, key: ByteBuffer?, value: ByteBuffer?, headers: [KafkaHeader],
      timestamp: Int64?
    ) {
      self.topic = topic
      self.partition = partition
      self.key = key
      self.value = value
      self.headers = headers
      self.timestamp = timestamp
      var size = 24 + (key?.readableBytes ?? 0) + (value?.readableBytes ?? 0)
      for header in headers { size += header.key.utf8.count + (header.value?.readableBytes ?? 0) + 4 }
      self.size = size
    }
  }

  /// The fast path: appends under one lock when the topic's partition count is known and
  /// the buffer has room. False when the slow path (metadata, waiting for space) is needed.
  @usableFromInline
  func tryAppend(_ record: PendingRecord, waiter: RecordWaiter?) throws(KafkaError) -> Bool {
    try tryAppend(record, waiter: waiter, origin: .caller) == .appended
  }

  /// Who appends: ``send(_:)`` (behind the backlog), another caller, or the slow path
  /// with a record accepted before the producer started closing.
  @usableFromInline
  enum Origin: Sendable {
    case send, caller, accepted
  }

  /// The fast path's outcome: `.needsMetadata` and `.needsSpace` tell why it could not
  /// append. From ``send(_:)``, a backlog waiting for metadata comes first.
  @usableFromInline
  func tryAppend(_ record: PendingRecord, waiter: RecordWaiter?, origin: Origin) throws(KafkaError)
    -> FastPath
  {
    let timestamp = record.timestamp ?? Self.nowMillis()
    let outcome = state.withLock { s -> AppendOutcome in
      if origin == .accepted ? s.closed : s.closing { return .closed }
      if origin == .send && !s.backlog.isEmpty { return .slow(.needsMetadata) }
      guard let topic = s.topics[record.topic] else { return .slow(.needsMetadata) }
      let count = topic.partitionCount
      // A record from the backlog is already counted in `backlogBytes`.
      guard s.fits(record.size, in: configuration.bufferMemory, countingBacklog: origin != .accepted) else {
        return .slow(.needsSpace)
      }
      let partition: Int
      if record.partition != .unassigned {
        guard record.partition.rawValue >= 0, record.partition.rawValue < count else {
          return .badPartition(count)
        }
        partition = record.partition.rawValue
      } else if let key = record.key {
        partition = kafkaPartition(forKey: key, partitionCount: count).rawValue
      } else {
        partition = topic.sticky ?? -1
      }
      return .appended(
        sealed: appendLocked(&s, record, partition: partition, timestamp: timestamp, waiter: waiter))
    }
    switch outcome {
    case .appended(let sealed):
      if sealed { wake() }
      return .appended
    case .slow(let reason):
      return reason
    case .closed:
      throw KafkaError(.closed, "producer is closed")
    case .badPartition(let count):
      throw KafkaError.broker(
        .unknownTopicOrPartition, "topic \(record.topic) has \(count) partitions, not \(record.partition)")
    }
  }

  @usableFromInline
  enum FastPath: Sendable {
    case appended, needsMetadata, needsSpace
  }

  @usableFromInline
  enum AppendOutcome {
    case appended(sealed: Bool)
    case slow(FastPath)
    case closed
    case badPartition(Int)
  }

  /// ``send(_:)``'s path: appends now, or queues the record behind the backlog of records
  /// waiting for metadata, or throws `.queueFull`.
  @usableFromInline
  func sendNow(_ record: PendingRecord, waiter: RecordWaiter?) throws(KafkaError) {
    switch try tryAppend(record, waiter: waiter, origin: .send) {
    case .appended: return
    case .needsSpace: throw queueFull
    case .needsMetadata: break
    }
    let deadline = ContinuousClock.now + configuration.deliveryTimeout
    let start = try state.withLock { s throws(KafkaError) -> Bool in
      if s.closing { throw KafkaError(.closed, "producer is closed") }
      guard s.fits(record.size, in: configuration.bufferMemory, countingBacklog: true) else {
        throw queueFull
      }
      s.backlog.append((record, waiter, deadline))
      s.backlogBytes += record.size
      s.pendingRecords += 1
      return s.backlog.count == 1
    }
    if start { Task { await self.drainBacklog() } }
  }

  private var queueFull: KafkaError {
    KafkaError(.queueFull, "the producer's buffer of \(configuration.bufferMemory) bytes is full")
  }

  /// Appends the backlog's records in order, each once its topic's metadata is known (or
  /// fails it at its delivery deadline); one task at a time.
  ///
  /// The drainer removes a record and looks at the next under one lock, and stops only when
  /// it found the backlog empty there, so that a ``send(_:)`` appending to an empty backlog
  /// (which starts a new drainer) never meets a drainer still running.
  private func drainBacklog() async {
    var next = state.withLock { $0.backlog.first }
    while let (record, waiter, deadline) = next {
      var failure: KafkaError?
      do {
        try await add(record, waiter: waiter, deadline: deadline)
      } catch {
        failure = error as? KafkaError ?? KafkaError(.connectionFailed, "\(error)")
      }
      // Reported before the record stops counting, so that close() cannot finish the
      // events first.
      if let failure, let waiter { report([(waiter, .failure(failure))]) }
      let (flushes, following) = state.withLock { s in
        s.backlog.removeFirst()
        s.backlogBytes -= record.size
        s.pendingRecords -= 1
        if let failure, s.firstError == nil { s.firstError = failure }
        return (s.takeFlushWaitersIfIdle(), s.backlog.first)
      }
      for flush in flushes { flush.resume() }
      next = following
    }
  }

  /// Hands outcomes to their waiters: a `sendAndAwait` caller, else the events sequence.
  private func report(_ outcomes: [(RecordWaiter, KafkaDeliveryReport.Status)]) {
    var reports: [KafkaDeliveryReport] = []
    for (waiter, status) in outcomes {
      let report = KafkaDeliveryReport(status: status, id: waiter.id)
      if let continuation = waiter.continuation {
        continuation.resume(returning: report)
      } else {
        reports.append(report)
      }
    }
    if !reports.isEmpty { events?.yield(.deliveryReports(reports)) }
  }

  /// The slow path: fetches the topic's metadata and waits for buffer space as needed, then
  /// appends. With a `deadline` (a send's delivery deadline) both waits end there with
  /// `.timedOut`; the record is appended only here, on the caller's path, so a send reported
  /// as timed out is never appended later.
  @usableFromInline
  func add(_ record: PendingRecord, waiter: RecordWaiter?, deadline: ContinuousClock.Instant? = nil)
    async throws
  {
    while true {
      if state.withLock({ $0.closed }) { throw KafkaError(.closed, "producer is closed") }
      if let deadline, state.withLock({ $0.topics[record.topic] == nil }) {
        // The lookup goes on in the background past the deadline; it only fills the cache.
        let topic = record.topic
        _ = try await withDeadline(deadline) { try await self.partitionCount(topic) }
      } else {
        _ = try await partitionCount(record.topic)
      }
      if try tryAppend(record, waiter: waiter, origin: .accepted) == .appended { return }
      try await waitForSpace(record.size, deadline: deadline)
    }
  }

  private func partitionCount(_ topic: String) async throws -> Int {
    if let count = state.withLock({ $0.topics[topic]?.partitionCount }) { return count }
    let metadata = try await cluster.topic(
      topic, allowAutoTopicCreation: configuration.allowAutoTopicCreation)
    state.withLock { s in
      if s.topics[topic] == nil { s.topics[topic] = (metadata.partitionCount, nil) }
    }
    return metadata.partitionCount
  }

  private func waitForSpace(_ size: Int, deadline: ContinuousClock.Instant?) async throws {
    // At the deadline every space waiter is woken (the others look again and wait on).
    let alarm = deadline.map { deadline in
      Task { [self] in
        try await Task.sleep(until: deadline)
        let waiters = state.withLock { s in
          defer { s.spaceWaiters = [] }
          return s.spaceWaiters
        }
        for waiter in waiters { waiter.resume() }
      }
    }
    defer { alarm?.cancel() }
    while true {
      let hasSpace = state.withLock { $0.fits(size, in: configuration.bufferMemory, countingBacklog: false) }
      if hasSpace { return }
      if let deadline, ContinuousClock.now >= deadline {
        throw KafkaError(.timedOut, "delivery timed out waiting for buffer space")
      }
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let resumeNow = state.withLock { s -> Bool in
          if s.fits(size, in: configuration.bufferMemory, countingBacklog: false) || s.closed {
            return true
          }
          s.spaceWaiters.append(continuation)
          return false
        }
        if resumeNow { continuation.resume() }
      }
      if state.withLock({ $0.closed }) { throw KafkaError(.closed, "producer is closed") }
    }
  }

  /// Appends to the partition's open batch in place (one dictionary access; a record without
  /// key or partition, `requested` -1, gets a new sticky partition); true when the
  /// sender must be woken (a new batch starts its linger timer, a full one can leave).
  private func appendLocked(
    _ s: inout ProducerState, _ record: PendingRecord, partition requested: Int, timestamp: Int64,
    waiter: RecordWaiter?
  ) -> Bool {
    var partition = requested
    if partition < 0 {
      partition = Int.random(in: 0..<(s.topics[record.topic]?.partitionCount ?? 1))
      s.topics[record.topic]?.sticky = partition
    }
    let topicPartition = KafkaTopicPartition(
      topic: record.topic, partition: KafkaPartition(rawValue: partition))
    let headers =
      record.headers.isEmpty ? [] : record.headers.map { RecordHeader(key: $0.key, value: $0.value) }
    let batchSize = configuration.batchSize
    let compression = configuration.compression
    let (sealed, full) = s.queues[topicPartition, default: ProducerState.PartitionQueue()].append(
      topicPartition, key: record.key, value: record.value, headers: headers, timestamp: timestamp,
      size: record.size, waiter: waiter, batchSize: batchSize, compression: compression)
    s.bufferedBytes += record.size
    s.pendingRecords += 1
    if full && s.topics[record.topic]?.sticky == partition {
      s.topics[record.topic]?.sticky = nil
    }
    return sealed
  }

  // MARK: Sender

  private func wake() {
    let continuation = state.withLock { s -> CheckedContinuation<Void, Never>? in
      if let c = s.senderWakeup {
        s.senderWakeup = nil
        return c
      }
      s.wakePending = true
      return nil
    }
    continuation?.resume()
  }

  private func park(until deadline: ContinuousClock.Instant?) async {
    var timer: Scheduled<Void>?
    if let deadline {
      let delay = deadline - .now
      timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: delay.timeAmount) { [self] in
        wake()
      }
    }
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      let resumeNow = state.withLock { s -> Bool in
        if s.wakePending {
          s.wakePending = false
          return true
        }
        s.senderWakeup = continuation
        return false
      }
      if resumeNow { continuation.resume() }
    }
    timer?.cancel()
  }

  /// Takes every batch that may leave now, stamping producer id and sequence. Returns the
  /// batches, the earliest linger deadline of those that must wait, and whether the sender
  /// should stop.
  private func drain() -> (batches: [ProducerBatch], deadline: ContinuousClock.Instant?, stop: Bool) {
    let now = ContinuousClock.now
    return state.withLock { s in
      var out: [ProducerBatch] = []
      var deadline: ContinuousClock.Instant?
      let hurry = s.flushing > 0 || s.closed
      for (topicPartition, var queue) in s.queues where !queue.inFlight {
        var batch: ProducerBatch
        if !queue.ready.isEmpty {
          batch = queue.ready.removeFirst()
        } else if let open = queue.open {
          let due = open.created + configuration.linger
          guard hurry || due <= now else {
            deadline = min(deadline ?? due, due)
            continue
          }
          batch = open
          queue.open = nil
          if s.topics[topicPartition.topic]?.sticky == topicPartition.partition.rawValue {
            s.topics[topicPartition.topic]?.sticky = nil
          }
        } else {
          continue
        }
        if s.idempotent && batch.stamp == nil {
          batch.stamp = (s.producerId, s.producerEpoch, queue.nextSequence)
          queue.nextSequence = queue.nextSequence &+ batch.count
          if queue.nextSequence < 0 { queue.nextSequence = 0 }  // wraps after Int32.max
        }
        queue.inFlight = true
        s.queues[topicPartition] = queue
        out.append(batch)
      }
      return (out, deadline, s.closed && s.pendingRecords == 0)
    }
  }

  private func runSender() async {
    await withDiscardingTaskGroup { group in
      while true {
        if state.withLock({ $0.needsProducerId && !$0.closed && $0.pendingRecords > 0 }) {
          await initProducerId()
        }
        let (batches, deadline, stop) = drain()
        if stop { break }
        if batches.isEmpty {
          await park(until: deadline)
          continue
        }
        // Group by leader; a batch whose leader is unknown goes back with an error.
        var byLeader: [Int32: [ProducerBatch]] = [:]
        for batch in batches {
          do {
            // Bounded by the delivery deadline: with no broker reachable the lookup would
            // wait for the connect timeout.
            let topic = batch.topicPartition.topic
            let metadata: TopicMetadata
            if let cached = await cluster.cachedTopic(topic) {
              metadata = cached
            } else {
              metadata = try await withDeadline(batch.created + configuration.deliveryTimeout) {
                try await self.cluster.topic(topic)
              }
            }
            let leader = metadata.leaders[Int32(batch.topicPartition.partition.rawValue)] ?? -1
            guard leader >= 0 else {
              throw KafkaError.broker(.leaderNotAvailable, "no leader for \(batch.topicPartition)")
            }
            byLeader[leader, default: []].append(batch)
          } catch {
            await finish(batch, error: error as? KafkaError ?? KafkaError(.connectionFailed, "\(error)"))
          }
        }
        for (leader, batches) in byLeader {
          group.addTask { [self] in await self.produce(batches, leader: leader) }
        }
      }
    }
  }

  private func initProducerId() async {
    do {
      let connection = try await cluster.anyConnection()
      guard connection.supports(.initProducerId) else {
        logger.warning("broker does not support InitProducerId; idempotence disabled")
        state.withLock {
          $0.idempotent = false
          $0.needsProducerId = false
        }
        return
      }
      let version = try connection.version(for: .initProducerId, max: 4)
      var request = InitProducerIdRequest()
      request.transactionalId = nil
      request.transactionTimeoutMs = 60_000
      guard
        case .initProducerId(let response) = try await connection.send(
          .initProducerId(request), version: version)
      else { throw KafkaError(.protocolError, "not an InitProducerId response") }
      try ErrorCode(rawValue: response.errorCode).check("InitProducerId")
      logger.debug("producer id \(response.producerId) epoch \(response.producerEpoch)")
      state.withLock { s in
        s.producerId = response.producerId
        s.producerEpoch = response.producerEpoch
        s.needsProducerId = false
        for key in s.queues.keys {
          s.queues[key]!.nextSequence = 0
          for i in s.queues[key]!.ready.indices { s.queues[key]!.ready[i].stamp = nil }
        }
      }
    } catch {
      logger.warning("InitProducerId failed: \(error)")
      try? await Task.sleep(for: configuration.retryBackoff)
    }
  }

  /// Sends one Produce request with `batches` (one per partition) to `leader`.
  private func produce(_ batches: [ProducerBatch], leader: Int32) async {
    var batches = batches
    do {
      for i in batches.indices {
        try encode(&batches[i])
      }
    } catch {
      for batch in batches {
        await finish(batch, error: error as? KafkaError ?? KafkaError(.protocolError, "\(error)"))
      }
      return
    }
    var request = ProduceRequest()
    request.acks = configuration.acks.rawValue
    request.timeoutMs = Int32(clamping: configuration.connection.requestTimeout.milliseconds)
    var byTopic: [String: [ProduceRequest.PartitionProduceData]] = [:]
    var order: [String] = []
    for batch in batches {
      if byTopic[batch.topicPartition.topic] == nil { order.append(batch.topicPartition.topic) }
      byTopic[batch.topicPartition.topic, default: []].append(
        .init(index: Int32(batch.topicPartition.partition.rawValue), records: batch.built!.buffer))
    }
    request.topicData = order.map { ProduceRequest.TopicProduceData(name: $0, partitionData: byTopic[$0]!) }
    do {
      let deadline = batches.map(\.created).min()! + configuration.deliveryTimeout
      let connection: KafkaConnection
      if let open = await cluster.openConnection(node: leader) {
        connection = open
      } else {
        connection = try await withDeadline(deadline) { try await self.cluster.connection(node: leader) }
      }
      let needsZstd = batches.contains { $0.builder.attributes.compression == .zstd }
      let version = try connection.version(for: .produce, min: needsZstd ? 7 : 3, max: 10)
      if configuration.acks == .none {
        try await connection.sendWithoutResponse(.produce(request), version: version)
        for batch in batches { await finish(batch, baseOffset: -1, logAppendTime: -1) }
        return
      }
      if configuration.duplicateEveryProduceRequest {
        _ = try await connection.send(.produce(request), version: version)
      }
      guard case .produce(let response) = try await connection.send(.produce(request), version: version)
      else {
        throw KafkaError(.protocolError, "not a Produce response")
      }
      var results: [KafkaTopicPartition: ProduceResponse.PartitionProduceResponse] = [:]
      for topic in response.responses {
        for partition in topic.partitionResponses {
          results[
            KafkaTopicPartition(topic: topic.name, partition: KafkaPartition(rawValue: Int(partition.index)))] =
            partition
        }
      }
      for batch in batches {
        guard let result = results[batch.topicPartition] else {
          await finish(
            batch, error: KafkaError(.protocolError, "no Produce result for \(batch.topicPartition)"))
          continue
        }
        let code = ErrorCode(rawValue: result.errorCode)
        if code == .none || code == .duplicateSequenceNumber {
          await finish(
            batch, baseOffset: code == .none ? result.baseOffset : -1, logAppendTime: result.logAppendTimeMs)
        } else {
          await finish(
            batch, error: .broker(code, "produce to \(batch.topicPartition)", message: result.errorMessage))
        }
      }
    } catch {
      let failure = error as? KafkaError ?? KafkaError(.connectionClosed, "\(error)")
      for batch in batches { await finish(batch, error: failure) }
    }
  }

  private func encode(_ batch: inout ProducerBatch) throws {
    if batch.built == nil {
      batch.built = try batch.builder.build()
    }
    if let stamp = batch.stamp, var built = batch.built,
      built.producerId != stamp.producerId
        || built.producerEpoch != stamp.epoch || built.baseSequence != stamp.sequence
    {
      var buffer = built.buffer
      let start = buffer.readerIndex
      buffer.setInteger(stamp.producerId, at: start + RecordBatch.Layout.producerId)
      buffer.setInteger(stamp.epoch, at: start + RecordBatch.Layout.producerEpoch)
      buffer.setInteger(stamp.sequence, at: start + RecordBatch.Layout.baseSequence)
      built = try RecordBatch(buffer)
      built.updateCRC()
      batch.built = built
    }
  }

  /// Completes a batch successfully.
  private func finish(_ batch: ProducerBatch, baseOffset: Int64, logAppendTime: Int64) async {
    report(
      batch.waiters.map { index, waiter in
        let message = KafkaAcknowledgedMessage(
          topic: batch.topicPartition.topic, partition: batch.topicPartition.partition,
          offset: KafkaOffset(rawValue: baseOffset < 0 ? -1 : Int(baseOffset) + Int(index)),
          logAppendTime: logAppendTime, key: waiter.key, value: waiter.value ?? ByteBuffer(),
          headers: waiter.headers)
        return (waiter, .acknowledged(message: message))
      })
    release(batch, requeue: nil, error: nil)
  }

  /// Retries a batch after a retriable error (within the delivery timeout), else fails it.
  private func finish(_ batch: ProducerBatch, error: KafkaError) async {
    var batch = batch
    batch.attempts += 1
    let expired = ContinuousClock.now - batch.created > configuration.deliveryTimeout
    let closedNow = state.withLock { $0.closed }
    if error.isRetriable && !expired && !closedNow {
      logger.debug("retrying \(batch.topicPartition) after \(error)")
      if error.brokerErrorCode != nil || error.code == .connectionClosed || error.code == .connectionFailed {
        await cluster.invalidate(topic: batch.topicPartition.topic)
      }
      try? await Task.sleep(for: configuration.retryBackoff)
      release(batch, requeue: batch, error: nil)
      return
    }
    let final =
      expired && error.isRetriable ? KafkaError(.timedOut, "delivery timed out: \(error.message)") : error
    report(batch.waiters.map { ($0.waiter, .failure(final)) })
    let sequenceBroken =
      final.brokerErrorCode == .outOfOrderSequenceNumber || final.brokerErrorCode == .unknownProducerId
      || batch.stamp != nil
    release(batch, requeue: nil, error: final, resetSequences: sequenceBroken)
  }

  private func release(
    _ batch: ProducerBatch, requeue: ProducerBatch?, error: KafkaError?, resetSequences: Bool = false
  ) {
    let (spaceWaiters, flushWaiters) = state.withLock { s in
      var queue = s.queues[batch.topicPartition] ?? ProducerState.PartitionQueue()
      queue.inFlight = false
      if let requeue {
        queue.ready.insert(requeue, at: 0)
        s.queues[batch.topicPartition] = queue
        return ([CheckedContinuation<Void, Never>](), [CheckedContinuation<Void, Never>]())
      }
      s.queues[batch.topicPartition] = queue
      if let error, s.firstError == nil { s.firstError = error }
      if resetSequences && s.idempotent {
        // A batch with a sequence number was lost: the partition's sequence has a gap, so
        // start over with a new producer id (later batches are restamped).
        s.needsProducerId = true
      }
      s.bufferedBytes -= batch.bytes
      s.pendingRecords -= Int(batch.count)
      let space = s.spaceWaiters
      s.spaceWaiters = []
      return (space, s.takeFlushWaitersIfIdle())
    }
    for waiter in spaceWaiters { waiter.resume() }
    for waiter in flushWaiters { waiter.resume() }
    wake()
  }

  /// Runs `body`, but throws `.timedOut` at `deadline` if it has not finished by then (it
  /// goes on in the background; used for metadata and connections, which are safe to
  /// abandon).
  private func withDeadline<T: Sendable>(
    _ deadline: ContinuousClock.Instant, _ body: @escaping @Sendable () async throws -> T
  ) async throws -> T {
    let done = Mutex(false)
    let claim: @Sendable () -> Bool = {
      done.withLock { taken in
        defer { taken = true }
        return !taken
      }
    }
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
      let timer = Task {
        try? await Task.sleep(until: deadline)
        if claim() { continuation.resume(throwing: KafkaError(.timedOut, "delivery timed out")) }
      }
      Task {
        do {
          let value = try await body()
          if claim() { continuation.resume(returning: value) }
        } catch {
          if claim() { continuation.resume(throwing: error) }
        }
        timer.cancel()
      }
    }
  }

  static func nowMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
  }
}
