import KafkaProtocol
import NIOCore
import NIOPosix
import SluiceStorage

extension Broker {
  /// Produce (CLIENTS.md §3): validate every batch, check idempotent sequences, append, and
  /// — for acks≠0 — answer once the append is as durable as the topic's flush policy asks.
  ///
  /// `eventLoop`: the connection's loop, where the request resumes after a batch was walked
  /// on the thread pool (see `validateRecords`).
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

  /// Walks every record of a client batch (decompressed, bounded, when compressed; the
  /// batch is stored as it came either way). Undecodable records or compressed data and
  /// offset deltas out of order are INVALID_RECORD, more decompressed bytes than
  /// `maxDecompressedBatchBytes` MESSAGE_TOO_LARGE; nil when every record is sound. Not
  /// CORRUPT_MESSAGE: clients retry that one (it means damage in transit, and the CRC has
  /// already passed), so a producer would resend the same bytes until its delivery timeout;
  /// Kafka's record parser fails with InvalidRecordException too.
  ///
  /// Decompression beyond `inlineDecompressionBudget` happens off the calling thread.
  private func validateRecords(_ batch: RecordBatch, index: Int, eventLoop: (any EventLoop)?) async
    -> AppendOutcome?
  {
    let bound = config.maxDecompressedBatchBytes
    let budget = min(bound, Self.inlineDecompressionBudget)
    do throws(KafkaProtocolError) {
      try batch.validateRecords(.clientProduce, maxDecompressedSize: budget)
      return nil
    } catch let error where error.code == .decompressedSizeExceeded && bound > budget {
      // Expands past the budget: walk it again, with the whole bound, on a pool thread.
    } catch {
      return Self.refusal(error, batch: index)
    }
    let walked: Result<Void, KafkaProtocolError>
    do {
      let walk: @Sendable () -> Result<Void, KafkaProtocolError> = {
        Result { () throws(KafkaProtocolError) in
          try batch.validateRecords(.clientProduce, maxDecompressedSize: bound)
        }
      }
      if let eventLoop {
        // Completed on the connection's loop, so the request resumes there (with NIO as the
        // global executor a task resumed from a pool thread would go to any loop, and its
        // response would then hop back to the channel's).
        walked = try await NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop, walk).get()
      } else {
        walked = try await NIOThreadPool.singleton.runIfActive(walk)
      }
    } catch {
      // Cancelled (the connection is gone) before a pool thread took it.
      return .failure(ErrorCode.unknownServerError, "Batch \(index): records not validated (\(error))")
    }
    guard case .failure(let error) = walked else { return nil }
    return Self.refusal(error, batch: index)
  }

  /// The answer to a batch whose records `validateRecords` refused (see there).
  private static func refusal(_ error: KafkaProtocolError, batch index: Int) -> AppendOutcome {
    let message = "Batch \(index): \(error.message)"
    switch error.code {
    case .decompressedSizeExceeded: return .failure(ErrorCode.messageTooLarge, message)
    case .unsupportedCompression: return .failure(ErrorCode.unsupportedCompressionType, message)
    default:
      var recordErrors: [ProduceResponse.BatchIndexAndErrorMessage] = []
      if let record = error.recordIndex {
        recordErrors.append(.init(batchIndex: Int32(record), batchIndexErrorMessage: error.message))
      }
      return .failure(ErrorCode.invalidRecord, message, recordErrors: recordErrors)
    }
  }

  /// Validates the records of one partition and appends them (page cache). Suspends only
  /// while validating (see `validateRecords`), never once the producer table is locked.
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
    var splitter = RecordBatchSplitter(records)
    var batches: [RecordBatch] = []
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
        if let refusal = await validateRecords(batch, index: batches.count, eventLoop: eventLoop) {
          return refusal
        }
        batches.append(batch)
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
    return partition.producers.withLock { table -> AppendOutcome in
      if first.producerId >= 0 {
        switch table.check(
          producerId: first.producerId, epoch: first.producerEpoch, firstSequence: first.baseSequence,
          count: first.recordsCount)
        {
        case .append:
          if let refusal = rejectsForOverflow(
            partition, topicConfig.overflow, incoming: records.readableBytes)
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
        let refusal = rejectsForOverflow(partition, topicConfig.overflow, incoming: records.readableBytes)
      {
        return .failure(ErrorCode.policyViolation, refusal)
      }
      do throws(StorageError) {
        let pending = try partition.log.appendBuffered(records, now: now)
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
