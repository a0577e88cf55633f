public import KafkaProtocol
import Logging
public import NIOCore
import NIOPosix
public import SluiceStorage
import Synchronization

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

/// What the broker knows about the connection a request came on.
public struct RequestContext: Sendable {
  public var clientHost: String
  /// Whether the connection can send file regions (plaintext sockets): Fetch then leaves
  /// record data in the segment files, to be sent with sendfile.
  public var zeroCopy: Bool
  /// The size of the request's frame (what a produce quota is charged).
  public var requestBytes: Int
  /// Whether the client is still connected (a request held by backpressure gives up when
  /// it is not).
  public var connectionOpen: @Sendable () -> Bool
  /// The event loop that owns the connection, if there is one. A parked Fetch then times
  /// out with a timer on this loop and is resumed on it, rather than through a Swift
  /// Concurrency sleep (a libdispatch timer and its threads) and on whichever loop the
  /// append that woke it ran on.
  public var eventLoop: (any EventLoop)?
  public init(
    clientHost: String = "", zeroCopy: Bool = false, requestBytes: Int = 0,
    connectionOpen: @escaping @Sendable () -> Bool = { true }, eventLoop: (any EventLoop)? = nil
  ) {
    self.clientHost = clientHost
    self.zeroCopy = zeroCopy
    self.requestBytes = requestBytes
    self.connectionOpen = connectionOpen
    self.eventLoop = eventLoop
  }
}

/// A response ready for the wire. With zero-copy fetches, some `records` fields of the body
/// are 8-byte placeholders whose bytes are a marker; `fileRecords` maps each marker to the
/// file regions to send in its place (see `KafkaServer`).
public struct WireReply: Sendable {
  /// nil: send nothing (Produce with acks=0).
  public var body: KafkaResponseBody?
  public var fileRecords: [UInt64: [LogChunk]]
  /// A client quota's throttle: after sending the response, read nothing more from this
  /// connection for this long (Kafka's channel muting; librdkafka does not pause itself).
  public var muteMs: Int64 = 0
}

/// The broker's brain, without sockets: topics and partitions, and a handler for every
/// implemented API. ``SluiceServer`` feeds it decoded requests and writes back what it
/// returns; tests call it directly.
public final class Broker: Sendable {
  public let config: BrokerConfig
  /// Held from before anything in the data directory is opened until shutdown: a second
  /// broker on the same directory fails at once.
  package let dataDirectoryLock: DataDirectoryLock
  public let metadata: MetadataStore
  let threadPool: NIOThreadPool
  let topics = Mutex<[String: Topic]>([:])
  /// Serialises topic creation, deletion and reconfiguration (low rate).
  let adminLock = Mutex(())
  let clock: @Sendable () -> Int64
  /// Consumer groups and their committed offsets.
  package let groups: GroupCoordinator
  /// Client quotas (produce and fetch byte rates per client id).
  public let quotas: ClientQuotas
  /// Set when a shutdown begins: requests held by backpressure give up.
  let stopping = Atomic<Bool>(false)
  /// When housekeeping last applied retention (`Int64.min`: not yet).
  let lastRetentionCheck = Atomic<Int64>(Int64.min)
  /// Broker configs set while running (see `DynamicBrokerConfigs`).
  let dynamicBrokerConfigs: Mutex<DynamicBrokerConfigs>
  let logger = Logger(label: "sluice.broker")

  public static func systemClock() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
  }

  /// Opens the data directory, recovering every topic found in the metadata.
  public init(config: BrokerConfig, clock: @escaping @Sendable () -> Int64 = Broker.systemClock)
    throws(StorageError)
  {
    self.config = config
    self.clock = clock
    self.dataDirectoryLock = try DataDirectoryLock(directory: config.dataDirectory)
    self.metadata = try MetadataStore(directory: config.dataDirectory)
    self.dynamicBrokerConfigs = Mutex(DynamicBrokerConfigs(metadata.snapshot))
    self.quotas = ClientQuotas(metadata: metadata)
    self.threadPool = NIOThreadPool(numberOfThreads: 2)
    threadPool.start()
    self.groups = GroupCoordinator(
      configuration: .init(config),
      offsets: try OffsetStore(
        directory: config.dataDirectory + "/group-offsets", threadPool: threadPool,
        compactionBytes: config.offsetsLogCompactionBytes),
      clock: clock)
    var opened: [String: Topic] = [:]
    for record in metadata.snapshot.topics.values.sorted(by: { $0.name < $1.name }) {
      let topicConfig =
        (try? makeTopicConfig(record.configs)) ?? (try? makeTopicConfig([:]))
        ?? (try! TopicConfig(overrides: [:], broker: config))
      var partitions: [Partition] = []
      for index in 0..<record.partitions {
        partitions.append(try openPartition(topic: record.name, index: index, config: topicConfig))
      }
      opened[record.name] = Topic(
        name: record.name, id: record.topicId, config: topicConfig, partitions: partitions)
    }
    topics.withLock { $0 = opened }
  }

  public var clusterId: String { metadata.snapshot.clusterId }

  func partitionDirectory(_ topic: String, _ index: Int32) -> String {
    config.dataDirectory + "/" + topic + "-" + String(index)
  }

  func openPartition(topic: String, index: Int32, config topicConfig: TopicConfig) throws(StorageError)
    -> Partition
  {
    let log: any PartitionLog
    switch topicConfig.log.storage {
    case .memory:
      log = MemoryLog(config: topicConfig.log)
    case .disk:
      log = try FileLog(
        directory: partitionDirectory(topic, index), config: topicConfig.log, threadPool: threadPool,
        now: clock())
    }
    return Partition(
      topic: topic, index: index, log: log, producers: Self.rebuildProducerState(log))
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

  public func topic(_ name: String) -> Topic? { topics.withLock { $0[name] } }
  public func topic(id: KafkaUUID) -> Topic? { topics.withLock { $0.values.first { $0.id == id } } }
  public var allTopics: [Topic] { topics.withLock { Array($0.values) }.sorted { $0.name < $1.name } }

  // MARK: Topic administration

  public enum TopicError: Error, Sendable {
    case exists
    case invalidName(String)
    case invalidPartitions(String)
    case invalidConfig(String)
    case storage(StorageError)

    var code: ErrorCode {
      switch self {
      case .exists: ErrorCode.topicAlreadyExists
      case .invalidName: ErrorCode.invalidTopicException
      case .invalidPartitions: ErrorCode.invalidPartitions
      case .invalidConfig: ErrorCode.invalidConfig
      case .storage: .kafkaStorageError
      }
    }

    var message: String {
      switch self {
      case .exists: "Topic already exists."
      case .invalidName(let m), .invalidPartitions(let m), .invalidConfig(let m): m
      case .storage(let e): e.message
      }
    }
  }

  /// Creates a topic (or, with `validateOnly`, only checks that it could be created).
  @discardableResult
  public func createTopic(
    name: String, partitions: Int32, configs: [String: String], validateOnly: Bool = false
  ) throws(TopicError) -> Topic? {
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
        var opened: [Partition] = []
        for index in 0..<partitions {
          opened.append(try openPartition(topic: name, index: index, config: topicConfig))
        }
        try metadata.update { (document: inout MetadataStore.Document) throws(StorageError) in
          document.topics[name] = TopicRecord(name: name, id: id, partitions: partitions, configs: configs)
        }
        let created = Topic(name: name, id: id, config: topicConfig, partitions: opened)
        topics.withLock { $0[name] = created }
        return created
      } catch {
        throw .storage(error)
      }
    }
  }

  /// Deletes a topic and all its data.
  public func deleteTopic(_ name: String) throws(StorageError) -> Bool {
    try adminLock.withLock { _ throws(StorageError) -> Bool in
      guard let existing = topic(name) else { return false }
      try metadata.update { (document: inout MetadataStore.Document) throws(StorageError) in
        document.topics[name] = nil
      }
      topics.withLock { $0[name] = nil }
      for partition in existing.partitions {
        partition.notifyAppended()
        try partition.log.delete()
      }
      return true
    }
  }

  /// Raises a topic's partition count.
  public func createPartitions(_ name: String, count: Int32, validateOnly: Bool) throws(TopicError) {
    try adminLock.withLock { _ throws(TopicError) in
      guard let existing = topic(name) else { throw .invalidName("Topic \(name) does not exist") }
      let current = Int32(existing.partitions.count)
      guard count > current else {
        throw .invalidPartitions(
          "Topic currently has \(current) partitions, which is higher than or equal to the requested \(count)."
        )
      }
      guard count <= config.maxPartitionsPerTopic else {
        throw .invalidPartitions("Number of partitions must be at most \(config.maxPartitionsPerTopic).")
      }
      if validateOnly { return }
      do throws(StorageError) {
        var added: [Partition] = []
        for index in current..<count {
          added.append(try openPartition(topic: name, index: index, config: existing.config))
        }
        try metadata.update { (document: inout MetadataStore.Document) throws(StorageError) in
          document.topics[name]?.partitions = count
        }
        existing.mutable.withLock { $0.partitions += added }
      } catch {
        throw .storage(error)
      }
    }
  }

  /// Replaces a topic's explicit configs (already merged by the caller for incremental alters).
  public func setTopicConfigs(_ name: String, _ configs: [String: String], validateOnly: Bool)
    throws(TopicError)
  {
    let topicConfig: TopicConfig
    do {
      topicConfig = try makeTopicConfig(configs)
    } catch {
      throw .invalidConfig(error.message)
    }
    try adminLock.withLock { _ throws(TopicError) in
      guard let existing = topic(name) else { throw .invalidName("Topic \(name) does not exist") }
      if topicConfig.log.storage != existing.config.log.storage {
        throw .invalidConfig("sluice.storage cannot be changed on an existing topic")
      }
      if validateOnly { return }
      do throws(StorageError) {
        try metadata.update { (document: inout MetadataStore.Document) throws(StorageError) in
          document.topics[name]?.configs = configs
        }
      } catch {
        throw .storage(error)
      }
      apply(topicConfig, to: existing)
    }
  }

  // MARK: Housekeeping

  /// Runs time-based flushes once, and retention when `log.retention.check.interval.ms` has
  /// passed since the last check; the server calls it every `housekeepingIntervalMs`.
  public func housekeeping() {
    let now = clock()
    let last = lastRetentionCheck.load(ordering: .relaxed)
    let checkRetention = last == Int64.min || now &- last >= config.retentionCheckIntervalMs
    if checkRetention { lastRetentionCheck.store(now, ordering: .relaxed) }
    for topic in allTopics {
      let overflow = topic.config.overflow
      for partition in topic.partitions {
        // A lowered bound applies without waiting for the next produce request.
        dropOldest(partition, overflow)
        partition.log.flushIfDue(now: now)
        if checkRetention { _ = try? partition.log.enforceRetention(now: now) }
        reportIfOffline(topic.name, partition)
      }
    }
    groups.housekeeping()
  }

  /// Applies retention to every partition now (what a retention check does).
  public func enforceRetention() {
    let now = clock()
    for topic in allTopics {
      for partition in topic.partitions { _ = try? partition.log.enforceRetention(now: now) }
    }
  }

  /// Partitions whose log is offline, with the reason (`sluice_partition_offline`).
  public func offlinePartitions() -> [(topic: String, partition: Int32, reason: String)] {
    allTopics.flatMap { topic in
      topic.partitions.compactMap { partition in
        partition.log.failure.map { (topic.name, partition.index, $0.message) }
      }
    }
  }

  /// Logs, once, that a partition's log has gone offline: its producers get
  /// KAFKA_STORAGE_ERROR from then on, and an operator has a disk to look at.
  func reportIfOffline(_ topic: String, _ partition: Partition) {
    guard let failure = partition.log.failure,
      partition.reportedOffline.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
    else { return }
    logger.error(
      "partition \(topic)-\(partition.index) is offline: \(failure.message). Produce to it fails with KAFKA_STORAGE_ERROR; the other partitions keep serving. Fix the disk, then restart the broker."
    )
  }

  /// The start of a graceful shutdown: answers requests parked in the broker (JoinGroup,
  /// SyncGroup) so that connections can finish the request in hand.
  public func beginShutdown() {
    stopping.store(true, ordering: .relaxed)
    groups.close()
    // Parked fetches answer now (with what they have) instead of at their MaxWaitMs.
    for topic in allTopics {
      for partition in topic.partitions { partition.notifyAppended() }
    }
  }

  /// Flushes and closes every log. The broker is unusable afterwards.
  public func shutdown() async {
    stopping.store(true, ordering: .relaxed)
    groups.close()
    for topic in allTopics {
      for partition in topic.partitions {
        partition.notifyAppended()
        try? await partition.log.flush()
        try? partition.log.close()
      }
    }
    try? await threadPool.shutdownGracefully()
    groups.offsets.close()
    dataDirectoryLock.release()
  }
}

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif
