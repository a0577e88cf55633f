public import KafkaProtocol
import Logging
import NIOCore
import NIOPosix
package import SluiceStorage
import Synchronization

/// The broker's domain API, without sockets or wire formats: every front door (the Kafka
/// listener, the in-process transport, later HTTP, UDP and ZMTP) translates its requests
/// into these calls. It owns its components:
///
/// - ``topics``: the topic registry (create, delete, grow, configure; dynamic broker configs);
/// - each ``Partition``: its log and the whole append (``produce(_:options:context:)``
///   validates, checks producer sequences and the overflow policy, appends and waits for
///   durability);
/// - the read service (``read(_:options:context:)``): long polls woken by appends;
/// - ``groups``: consumer groups and committed offsets; ``quotas``: client quotas.
///
/// Records, offsets, topics and ``BrokerError``s go in and out; Kafka request and response
/// structs never do (they are the Kafka front door's, in `SluiceKafka`). Time comes from the
/// injected ``BrokerClock``.
public final class Broker: Sendable {
  public let config: BrokerConfig
  /// Held from before anything in the data directory is opened until shutdown: a second
  /// broker on the same directory fails at once.
  package let dataDirectoryLock: DataDirectoryLock
  let metadata: MetadataStore
  /// fsyncs of logs and the committed-offsets journal.
  let threadPool: NIOThreadPool
  public let clock: any BrokerClock
  public let topics: TopicRegistry
  /// Consumer groups and their committed offsets.
  package let groups: GroupCoordinator
  /// Share groups (KIP-932): membership, share sessions, per-record delivery state.
  package let shares: ShareGroups
  /// Share groups' dead letters on their way to the dead-letter topic.
  let deadLetters = DeadLetterOutbox()
  /// Client quotas (produce and fetch byte rates per client id, connection rates per ip).
  public let quotas: ClientQuotas
  /// Users (SCRAM credentials) and ACLs.
  public let security: SecurityStore
  /// Set when a shutdown begins: requests held by backpressure give up.
  let stopping = Atomic<Bool>(false)
  /// Reads parked until records arrive (a metrics gauge).
  let parkedReads = Atomic<Int>(0)
  /// When housekeeping last applied retention (`Int64.min`: not yet).
  let lastRetentionCheck = Atomic<Int64>(Int64.min)
  let logger = Logger(label: "sluice.broker")

  /// Opens the data directory, recovering every topic found in the metadata. Recovery reads
  /// and fsyncs files: from an event loop, use ``open(config:clock:)``.
  public convenience init(config: BrokerConfig, clock: any BrokerClock = SystemClock()) throws(BrokerError) {
    do {
      try self.init(opening: config, clock: clock)
    } catch {
      throw BrokerError(.kafkaStorageError, error.message)
    }
  }

  /// ``init(config:clock:)`` on a thread pool thread, so that a caller on an event loop
  /// (NIO as the global executor) does not block it while logs are recovered.
  public static func open(config: BrokerConfig, clock: any BrokerClock = SystemClock())
    async throws(BrokerError)
    -> Broker
  {
    let opened: Result<Broker, BrokerError>
    do {
      opened = try await NIOThreadPool.singleton.runIfActive {
        Result { () throws(BrokerError) -> Broker in try Broker(config: config, clock: clock) }
      }
    } catch {
      opened = Result { () throws(BrokerError) -> Broker in try Broker(config: config, clock: clock) }
    }
    return try opened.get()
  }

  init(opening config: BrokerConfig, clock: any BrokerClock) throws(StorageError) {
    self.config = config
    self.clock = clock
    OpenFileCache.shared.capacity = config.maxOpenLogFiles ?? OpenFileCache.defaultCapacity()
    self.dataDirectoryLock = try DataDirectoryLock(directory: config.dataDirectory)
    self.metadata = try MetadataStore(directory: config.dataDirectory)
    self.quotas = ClientQuotas(metadata: metadata, clock: clock)
    self.security = try SecurityStore(
      metadata: metadata, superUsers: config.superUsers,
      allowEveryoneIfNoAclFound: config.allowEveryoneIfNoAclFound ?? true)
    self.threadPool = NIOThreadPool(numberOfThreads: 2)
    self.groups = GroupCoordinator(
      configuration: .init(config),
      offsets: try OffsetStore(
        directory: config.dataDirectory + "/group-offsets", threadPool: threadPool,
        compactionBytes: config.offsetsLogCompactionBytes),
      clock: clock)
    self.shares = ShareGroups(
      configuration: .init(config),
      store: try ShareStore(
        directory: config.dataDirectory + "/share-groups", threadPool: threadPool,
        compactionBytes: config.offsetsLogCompactionBytes))
    self.topics = try TopicRegistry(config: config, clock: clock, metadata: metadata, flushPool: threadPool)
    // Started last: an init that throws leaves no thread behind (nothing is submitted
    // before: recovery runs on this thread).
    threadPool.start()
    // Memory topics came back empty: their share partitions start again at the log start.
    shares.forgetVolatile(topics: Set(topics.all.filter { $0.config.log.storage == .memory }.map(\.name)))
  }

  /// A broker dropped without ``shutdown()`` (tests, embedders) still stops its threads.
  deinit { threadPool.shutdownGracefully { _ in } }

  public var clusterId: String { metadata.snapshot.clusterId }

  public func topic(_ name: String) -> Topic? { topics.topic(name) }
  public func topic(id: KafkaUUID) -> Topic? { topics.topic(id: id) }
  public var allTopics: [Topic] { topics.all }

  /// Creates a topic (see ``TopicRegistry/create(name:partitions:configs:validateOnly:)``).
  @discardableResult
  public func createTopic(
    name: String, partitions: Int32, configs: [String: String], validateOnly: Bool = false
  )
    async throws(TopicError) -> Topic?
  {
    try await topics.create(name: name, partitions: partitions, configs: configs, validateOnly: validateOnly)
  }

  /// Deletes a topic and its data; false if there was none.
  @discardableResult
  public func deleteTopic(_ name: String) async throws(TopicError) -> Bool {
    let deleted = try await topics.delete(name)
    // Share groups forget the topic: one created later under its name starts afresh.
    if deleted { await shares.forget(topic: name) }
    return deleted
  }

  /// A new producer id (InitProducerId), from a counter kept in the metadata file.
  public func nextProducerId() async throws(BrokerError) -> Int64 {
    let metadata = self.metadata
    do {
      return try await topics.offLoop { () throws(StorageError) -> Int64 in
        try metadata.update { (document: inout MetadataStore.Document) throws(StorageError) -> Int64 in
          let next = Int64(document.sections["producerIds"]?["next"] ?? "1000") ?? 1000
          document.sections["producerIds", default: [:]]["next"] = String(next + 1)
          return next
        }
      }
    } catch {
      throw BrokerError(.kafkaStorageError, error.message)
    }
  }

  /// Deletes the records of a partition before `offset` (nil: the high watermark), as
  /// Kafka's DeleteRecords; returns the new log start. The log-start file is written on the
  /// admin thread.
  public func deleteRecords(topic name: String, partition index: Int32, before offset: Int64?)
    async throws(BrokerError) -> Int64
  {
    guard let topic = topic(name), let partition = topic.partition(index) else {
      throw .unknownPartition(name, index)
    }
    let config = topic.config
    return try await topics.offLoop { () throws(BrokerError) -> Int64 in
      try partition.deleteRecords(before: offset, policy: config)
    }
  }

  // MARK: Housekeeping

  /// Runs time-based flushes once, and retention when `log.retention.check.interval.ms` has
  /// passed since the last check; the server calls it every `housekeepingIntervalMs`. The
  /// file work (segment deletion and rolls) runs on the admin thread.
  public func housekeeping() async {
    await topics.offLoop { () -> Void in self.housekeepingNow() }
    groups.housekeeping()
    await shareHousekeeping()
  }

  func housekeepingNow() {
    let now = clock.now()
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
  }

  /// Partitions whose log is offline, with the reason (`sluice_partition_offline`).
  public func offlinePartitions() -> [(topic: String, partition: Int32, reason: String)] {
    allTopics.flatMap { topic in
      topic.partitions.compactMap { partition in
        partition.offlineReason.map { (topic.name, partition.index, $0) }
      }
    }
  }

  /// Logs, once, that a partition's log has gone offline: its producers get
  /// KAFKA_STORAGE_ERROR from then on, and an operator has a disk to look at.
  func reportIfOffline(_ topic: String, _ partition: Partition) {
    guard let reason = partition.offlineReason,
      partition.reportedOffline.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
    else { return }
    logger.error(
      "partition \(topic)-\(partition.index) is offline: \(reason). Produce to it fails with KAFKA_STORAGE_ERROR; the other partitions keep serving. Fix the disk, then restart the broker."
    )
  }

  // MARK: Shutdown

  /// The start of a graceful shutdown: answers requests parked in the broker (JoinGroup,
  /// SyncGroup, long-poll reads) so that connections can finish the request in hand.
  public func beginShutdown() {
    stopping.store(true, ordering: .relaxed)
    groups.close()
    // Parked reads answer now (with what they have) instead of at their deadline.
    for topic in allTopics {
      for partition in topic.partitions { partition.notifyAppended() }
    }
  }

  /// Flushes and closes every log (on the admin thread: closing fsyncs). The broker is
  /// unusable afterwards.
  public func shutdown() async {
    beginShutdown()
    // Disk logs close together, with two syncs of the file system in all (thousands of
    // partitions would otherwise take several fsyncs each); memory logs one by one.
    let logs = allTopics.flatMap { $0.partitions.map(\.log) }
    let fileLogs = logs.compactMap { $0 as? FileLog }
    let dataDirectory = config.dataDirectory
    await topics.offLoop { () -> Void in
      for log in logs where !(log is FileLog) { try? log.close() }
      let results = FileLog.closeAll(fileLogs, fileSystemOf: dataDirectory)
      for case let error? in results {
        self.logger.error("closing a log failed: \(error.message); it will be recovered at the next start")
      }
    }
    // Committed offsets still being written (an expiry, a commit that raced the stop) go to
    // disk on the pool before it stops.
    await groups.offsets.waitUntilIdle()
    // Share state written without a sync (acquisitions) is synced once more.
    _ = await shares.store.write([])
    await shares.store.waitUntilIdle()
    try? await threadPool.shutdownGracefully()
    try? await topics.adminPool.shutdownGracefully()
    groups.offsets.close()
    shares.store.close()
    dataDirectoryLock.release()
  }
}
