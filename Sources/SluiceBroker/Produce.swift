import KafkaProtocol
public import NIOCore
import SluiceStorage

/// Records a producer writes to one partition.
public struct PartitionRecords: Sendable {
  public var topic: String
  public var partition: Int32
  /// One or more concatenated v2 record batches, as the producer encoded them.
  public var records: ByteBuffer?

  public init(topic: String, partition: Int32, records: ByteBuffer?) {
    self.topic = topic
    self.partition = partition
    self.records = records
  }
}

/// When a write is acknowledged (Kafka's `acks`). A single broker holds one replica, so
/// `leader` and `all` wait for the same thing — the durability the topic's flush policy
/// asks for — except that `all` also honours `min.insync.replicas`.
public enum Acks: Sendable, Hashable {
  /// Nothing is reported to the producer (its writes still wait for their durability).
  case none
  case leader
  case all
}

public struct ProduceOptions: Sendable {
  public var acks: Acks
  /// Whether zstd batches are accepted (Kafka: only from Produce v7 on).
  public var allowZstd: Bool

  public init(acks: Acks, allowZstd: Bool = true) {
    self.acks = acks
    self.allowZstd = allowZstd
  }
}

/// Who is calling, for operations that wait: where to resume, and whether to give up.
public struct CallContext: Sendable {
  /// The caller's event loop, if it has one: waits end with a timer on it and resume on it.
  public var eventLoop: (any EventLoop)?
  /// Whether the caller is still there (a held request gives up when it is not).
  public var isConnected: @Sendable () -> Bool

  public init(eventLoop: (any EventLoop)? = nil, isConnected: @escaping @Sendable () -> Bool = { true }) {
    self.eventLoop = eventLoop
    self.isConnected = isConnected
  }
}

/// What happened to one partition's records.
public enum PartitionAppendResult: Sendable {
  /// Stored, as durable as the topic asks: offsets from `firstOffset`.
  case appended(firstOffset: Int64, logAppendTime: Int64, logStartOffset: Int64)
  /// An idempotent producer's retry of records stored earlier at `firstOffset`.
  case duplicate(firstOffset: Int64, logStartOffset: Int64)
  case failed(BrokerError)
}

public struct ProduceResult: Sendable {
  /// One per write, in order.
  public var results: [PartitionAppendResult]
  /// How long the overflow policy `backpressure` held the request, in ms (reported to Kafka
  /// clients as `throttle_time_ms`).
  public var heldMs: Int64
}

extension Broker {
  /// Appends each write's records to its partition: validated and prepared (see
  /// `BatchPreparation`), checked against the partition's producer sequences and overflow
  /// policy, written, and — before this returns — made as durable as the topic's flush policy
  /// asks. With the overflow policy `backpressure` the whole call is held first while a
  /// partition it writes is over its high-water mark.
  public func produce(
    _ writes: [PartitionRecords], options: ProduceOptions, context: CallContext = CallContext()
  ) async -> ProduceResult {
    // backpressure: hold the request (before anything is appended) while a partition it
    // writes is over its high-water mark.
    let claims = backpressureClaims(writes)
    var backpressure = BackpressureOutcome()
    if !claims.isEmpty {
      backpressure = await awaitBackpressure(claims, acks: options.acks, context: context)
    }
    // The claims keep their partitions alive, so these identifiers stay unique meanwhile.
    let timedOut = Set(backpressure.refused.map(ObjectIdentifier.init))
    var results: [PartitionAppendResult] = []
    var pending: [PendingProduce] = []
    for write in writes {
      guard let topic = self.topic(write.topic), let partition = topic.partition(write.partition) else {
        results.append(.failed(.unknownPartition(write.topic, write.partition)))
        continue
      }
      if let refusal = refusal(topic, partition, acks: options.acks, timedOut: timedOut) {
        results.append(.failed(refusal))
        continue
      }
      let outcome = await append(write.records, to: partition, of: topic, options: options, context: context)
      Self.record(outcome, of: partition, in: &results, pending: &pending)
    }
    // Appended (or refused): the backlog now counts these bytes itself.
    releaseBackpressure(backpressure.reserved)
    return ProduceResult(results: await awaitDurability(pending, results), heldMs: backpressure.heldMs)
  }

  /// The same produce without a task where nothing has to wait: the result at once, or nil
  /// and `completion` gets it later, from any thread — when a write meets `backpressure`
  /// or `drop-oldest`, a batch to recompress or to expand on the pool (the whole call then
  /// runs as `produce(_:options:context:)` in a task, before anything is appended), or a
  /// flush policy that fsyncs before acknowledging (appended here, acknowledged once
  /// durable). The network layer answers a Produce this way without a task switch.
  public func produce(
    _ writes: [PartitionRecords], options: ProduceOptions, context: CallContext,
    completion: @escaping @Sendable (ProduceResult) -> Void
  ) -> ProduceResult? {
    enum Target {
      case refused(BrokerError)
      case ready(Partition, BatchPreparation.Prepared, OverflowConfig)
    }
    var targets: [Target] = []
    for write in writes {
      guard let topic = self.topic(write.topic), let partition = topic.partition(write.partition) else {
        targets.append(.refused(.unknownPartition(write.topic, write.partition)))
        continue
      }
      let config = topic.config
      if let refusal = refusal(topic, partition, acks: options.acks, timedOut: []) {
        targets.append(.refused(refusal))
        continue
      }
      let preparation = BatchPreparation(
        topic: config, broker: self.config, now: clock.now(), allowZstd: options.allowZstd)
      guard config.overflow.policy != .backpressure, config.overflow.policy != .dropOldest,
        let prepared = preparation.prepareInline(write.records)
      else {
        Task { completion(await self.produce(writes, options: options, context: context)) }
        return nil
      }
      switch prepared {
      case .failure(let refusal): targets.append(.refused(refusal))
      case .success(let prepared): targets.append(.ready(partition, prepared, config.overflow))
      }
    }
    var results: [PartitionAppendResult] = []
    var pending: [PendingProduce] = []
    for target in targets {
      switch target {
      case .refused(let error):
        results.append(.failed(error))
      case .ready(let partition, let prepared, let overflow):
        let outcome = partition.append(prepared, now: clock.now()) { incoming in
          self.rejectsForOverflow(partition, overflow, incoming: incoming)
        }
        Self.record(outcome, of: partition, in: &results, pending: &pending)
      }
    }
    if pending.contains(where: { $0.append.mustFlush }) {
      Task { [results] in
        completion(ProduceResult(results: await self.awaitDurability(pending, results), heldMs: 0))
      }
      return nil
    }
    for entry in pending { entry.partition.notifyAppended() }
    return ProduceResult(results: results, heldMs: 0)
  }

  /// An append waiting for its durability before it is acknowledged.
  struct PendingProduce: Sendable {
    var index: Int
    var partition: Partition
    var append: PendingAppend
  }

  /// Adds one write's outcome to `results` (and, once appended, to `pending`).
  static func record(
    _ outcome: Partition.AppendOutcome, of partition: Partition, in results: inout [PartitionAppendResult],
    pending: inout [PendingProduce]
  ) {
    switch outcome {
    case .failed(let error):
      results.append(.failed(error))
    case .duplicate(let firstOffset):
      results.append(.duplicate(firstOffset: firstOffset, logStartOffset: partition.logStartOffset))
    case .appended(let append):
      pending.append(PendingProduce(index: results.count, partition: partition, append: append))
      results.append(
        .appended(
          firstOffset: append.result.firstOffset, logAppendTime: append.result.logAppendTime,
          logStartOffset: append.result.logStartOffset))
    }
  }

  /// Durability: waits for the fsyncs the policies ask for, waking the partitions' parked
  /// fetches once their records may be read; `results` with the failures.
  func awaitDurability(_ pending: [PendingProduce], _ results: [PartitionAppendResult]) async
    -> [PartitionAppendResult]
  {
    var results = results
    let started = ContinuousClock.now
    defer {
      // Only appends that wait for an fsync: the others are durable as far as they get at once.
      if pending.contains(where: { $0.append.mustFlush }) {
        SluiceMetrics.durable.recordInterval(since: started)
      }
    }
    for entry in pending {
      do {
        try await entry.partition.log.awaitDurable(entry.append)
        entry.partition.notifyAppended()
      } catch {
        results[entry.index] = .failed(BrokerError(.kafkaStorageError, error.message))
      }
    }
    return results
  }

  /// One claim per partition of a `backpressure` topic the writes go to, with its bytes.
  func backpressureClaims(_ writes: [PartitionRecords]) -> [BackpressureClaim] {
    var claims: [BackpressureClaim] = []
    var claimOf: [ObjectIdentifier: Int] = [:]  // a partition named twice is one claim
    for write in writes {
      guard let topic = self.topic(write.topic), topic.config.overflow.policy == .backpressure,
        let partition = topic.partition(write.partition), let records = write.records
      else { continue }
      let incoming = Int64(records.readableBytes)
      if let index = claimOf[ObjectIdentifier(partition)] {
        claims[index].incoming += incoming
      } else {
        claimOf[ObjectIdentifier(partition)] = claims.count
        claims.append(BackpressureClaim(topic: topic, partition: partition, incoming: incoming))
      }
    }
    return claims
  }

  /// Why a write to `partition` is refused before its records are looked at, or nil.
  func refusal(_ topic: Topic, _ partition: Partition, acks: Acks, timedOut: Set<ObjectIdentifier>)
    -> BrokerError?
  {
    let config = topic.config
    if acks == .all && config.minInsyncReplicas > 1 {
      return BrokerError(
        .notEnoughReplicas,
        "The size of the current ISR 1 is insufficient to satisfy the min.isr requirement of "
          + "\(config.minInsyncReplicas) for partition \(topic.name)-\(partition.index) (a single broker "
          + "holds one replica)")
    }
    if timedOut.contains(ObjectIdentifier(partition)) {
      return BrokerError(
        .requestTimedOut,
        "Backlog of \(topic.name)-\(partition.index) stayed above sluice.overflow.max.bytes for "
          + "sluice.overflow.max.wait.ms (policy backpressure); nothing was appended, retry")
    }
    return nil
  }

  /// Prepares and appends one partition's records (page cache); `drop-oldest` trims after.
  func append(
    _ records: ByteBuffer?, to partition: Partition, of topic: Topic, options: ProduceOptions,
    context: CallContext
  ) async -> Partition.AppendOutcome {
    let config = topic.config
    let preparation = BatchPreparation(
      topic: config, broker: self.config, now: clock.now(), allowZstd: options.allowZstd)
    switch await preparation.prepare(records, eventLoop: context.eventLoop) {
    case .failure(let refusal):
      return .failed(refusal)
    case .success(let prepared):
      let outcome = partition.append(prepared, now: clock.now()) { incoming in
        self.rejectsForOverflow(partition, config.overflow, incoming: incoming)
      }
      if case .appended = outcome, config.overflow.policy == .dropOldest {
        // Trimming deletes whole segment files: on the admin thread, not the event loop.
        let overflow = config.overflow
        await topics.offLoop { () -> Void in self.dropOldest(partition, overflow) }
      }
      return outcome
    }
  }
}

extension Partition {
  enum AppendOutcome {
    case appended(PendingAppend)
    case duplicate(firstOffset: Int64)
    case failed(BrokerError)
  }

  /// Appends prepared records to the page cache: the producer-sequence check (idempotent
  /// producers), the `reject` overflow bound (`overflowRefusal`, given the bytes), then the
  /// log. The producer table is locked across the check and the append, so two batches of
  /// one producer cannot interleave; nothing here suspends.
  func append(
    _ prepared: BatchPreparation.Prepared, now: Int64, overflowRefusal: (Int) -> String?
  ) -> AppendOutcome {
    let first = prepared.first
    let incoming = prepared.bytes.readableBytes
    return producers.withLock { table -> AppendOutcome in
      if first.producerId >= 0 {
        switch table.check(
          producerId: first.producerId, epoch: first.producerEpoch, firstSequence: first.baseSequence,
          count: first.recordsCount)
        {
        case .append: break
        case .duplicate(let firstOffset): return .duplicate(firstOffset: firstOffset)
        case .fencedEpoch:
          return .failed(
            BrokerError(
              .invalidProducerEpoch, "Producer epoch \(first.producerEpoch) is older than the current one"))
        case .outOfOrder(let expected):
          return .failed(
            BrokerError(
              .outOfOrderSequenceNumber, "Expected sequence \(expected), got \(first.baseSequence)"))
        }
      }
      if let refusal = overflowRefusal(incoming) { return .failed(BrokerError(.policyViolation, refusal)) }
      do throws(StorageError) {
        let pending = try log.appendBuffered(prepared.bytes, now: now)
        let count = pending.result.lastOffset - pending.result.firstOffset + 1
        metrics.recordsIn.increment(by: count)
        metrics.recordsInTotal.add(count, ordering: .relaxed)
        metrics.bytesIn.increment(by: Int64(incoming))
        if first.producerId >= 0 {
          table.record(
            producerId: first.producerId, epoch: first.producerEpoch, firstSequence: first.baseSequence,
            count: first.recordsCount, firstOffset: pending.result.firstOffset,
            lastOffset: pending.result.lastOffset)
        }
        return .appended(pending)
      } catch {
        return .failed(BrokerError(ErrorCode.from(error), error.message))
      }
    }
  }
}
