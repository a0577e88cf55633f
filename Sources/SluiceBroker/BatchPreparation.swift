import KafkaProtocol
import NIOCore
import NIOPosix

/// What the broker makes of a producer's record batches before one of them is stored:
/// every batch's header and CRC checked, every record walked (decompressed, bounded), record
/// timestamps checked against the topic's bounds, the batch's max timestamp recomputed from
/// its records, and the records recompressed to the topic's `compression.type`
/// (docs/topics.md, docs/compression.md). The outcome is the bytes to append — the
/// producer's own when nothing changed — or the refusal.
package struct BatchPreparation: Sendable {
  /// CreateTime records' timestamps must lie in these (KIP-937); nil: any.
  var timestampBounds: ClosedRange<Int64>?
  /// Whether a batch's `maxTimestamp` is rewritten from its records when it differs
  /// (CreateTime topics; LogAppendTime topics are stamped by the log).
  var recomputeMaxTimestamp: Bool
  /// The codec the topic stores (`compression.type`), when it is not "producer".
  var storedCodec: CompressionCodec?
  var level: Int32?
  var maxDecompressedSize: Int
  var maxMessageBytes: Int
  var compressionName: String
  /// Whether zstd batches are acceptable (Kafka: Produce v7+).
  var allowZstd: Bool

  init(topic config: TopicConfig, broker: BrokerConfig, now: Int64, allowZstd: Bool) {
    timestampBounds = config.log.logAppendTime ? nil : config.timestampBounds(now: now)
    recomputeMaxTimestamp = !config.log.logAppendTime
    storedCodec = config.storedCodec
    level = config.compressionLevel
    maxDecompressedSize = broker.maxDecompressedBatchBytes
    maxMessageBytes = config.maxMessageBytes
    compressionName = config.compression.name
    self.allowZstd = allowZstd
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

  /// The prepared batches of one partition's records.
  struct Prepared {
    /// What to append: the producer's bytes, or a copy with rewritten batches.
    var bytes: ByteBuffer
    var first: RecordBatch
    var count: Int
  }

  /// Checks and prepares `records` (one or more concatenated batches). Suspends only while
  /// the batches are walked or recompressed on the thread pool (see `prepareInline`);
  /// resumes on `eventLoop` then.
  func prepare(_ records: ByteBuffer?, eventLoop: (any EventLoop)?) async -> Result<Prepared, BrokerError> {
    if let inline = prepareInline(records) { return inline }
    let rules = self
    let work: @Sendable () -> Result<Prepared, BrokerError> = {
      // Never nil: the off-loop step always finishes.
      rules.prepareBatches(records) { rules.preparedOffLoop($0, index: $1) }!
    }
    do {
      if let eventLoop {
        // Completed on the connection's loop, so the request resumes there (with NIO as the
        // global executor a task resumed from a pool thread would go to any loop, and its
        // response would then hop back to the channel's).
        return try await NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop, work).get()
      }
      return try await NIOThreadPool.singleton.runIfActive(work)
    } catch {
      // Cancelled (the connection is gone) before a pool thread took it.
      return .failure(BrokerError(.unknownServerError, "Records not validated (\(error))"))
    }
  }

  /// `prepare` on the calling thread, or nil when a batch must be recompressed or expands
  /// past `inlineDecompressionBudget` (then `prepare` does it all again on the pool).
  func prepareInline(_ records: ByteBuffer?) -> Result<Prepared, BrokerError>? {
    prepareBatches(records) { preparedInline($0, index: $1) }
  }

  /// The checks and preparation of every batch of `records`, each batch made ready by
  /// `step`; nil as soon as `step` answers nil.
  func prepareBatches(
    _ records: ByteBuffer?, step: (RecordBatch, Int) -> Result<RecordBatch, BrokerError>?
  ) -> Result<Prepared, BrokerError>? {
    guard let records, records.readableBytes > 0 else {
      return .failure(BrokerError(.corruptMessage, "Produce request has no records for this partition"))
    }
    var splitter = RecordBatchSplitter(records)
    var batches: [RecordBatch] = []
    var changed = false
    do throws(KafkaProtocolError) {
      while let batch = try splitter.next() {
        if let refusal = headerRefusal(batch, index: batches.count) { return .failure(refusal) }
        try batch.validate(.clientProduce)
        if batch.timestampType == .logAppendTime {
          return .failure(
            BrokerError(
              .invalidTimestamp,
              "Batch \(batches.count): the producer set the timestamp type to LogAppendTime; only the "
                + "broker stamps batches (message.timestamp.type=LogAppendTime on the topic)"))
        }
        switch step(batch, batches.count) {
        case nil: return nil
        case .failure(let refusal): return .failure(refusal)
        case .success(let stored):
          if stored.compression != batch.compression {
            changed = true
            // Recompressed: the topic's bound applies to what is stored, as in Kafka.
            guard stored.size <= maxMessageBytes else {
              return .failure(
                BrokerError(
                  .messageTooLarge,
                  "Batch \(batches.count) is \(stored.size) bytes once recompressed to \(compressionName), "
                    + "over max.message.bytes \(maxMessageBytes)"))
            }
          } else if stored.maxTimestamp != batch.maxTimestamp {
            changed = true
          }
          batches.append(stored)
        }
      }
    } catch {
      switch error.code {
      case .crcMismatch, .truncated: return .failure(BrokerError(.corruptMessage, error.message))
      case .unsupportedMagic: return .failure(BrokerError(.unsupportedForMessageFormat, error.message))
      default: return .failure(BrokerError(.invalidRecord, error.message))
      }
    }
    guard splitter.partialTail == nil, !batches.isEmpty else {
      return .failure(BrokerError(.corruptMessage, "Records end with a partial batch"))
    }
    guard batches.count == 1 || batches.allSatisfy({ $0.producerId < 0 }) else {
      return .failure(BrokerError(.invalidRecord, "An idempotent producer must send one batch per partition"))
    }
    var bytes = records
    if changed {
      bytes = ByteBuffer()
      bytes.reserveCapacity(batches.reduce(0) { $0 + $1.size })
      for batch in batches { bytes.writeImmutableBuffer(batch.buffer) }
    }
    return .success(Prepared(bytes: bytes, first: batches[0], count: batches.count))
  }

  /// The checks of a batch's header that come before its CRC.
  func headerRefusal(_ batch: RecordBatch, index: Int) -> BrokerError? {
    guard batch.magic == 2 else {
      return BrokerError(.unsupportedForMessageFormat, "Only record batch format v2 (magic 2) is supported")
    }
    guard batch.size <= maxMessageBytes else {
      return BrokerError(
        .messageTooLarge, "Batch of \(batch.size) bytes exceeds max.message.bytes \(maxMessageBytes)")
    }
    if batch.compression == .zstd && !allowZstd {
      return BrokerError(.unsupportedCompressionType, "zstd needs Produce v7 or later")
    }
    return nil
  }

  /// Walks every record of a client batch (decompressed, bounded, when compressed), then
  /// makes the batch what the topic stores: its `maxTimestamp` recomputed from the records
  /// (Kafka does the same; a producer's header may say 0 while its records carry -1) and its
  /// records recompressed to the topic's `compression.type`.
  ///
  /// Undecodable records or compressed data and offset deltas out of order are
  /// INVALID_RECORD, more decompressed bytes than `maxDecompressedBatchBytes`
  /// MESSAGE_TOO_LARGE, a record timestamp out of bounds INVALID_TIMESTAMP. Not
  /// CORRUPT_MESSAGE: clients retry that one (it means damage in transit, and the CRC has
  /// already passed), so a producer would resend the same bytes until its delivery timeout;
  /// Kafka's record parser fails with InvalidRecordException too.
  ///
  /// This step runs on the calling thread: nil when the batch must be recompressed or
  /// expands past `inlineDecompressionBudget`, which `preparedOffLoop` does on a pool thread.
  func preparedInline(_ batch: RecordBatch, index: Int) -> Result<RecordBatch, BrokerError>? {
    let bound = maxDecompressedSize
    let budget = min(bound, Self.inlineDecompressionBudget)
    if let storedCodec, storedCodec != batch.compression { return nil }
    do throws(KafkaProtocolError) {
      let summary = try batch.validateRecords(
        .clientProduce, maxDecompressedSize: budget, timestampBounds: timestampBounds)
      return .success(stamped(batch, summary))
    } catch let error where error.code == .decompressedSizeExceeded && bound > budget {
      return nil  // expands past the budget: walked again, with the whole bound, on a pool thread
    } catch {
      return .failure(Self.refusal(error, batch: index))
    }
  }

  /// The same with the whole decompression bound, and recompressed to the topic's codec:
  /// run on a pool thread.
  func preparedOffLoop(_ batch: RecordBatch, index: Int) -> Result<RecordBatch, BrokerError> {
    let bound = maxDecompressedSize
    do throws(KafkaProtocolError) {
      let summary = try batch.validateRecords(
        .clientProduce, maxDecompressedSize: bound, timestampBounds: timestampBounds)
      var stored = stamped(batch, summary)
      if let storedCodec, storedCodec != batch.compression {
        stored = try stored.recompressed(to: storedCodec, level: level, maxDecompressedSize: bound)
      }
      return .success(stored)
    } catch {
      return .failure(Self.refusal(error, batch: index))
    }
  }

  /// `batch` with its header's max timestamp set from its records where the topic asks
  /// for it and the producer wrote another value.
  func stamped(_ batch: RecordBatch, _ summary: RecordsSummary) -> RecordBatch {
    guard recomputeMaxTimestamp, batch.maxTimestamp != summary.maxTimestamp else { return batch }
    var fixed = batch
    fixed.setMaxTimestamp(summary.maxTimestamp, timestampType: .createTime)
    return fixed
  }

  /// The answer to a batch whose records the walk refused.
  static func refusal(_ error: KafkaProtocolError, batch index: Int) -> BrokerError {
    let message = "Batch \(index): \(error.message)"
    var recordErrors: [BrokerError.RecordError] = []
    if let record = error.recordIndex {
      recordErrors.append(.init(index: Int32(record), message: error.message))
    }
    switch error.code {
    case .decompressedSizeExceeded: return BrokerError(.messageTooLarge, message)
    case .unsupportedCompression: return BrokerError(.unsupportedCompressionType, message)
    case .invalidTimestamp: return BrokerError(.invalidTimestamp, message, recordErrors: recordErrors)
    default: return BrokerError(.invalidRecord, message, recordErrors: recordErrors)
    }
  }
}
