import KafkaProtocol
import NIOCore
import NIOPosix
import SluiceStorage

extension Broker {
  /// Produce (CLIENTS.md §3): validate every batch, check idempotent sequences, append, and
  /// — for acks≠0 — answer once the append is as durable as the topic's flush policy asks.
  ///
  /// `eventLoop`: the connection's loop, where the request resumes after a batch was walked
  /// on the thread pool (see `prepareBatch`).
  func produce(
    _ request: ProduceRequest, version: Int16, connectionOpen: () -> Bool = { true },
    eventLoop: (any EventLoop)? = nil
  ) async
    -> ProduceResponse?
  {
    let acks = request.acks
    var response = ProduceResponse()
    // backpressure: hold the request (before anything is appended) while a partition it
    // writes is over its high-water mark.
    var claims: [BackpressureClaim] = []
    if acks == 0 || acks == 1 || acks == -1, request.transactionalId == nil {
      var claimOf: [ObjectIdentifier: Int] = [:]  // a partition named twice is one claim
      for topicData in request.topicData {
        guard let topic = self.topic(topicData.name), topic.config.overflow.policy == .backpressure else {
          continue
        }
        for data in topicData.partitionData {
          guard let partition = topic.partition(data.index), let records = data.records else { continue }
          let incoming = Int64(records.readableBytes)
          if let index = claimOf[ObjectIdentifier(partition)] {
            claims[index].incoming += incoming
          } else {
            claimOf[ObjectIdentifier(partition)] = claims.count
            claims.append(BackpressureClaim(topic: topic, partition: partition, incoming: incoming))
          }
        }
      }
    }
    var backpressure = BackpressureOutcome()
    if !claims.isEmpty {
      backpressure = await awaitBackpressure(claims, acks: acks, connectionOpen: connectionOpen)
    }
    // The claims keep their partitions alive, so these identifiers stay unique meanwhile.
    let timedOut = Set(backpressure.refused.map(ObjectIdentifier.init))
    let heldMs = backpressure.heldMs
    if heldMs > 0 { response.throttleTimeMs = Int32(clamping: heldMs) }
    var pending: [(topic: Int, partition: Int, partitionRef: Partition, append: PendingAppend)] = []
    for topicData in request.topicData {
      var topicResponse = ProduceResponse.TopicProduceResponse(name: topicData.name)
      let topic = self.topic(topicData.name)
      for data in topicData.partitionData {
        var result = ProduceResponse.PartitionProduceResponse(index: data.index, baseOffset: -1)
        if version >= 5 { result.logStartOffset = -1 }
        func fail(_ code: ErrorCode, _ message: String? = nil) {
          result.errorCode = code.rawValue
          if version >= 8 { result.errorMessage = message }
        }
        if acks != 0 && acks != 1 && acks != -1 {
          fail(ErrorCode.invalidRequiredAcks, "acks must be 0, 1 or -1")
        } else if request.transactionalId != nil {
          fail(ErrorCode.transactionalIdAuthorizationFailed, "Transactions are not supported by Sluice")
        } else if acks == -1, let topic, topic.partition(data.index) != nil,
          topic.config.minInsyncReplicas > 1
        {
          fail(
            ErrorCode.notEnoughReplicas,
            "The size of the current ISR 1 is insufficient to satisfy the min.isr requirement of "
              + "\(topic.config.minInsyncReplicas) for partition \(topic.name)-\(data.index) (a single broker "
              + "holds one replica)")
        } else if let topic, let partition = topic.partition(data.index),
          timedOut.contains(ObjectIdentifier(partition))
        {
          fail(
            ErrorCode.requestTimedOut,
            "Backlog of \(topic.name)-\(data.index) stayed above sluice.overflow.max.bytes for "
              + "sluice.overflow.max.wait.ms (policy backpressure); nothing was appended, retry")
        } else if let topic, let partition = topic.partition(data.index) {
          switch await appendPartition(
            partition, topic: topic, records: data.records, version: version, eventLoop: eventLoop)
          {
          case .failure(let code, let message, let recordErrors):
            fail(code, message)
            if version >= 8 { result.recordErrors = recordErrors }
          case .duplicate(let firstOffset):
            result.baseOffset = firstOffset
            if version >= 5 { result.logStartOffset = partition.log.logStartOffset }
          case .appended(let append):
            dropOldest(partition, topic.config.overflow)
            result.baseOffset = append.result.firstOffset
            if version >= 2 { result.logAppendTimeMs = append.result.logAppendTime }
            if version >= 5 { result.logStartOffset = append.result.logStartOffset }
            pending.append(
              (response.responses.count, topicResponse.partitionResponses.count, partition, append))
          }
        } else {
          fail(ErrorCode.unknownTopicOrPartition, "This server does not host this topic-partition.")
        }
        topicResponse.partitionResponses.append(result)
      }
      response.responses.append(topicResponse)
    }
    // Appended (or refused): the backlog now counts these bytes itself.
    releaseBackpressure(backpressure.reserved)
    // Durability: wait (concurrently across partitions) for the fsyncs the policies ask for.
    for entry in pending {
      do {
        try await entry.partitionRef.log.awaitDurable(entry.append)
        entry.partitionRef.notifyAppended()
      } catch {
        var result = response.responses[entry.topic].partitionResponses[entry.partition]
        result.errorCode = ErrorCode.kafkaStorageError.rawValue
        result.baseOffset = -1
        if version >= 8 { result.errorMessage = error.message }
        response.responses[entry.topic].partitionResponses[entry.partition] = result
      }
    }
    return acks == 0 ? nil : response
  }

  enum AppendOutcome {
    case appended(PendingAppend)
    case duplicate(firstOffset: Int64)
    /// `recordErrors`: the record at fault, when one is (Produce v8+ reports it).
    case failure(ErrorCode, String, recordErrors: [ProduceResponse.BatchIndexAndErrorMessage] = [])
  }

  /// Decompressed bytes a batch may expand to while its records are walked on the task that
  /// handles the request — an event loop thread in the `sluice` binary, where NIO is the
  /// global executor, shared with every other connection on it. Inflating 1 MiB holds the
  /// loop for a few milliseconds at most; a few-KB batch may expand to
  /// `maxDecompressedBatchBytes` (64 MiB by default), tens of milliseconds of zstd or gzip
  /// during which that loop would serve no one. A batch that expands past the budget is
  /// walked again, with the configured bound, on `NIOThreadPool.singleton` (not the
  /// broker's pool, whose two threads flush logs and must not queue behind it).
  package static let inlineDecompressionBudget = 1 << 20

  /// What the broker does to a client batch before storing it, decided per topic.
  struct BatchRules: Sendable {
    /// CreateTime records' timestamps must lie in these (KIP-937); nil: any.
    var timestampBounds: ClosedRange<Int64>?
    /// Whether the batch's `maxTimestamp` is rewritten from its records when it differs
    /// (CreateTime topics; LogAppendTime topics are stamped by the log).
    var recomputeMaxTimestamp: Bool
    /// The codec the topic stores (`compression.type`), when it is not "producer".
    var storedCodec: CompressionCodec?
    var level: Int32?
    var maxDecompressedSize: Int
  }

  /// Walks every record of a client batch (decompressed, bounded, when compressed), then
  /// makes the batch what the topic stores: its `maxTimestamp` recomputed from the records
  /// (Kafka does the same; a producer's header may say 0 while its records carry -1) and its
  /// records recompressed to the topic's `compression.type`. Returns the batch to store (the
  /// same bytes when nothing changed) or the refusal.
  ///
  /// Undecodable records or compressed data and offset deltas out of order are
  /// INVALID_RECORD, more decompressed bytes than `maxDecompressedBatchBytes`
  /// MESSAGE_TOO_LARGE, a record timestamp out of bounds INVALID_TIMESTAMP. Not
  /// CORRUPT_MESSAGE: clients retry that one (it means damage in transit, and the CRC has
  /// already passed), so a producer would resend the same bytes until its delivery timeout;
  /// Kafka's record parser fails with InvalidRecordException too.
  ///
  /// Decompression beyond `inlineDecompressionBudget`, and every recompression, happen off
  /// the calling thread.
  private func prepareBatch(
    _ batch: RecordBatch, index: Int, rules: BatchRules, eventLoop: (any EventLoop)?
  ) async -> PreparedBatch {
    let bound = rules.maxDecompressedSize
    let budget = min(bound, Self.inlineDecompressionBudget)
    let recompress = rules.storedCodec.map { $0 != batch.compression } ?? false
    if !recompress {
      do throws(KafkaProtocolError) {
        let summary = try batch.validateRecords(
          .clientProduce, maxDecompressedSize: budget, timestampBounds: rules.timestampBounds)
        return .stored(Self.stamped(batch, summary, rules))
      } catch let error where error.code == .decompressedSizeExceeded && bound > budget {
        // Expands past the budget: walk it again, with the whole bound, on a pool thread.
      } catch {
        return .refused(Self.refusal(error, batch: index))
      }
    }
    let work: @Sendable () -> Result<RecordBatch, KafkaProtocolError> = {
      Result { () throws(KafkaProtocolError) -> RecordBatch in
        let summary = try batch.validateRecords(
          .clientProduce, maxDecompressedSize: bound, timestampBounds: rules.timestampBounds)
        var stored = Self.stamped(batch, summary, rules)
        if recompress, let codec = rules.storedCodec {
          stored = try stored.recompressed(to: codec, level: rules.level, maxDecompressedSize: bound)
        }
        return stored
      }
    }
    let outcome: Result<RecordBatch, KafkaProtocolError>
    do {
      if let eventLoop {
        // Completed on the connection's loop, so the request resumes there (with NIO as the
        // global executor a task resumed from a pool thread would go to any loop, and its
        // response would then hop back to the channel's).
        outcome = try await NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop, work).get()
      } else {
        outcome = try await NIOThreadPool.singleton.runIfActive(work)
      }
    } catch {
      // Cancelled (the connection is gone) before a pool thread took it.
      return .refused(
        .failure(ErrorCode.unknownServerError, "Batch \(index): records not validated (\(error))"))
    }
    switch outcome {
    case .success(let stored): return .stored(stored)
    case .failure(let error): return .refused(Self.refusal(error, batch: index))
    }
  }

  enum PreparedBatch {
    /// The batch as the topic stores it.
    case stored(RecordBatch)
    case refused(AppendOutcome)
  }

  /// `batch` with its header's max timestamp set from its records where the topic asks
  /// for it and the producer wrote another value.
  private static func stamped(_ batch: RecordBatch, _ summary: RecordsSummary, _ rules: BatchRules)
    -> RecordBatch
  {
    guard rules.recomputeMaxTimestamp, batch.maxTimestamp != summary.maxTimestamp else { return batch }
    var fixed = batch
    fixed.setMaxTimestamp(summary.maxTimestamp, timestampType: .createTime)
    return fixed
  }

  /// The answer to a batch whose records `validateRecords` refused (see `prepareBatch`).
  private static func refusal(_ error: KafkaProtocolError, batch index: Int) -> AppendOutcome {
    let message = "Batch \(index): \(error.message)"
    var recordErrors: [ProduceResponse.BatchIndexAndErrorMessage] = []
    if let record = error.recordIndex {
      recordErrors.append(.init(batchIndex: Int32(record), batchIndexErrorMessage: error.message))
    }
    switch error.code {
    case .decompressedSizeExceeded: return .failure(ErrorCode.messageTooLarge, message)
    case .unsupportedCompression: return .failure(ErrorCode.unsupportedCompressionType, message)
    case .invalidTimestamp: return .failure(ErrorCode.invalidTimestamp, message, recordErrors: recordErrors)
    default: return .failure(ErrorCode.invalidRecord, message, recordErrors: recordErrors)
    }
  }

  /// Validates the records of one partition and appends them (page cache). Suspends only
  /// while validating (see `prepareBatch`), never once the producer table is locked.
  func appendPartition(
    _ partition: Partition, topic: Topic, records: ByteBuffer?, version: Int16,
    eventLoop: (any EventLoop)? = nil
  ) async
    -> AppendOutcome
  {
    guard let records, records.readableBytes > 0 else {
      return .failure(.corruptMessage, "Produce request has no records for this partition")
    }
    let topicConfig = topic.config
    let rules = BatchRules(
      timestampBounds: topicConfig.log.logAppendTime ? nil : topicConfig.timestampBounds(now: clock()),
      recomputeMaxTimestamp: !topicConfig.log.logAppendTime,
      storedCodec: topicConfig.storedCodec, level: topicConfig.compressionLevel,
      maxDecompressedSize: config.maxDecompressedBatchBytes)
    var splitter = RecordBatchSplitter(records)
    var batches: [RecordBatch] = []
    var changed = false
    do throws(KafkaProtocolError) {
      while let batch = try splitter.next() {
        guard batch.magic == 2 else {
          return .failure(
            ErrorCode.unsupportedForMessageFormat, "Only record batch format v2 (magic 2) is supported")
        }
        guard batch.size <= topicConfig.maxMessageBytes else {
          return .failure(
            ErrorCode.messageTooLarge,
            "Batch of \(batch.size) bytes exceeds max.message.bytes \(topicConfig.maxMessageBytes)")
        }
        if batch.compression == .zstd && version < 7 {
          return .failure(ErrorCode.unsupportedCompressionType, "zstd needs Produce v7 or later")
        }
        try batch.validate(.clientProduce)
        if batch.timestampType == .logAppendTime {
          return .failure(
            ErrorCode.invalidTimestamp,
            "Batch \(batches.count): the producer set the timestamp type to LogAppendTime; only the broker "
              + "stamps batches (message.timestamp.type=LogAppendTime on the topic)")
        }
        switch await prepareBatch(batch, index: batches.count, rules: rules, eventLoop: eventLoop) {
        case .refused(let refusal): return refusal
        case .stored(let stored):
          if stored.compression != batch.compression {
            changed = true
            // Recompressed: the topic's bound applies to what is stored, as in Kafka.
            guard stored.size <= topicConfig.maxMessageBytes else {
              return .failure(
                ErrorCode.messageTooLarge,
                "Batch \(batches.count) is \(stored.size) bytes once recompressed to "
                  + "\(topicConfig.compression.name), over max.message.bytes \(topicConfig.maxMessageBytes)")
            }
          } else if stored.maxTimestamp != batch.maxTimestamp {
            changed = true
          }
          batches.append(stored)
        }
      }
    } catch {
      switch error.code {
      case .crcMismatch, .truncated: return .failure(.corruptMessage, error.message)
      case .unsupportedMagic: return .failure(ErrorCode.unsupportedForMessageFormat, error.message)
      default: return .failure(ErrorCode.invalidRecord, error.message)
      }
    }
    guard splitter.partialTail == nil, !batches.isEmpty else {
      return .failure(.corruptMessage, "Records end with a partial batch")
    }
    guard batches.count == 1 || batches.allSatisfy({ $0.producerId < 0 }) else {
      return .failure(ErrorCode.invalidRecord, "An idempotent producer must send one batch per partition")
    }
    let first = batches[0]
    let now = clock()
    // The bytes to store: the request's own unless a batch was restamped or recompressed.
    var stored = records
    if changed {
      stored = ByteBuffer()
      stored.reserveCapacity(batches.reduce(0) { $0 + $1.size })
      for batch in batches { stored.writeImmutableBuffer(batch.buffer) }
    }
    return partition.producers.withLock { table -> AppendOutcome in
      if first.producerId >= 0 {
        switch table.check(
          producerId: first.producerId, epoch: first.producerEpoch, firstSequence: first.baseSequence,
          count: first.recordsCount)
        {
        case .append:
          if let refusal = rejectsForOverflow(
            partition, topicConfig.overflow, incoming: stored.readableBytes)
          {
            return .failure(ErrorCode.policyViolation, refusal)
          }
        case .duplicate(let firstOffset): return .duplicate(firstOffset: firstOffset)
        case .fencedEpoch:
          return .failure(
            ErrorCode.invalidProducerEpoch,
            "Producer epoch \(first.producerEpoch) is older than the current one")
        case .outOfOrder(let expected):
          return .failure(
            ErrorCode.outOfOrderSequenceNumber, "Expected sequence \(expected), got \(first.baseSequence)")
        }
      }
      if first.producerId < 0,
        let refusal = rejectsForOverflow(partition, topicConfig.overflow, incoming: stored.readableBytes)
      {
        return .failure(ErrorCode.policyViolation, refusal)
      }
      do throws(StorageError) {
        let pending = try partition.log.appendBuffered(stored, now: now)
        if first.producerId >= 0 {
          table.record(
            producerId: first.producerId, epoch: first.producerEpoch, firstSequence: first.baseSequence,
            count: first.recordsCount, firstOffset: pending.result.firstOffset,
            lastOffset: pending.result.lastOffset)
        }
        return .appended(pending)
      } catch {
        return .failure(ErrorCode.from(error), error.message)
      }
    }
  }
}
