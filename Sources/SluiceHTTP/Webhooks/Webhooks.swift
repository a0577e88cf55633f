import CoreMetrics
import Crypto
import Foundation
import KafkaProtocol
import Logging
public import NIOCore
import NIOHTTP1
import SluiceBroker
import Synchronization

/// A webhook subscription: every record of `topic` POSTed to `url`, in order per partition,
/// at least once. Stored durably (``WebhookStore``).
public struct WebhookSpec: Codable, Sendable, Equatable {
  public var name: String
  public var topic: String
  public var url: String
  /// A Standard Webhooks secret (`whsec_` + base64 of the key), or nil to send unsigned.
  public var secret: String?
  public var maxAttempts: Int
  public var deadLetterTopic: String
  /// Where a new subscription starts: `beginning` or `end`.
  public var from: String
  public var timeoutMs: Int64
  public var retryBackoffMs: Int64
  public var maxBackoffMs: Int64
  public var paused: Bool

  static let namePattern = "[A-Za-z0-9._-]{1,200}"

  static func validName(_ name: String) -> Bool {
    !name.isEmpty && name.utf8.count <= 200
      && name.utf8.allSatisfy {
        ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A)
          || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
      }
  }

  /// A `POST /v1/webhooks` body, checked as the API checks it (unknown fields, names, URL,
  /// secret, ranges).
  public static func parse(_ body: ByteBuffer) -> Result<WebhookSpec, RestError> {
    JSONBody.object(body, allowed: WebhookAPI.fields).flatMap { WebhookAPI.spec($0!) }
  }

  /// The consumer group whose committed offsets are the subscription's progress.
  public var group: String { "sluice-webhook-\(name)" }

  /// The HMAC key, from the `whsec_` secret.
  var key: SymmetricKey? { secret.flatMap(WebhookSignature.key) }
}

/// Standard Webhooks signatures: `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")).
public enum WebhookSignature {
  public static func sign(secret: String, id: String, timestamp: Int64, body: ByteBuffer) -> String? {
    key(secret).map { sign(key: $0, id: id, timestamp: timestamp, body: body) }
  }

  /// The HMAC key a `whsec_` secret holds (the base64 after the prefix).
  static func key(_ secret: String) -> SymmetricKey? {
    let encoded = secret.hasPrefix("whsec_") ? String(secret.dropFirst(6)) : secret
    guard let bytes = Base64.decode(encoded) else { return nil }
    return SymmetricKey(data: Array(bytes.readableBytesView))
  }

  static func sign(key: SymmetricKey, id: String, timestamp: Int64, body: ByteBuffer) -> String {
    var hmac = HMAC<SHA256>(key: key)
    hmac.update(data: Array("\(id).\(timestamp).".utf8))
    hmac.update(data: Array(body.readableBytesView))
    let mac = hmac.finalize()
    return "v1," + Base64.encode(ByteBuffer(bytes: Array(mac)))
  }
}

/// The subscriptions file, `webhooks.json` in the data directory: written whole to a
/// temporary file, fsynced, and renamed over the old one (then the directory fsynced), off the
/// event loops.
struct WebhookStore: Sendable {
  let path: String

  init(directory: String) { path = directory + "/webhooks.json" }

  func load() throws -> [WebhookSpec] {
    guard FileManager.default.fileExists(atPath: path) else { return [] }
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return try JSONDecoder().decode([WebhookSpec].self, from: data)
  }

  func save(_ specs: [WebhookSpec]) async throws {
    let path = self.path
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let data = try encoder.encode(specs.sorted { $0.name < $1.name })
    let failure: (any Error)? = await offLoop {
      do {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        try data.withUnsafeBytes { raw in
          var written = 0
          while written < raw.count {
            let n = write(fd, raw.baseAddress! + written, raw.count - written)
            guard n > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            written += n
          }
        }
        guard fsync(fd) == 0, rename(temporary, path) == 0 else {
          throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        let directory = open((path as NSString).deletingLastPathComponent, O_RDONLY)
        if directory >= 0 {
          _ = fsync(directory)
          close(directory)
        }
        return nil
      } catch {
        return error
      }
    }
    if let failure { throw failure }
  }
}

/// Live figures of one subscription.
final class WebhookStats: Sendable {
  let delivered = Atomic<Int>(0)
  let failures = Atomic<Int>(0)
  let retries = Atomic<Int>(0)
  let deadLettered = Atomic<Int>(0)
  /// Delivery latency (record timestamp to 2xx): `sluice_webhook_delivery_latency_seconds`.
  let latency: CoreMetrics.Timer
  let last = Mutex<(error: String?, status: Int?, at: Int64?)>((nil, nil, nil))
  /// Deliveries of this subscription in flight (bounded by ``Webhooks/perSubscription``).
  let inFlight = Atomic<Int>(0)
  /// Whether delivery is paused.
  let paused = Atomic<Bool>(false)
  /// Next offset per partition (what has been delivered or dead-lettered).
  let positions = Mutex<[Int32: Int64]>([:])

  init(name: String) {
    latency = CoreMetrics.Timer(
      label: "sluice_webhook_delivery_latency_seconds", dimensions: [("webhook", name)])
  }
}

/// Runs every webhook subscription: per partition, records in order, each POSTed until a
/// 2xx or `maxAttempts`, then dead-lettered; progress committed as the subscription's
/// group's offsets after each chunk of records (at least once: after a crash, the records
/// since the last commit are delivered again).
public final class Webhooks: Sendable {
  struct Running: Sendable {
    var spec: WebhookSpec
    var task: Task<Void, Never>
    let stats: WebhookStats
  }

  /// Subscriptions at most; concurrent deliveries per subscription and in all.
  public static let maxSubscriptions = 1000
  static let perSubscription = 8
  /// Progress is committed after this many records or this long, whichever comes first.
  static let commitEveryRecords: Int64 = 20
  static let commitEveryMs: Int64 = 200
  static let total = 256

  let broker: Broker
  let logger: Logger
  let store: WebhookStore
  let running = Mutex<[String: Running]>([:])
  /// Deliveries in flight in all (bounded by ``total``).
  let inFlight = Atomic<Int>(0)
  let storeLock = AsyncMutex()
  /// The stored file could not be read: changes are refused (they would overwrite it).
  let loadFailed = Atomic<Bool>(false)

  init(broker: Broker, logger: Logger) {
    self.broker = broker
    self.logger = logger
    self.store = WebhookStore(directory: broker.config.dataDirectory)
  }

  /// Starts the stored subscriptions.
  func start() {
    do {
      for spec in try store.load() { launch(spec) }
    } catch {
      loadFailed.store(true, ordering: .relaxed)
      logger.error(
        "webhooks: cannot read \(store.path): \(error); webhook changes are refused until it is fixed")
    }
  }

  func stopAll() async {
    let all = running.withLock { table in
      defer { table.removeAll() }
      return Array(table.values)
    }
    for entry in all { entry.task.cancel() }
    for entry in all { await entry.task.value }
  }

  private func launch(_ spec: WebhookSpec) {
    let stats = WebhookStats(name: spec.name)
    stats.paused.store(spec.paused, ordering: .relaxed)
    running.withLock { table in
      let task = Task { [self] in await self.run(spec, stats: stats) }
      table[spec.name] = Running(spec: spec, task: task, stats: stats)
    }
  }

  func isPaused(_ name: String) -> Bool {
    running.withLock { $0[name]?.stats.paused.load(ordering: .relaxed) ?? true }
  }

  // MARK: Management

  enum Failure: Error {
    case exists, notFound, tooMany
    case storage(String)
  }

  func create(_ spec: WebhookSpec) async -> Failure? {
    await storeLock.locked {
      if loadFailed.load(ordering: .relaxed) { return .storage("\(store.path) could not be read at start") }
      let exists = running.withLock { $0[spec.name] != nil }
      if exists { return .exists }
      if running.withLock({ $0.count }) >= Self.maxSubscriptions { return .tooMany }
      do {
        try await store.save(specs() + [spec])
      } catch {
        return .storage("\(error)")
      }
      launch(spec)
      return nil
    }
  }

  func delete(_ name: String) async -> Failure? {
    await storeLock.locked {
      if loadFailed.load(ordering: .relaxed) { return .storage("\(store.path) could not be read at start") }
      guard let entry = running.withLock({ $0[name] }) else { return .notFound }
      do {
        try await store.save(specs().filter { $0.name != name })
      } catch {
        return .storage("\(error)")
      }
      running.withLock { _ = $0.removeValue(forKey: name) }
      entry.stats.latency.destroy()
      entry.task.cancel()
      await entry.task.value
      // Its progress goes too: a new subscription of the same name starts where `from` says.
      let partitions = broker.topic(entry.spec.topic)?.partitions.map {
        (topic: entry.spec.topic, partition: $0.index)
      }
      _ = await broker.deleteOffsets(group: entry.spec.group, partitions ?? [])
      return nil
    }
  }

  func setPaused(_ name: String, _ paused: Bool) async -> Failure? {
    await storeLock.locked {
      if loadFailed.load(ordering: .relaxed) { return .storage("\(store.path) could not be read at start") }
      guard var entry = running.withLock({ $0[name] }) else { return .notFound }
      entry.spec.paused = paused
      let updated = entry.spec
      do {
        try await store.save(specs().map { $0.name == name ? updated : $0 })
      } catch {
        return .storage("\(error)")
      }
      running.withLock { table in
        table[name]?.spec.paused = paused
        table[name]?.stats.paused.store(paused, ordering: .relaxed)
      }
      return nil
    }
  }

  func specs() -> [WebhookSpec] { running.withLock { $0.values.map(\.spec) }.sorted { $0.name < $1.name } }

  func describe(_ name: String) -> (WebhookSpec, WebhookStats)? {
    running.withLock { $0[name].map { ($0.spec, $0.stats) } }
  }

  // MARK: Delivery

  private func run(_ spec: WebhookSpec, stats: WebhookStats) async {
    // One worker per partition, at most `perSubscription` at once; partitions added later
    // are picked up every few seconds.
    await withTaskGroup(of: Void.self) { workers in
      var started: Set<Int32> = []
      var first = true
      while !Task.isCancelled {
        let partitions = broker.topic(spec.topic)?.partitions.map(\.index) ?? []
        for partition in partitions where !started.contains(partition) {
          started.insert(partition)
          // A partition added after the subscription began is delivered from its start.
          let added = !first
          workers.addTask { await self.deliverPartition(spec, partition, added: added, stats: stats) }
        }
        if !partitions.isEmpty { first = false }
        try? await Task.sleep(for: .seconds(2))
      }
      workers.cancelAll()
    }
  }

  /// The committed offset, else (a new subscription) where `from` says, committed at once
  /// so that a restart before the first delivery starts from the same place.
  private func startPosition(_ spec: WebhookSpec, _ partition: Partition, added: Bool) async -> Int64 {
    let committed = broker.committedOffsets(group: spec.group, topics: [(spec.topic, [partition.index])])
    if let offset = committed.first?.partitions.first?.committed?.offset, offset >= 0 { return offset }
    let start = spec.from == "beginning" || added ? partition.logStartOffset : partition.highWatermark
    _ = await commit(spec, partition.index, start)
    return start
  }

  private func deliverPartition(_ spec: WebhookSpec, _ index: Int32, added: Bool, stats: WebhookStats) async {
    guard let partition = broker.topic(spec.topic)?.partition(index) else { return }
    var position = await startPosition(spec, partition, added: added)
    var committed = position
    var lastCommit = broker.clock.monotonicMs()
    stats.positions.withLock { $0[index] = position }
    let key = spec.key
    let url = HTTPURL(spec.url)
    while !Task.isCancelled {
      if isPaused(spec.name) {
        try? await Task.sleep(for: .milliseconds(200))
        continue
      }
      let results = await broker.read(
        [PartitionRead(topic: spec.topic, partition: index, offset: position, maxBytes: 1 << 20)],
        options: ReadOptions(maxBytes: 1 << 20, minBytes: 1, maxWaitMs: 1000), context: CallContext())
      guard let result = results.first else { continue }
      if let failure = result.error {
        if failure.code == .offsetOutOfRange {
          position = position < result.logStartOffset ? result.logStartOffset : result.highWatermark
        } else {
          try? await Task.sleep(for: .seconds(1))
        }
        continue
      }
      guard result.records.count > 0 else { continue }
      var records: [Record] = []
      var next: Int64?
      do {
        let bytes = try result.records.load()
        next = try RecordWalk.walk(
          bytes, from: position, maxDecompressedSize: broker.config.maxDecompressedBatchBytes
        ) { record in
          records.append(record)
          return true
        }
      } catch {
        // Records that cannot be read (a damaged log): said, and retried slowly, not skipped.
        let now = broker.clock.now()
        stats.last.withLock {
          $0 = ("partition \(index) at offset \(position): cannot read records: \(error)", nil, now)
        }
        if records.isEmpty {
          try? await Task.sleep(for: .seconds(1))
          continue
        }
      }
      for record in records {
        guard !Task.isCancelled else { break }
        while isPaused(spec.name) && !Task.isCancelled { try? await Task.sleep(for: .milliseconds(200)) }
        guard !Task.isCancelled else { break }
        guard await deliver(record, spec, partition: index, key: key, url: url, stats: stats) else { break }
        position = record.offset + 1
        stats.positions.withLock { $0[index] = position }
        // The window a crash delivers again: at most this many records or this long.
        if position - committed >= Self.commitEveryRecords
          || broker.clock.monotonicMs() - lastCommit >= Self.commitEveryMs
        {
          if await commit(spec, index, position) { committed = position }
          lastCommit = broker.clock.monotonicMs()
        }
      }
      if !Task.isCancelled, let next, next > position, records.last.map({ $0.offset + 1 == position }) ?? true
      {
        position = next  // past control batches and compacted gaps
      }
      if position != committed, await commit(spec, index, position) {
        committed = position
        lastCommit = broker.clock.monotonicMs()
      }
    }
  }

  private func commit(_ spec: WebhookSpec, _ partition: Int32, _ position: Int64) async -> Bool {
    let codes = await broker.commitOffsets(
      GroupMemberRef(groupId: spec.group),
      [(topic: spec.topic, partition: partition, offset: CommittedOffset(offset: position))])
    return codes.first == ErrorCode.none
  }

  /// POSTs one record until a 2xx or `maxAttempts`; then dead-letters it. False only when
  /// the subscription is being stopped (the record is neither delivered nor dead-lettered).
  private func deliver(
    _ record: Record, _ spec: WebhookSpec, partition: Int32, key: SymmetricKey?, url: HTTPURL?,
    stats: WebhookStats
  ) async -> Bool {
    var json = JSONWriter()
    RecordJSON.write(record, topic: spec.topic, partition: partition, to: &json)
    let body = json.buffer
    let id = "msg_\(spec.name)_\(partition)_\(record.offset)"
    var lastError = "invalid URL"
    var lastStatus: Int?
    var attempt = 0
    while attempt < spec.maxAttempts, let url {
      // Paused between attempts: waits, without spending attempts.
      while isPaused(spec.name) && !Task.isCancelled { try? await Task.sleep(for: .milliseconds(200)) }
      if Task.isCancelled { return false }
      attempt += 1
      if attempt > 1 { stats.retries.wrappingAdd(1, ordering: .relaxed) }
      // Bounded per subscription (a slow receiver holds only its own slots) and in all.
      while stats.inFlight.wrappingAdd(1, ordering: .relaxed).newValue > Self.perSubscription {
        stats.inFlight.wrappingSubtract(1, ordering: .relaxed)
        try? await Task.sleep(for: .milliseconds(5))
        if Task.isCancelled { return false }
      }
      while inFlight.wrappingAdd(1, ordering: .relaxed).newValue > Self.total {
        inFlight.wrappingSubtract(1, ordering: .relaxed)
        try? await Task.sleep(for: .milliseconds(5))
        if Task.isCancelled {
          stats.inFlight.wrappingSubtract(1, ordering: .relaxed)
          return false
        }
      }
      let timestamp = Int64(Date().timeIntervalSince1970)
      var headers = [
        ("Content-Type", "application/json"), ("webhook-id", id), ("webhook-timestamp", "\(timestamp)"),
      ]
      if let key {
        headers.append(
          ("webhook-signature", WebhookSignature.sign(key: key, id: id, timestamp: timestamp, body: body)))
      }
      var retryAfterMs: Int64?
      do {
        let response = try await HTTPClient.request(
          .POST, url, headers: headers, body: body, timeoutMs: spec.timeoutMs)
        inFlight.wrappingSubtract(1, ordering: .relaxed)
        stats.inFlight.wrappingSubtract(1, ordering: .relaxed)
        if (200..<300).contains(response.status) {
          stats.delivered.wrappingAdd(1, ordering: .relaxed)
          // A producer's timestamp can be anything: counted only when plausible (within a day).
          let now = Int64(Date().timeIntervalSince1970 * 1000)
          if record.timestamp >= 0, record.timestamp <= now, now - record.timestamp < 86_400_000 {
            stats.latency.recordMilliseconds(max(0, now - record.timestamp))
          }
          return true
        }
        lastStatus = response.status
        lastError = "HTTP \(response.status)"
        if let text = response.headers.first(name: "retry-after"), let seconds = Int64(text), seconds >= 0 {
          retryAfterMs = min(seconds, 3600) * 1000
        }
      } catch {
        inFlight.wrappingSubtract(1, ordering: .relaxed)
        stats.inFlight.wrappingSubtract(1, ordering: .relaxed)
        if Task.isCancelled { return false }
        lastStatus = nil
        lastError = error.description
      }
      stats.failures.wrappingAdd(1, ordering: .relaxed)
      let now = broker.clock.now()
      stats.last.withLock { $0 = (lastError, lastStatus, now) }
      guard attempt < spec.maxAttempts else { break }
      // Exponential backoff with jitter (half to all of the step), or the receiver's Retry-After.
      let step = min(spec.maxBackoffMs, spec.retryBackoffMs << min(attempt - 1, 30))
      let delay = retryAfterMs ?? Int64.random(in: (step / 2)...max(step / 2, step))
      try? await Task.sleep(for: .milliseconds(delay))
      if Task.isCancelled { return false }
    }
    return await deadLetter(
      record, spec, partition: partition, error: lastError, status: lastStatus, attempts: attempt)
  }

  /// Appends the record to the dead-letter topic (created when missing) with headers saying
  /// why; retried until it is stored, so nothing is lost.
  private func deadLetter(
    _ record: Record, _ spec: WebhookSpec, partition: Int32, error: String, status: Int?, attempts: Int
  ) async -> Bool {
    var headers = record.headers
    func add(_ key: String, _ value: String) {
      headers.append(RecordHeader(key: key, value: ByteBuffer(string: value)))
    }
    add("webhook.name", spec.name)
    add("webhook.error", error)
    add("webhook.status", status.map(String.init) ?? "none")
    add("webhook.attempts", String(attempts))
    add("webhook.original.topic", spec.topic)
    add("webhook.original.partition", String(partition))
    add("webhook.original.offset", String(record.offset))
    var backoff: Int64 = 100
    while !Task.isCancelled {
      if broker.topic(spec.deadLetterTopic) == nil {
        _ = try? await broker.createTopic(name: spec.deadLetterTopic, partitions: 1, configs: [:])
      }
      var builder = RecordBatchBuilder()
      builder.append(key: record.key, value: record.value, headers: headers, timestamp: record.timestamp)
      if let batch = try? builder.build() {
        let result = await broker.produce(
          [PartitionRecords(topic: spec.deadLetterTopic, partition: 0, records: batch.buffer)],
          options: ProduceOptions(acks: .all), context: CallContext())
        switch result.results.first {
        case .appended?, .duplicate?:
          stats(spec.name)?.deadLettered.wrappingAdd(1, ordering: .relaxed)
          return true
        default: break
        }
      }
      logger.warning(
        "webhook \(spec.name): cannot append to dead-letter topic \(spec.deadLetterTopic); retrying")
      try? await Task.sleep(for: .milliseconds(backoff))
      backoff = min(backoff * 2, 10_000)
    }
    return false
  }

  private func stats(_ name: String) -> WebhookStats? { running.withLock { $0[name]?.stats } }

  // MARK: Metrics

  func collectMetrics(into metrics: MetricsCollection) {
    let entries = running.withLock { $0.values.map { ($0.spec.name, $0.stats) } }
    for (webhook, stats) in entries {
      let labels = [("webhook", webhook)]
      metrics.counter(
        "sluice_webhook_deliveries_total", "Records delivered (a 2xx answer).", labels,
        stats.delivered.load(ordering: .relaxed))
      metrics.counter(
        "sluice_webhook_failures_total", "Delivery attempts that failed (non-2xx, timeout, refused).", labels,
        stats.failures.load(ordering: .relaxed))
      metrics.counter(
        "sluice_webhook_retries_total", "Delivery attempts after the first.", labels,
        stats.retries.load(ordering: .relaxed))
      metrics.counter(
        "sluice_webhook_dead_lettered_total", "Records moved to the dead-letter topic.", labels,
        stats.deadLettered.load(ordering: .relaxed))
      metrics.gauge(
        "sluice_webhook_paused", "1 while the subscription's delivery is paused.", labels,
        stats.paused.load(ordering: .relaxed) ? 1 : 0)
      metrics.gauge(
        "sluice_webhook_in_flight", "Deliveries of the subscription in flight.", labels,
        stats.inFlight.load(ordering: .relaxed))
    }
  }
}

/// A mutual-exclusion lock for async code (the store is written by one change at a time).
actor AsyncMutex {
  private var busy = false
  private var waiters: [CheckedContinuation<Void, Never>] = []

  func locked<T: Sendable>(_ body: @Sendable () async -> T) async -> T {
    if busy {
      await withCheckedContinuation { waiters.append($0) }
    } else {
      busy = true
    }
    let result = await body()
    if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
    return result
  }
}
