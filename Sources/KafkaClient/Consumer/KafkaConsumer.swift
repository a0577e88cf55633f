import KafkaProtocol
public import Logging
import NIOCore

/// Reads records from assigned partitions.
///
/// Messages come from ``messages``, an `AsyncSequence` that fetches on demand (a fetch
/// long-polls the partition leaders for up to ``KafkaConsumerConfiguration/fetchMaxWait``),
/// so a slow reader applies backpressure: nothing is fetched ahead of it but one response.
/// Positions can be moved with ``seek(_:to:)`` and ``seek(_:toTimestamp:)`` (ListOffsets).
public final class KafkaConsumer: Sendable {
  public let configuration: KafkaConsumerConfiguration
  let cluster: KafkaCluster
  let fetcher: Fetcher
  let logger: Logger

  public init(configuration: KafkaConsumerConfiguration, logger: Logger = Logger(label: "KafkaConsumer"))
    throws
  {
    self.configuration = configuration
    self.logger = logger
    self.cluster = try KafkaCluster(
      bootstrap: configuration.bootstrapBrokerAddresses, settings: configuration.connection, logger: logger)
    switch configuration.consumptionStrategy.base {
    case .partitions(let assignment):
      self.fetcher = Fetcher(
        cluster: cluster, configuration: configuration, logger: logger, assignment: assignment)
    case .group(let id, let topics):
      guard id.isEmpty, let offset = configuration.consumptionStrategy.allPartitionsOffset else {
        throw KafkaError(.unsupported, "group subscription is not implemented yet; assign partitions instead")
      }
      self.fetcher = Fetcher(
        cluster: cluster, configuration: configuration, logger: logger, assignment: [:],
        pendingTopics: topics.map { ($0, offset) })
    }
  }

  /// swift-kafka-client's factory name.
  public static func makeConsumer(
    configuration: KafkaConsumerConfiguration, logger: Logger = Logger(label: "KafkaConsumer")
  ) throws -> KafkaConsumer {
    try KafkaConsumer(configuration: configuration, logger: logger)
  }

  /// The records of the assigned partitions, in offset order per partition.
  public var messages: KafkaConsumerMessages { KafkaConsumerMessages(fetcher: fetcher) }

  /// The next records as one array (what one fetch returned); nil once closed. For callers
  /// that want to act per fetch, e.g. flush output.
  package func nextBatch() async throws -> [KafkaConsumerMessage]? {
    try await fetcher.nextMessages()
  }

  /// Replaces the assignment.
  public func assign(_ assignment: [KafkaTopicPartition: KafkaOffset]) async {
    await fetcher.assign(assignment)
  }

  /// The partitions currently assigned (topics given by name are expanded on first fetch).
  public func assignment() async throws -> [KafkaTopicPartition] {
    try await fetcher.resolveTopics()
    return await fetcher.assignedPartitions
  }

  /// Moves the position of `topicPartition` (resolved through ListOffsets for `.beginning`/`.end`).
  public func seek(_ topicPartition: KafkaTopicPartition, to offset: KafkaOffset) async {
    await fetcher.seek(topicPartition, to: Fetcher.position(offset))
  }

  /// Moves the position to the first record with a timestamp ≥ `timestamp` (ms), or the
  /// end when there is none.
  public func seek(_ topicPartition: KafkaTopicPartition, toTimestamp timestamp: Int64) async {
    await fetcher.seek(topicPartition, to: .timestamp(timestamp))
  }

  /// The next offset this consumer will read from the partition (after resolving logical offsets).
  public func position(_ topicPartition: KafkaTopicPartition) async throws -> KafkaOffset {
    try await fetcher.resolvePositions()
    guard let position = await fetcher.position(topicPartition) else {
      throw KafkaError(.config, "\(topicPartition) is not assigned")
    }
    return KafkaOffset(rawValue: Int(position))
  }

  /// Earliest and latest offsets (log start, high watermark) of a partition.
  public func watermarks(_ topicPartition: KafkaTopicPartition) async throws -> (
    low: KafkaOffset, high: KafkaOffset
  ) {
    let low = try await listOffsets(cluster, [topicPartition: -2])[topicPartition] ?? -1
    let high = try await listOffsets(cluster, [topicPartition: -1])[topicPartition] ?? -1
    return (KafkaOffset(rawValue: Int(low)), KafkaOffset(rawValue: Int(high)))
  }

  /// Closes the connections; iteration then ends.
  public func close() async {
    await fetcher.close()
    await cluster.close()
  }
}

/// The consumer's messages. Iterate it from one task at a time.
public struct KafkaConsumerMessages: AsyncSequence, Sendable {
  public typealias Element = KafkaConsumerMessage
  let fetcher: Fetcher

  public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(fetcher: fetcher) }

  public struct AsyncIterator: AsyncIteratorProtocol {
    let fetcher: Fetcher
    var buffered: [KafkaConsumerMessage] = []
    var index = 0

    public mutating func next() async throws -> KafkaConsumerMessage? {
      while index == buffered.count {
        guard let batch = try await fetcher.nextMessages() else { return nil }
        buffered = batch
        index = 0
      }
      defer { index += 1 }
      return buffered[index]
    }
  }
}

/// Resolves `timestamps` (-2 earliest, -1 latest, else a time in ms) to offsets with ListOffsets.
func listOffsets(_ cluster: KafkaCluster, _ timestamps: [KafkaTopicPartition: Int64]) async throws
  -> [KafkaTopicPartition: Int64]
{
  var byLeader: [Int32: [KafkaTopicPartition]] = [:]
  for topicPartition in timestamps.keys {
    let metadata = try await cluster.topic(topicPartition.topic)
    guard let leader = metadata.leaders[Int32(topicPartition.partition.rawValue)] else {
      throw KafkaError.broker(.unknownTopicOrPartition, "no partition \(topicPartition)")
    }
    byLeader[leader, default: []].append(topicPartition)
  }
  var result: [KafkaTopicPartition: Int64] = [:]
  for (leader, partitions) in byLeader {
    let connection = try await cluster.connection(node: leader)
    let version = try connection.version(for: .listOffsets, min: 1, max: 7)
    var request = ListOffsetsRequest()
    request.replicaId = -1
    let topics = Dictionary(grouping: partitions, by: \.topic)
    request.topics = topics.map { topic, parts in
      ListOffsetsRequest.ListOffsetsTopic(
        name: topic,
        partitions: parts.map {
          ListOffsetsRequest.ListOffsetsPartition(
            partitionIndex: Int32($0.partition.rawValue), currentLeaderEpoch: -1, timestamp: timestamps[$0]!)
        })
    }
    guard case .listOffsets(let response) = try await connection.send(.listOffsets(request), version: version)
    else {
      throw KafkaError(.protocolError, "not a ListOffsets response")
    }
    for topic in response.topics {
      for partition in topic.partitions {
        let topicPartition = KafkaTopicPartition(
          topic: topic.name, partition: KafkaPartition(rawValue: Int(partition.partitionIndex)))
        try ErrorCode(rawValue: partition.errorCode).check("ListOffsets \(topicPartition)")
        result[topicPartition] = partition.offset
      }
    }
  }
  return result
}

/// The consumer's fetch state: positions and pending seeks per partition.
actor Fetcher {
  enum Position: Sendable {
    case offset(Int64)
    /// -2 beginning, -1 end: resolved with ListOffsets before the next fetch.
    case logical(Int64)
    case timestamp(Int64)
  }

  let cluster: KafkaCluster
  let configuration: KafkaConsumerConfiguration
  let logger: Logger
  private var positions: [KafkaTopicPartition: Position] = [:]
  private var order: [KafkaTopicPartition] = []
  private var pendingTopics: [(String, KafkaOffset)]
  private var closed = false

  init(
    cluster: KafkaCluster, configuration: KafkaConsumerConfiguration, logger: Logger,
    assignment: [KafkaTopicPartition: KafkaOffset], pendingTopics: [(String, KafkaOffset)] = []
  ) {
    self.cluster = cluster
    self.configuration = configuration
    self.logger = logger
    self.pendingTopics = pendingTopics
    for (topicPartition, offset) in assignment {
      positions[topicPartition] = Self.position(offset)
    }
    order = assignment.keys.sorted { ($0.topic, $0.partition.rawValue) < ($1.topic, $1.partition.rawValue) }
  }

  static func position(_ offset: KafkaOffset) -> Position {
    offset.rawValue >= 0 ? .offset(Int64(offset.rawValue)) : .logical(Int64(offset.rawValue))
  }

  var assignedPartitions: [KafkaTopicPartition] { order }

  func position(_ topicPartition: KafkaTopicPartition) -> Int64? {
    if case .offset(let offset) = positions[topicPartition] { return offset }
    return nil
  }

  func assign(_ assignment: [KafkaTopicPartition: KafkaOffset]) {
    positions = assignment.mapValues(Self.position)
    order = assignment.keys.sorted { ($0.topic, $0.partition.rawValue) < ($1.topic, $1.partition.rawValue) }
    pendingTopics = []
  }

  func seek(_ topicPartition: KafkaTopicPartition, to position: Position) {
    if positions[topicPartition] == nil { order.append(topicPartition) }
    positions[topicPartition] = position
  }

  func close() { closed = true }

  func resolveTopics() async throws {
    while let (topic, offset) = pendingTopics.first {
      let metadata = try await cluster.topic(topic, refresh: true)
      for partition in metadata.leaders.keys.sorted() {
        let topicPartition = KafkaTopicPartition(
          topic: topic, partition: KafkaPartition(rawValue: Int(partition)))
        if positions[topicPartition] == nil {
          positions[topicPartition] = Self.position(offset)
          order.append(topicPartition)
        }
      }
      pendingTopics.removeFirst()
    }
  }

  func resolvePositions() async throws {
    try await resolveTopics()
    var wanted: [KafkaTopicPartition: Int64] = [:]
    for (topicPartition, position) in positions {
      switch position {
      case .offset: continue
      case .logical(let value), .timestamp(let value): wanted[topicPartition] = value
      }
    }
    guard !wanted.isEmpty else { return }
    let resolved = try await listOffsets(cluster, wanted)
    var missingTimestamps: [KafkaTopicPartition: Int64] = [:]
    for (topicPartition, offset) in resolved {
      if offset >= 0 {
        positions[topicPartition] = .offset(offset)
      } else {
        missingTimestamps[topicPartition] = -1  // no record at or after the timestamp: the end
      }
    }
    if !missingTimestamps.isEmpty {
      for (topicPartition, offset) in try await listOffsets(cluster, missingTimestamps) {
        positions[topicPartition] = .offset(offset)
      }
    }
  }

  /// Fetches until some records arrive; nil once closed or cancelled.
  func nextMessages() async throws -> [KafkaConsumerMessage]? {
    while !closed && !Task.isCancelled {
      try await resolvePositions()
      if positions.isEmpty {
        try await Task.sleep(for: configuration.fetchMaxWait)
        continue
      }
      let messages = try await fetchOnce()
      if !messages.isEmpty { return messages }
    }
    return nil
  }

  private func fetchOnce() async throws -> [KafkaConsumerMessage] {
    var byLeader: [Int32: [(KafkaTopicPartition, Int64)]] = [:]
    for topicPartition in order {
      guard case .offset(let offset) = positions[topicPartition] else { continue }
      let metadata = try await cluster.topic(topicPartition.topic)
      guard let leader = metadata.leaders[Int32(topicPartition.partition.rawValue)], leader >= 0 else {
        throw KafkaError.broker(.unknownTopicOrPartition, "no leader for \(topicPartition)")
      }
      byLeader[leader, default: []].append((topicPartition, offset))
    }
    var messages: [KafkaConsumerMessage] = []
    for (leader, partitions) in byLeader.sorted(by: { $0.key < $1.key }) {
      try await fetch(partitions, from: leader, into: &messages)
    }
    return messages
  }

  private func fetch(
    _ partitions: [(KafkaTopicPartition, Int64)], from leader: Int32,
    into messages: inout [KafkaConsumerMessage]
  ) async throws {
    let connection: KafkaConnection
    do {
      connection = try await cluster.connection(node: leader)
    } catch let error as KafkaError where error.isRetriable {
      logger.debug("fetch: \(error)")
      try await Task.sleep(for: configuration.connection.reconnectBackoff)
      return
    }
    let version = try connection.version(for: .fetch, min: 4, max: 12)
    var request = FetchRequest()
    request.replicaId = -1
    request.maxWaitMs = Int32(clamping: configuration.fetchMaxWait.milliseconds)
    request.minBytes = configuration.fetchMinBytes
    request.maxBytes = configuration.fetchMaxBytes
    request.isolationLevel = 0
    request.sessionId = 0
    request.sessionEpoch = -1
    var topicOrder: [String] = []
    var topicPartitions: [String: [FetchRequest.FetchPartition]] = [:]
    for (topicPartition, offset) in partitions {
      if topicPartitions[topicPartition.topic] == nil { topicOrder.append(topicPartition.topic) }
      var partition = FetchRequest.FetchPartition()
      partition.partition = Int32(topicPartition.partition.rawValue)
      partition.fetchOffset = offset
      partition.partitionMaxBytes = configuration.fetchPartitionMaxBytes
      topicPartitions[topicPartition.topic, default: []].append(partition)
    }
    request.topics = topicOrder.map { FetchRequest.FetchTopic(topic: $0, partitions: topicPartitions[$0]!) }
    let timeout = configuration.connection.requestTimeout + configuration.fetchMaxWait
    let body: KafkaResponseBody
    do {
      body = try await connection.send(.fetch(request), version: version, timeout: timeout)
    } catch let error as KafkaError where error.isRetriable {
      logger.debug("fetch: \(error)")
      try await Task.sleep(for: configuration.connection.reconnectBackoff)
      return
    }
    guard case .fetch(let response) = body else { throw KafkaError(.protocolError, "not a Fetch response") }
    try ErrorCode(rawValue: response.errorCode).check("Fetch")
    for topic in response.responses {
      for data in topic.partitions {
        let topicPartition = KafkaTopicPartition(
          topic: topic.topic, partition: KafkaPartition(rawValue: Int(data.partitionIndex)))
        guard case .offset(let position) = positions[topicPartition] else { continue }
        let code = ErrorCode(rawValue: data.errorCode)
        switch code {
        case .none: break
        case .offsetOutOfRange:
          logger.info(
            "\(topicPartition): offset \(position) out of range, resetting to \(configuration.autoOffsetReset)"
          )
          positions[topicPartition] = Self.position(configuration.autoOffsetReset)
          continue
        case _ where code.isRetriable:
          await cluster.invalidate(topic: topicPartition.topic)
          continue
        default:
          throw KafkaError.broker(code, "fetch \(topicPartition)")
        }
        guard let records = data.records, records.readableBytes > 0 else { continue }
        var next = position
        var splitter = RecordBatchSplitter(records)
        do {
          while let batch = try splitter.next() {
            guard batch.nextOffset > next else { continue }
            if batch.isControl {
              next = batch.nextOffset
              continue
            }
            let timestampType: KafkaTimestampType =
              batch.timestampType == .logAppendTime ? .logAppendTime : .createTime
            var iterator = try batch.makeRecordIterator(
              maxDecompressedSize: configuration.maxDecompressedBatchSize)
            while let record = try iterator.next() {
              guard record.offset >= next else { continue }
              messages.append(
                KafkaConsumerMessage(
                  topic: topicPartition.topic, partition: topicPartition.partition,
                  headers: record.headers.map { KafkaHeader(key: $0.key, value: $0.value) }, key: record.key,
                  value: record.value ?? ByteBuffer(), isTombstone: record.value == nil,
                  offset: KafkaOffset(rawValue: Int(record.offset)), timestamp: record.timestamp,
                  timestampType: timestampType))
            }
            next = batch.nextOffset
          }
        } catch {
          throw KafkaError(.protocolError, "corrupt records from \(topicPartition) at \(next): \(error)")
        }
        positions[topicPartition] = .offset(next)
      }
    }
  }
}
