public import KafkaProtocol
import Logging
import NIOCore
import NIOPosix
import SluiceStorage
import Synchronization

#if canImport(Dispatch)
  import Dispatch
#endif

/// A topic: its id, configuration and partitions.
public final class Topic: Sendable {
  public let name: String
  public let id: KafkaUUID
  let mutable: Mutex<(config: TopicConfig, partitions: [Partition])>

  init(name: String, id: KafkaUUID, config: TopicConfig, partitions: [Partition]) {
    self.name = name
    self.id = id
    self.mutable = Mutex((config, partitions))
  }

  public var config: TopicConfig { mutable.withLock { $0.config } }
  public var partitions: [Partition] { mutable.withLock { $0.partitions } }

  public func partition(_ index: Int32) -> Partition? {
    mutable.withLock { state in
      index >= 0 && Int(index) < state.partitions.count ? state.partitions[Int(index)] : nil
    }
  }
}

/// Why a topic operation was refused.
public enum TopicError: Error, Sendable {
  case exists
  case unknown(String)
  case invalidName(String)
  case invalidPartitions(String)
  case invalidConfig(String)
  /// The disk refused (the message says how).
  case storage(String)

  public var code: ErrorCode {
    switch self {
    case .exists: ErrorCode.topicAlreadyExists
    case .unknown: ErrorCode.unknownTopicOrPartition
    case .invalidName: ErrorCode.invalidTopicException
    case .invalidPartitions: ErrorCode.invalidPartitions
    case .invalidConfig: ErrorCode.invalidConfig
    case .storage: .kafkaStorageError
    }
  }

  public var message: String {
    switch self {
    case .exists: "Topic already exists."
    case .unknown(let m), .invalidName(let m), .invalidPartitions(let m), .invalidConfig(let m): m
    case .storage(let message): message
    }
  }
}

/// The broker's topics: what exists, with which configuration and partitions, kept in the
/// metadata file. Creating, deleting, growing and reconfiguring topics are low-rate admin
/// operations; they are serialised, and their file work (directories, segment files, the
/// metadata file's write-fsync-rename) runs on `adminPool`, never on the caller's thread,
/// which may be an event loop.
public final class TopicRegistry: Sendable {
  let config: BrokerConfig
  let clock: any BrokerClock
  let metadata: MetadataStore
  /// fsyncs of partition logs.
  let flushPool: NIOThreadPool
  /// One thread: admin operations' file work, one at a time.
  let adminPool: NIOThreadPool
  let topics = Mutex<[String: Topic]>([:])
  /// Serialises topic creation, deletion and reconfiguration (low rate).
  let adminLock = Mutex(())
  /// Broker configs set while running (see `DynamicBrokerConfigs`).
  let dynamicBrokerConfigs: Mutex<DynamicBrokerConfigs>
  /// Each topic's traffic counters, made with its first partition, destroyed with the topic.
  let topicMetrics = Mutex<[String: TopicMetrics]>([:])

  func metrics(for topic: String) -> TopicMetrics {
    topicMetrics.withLock { table in
      if let existing = table[topic] { return existing }
      let made = TopicMetrics(topic: topic)
      table[topic] = made
      return made
    }
  }

  /// Opens every topic the metadata lists, recovering its logs (at startup, before any
  /// client is served).
  init(config: BrokerConfig, clock: any BrokerClock, metadata: MetadataStore, flushPool: NIOThreadPool)
    throws(StorageError)
  {
    self.config = config
    self.clock = clock
    self.metadata = metadata
    self.flushPool = flushPool
    self.adminPool = NIOThreadPool(numberOfThreads: 1)
    self.dynamicBrokerConfigs = Mutex(DynamicBrokerConfigs(metadata.snapshot))
    let records = metadata.snapshot.topics.values.sorted(by: { $0.name < $1.name })
    let configs = records.map { record in
      (try? makeTopicConfig(record.configs)) ?? (try? makeTopicConfig([:]))
        ?? (try! TopicConfig(overrides: [:], broker: config))
    }
    // Every partition of every topic, opened in parallel; the clean-shutdown markers they
    // remove are made durable by one sync of the file system below, before any append.
    let wanted = zip(records, configs).flatMap { record, topicConfig in
      (0..<record.partitions).map { (record.name, $0, topicConfig) }
    }
    // What a deletion interrupted by a crash left.
    try FileLog.removeMovedAside(in: config.dataDirectory)
    let partitions = try openPartitions(wanted, syncMarkerRemoval: false)
    if configs.contains(where: { $0.log.storage == .disk }) {
      try FileLog.syncFileSystem(of: config.dataDirectory)
    }
    var opened: [String: Topic] = [:]
    var next = 0
    for (record, topicConfig) in zip(records, configs) {
      let count = Int(record.partitions)
      opened[record.name] = Topic(
        name: record.name, id: record.topicId, config: topicConfig,
        partitions: Array(partitions[next..<next + count]))
      next += count
    }
    topics.withLock { $0 = opened }
    // Started last: an init that throws leaves no thread behind.
    adminPool.start()
  }

  deinit { adminPool.shutdownGracefully { _ in } }

  public func topic(_ name: String) -> Topic? { topics.withLock { $0[name] } }
  public func topic(id: KafkaUUID) -> Topic? { topics.withLock { $0.values.first { $0.id == id } } }
  public var all: [Topic] { topics.withLock { Array($0.values) }.sorted { $0.name < $1.name } }

  func partitionDirectory(_ topic: String, _ index: Int32) -> String {
    config.dataDirectory + "/" + topic + "-" + String(index)
  }

  func openPartition(
    topic: String, index: Int32, config topicConfig: TopicConfig, syncMarkerRemoval: Bool = true
  ) throws(StorageError) -> Partition {
    let log: any PartitionLog
    switch topicConfig.log.storage {
    case .memory:
      log = MemoryLog(config: topicConfig.log)
    case .disk:
      log = try FileLog(
        directory: partitionDirectory(topic, index), config: topicConfig.log, threadPool: flushPool,
        now: clock.now(), syncMarkerRemoval: syncMarkerRemoval)
    }
    return Partition(
      topic: topic, index: index, log: log, producers: Self.rebuildProducerState(log),
      metrics: metrics(for: topic))
  }

  /// Opens (or creates) partitions on every core at once: thousands of logs load in a
  /// fraction of the time one after the other takes. Throws the first error (the partitions
  /// opened are dropped, which closes their files).
  func openPartitions(_ wanted: [(topic: String, index: Int32, config: TopicConfig)], syncMarkerRemoval: Bool)
    throws(StorageError) -> [Partition]
  {
    guard wanted.count > 1 else {
      return try wanted.map { (topic, index, topicConfig) throws(StorageError) in
        try openPartition(
          topic: topic, index: index, config: topicConfig, syncMarkerRemoval: syncMarkerRemoval)
      }
    }
    let results = Mutex<(partitions: [Partition?], error: StorageError?)>(
      ([Partition?](repeating: nil, count: wanted.count), nil))
    let nextIndex = Atomic<Int>(0)
    let workers = min(wanted.count, max(2, System.coreCount * 2))
    DispatchQueue.concurrentPerform(iterations: workers) { _ in
      while true {
        let position = nextIndex.wrappingAdd(1, ordering: .relaxed).oldValue
        guard position < wanted.count, results.withLock({ $0.error == nil }) else { return }
        let (topic, index, topicConfig) = wanted[position]
        do throws(StorageError) {
          let partition = try openPartition(
            topic: topic, index: index, config: topicConfig, syncMarkerRemoval: syncMarkerRemoval)
          results.withLock { $0.partitions[position] = partition }
        } catch {
          results.withLock { if $0.error == nil { $0.error = error } }
        }
      }
    }
    let (partitions, error) = results.withLock { ($0.partitions, $0.error) }
    if let error { throw error }
    return partitions.map { $0! }
  }

  /// Creates partitions `indexes` of `topic` (CreateTopics, CreatePartitions), all or
  /// nothing on disk. Leftovers of an earlier topic of that name go first (its records must
  /// not come back as this topic's); then `listing` records the change in the metadata — a
  /// crash from here on finds it and creates what is missing of the (empty) partitions at
  /// the next start; then the partitions are made in parallel, with one fsync of the data
  /// directory. A failure removes what was made and undoes the listing (`unlisting`); if
  /// that fails too, the error says so (`ifUnlistingFails`) and what a restart will find.
  func addPartitions(
    _ topic: String, _ indexes: Range<Int32>, config topicConfig: TopicConfig,
    listing: (inout MetadataStore.Document) -> Void, unlisting: (inout MetadataStore.Document) -> Void,
    ifUnlistingFails: String, afterRestart: String
  ) throws(StorageError) -> [Partition] {
    let disk = topicConfig.log.storage == .disk
    if disk { try removePartitionDirectories(topic, indexes) }
    try metadata.update { (document: inout MetadataStore.Document) throws(StorageError) in listing(&document)
    }
    do throws(StorageError) {
      let made = try openPartitions(indexes.map { (topic, $0, topicConfig) }, syncMarkerRemoval: true)
      if disk { try FileLog.syncDirectory(config.dataDirectory) }
      return made
    } catch {
      if disk { try? removePartitionDirectories(topic, indexes) }
      do throws(StorageError) {
        try metadata.update { (document: inout MetadataStore.Document) throws(StorageError) in
          unlisting(&document)
        }
      } catch let rollback {
        throw StorageError(
          error.code, "\(error.message); and \(ifUnlistingFails) (\(rollback.message)): \(afterRestart)",
          errno: error.errno)
      }
      throw error
    }
  }

  /// Removes the partition directories `indexes` of `topic` (what a failed create made, or
  /// what a deletion that failed half-way left), then syncs the data directory.
  func removePartitionDirectories(_ topic: String, _ indexes: Range<Int32>) throws(StorageError) {
    var removed = false
    for index in indexes {
      let directory = partitionDirectory(topic, index)
      removed = try FileLog.removeLeftovers(in: directory) || removed
    }
    if removed { try FileLog.syncDirectory(config.dataDirectory) }
  }

  /// Rebuilds idempotent-producer state from the newest batches of a log (up to 8 MiB),
  /// so retries of batches acknowledged before a restart are still recognised.
  static func rebuildProducerState(_ log: any PartitionLog) -> ProducerStateTable {
    var table = ProducerStateTable()
    let end = log.logEndOffset
    let start = log.logStartOffset
    guard end > start else { return table }
    // Start at most 100k offsets back (reads begin at the batch holding that offset).
    var offset = max(start, end - 100_000)
    var budget = 8 << 20
    while offset < end && budget > 0 {
      guard let read = try? log.read(from: offset, maxBytes: 1 << 20, upTo: nil, minOneBatch: true),
        let bytes = try? read.loadBytes(), bytes.readableBytes > 0
      else { break }
      budget -= bytes.readableBytes
      var splitter = RecordBatchSplitter(bytes)
      var last = offset
      while let batch = try? splitter.next() {
        if batch.producerId >= 0 && batch.baseSequence >= 0 {
          table.record(
            producerId: batch.producerId, epoch: batch.producerEpoch, firstSequence: batch.baseSequence,
            count: batch.recordsCount, firstOffset: batch.baseOffset, lastOffset: batch.lastOffset)
        }
        last = batch.nextOffset
      }
      if last <= offset { break }
      offset = last
    }
    return table
  }

  /// Runs `work` on the admin thread: file work of admin operations never runs on the
  /// caller's thread (an event loop, when a request handler calls). The wait does not end
  /// when the calling task is cancelled: the work, once queued, runs there to the end.
  func offLoop<T: Sendable, E: Error>(_ work: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
    let body: @Sendable () -> Result<T, E> = {
      do throws(E) { return .success(try work()) } catch { return .failure(error) }
    }
    let outcome: Result<T, E>
    do {
      outcome = try await adminPool.runIfActive(eventLoop: SystemClock.timerLoop, body).get()
    } catch {
      // Only when the pool has shut down (the broker has stopped): do the work here.
      outcome = body()
    }
    return try outcome.get()
  }

  // MARK: Administration

  /// Creates a topic (or, with `validateOnly`, only checks that it could be created).
  @discardableResult
  public func create(
    name: String, partitions: Int32, configs: [String: String], validateOnly: Bool = false
  ) async throws(TopicError) -> Topic? {
    try await offLoop { () throws(TopicError) -> Topic? in
      try self.createNow(name: name, partitions: partitions, configs: configs, validateOnly: validateOnly)
    }
  }

  func createNow(name: String, partitions: Int32, configs: [String: String], validateOnly: Bool)
    throws(TopicError) -> Topic?
  {
    if let problem = validateTopicName(name) { throw .invalidName(problem) }
    guard partitions >= 1, partitions <= config.maxPartitionsPerTopic else {
      throw .invalidPartitions("Number of partitions must be between 1 and \(config.maxPartitionsPerTopic).")
    }
    let topicConfig: TopicConfig
    do {
      topicConfig = try makeTopicConfig(configs)
    } catch {
      throw .invalidConfig(error.message)
    }
    return try adminLock.withLock { _ throws(TopicError) -> Topic? in
      if topic(name) != nil { throw .exists }
      if validateOnly { return nil }
      let id = KafkaUUID.random()
      do throws(StorageError) {
        let opened = try addPartitions(
          name, 0..<partitions, config: topicConfig,
          listing: {
            $0.topics[name] = TopicRecord(name: name, id: id, partitions: partitions, configs: configs)
          },
          unlisting: { $0.topics[name] = nil },
          ifUnlistingFails: "removing the topic from the metadata failed too",
          afterRestart: "it will be back, with empty partitions, after a restart")
        let created = Topic(name: name, id: id, config: topicConfig, partitions: opened)
        topics.withLock { $0[name] = created }
        return created
      } catch {
        throw .storage(error.message)
      }
    }
  }

  /// Deletes a topic and all its data; false if there was none.
  @discardableResult
  public func delete(_ name: String) async throws(TopicError) -> Bool {
    try await offLoop { () throws(TopicError) -> Bool in
      try self.adminLock.withLock { _ throws(TopicError) -> Bool in
        guard let existing = self.topic(name) else { return false }
        // The partition directories move aside first (renames: quick; a crash after them
        // leaves only hidden `.deleting-` directories, which the next start removes — and
        // the topic listed with empty partitions if the metadata was not written yet), then
        // the metadata forgets the topic, then the directories go (slow for a big topic).
        let disk = existing.config.log.storage == .disk
        var movedAside: [(original: String, moved: String)] = []
        do throws(StorageError) {
          for partition in existing.partitions where disk {
            let original = self.partitionDirectory(name, partition.index)
            movedAside.append((original, try FileLog.moveAside(original)))
          }
          if disk { try FileLog.syncDirectory(self.config.dataDirectory) }
          try self.metadata.update { (document: inout MetadataStore.Document) throws(StorageError) in
            document.topics[name] = nil
          }
        } catch {
          for entry in movedAside.reversed() { FileLog.undoMoveAside(entry.moved, to: entry.original) }
          throw .storage(error.message)
        }
        self.topics.withLock { $0[name] = nil }
        self.topicMetrics.withLock { $0.removeValue(forKey: name) }?.destroy()
        var failure: StorageError?
        for partition in existing.partitions {
          partition.notifyAppended()
          do throws(StorageError) { try partition.log.delete() } catch { failure = failure ?? error }
        }
        for entry in movedAside {
          do throws(StorageError) { try FileLog.removeLeftovers(in: entry.moved) } catch {
            failure = failure ?? error
          }
        }
        if let failure {
          throw .storage("\(failure.message) (the topic is deleted; the next start removes what is left)")
        }
        return true
      }
    }
  }

  /// Raises a topic's partition count.
  public func createPartitions(_ name: String, count: Int32, validateOnly: Bool) async throws(TopicError) {
    try await offLoop { () throws(TopicError) in
      try self.adminLock.withLock { _ throws(TopicError) in
        guard let existing = self.topic(name) else { throw .unknown("Topic \(name) does not exist") }
        let current = Int32(existing.partitions.count)
        guard count > current else {
          throw .invalidPartitions(
            "Topic currently has \(current) partitions, which is higher than or equal to the requested \(count)."
          )
        }
        guard count <= self.config.maxPartitionsPerTopic else {
          throw .invalidPartitions(
            "Number of partitions must be at most \(self.config.maxPartitionsPerTopic).")
        }
        if validateOnly { return }
        do throws(StorageError) {
          let added = try self.addPartitions(
            name, current..<count, config: existing.config,
            listing: { $0.topics[name]?.partitions = count },
            unlisting: { $0.topics[name]?.partitions = current },
            ifUnlistingFails: "restoring the partition count in the metadata failed too",
            afterRestart: "the new partitions will be there, empty, after a restart")
          existing.mutable.withLock { $0.partitions += added }
        } catch {
          throw .storage(error.message)
        }
      }
    }
  }

  /// Replaces a topic's explicit configs.
  public func setConfigs(_ name: String, _ configs: [String: String], validateOnly: Bool)
    async throws(TopicError)
  {
    try await offLoop { () throws(TopicError) in
      try self.adminLock.withLock { _ throws(TopicError) in
        try self.replaceConfigs(name, configs, validateOnly: validateOnly)
      }
    }
  }

  /// Applies `changes` to a topic's explicit configs (IncrementalAlterConfigs). The values
  /// they start from are read under the admin lock, so concurrent alterations of one topic
  /// do not undo each other.
  public func alterConfigs(_ name: String, _ changes: [ConfigChange], validateOnly: Bool)
    async throws(TopicError)
  {
    try await offLoop { () throws(TopicError) in
      try self.adminLock.withLock { _ throws(TopicError) in
        guard let existing = self.topic(name) else { throw .unknown("Topic \(name) does not exist") }
        let config = existing.config
        let effective = Dictionary(
          config.effectiveValues().map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
        let merged = try ConfigChange.apply(changes, to: config.overrides) { effective[$0] }
        try self.replaceConfigs(name, merged, validateOnly: validateOnly)
      }
    }
  }

  /// Under the admin lock: validates, persists and installs a topic's explicit configs.
  private func replaceConfigs(_ name: String, _ configs: [String: String], validateOnly: Bool)
    throws(TopicError)
  {
    guard let existing = topic(name) else { throw .unknown("Topic \(name) does not exist") }
    let topicConfig: TopicConfig
    do {
      topicConfig = try makeTopicConfig(configs)
    } catch {
      throw .invalidConfig(error.message)
    }
    if topicConfig.log.storage != existing.config.log.storage {
      throw .invalidConfig("sluice.storage cannot be changed on an existing topic")
    }
    if validateOnly { return }
    do throws(StorageError) {
      try metadata.update { (document: inout MetadataStore.Document) throws(StorageError) in
        document.topics[name]?.configs = configs
      }
    } catch {
      throw .storage(error.message)
    }
    apply(topicConfig, to: existing)
  }

  /// Installs a topic's new config and hands its log settings to every partition.
  func apply(_ topicConfig: TopicConfig, to topic: Topic) {
    topic.mutable.withLock { $0.config = topicConfig }
    for partition in topic.partitions { partition.log.updateConfig(topicConfig.log) }
  }
}

/// One change of IncrementalAlterConfigs: set or remove an explicit value, or (list configs
/// such as `cleanup.policy`) add or remove items of the value in force.
public enum ConfigChange: Sendable, Hashable {
  case set(String, String)
  case delete(String)
  case append(String, String)
  case subtract(String, String)

  /// `explicit` with `changes` applied; `effective` gives a config's value in force (the
  /// default included), which APPEND and SUBTRACT start from.
  static func apply(_ changes: [ConfigChange], to explicit: [String: String], effective: (String) -> String?)
    throws(TopicError) -> [String: String]
  {
    var configs = explicit
    for change in changes {
      switch change {
      case .set(let name, let value): configs[name] = value
      case .delete(let name): configs[name] = nil
      case .append(let name, let value), .subtract(let name, let value):
        let entry = TopicConfigEntry.byName[name] ?? TopicConfigEntry.byBrokerName[name]
        guard case .list = entry?.kind else {
          throw .invalidConfig("APPEND and SUBTRACT apply to list configs only; \(name) is not one")
        }
        var items = TopicConfigEntry.listItems(configs[name] ?? effective(name) ?? "")
        let given = TopicConfigEntry.listItems(value)
        if case .append = change {
          items += given.filter { !items.contains($0) }
        } else {
          items.removeAll { given.contains($0) }
        }
        configs[name] = items.joined(separator: ",")
      }
    }
    return configs
  }
}
