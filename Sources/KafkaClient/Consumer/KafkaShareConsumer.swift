import KafkaProtocol
public import Logging
public import NIOCore
public import ServiceLifecycle
import Synchronization

/// How a share consumer settles a record (KIP-932).
public enum KafkaAcknowledgeType: Int8, Sendable, Hashable {
  /// Processed: the record is done.
  case accept = 1
  /// Not processed: deliver it again, to this or another member.
  case release = 2
  /// Unprocessable: never deliver it again (the broker may dead-letter it).
  case reject = 3
}

/// Share consumer settings (Kafka's names in the comments).
public struct KafkaShareConsumerConfiguration: Sendable {
  /// When records are acknowledged (`share.acknowledgement.mode`).
  public enum AcknowledgementMode: Sendable, Hashable {
    /// Every record of a batch is accepted when the next batch is asked for (or on close).
    case implicit
    /// The application settles each record with ``KafkaShareConsumer/acknowledge(_:_:)``,
    /// all of a batch before asking for the next.
    case explicit
  }

  /// The share group (`group.id`).
  public var groupId: String
  /// Topics to consume.
  public var topics: [String]
  public var bootstrapAddresses: [KafkaConfiguration.BrokerAddress]
  public var connection = KafkaConfiguration.Connection()
  public var acknowledgementMode: AcknowledgementMode = .implicit
  /// Records per fetch at most (`max.poll.records`).
  public var maxPollRecords: Int32 = 500
  /// Long-poll time of each fetch.
  public var fetchMaxWait: Duration = .milliseconds(500)
  /// Most bytes one fetch response may carry (`fetch.max.bytes`).
  public var fetchMaxBytes: Int32 = 52_428_800
  /// Largest decompressed size of one record batch accepted.
  public var maxDecompressedBatchSize = 256 << 20

  public init(
    groupId: String, topics: [String], bootstrapAddresses: [KafkaConfiguration.BrokerAddress] = []
  ) {
    self.groupId = groupId
    self.topics = topics
    self.bootstrapAddresses = bootstrapAddresses
  }
}

extension KafkaShareConsumerConfiguration {
  @available(*, deprecated, renamed: "init(groupId:topics:bootstrapAddresses:)")
  public init(groupId: String, topics: [String], bootstrapBrokerAddresses: [KafkaConfiguration.BrokerAddress])
  {
    self.init(groupId: groupId, topics: topics, bootstrapAddresses: bootstrapBrokerAddresses)
  }
  @available(*, deprecated, renamed: "bootstrapAddresses")
  public var bootstrapBrokerAddresses: [KafkaConfiguration.BrokerAddress] {
    get { bootstrapAddresses }
    set { bootstrapAddresses = newValue }
  }
}

/// A record handed to this share-group member, locked to it until acknowledged or until
/// the broker's acquisition lock expires.
public struct KafkaShareMessage: Hashable, Sendable {
  public var message: KafkaConsumerMessage
  /// How often the broker has handed this record out, this time included.
  public var deliveryCount: Int16

  public var topic: String { message.topic }
  public var partition: KafkaPartition { message.partition }
  public var offset: KafkaOffset { message.offset }
  public var key: ByteBuffer? { message.key }
  public var value: ByteBuffer { message.value }
  public var headers: [KafkaHeader] { message.headers }
}

/// A member of a Kafka share group (KIP-932): a work queue over topics. Any number of
/// members read the same partitions; each record goes to one member at a time, which
/// acknowledges it (accept, release, reject); a record not acknowledged in time, or
/// released, goes to some member again, with a higher ``KafkaShareMessage/deliveryCount``.
///
/// ``poll()`` returns the next batch. With ``KafkaShareConsumerConfiguration/AcknowledgementMode/implicit``
/// (the default) asking for the next batch accepts the previous one; with `.explicit` the
/// application settles each record with ``acknowledge(_:_:)`` and may send the settlements
/// at once with ``commit()`` (they otherwise travel with the next fetch). ``close()``
/// sends what is pending and leaves the group; records still held go back to the group.
///
/// Works against Sluice and against Apache Kafka 4.1+ (ShareGroupHeartbeat, ShareFetch and
/// ShareAcknowledge v1).
public final class KafkaShareConsumer: Service, Sendable {
  public let configuration: KafkaShareConsumerConfiguration
  let member: ShareMember
  let cluster: KafkaCluster
  /// How many records of the last batch the application was given (``messages`` hands
  /// them out one by one; ``poll()`` all at once): on close in implicit mode those are
  /// accepted, the rest released.
  let handedOut = Atomic<Int>(Int.max)

  public init(
    configuration: KafkaShareConsumerConfiguration, logger: Logger = Logger(label: "KafkaShareConsumer")
  )
    throws
  {
    guard !configuration.groupId.isEmpty, !configuration.topics.isEmpty else {
      throw KafkaError(.config, "a share consumer needs a group id and at least one topic")
    }
    guard configuration.maxPollRecords > 0 else {
      throw KafkaError(.config, "maxPollRecords must be positive")
    }
    self.configuration = configuration
    cluster = try KafkaCluster(
      bootstrap: configuration.bootstrapAddresses, settings: configuration.connection, logger: logger)
    member = ShareMember(configuration: configuration, cluster: cluster, logger: logger)
  }

  /// The next batch of records (empty when none came within the fetch wait); joins the
  /// group on first use. Implicit mode: accepts the previous batch. Explicit mode: throws
  /// `.config` if a record of the previous batch is not acknowledged yet.
  public func poll() async throws -> [KafkaShareMessage] {
    let batch = try await member.poll()
    handedOut.store(Int.max, ordering: .relaxed)
    return batch
  }

  /// Settles one record of the current batch (explicit mode); sent with the next fetch or
  /// ``commit()``.
  public func acknowledge(_ message: KafkaShareMessage, _ type: KafkaAcknowledgeType = .accept) async throws {
    try await member.acknowledge(message, type)
  }

  /// Sends the pending acknowledgements now (ShareAcknowledge) and waits for the broker's
  /// answer; throws the first partition's error (e.g. INVALID_RECORD_STATE for a record
  /// whose lock had expired).
  public func commit() async throws {
    try await member.commit()
  }

  /// The records, one by one (implicit acknowledgement: a batch is accepted when the
  /// iterator asks for the next one, i.e. once every record of it has been handed out and
  /// the loop comes back for more). Ends when the consumer closes. Iterate from one task.
  public var messages: KafkaShareConsumerMessages { KafkaShareConsumerMessages(consumer: self) }

  /// Sends pending acknowledgements (implicit mode: the last batch is accepted), closes
  /// the share session and leaves the group.
  public func close() async {
    await member.close(handedOut: handedOut.load(ordering: .relaxed))
    await cluster.close()
  }

  /// swift-service-lifecycle: waits for graceful shutdown, then closes.
  public func run() async throws {
    try? await gracefulShutdown()
    await close()
  }
}

/// A share consumer's records as an `AsyncSequence`: fetches only when the records of the
/// previous fetch have all been handed out.
public struct KafkaShareConsumerMessages: AsyncSequence, Sendable {
  public typealias Element = KafkaShareMessage
  let consumer: KafkaShareConsumer

  public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: consumer) }

  public struct AsyncIterator: AsyncIteratorProtocol {
    let consumer: KafkaShareConsumer
    var buffered: [KafkaShareMessage] = []
    var index = 0

    public mutating func next() async throws -> KafkaShareMessage? {
      while index == buffered.count {
        if Task.isCancelled { return nil }
        if await consumer.member.isClosed { return nil }
        // Nothing of the next batch is handed out yet (the previous one all was).
        consumer.handedOut.store(0, ordering: .relaxed)
        do {
          buffered = try await consumer.member.poll()
        } catch let error as KafkaError where error.code == .closed {
          return nil
        }
        index = 0
      }
      // Closed meanwhile: the rest of the batch is not handed out (it goes back to the group).
      if await consumer.member.isClosed { return nil }
      defer { index += 1 }
      consumer.handedOut.store(index + 1, ordering: .relaxed)
      return buffered[index]
    }
  }
}

/// The share consumer's state: membership (heartbeats), the share session per broker, the
/// current batch and the acknowledgements not yet sent.
actor ShareMember {
  let configuration: KafkaShareConsumerConfiguration
  let cluster: KafkaCluster
  let logger: Logger
  /// A random UUID, as librdkafka's members choose theirs (KIP-1082).
  let memberId = KafkaUUID.random().description
  var memberEpoch: Int32 = 0
  var heartbeatInterval: Duration = .seconds(5)
  var assignment: [KafkaTopicPartition] = []
  var joined = false
  var heartbeat: Task<Void, Never>?
  /// Share session epoch per broker node (0: open one with the next request).
  var sessionEpochs: [Int32: Int32] = [:]
  /// Partitions already added to each node's session.
  var inSession: [Int32: Set<KafkaTopicPartition>] = [:]
  /// The last batch: records not yet settled (explicit mode).
  var unsettled: Set<KafkaTopicPartition.Offset> = []
  var lastBatch: [KafkaShareMessage] = []
  var pending: [KafkaTopicPartition: [(offset: Int64, type: KafkaAcknowledgeType)]] = [:]
  private(set) var isClosed = false

  init(configuration: KafkaShareConsumerConfiguration, cluster: KafkaCluster, logger: Logger) {
    self.configuration = configuration
    self.cluster = cluster
    self.logger = logger
  }

  // MARK: Membership

  private func join() async throws {
    guard !joined else { return }
    try await heartbeatOnce(subscribe: true)
    joined = true
    heartbeat = Task { [weak self] in
      while !Task.isCancelled {
        guard let interval = await self?.heartbeatInterval else { return }
        try? await Task.sleep(for: interval)
        guard let self, !(await self.isClosed) else { return }
        do {
          try await self.heartbeatOnce(subscribe: false)
        } catch {
          self.logger.debug("share heartbeat: \(error)")
        }
      }
    }
  }

  func heartbeatOnce(subscribe: Bool) async throws {
    let (_, connection) = try await findGroupCoordinator(configuration.groupId, cluster: cluster)
    let version = try connection.version(for: .shareGroupHeartbeat, min: 1, max: 1)
    var request = ShareGroupHeartbeatRequest()
    request.groupId = configuration.groupId
    request.memberId = memberId
    request.memberEpoch = memberEpoch
    if subscribe || memberEpoch == 0 { request.subscribedTopicNames = configuration.topics }
    guard
      case .shareGroupHeartbeat(let response) = try await connection.send(
        .shareGroupHeartbeat(request), version: version)
    else { throw KafkaError(.protocolError, "not a ShareGroupHeartbeat response") }
    let code = ErrorCode(rawValue: response.errorCode)
    if code == .unknownMemberId || code == .fencedMemberEpoch {
      memberEpoch = 0
      return try await heartbeatOnce(subscribe: true)
    }
    try code.check("ShareGroupHeartbeat \(configuration.groupId)", message: response.errorMessage)
    memberEpoch = response.memberEpoch
    if response.heartbeatIntervalMs > 0 {
      heartbeatInterval = .milliseconds(Int(response.heartbeatIntervalMs))
    }
    if let assigned = response.assignment {
      let metadata = try await cluster.refreshMetadata(topics: nil)
      var names: [KafkaUUID: String] = [:]
      for topic in metadata.topics { if let name = topic.name { names[topic.topicId] = name } }
      assignment = assigned.topicPartitions.flatMap { topic in
        topic.partitions.compactMap { partition in
          names[topic.topicId].map {
            KafkaTopicPartition(topic: $0, partition: KafkaPartition(rawValue: Int(partition)))
          }
        }
      }.sorted { ($0.topic, $0.partition.rawValue) < ($1.topic, $1.partition.rawValue) }
    }
  }

  // MARK: Records

  func poll() async throws -> [KafkaShareMessage] {
    guard !isClosed else { throw KafkaError(.closed, "the share consumer is closed") }
    try await join()
    switch configuration.acknowledgementMode {
    case .implicit:
      for message in lastBatch { record(message, .accept) }
    case .explicit:
      guard unsettled.isEmpty else {
        throw KafkaError(.config, "\(unsettled.count) records of the previous batch are not acknowledged")
      }
    }
    lastBatch = []
    var byLeader: [Int32: [KafkaTopicPartition]] = [:]
    for topicPartition in Set(assignment).union(pending.keys) {
      let metadata = try await cluster.topic(topicPartition.topic)
      guard let leader = metadata.leaders[Int32(topicPartition.partition.rawValue)], leader >= 0 else {
        continue
      }
      byLeader[leader, default: []].append(topicPartition)
    }
    if byLeader.isEmpty {
      try await Task.sleep(for: configuration.fetchMaxWait)
      return []
    }
    var batch: [KafkaShareMessage] = []
    for (leader, partitions) in byLeader.sorted(by: { $0.key < $1.key }) {
      batch += try await shareFetch(partitions, from: leader)
    }
    lastBatch = batch
    unsettled = Set(batch.map { KafkaTopicPartition.Offset($0.message.topicPartition, $0.offset) })
    return batch
  }

  func acknowledge(_ message: KafkaShareMessage, _ type: KafkaAcknowledgeType) throws {
    guard configuration.acknowledgementMode == .explicit else {
      throw KafkaError(.config, "acknowledge(_:_:) needs acknowledgementMode .explicit")
    }
    guard unsettled.remove(KafkaTopicPartition.Offset(message.message.topicPartition, message.offset)) != nil
    else {
      throw KafkaError(
        .config,
        "\(message.topic)-\(message.partition.rawValue)@\(message.offset.rawValue) is not an unacknowledged record of the current batch"
      )
    }
    record(message, type)
  }

  private func record(_ message: KafkaShareMessage, _ type: KafkaAcknowledgeType) {
    pending[message.message.topicPartition, default: []].append((Int64(message.offset.rawValue), type))
  }

  /// Pending acknowledgements as Kafka's batches: runs of consecutive offsets with one type.
  static func batches(_ acks: [(offset: Int64, type: KafkaAcknowledgeType)]) -> [(
    first: Int64, last: Int64, type: Int8
  )] {
    var out: [(first: Int64, last: Int64, type: Int8)] = []
    for ack in acks.sorted(by: { $0.offset < $1.offset }) {
      if let last = out.last, last.last == ack.offset - 1, last.type == ack.type.rawValue {
        out[out.count - 1].last = ack.offset
      } else {
        out.append((ack.offset, ack.offset, ack.type.rawValue))
      }
    }
    return out
  }

  private func topicIds(_ partitions: [KafkaTopicPartition]) async throws -> [String: KafkaUUID] {
    var ids: [String: KafkaUUID] = [:]
    for name in Set(partitions.map(\.topic)) { ids[name] = try await cluster.topic(name).topicId }
    return ids
  }

  /// The epoch after `epoch` (wrapping to 1, as Kafka's clients do).
  static func after(_ epoch: Int32) -> Int32 { epoch == Int32.max ? 1 : epoch + 1 }

  /// Removes from `pending` the first `counts[partition]` acknowledgements of each
  /// partition: those a request carried, after the broker took the request (acknowledge()
  /// may have added more meanwhile: the actor is reentrant across the send).
  private func settle(_ counts: [KafkaTopicPartition: Int]) {
    for (partition, count) in counts {
      guard var acks = pending[partition] else { continue }
      acks.removeFirst(min(count, acks.count))
      pending[partition] = acks.isEmpty ? nil : acks
    }
  }

  /// A session error or an unknown member: the session (and for the latter the
  /// membership) starts again; pending acknowledgements stay for the next request.
  private func resetAfter(_ code: ErrorCode, leader: Int32) -> Bool {
    switch code {
    case .shareSessionNotFound, .invalidShareSessionEpoch, .shareSessionLimitReached:
      sessionEpochs[leader] = 0
      return true
    case .unknownMemberId:
      memberEpoch = 0
      joined = false
      heartbeat?.cancel()
      sessionEpochs[leader] = 0
      return true
    default:
      return false
    }
  }

  private func shareFetch(_ partitions: [KafkaTopicPartition], from leader: Int32) async throws
    -> [KafkaShareMessage]
  {
    let connection = try await cluster.connection(node: leader)
    let version = try connection.version(for: .shareFetch, min: 1, max: 1)
    let ids = try await topicIds(partitions)
    let epoch = sessionEpochs[leader] ?? 0
    if epoch == 0 { inSession[leader] = [] }
    var request = ShareFetchRequest()
    request.groupId = configuration.groupId
    request.memberId = memberId
    request.shareSessionEpoch = epoch
    request.maxWaitMs = Int32(clamping: configuration.fetchMaxWait.milliseconds)
    request.minBytes = 1
    request.maxBytes = configuration.fetchMaxBytes
    request.maxRecords = configuration.maxPollRecords
    request.batchSize = configuration.maxPollRecords
    // Acknowledgements cannot ride on the request that opens a session: they wait for the
    // next one.
    var sent: [KafkaTopicPartition: Int] = [:]
    var byTopic: [String: [ShareFetchRequest.FetchPartition]] = [:]
    for partition in partitions {
      let acks = epoch == 0 ? [] : pending[partition] ?? []
      guard !acks.isEmpty || !(inSession[leader]?.contains(partition) ?? false) else { continue }
      var entry = ShareFetchRequest.FetchPartition()
      entry.partitionIndex = Int32(partition.partition.rawValue)
      entry.acknowledgementBatches = Self.batches(acks).map {
        .init(firstOffset: $0.first, lastOffset: $0.last, acknowledgeTypes: [$0.type])
      }
      byTopic[partition.topic, default: []].append(entry)
      if !acks.isEmpty { sent[partition] = acks.count }
    }
    request.topics = byTopic.keys.sorted().compactMap { name in
      ids[name].map { ShareFetchRequest.FetchTopic(topicId: $0, partitions: byTopic[name]!) }
    }
    let timeout = configuration.connection.requestTimeout + configuration.fetchMaxWait
    let body: KafkaResponseBody
    do {
      body = try await connection.send(.shareFetch(request), version: version, timeout: timeout)
    } catch {
      // Whether the broker saw it is unknown: a new session; the acknowledgements stay.
      sessionEpochs[leader] = 0
      throw error
    }
    guard case .shareFetch(let response) = body else {
      throw KafkaError(.protocolError, "not a ShareFetch response")
    }
    let code = ErrorCode(rawValue: response.errorCode)
    if resetAfter(code, leader: leader) { return [] }
    try code.check("ShareFetch", message: response.errorMessage)
    // Taken: the acknowledgements it carried are settled (or refused, per partition).
    sessionEpochs[leader] = Self.after(epoch)
    settle(sent)
    inSession[leader, default: []].formUnion(partitions)
    var names: [KafkaUUID: String] = [:]
    for (name, id) in ids { names[id] = name }
    var messages: [KafkaShareMessage] = []
    for topic in response.responses {
      guard let name = names[topic.topicId] else { continue }
      for data in topic.partitions {
        let partition = KafkaPartition(rawValue: Int(data.partitionIndex))
        if data.acknowledgeErrorCode != 0 {
          logger.warning(
            "share acknowledgement for \(name)-\(data.partitionIndex) failed: \(ErrorCode(rawValue: data.acknowledgeErrorCode).name)"
          )
        }
        let dataCode = ErrorCode(rawValue: data.errorCode)
        if dataCode != .none {
          if dataCode.isRetriable {
            await cluster.invalidate(topic: name)
          } else {
            throw KafkaError.broker(
              dataCode, "ShareFetch \(name)-\(data.partitionIndex)", message: data.errorMessage)
          }
          continue
        }
        guard let records = data.records, records.readableBytes > 0, !data.acquiredRecords.isEmpty else {
          continue
        }
        messages += try decode(records, topic: name, partition: partition, acquired: data.acquiredRecords)
      }
    }
    return messages
  }

  /// The records of `records` inside the acquired ranges, with their delivery counts.
  private func decode(
    _ records: ByteBuffer, topic: String, partition: KafkaPartition,
    acquired: [ShareFetchResponse.AcquiredRecords]
  ) throws -> [KafkaShareMessage] {
    var messages: [KafkaShareMessage] = []
    var splitter = RecordBatchSplitter(records)
    do {
      while let batch = try splitter.next() {
        guard !batch.isControl else { continue }
        let timestampType: KafkaTimestampType =
          batch.timestampType == .logAppendTime ? .logAppendTime : .createTime
        var iterator = try batch.makeRecordIterator(
          maxDecompressedSize: configuration.maxDecompressedBatchSize)
        while let record = try iterator.next() {
          guard
            let range = acquired.first(where: {
              $0.firstOffset <= record.offset && record.offset <= $0.lastOffset
            })
          else { continue }
          let message = KafkaConsumerMessage(
            topic: topic, partition: partition,
            headers: record.headers.map { KafkaHeader(key: $0.key, value: $0.value) },
            key: record.key, value: record.value ?? ByteBuffer(), isTombstone: record.value == nil,
            offset: KafkaOffset(rawValue: Int(record.offset)), timestamp: record.timestamp,
            timestampType: timestampType)
          messages.append(KafkaShareMessage(message: message, deliveryCount: range.deliveryCount))
        }
      }
    } catch {
      throw KafkaError(.protocolError, "corrupt records from \(topic)-\(partition.rawValue): \(error)")
    }
    return messages
  }

  func commit() async throws {
    try await sendAcknowledgements(closing: false)
  }

  /// Opens a share session with the leader without fetching (a ShareFetch at epoch 0 that
  /// names no partition), so that acknowledgements can follow at epoch 1.
  private func openSession(_ leader: Int32, _ connection: KafkaConnection) async throws {
    var request = ShareFetchRequest()
    request.groupId = configuration.groupId
    request.memberId = memberId
    request.shareSessionEpoch = 0
    request.maxBytes = configuration.fetchMaxBytes
    request.maxRecords = configuration.maxPollRecords
    request.batchSize = configuration.maxPollRecords
    let version = try connection.version(for: .shareFetch, min: 1, max: 1)
    guard case .shareFetch(let response) = try await connection.send(.shareFetch(request), version: version)
    else { throw KafkaError(.protocolError, "not a ShareFetch response") }
    try ErrorCode(rawValue: response.errorCode).check(
      "ShareFetch (open session)", message: response.errorMessage)
    sessionEpochs[leader] = 1
    inSession[leader] = []
  }

  /// ShareAcknowledge with what is pending, to each partition's leader; `closing` ends the
  /// sessions (epoch -1). Acknowledgements leave `pending` only once a broker took them (a
  /// partition's refusal, e.g. INVALID_RECORD_STATE for a lock that expired, is final and
  /// reported); a request that fails keeps them for the next one.
  private func sendAcknowledgements(closing: Bool) async throws {
    var byLeader: [Int32: [KafkaTopicPartition]] = [:]
    for partition in pending.keys {
      guard let leader = try await cluster.topic(partition.topic).leaders[Int32(partition.partition.rawValue)]
      else { continue }
      byLeader[leader, default: []].append(partition)
    }
    if closing { for node in sessionEpochs.keys where byLeader[node] == nil { byLeader[node] = [] } }
    var failure: KafkaError?
    for (leader, partitions) in byLeader.sorted(by: { $0.key < $1.key }) {
      let connection = try await cluster.connection(node: leader)
      let version = try connection.version(for: .shareAcknowledge, min: 1, max: 1)
      if !closing && sessionEpochs[leader, default: 0] == 0 { try await openSession(leader, connection) }
      let ids = try await topicIds(partitions)
      let epoch = closing ? -1 : sessionEpochs[leader, default: 1]
      var request = ShareAcknowledgeRequest()
      request.groupId = configuration.groupId
      request.memberId = memberId
      request.shareSessionEpoch = epoch
      var sent: [KafkaTopicPartition: Int] = [:]
      var byTopic: [String: [ShareAcknowledgeRequest.AcknowledgePartition]] = [:]
      for partition in partitions {
        let acks = pending[partition] ?? []
        sent[partition] = acks.count
        byTopic[partition.topic, default: []].append(
          .init(
            partitionIndex: Int32(partition.partition.rawValue),
            acknowledgementBatches: Self.batches(acks).map {
              .init(firstOffset: $0.first, lastOffset: $0.last, acknowledgeTypes: [$0.type])
            }))
      }
      request.topics = byTopic.keys.sorted().compactMap { name in
        ids[name].map { ShareAcknowledgeRequest.AcknowledgeTopic(topicId: $0, partitions: byTopic[name]!) }
      }
      let body: KafkaResponseBody
      do {
        body = try await connection.send(.shareAcknowledge(request), version: version)
      } catch {
        sessionEpochs[leader] = 0
        throw error
      }
      guard case .shareAcknowledge(let response) = body
      else { throw KafkaError(.protocolError, "not a ShareAcknowledge response") }
      let code = ErrorCode(rawValue: response.errorCode)
      if code != .none {
        _ = resetAfter(code, leader: leader)
        failure = failure ?? KafkaError.broker(code, "ShareAcknowledge", message: response.errorMessage)
        continue
      }
      sessionEpochs[leader] = closing ? nil : Self.after(epoch)
      settle(sent)
      for topic in response.responses {
        for data in topic.partitions where data.errorCode != 0 {
          failure =
            failure
            ?? KafkaError.broker(
              ErrorCode(rawValue: data.errorCode), "ShareAcknowledge partition \(data.partitionIndex)",
              message: data.errorMessage)
        }
      }
    }
    if let failure { throw failure }
  }

  /// `handedOut`: how many records of the last batch the application got (implicit mode
  /// accepts those and releases the rest).
  func close(handedOut: Int) async {
    guard !isClosed else { return }
    if configuration.acknowledgementMode == .implicit {
      for (index, message) in lastBatch.enumerated() {
        record(message, index < handedOut ? .accept : .release)
      }
    }
    lastBatch = []
    isClosed = true
    heartbeat?.cancel()
    guard joined else { return }
    do {
      try await sendAcknowledgements(closing: true)
    } catch {
      logger.warning("share consumer close: \(error)")
    }
    memberEpoch = -1
    try? await heartbeatOnce(subscribe: false)
  }
}

extension KafkaTopicPartition {
  /// A record's place: partition and offset.
  struct Offset: Hashable, Sendable {
    var topicPartition: KafkaTopicPartition
    var offset: KafkaOffset
    init(_ topicPartition: KafkaTopicPartition, _ offset: KafkaOffset) {
      self.topicPartition = topicPartition
      self.offset = offset
    }
  }
}
