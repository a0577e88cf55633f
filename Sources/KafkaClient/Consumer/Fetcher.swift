package import KafkaProtocol
import Logging
import NIOCore

/// Resolves `timestamps` (-2 earliest, -1 latest, else a time in ms) to offsets with ListOffsets.
func listOffsets(
  _ cluster: KafkaCluster, _ timestamps: [KafkaTopicPartition: Int64], isolationLevel: Int8 = 0
) async throws
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
    if version >= 2 { request.isolationLevel = isolationLevel }
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

/// The consumer's fetch state: assignment, positions, pending seeks and paused partitions.
///
/// ``poll()`` runs one fetch round. Positions advance as records are handed out, so when
/// the consumer asks for the next round, everything before the positions has been
/// delivered: ``markConsumed()`` then records them as the offsets safe to commit.
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
  /// The pauses in effect (the consumer's ``ConsumerShared`` holds what was asked for;
  /// ``applyPauses()`` brings them in line).
  private var paused: Set<KafkaTopicPartition> = []
  let shared: ConsumerShared
  /// Records fetched and not handed out yet (at most
  /// ``KafkaConsumerConfiguration/maxPollRecords`` leave per ``poll()``), from `bufferIndex`.
  private var buffered: [KafkaConsumerMessage] = []
  private var bufferIndex = 0
  /// Positions of everything delivered, as of the start of the current round.
  private(set) var consumed: [KafkaTopicPartition: Int64] = [:]
  private(set) var isClosed = false

  init(
    cluster: KafkaCluster, configuration: KafkaConsumerConfiguration, logger: Logger,
    assignment: [KafkaTopicPartition: KafkaOffset], pendingTopics: [(String, KafkaOffset)] = [],
    shared: ConsumerShared
  ) {
    self.shared = shared
    self.cluster = cluster
    self.configuration = configuration
    self.logger = logger
    self.pendingTopics = pendingTopics
    for (topicPartition, offset) in assignment {
      positions[topicPartition] = Self.position(offset)
    }
    order = Self.sorted(assignment.keys)
  }

  static func sorted(_ partitions: some Sequence<KafkaTopicPartition>) -> [KafkaTopicPartition] {
    partitions.sorted { ($0.topic, $0.partition.rawValue) < ($1.topic, $1.partition.rawValue) }
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
    order = Self.sorted(assignment.keys)
    pendingTopics = []
    shared.assigned(Set(assignment.keys))
    paused.formIntersection(assignment.keys)
    consumed = consumed.filter { assignment[$0.key] != nil }
    buffered = []
    bufferIndex = 0
  }

  func seek(_ topicPartition: KafkaTopicPartition, to position: Position) {
    dropBuffered([topicPartition])
    if positions[topicPartition] == nil { order.append(topicPartition) }
    positions[topicPartition] = position
  }

  var pausedPartitions: [KafkaTopicPartition] { Self.sorted(shared.paused) }

  /// Takes the pauses asked for since the last round into effect: buffered records of a
  /// newly paused partition are dropped and its position moves back to the first of them.
  private func applyPauses() {
    let wanted = shared.paused.intersection(positions.keys)
    guard wanted != paused else { return }
    dropBuffered(wanted.subtracting(paused))
    paused = wanted
  }

  /// Forgets the buffered records of `partitions`, moving each one's position back to the
  /// first of them, so that they are fetched again.
  private func dropBuffered(_ partitions: Set<KafkaTopicPartition>) {
    guard !partitions.isEmpty, bufferIndex < buffered.count else { return }
    var kept: [KafkaConsumerMessage] = []
    var rewound: Set<KafkaTopicPartition> = []
    for message in buffered[bufferIndex...] {
      let topicPartition = message.topicPartition
      if partitions.contains(topicPartition) {
        if rewound.insert(topicPartition).inserted {
          positions[topicPartition] = .offset(Int64(message.offset.rawValue))
        }
      } else {
        kept.append(message)
      }
    }
    buffered = kept
    bufferIndex = 0
  }

  func close() { isClosed = true }

  /// Records the current positions as delivered (see the type's comment).
  func markConsumed() {
    var firstBuffered: [KafkaTopicPartition: Int64] = [:]
    if bufferIndex < buffered.count {
      for message in buffered[bufferIndex...] where firstBuffered[message.topicPartition] == nil {
        firstBuffered[message.topicPartition] = Int64(message.offset.rawValue)
      }
    }
    for (topicPartition, position) in positions {
      if let first = firstBuffered[topicPartition] {
        consumed[topicPartition] = first
      } else if case .offset(let offset) = position {
        consumed[topicPartition] = offset
      }
    }
  }

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
    let isolation = configuration.isolationLevel.rawValue
    let resolved = try await listOffsets(cluster, wanted, isolationLevel: isolation)
    var missingTimestamps: [KafkaTopicPartition: Int64] = [:]
    for (topicPartition, offset) in resolved where positions[topicPartition] != nil {
      if offset >= 0 {
        positions[topicPartition] = .offset(offset)
      } else {
        missingTimestamps[topicPartition] = -1  // no record at or after the timestamp: the end
      }
    }
    if !missingTimestamps.isEmpty {
      for (topicPartition, offset) in try await listOffsets(
        cluster, missingTimestamps, isolationLevel: isolation)
      where positions[topicPartition] != nil {
        positions[topicPartition] = .offset(offset)
      }
    }
  }

  /// One fetch round over the assigned, unpaused partitions: the records that arrived
  /// (possibly none). Waits briefly when there is nothing to fetch from.
  func poll() async throws -> [KafkaConsumerMessage] {
    applyPauses()
    if bufferIndex == buffered.count {
      try await resolvePositions()
      if order.allSatisfy({ paused.contains($0) }) {
        try await Task.sleep(for: min(configuration.fetchMaxWait, .milliseconds(100)))
        return []
      }
      buffered = try await fetchOnce()
      bufferIndex = 0
    }
    let end = min(buffered.count, bufferIndex + max(1, configuration.maxPollRecords))
    let chunk = Array(buffered[bufferIndex..<end])
    bufferIndex = end
    if end == buffered.count {
      buffered = []
      bufferIndex = 0
    }
    return chunk
  }

  private func fetchOnce() async throws -> [KafkaConsumerMessage] {
    var byLeader: [Int32: [(KafkaTopicPartition, Int64)]] = [:]
    for topicPartition in order where !paused.contains(topicPartition) {
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
    request.isolationLevel = configuration.isolationLevel.rawValue
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
    let readCommitted = configuration.isolationLevel == .readCommitted
    let requested = Dictionary(partitions, uniquingKeysWith: { first, _ in first })
    for topic in response.responses {
      for data in topic.partitions {
        let topicPartition = KafkaTopicPartition(
          topic: topic.topic, partition: KafkaPartition(rawValue: Int(data.partitionIndex)))
        // A partition revoked or sought elsewhere while the fetch was out is skipped.
        guard case .offset(let position) = positions[topicPartition], requested[topicPartition] == position
        else { continue }
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
        var aborted = AbortedTransactions(readCommitted ? data.abortedTransactions ?? [] : [])
        var next = position
        var splitter = RecordBatchSplitter(records)
        do {
          while let batch = try splitter.next() {
            guard batch.nextOffset > next else { continue }
            if readCommitted { aborted.advance(to: batch.lastOffset) }
            if batch.isControl {
              if readCommitted {
                var iterator = try batch.makeRecordIterator(
                  maxDecompressedSize: configuration.maxDecompressedBatchSize)
                if let record = try iterator.next(), try ControlRecord(record).type == .abort {
                  aborted.ended(producerId: batch.producerId)
                }
              }
              next = batch.nextOffset
              continue
            }
            if readCommitted && batch.isTransactional && aborted.isAborted(producerId: batch.producerId) {
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

/// read_committed filtering of one partition's fetched data: the broker lists the aborted
/// transactions overlapping the response (producer id, first offset); a transactional
/// batch of a producer whose aborted transaction has started and whose abort marker has not
/// been passed yet is skipped.
package struct AbortedTransactions {
  private var upcoming: [(producerId: Int64, firstOffset: Int64)]
  private var active: Set<Int64> = []

  package init(_ list: [FetchResponse.AbortedTransaction]) {
    upcoming = list.map { ($0.producerId, $0.firstOffset) }.sorted { $0.firstOffset < $1.firstOffset }
  }

  /// Activates the aborted transactions that start at or before `offset`.
  package mutating func advance(to offset: Int64) {
    while let first = upcoming.first, first.firstOffset <= offset {
      active.insert(first.producerId)
      upcoming.removeFirst()
    }
  }

  package mutating func ended(producerId: Int64) { active.remove(producerId) }

  package func isAborted(producerId: Int64) -> Bool { active.contains(producerId) }
}
