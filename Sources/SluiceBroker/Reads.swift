import KafkaProtocol
import NIOCore
import SluiceStorage

/// A read of one partition: whole record batches from the one holding `offset`.
public struct PartitionRead: Sendable {
  public var topic: String
  public var partition: Int32
  public var offset: Int64
  /// A soft limit (KIP-74): the first batch of the first partition with data is whole even
  /// when larger.
  public var maxBytes: Int

  public init(topic: String, partition: Int32, offset: Int64, maxBytes: Int) {
    self.topic = topic
    self.partition = partition
    self.offset = offset
    self.maxBytes = maxBytes
  }
}

public struct ReadOptions: Sendable {
  /// Bytes for all partitions together (soft, as `PartitionRead.maxBytes`).
  public var maxBytes: Int
  /// Return once this many bytes are there, or `maxWaitMs` has passed (a long poll).
  public var minBytes: Int
  public var maxWaitMs: Int64
  /// Whether records may come back as file regions, to be sent with sendfile. Small reads
  /// are copied into memory even so (see `ReadService`).
  public var fileRegions: Bool
  /// Whether a partition whose records include a zstd batch is answered with
  /// UNSUPPORTED_COMPRESSION_TYPE and no records (Kafka: Fetch before v10), its bytes not
  /// counted against the limits.
  public var refuseZstd: Bool

  public init(
    maxBytes: Int, minBytes: Int = 1, maxWaitMs: Int64 = 0, fileRegions: Bool = false,
    refuseZstd: Bool = false
  ) {
    self.maxBytes = maxBytes
    self.minBytes = minBytes
    self.maxWaitMs = maxWaitMs
    self.fileRegions = fileRegions
    self.refuseZstd = refuseZstd
  }
}

/// What a read of one partition found.
public struct PartitionReadResult: Sendable {
  public var error: BrokerError?
  /// The offset up to which records may be read (-1 when the partition is unknown).
  public var highWatermark: Int64 = -1
  /// The same as the high watermark (no transactions yet).
  public var lastStableOffset: Int64 = -1
  public var logStartOffset: Int64 = -1
  public var records = RecordData()

  public init(error: BrokerError? = nil) { self.error = error }
}

extension Broker {
  /// A parked read wakes at least this often to see whether its caller is still connected
  /// and the broker still running: a Kafka client's MaxWaitMs can be 24 days, and a read
  /// parked for a client that has gone would hold its connection's task and counts.
  static let parkSliceMs: Int64 = 5000

  /// Zero-copy reads still copy a partition's records when they are at most this many
  /// bytes, up to `copyBudgetBytes` per read call: one pread and one write cost less than a
  /// dup, writev, sendfile, write and close (and three TCP segments rather than one) per
  /// partition, and a consumer at the tail of a log makes nearly only such reads.
  static let copyBelowBytes = 32 * 1024
  static let copyBudgetBytes = 1024 * 1024

  /// Reads the partitions in order, within the byte limits, and — when fewer than
  /// `minBytes` are there — parks until an append to any of them, `maxWaitMs`, the caller
  /// leaving or the broker stopping (event notification, not polling).
  public func read(_ reads: [PartitionRead], options: ReadOptions, context: CallContext = CallContext()) async
    -> [PartitionReadResult]
  {
    await withCheckedContinuation { (continuation: CheckedContinuation<[PartitionReadResult], Never>) in
      if let results = read(
        reads, options: options, context: context, completion: { continuation.resume(returning: $0) })
      {
        continuation.resume(returning: results)
      }
    }
  }

  /// The same read without a task: the results at once when there is nothing to wait for;
  /// otherwise nil, and `completion` gets them later — on `context.eventLoop` when there is
  /// one, never inside this call. (The network layer answers a Fetch this way without a
  /// task switch per request.)
  public func read(
    _ reads: [PartitionRead], options: ReadOptions, context: CallContext,
    completion: @escaping @Sendable ([PartitionReadResult]) -> Void
  ) -> [PartitionReadResult]? {
    let deadline = clock.monotonicMs() + max(0, options.maxWaitMs)
    return readOrPark(reads, options: options, context: context, deadline: deadline, completion: completion)
  }

  /// One pass; when it does not finish the read, parks it with a timer and a waiter whose
  /// wake-up makes the next pass.
  private func readOrPark(
    _ reads: [PartitionRead], options: ReadOptions, context: CallContext, deadline: Int64,
    completion: @escaping @Sendable ([PartitionReadResult]) -> Void
  ) -> [PartitionReadResult]? {
    let waiter = FetchWaiter(eventLoop: context.eventLoop)
    let (results, bytes, hasError, partitions, sent) = readOnce(reads, options: options, waiter: waiter)
    let now = clock.monotonicMs()
    let done =
      hasError || bytes >= options.minBytes || options.maxWaitMs <= 0 || now >= deadline
      || stopping.load(ordering: .relaxed) || !context.isConnected()
    if done {
      for partition in partitions { partition.removeWaiter(waiter) }
      for entry in sent { entry.count() }
      return results
    }
    // Park: woken by an append to any requested partition, by the deadline, or after a
    // slice (to look at the connection and the broker again).
    let timer = clock.schedule(afterMs: min(deadline - now, Self.parkSliceMs), on: context.eventLoop) {
      waiter.wake()
    }
    parkedReads.add(1, ordering: .relaxed)
    waiter.onWake {
      self.parkedReads.subtract(1, ordering: .relaxed)
      timer.cancel()
      for partition in partitions { partition.removeWaiter(waiter) }
      if let results = self.readOrPark(
        reads, options: options, context: context, deadline: deadline, completion: completion)
      {
        completion(results)
      }
    }
    return nil
  }

  /// One pass over the partitions. Registers `waiter` on every partition it reads before
  /// reading it, so an append that lands between the read and the park still wakes the read.
  func readOnce(_ reads: [PartitionRead], options: ReadOptions, waiter: FetchWaiter) -> (
    [PartitionReadResult], Int, Bool, [Partition], [Sent]
  ) {
    var sent: [Sent] = []
    var results: [PartitionReadResult] = []
    var total = 0
    var hasError = false
    var registered: [Partition] = []
    var copied = 0  // record bytes loaded into memory for this call
    for wanted in reads {
      guard let partition = topic(wanted.topic)?.partition(wanted.partition) else {
        results.append(PartitionReadResult(error: .unknownPartition(wanted.topic, wanted.partition)))
        hasError = true
        continue
      }
      partition.addWaiter(waiter)
      registered.append(partition)
      var result = PartitionReadResult()
      let highWatermark = partition.highWatermark
      let logStart = partition.log.logStartOffset
      result.highWatermark = highWatermark
      result.lastStableOffset = highWatermark
      result.logStartOffset = logStart
      if wanted.offset < logStart || wanted.offset > highWatermark {
        result.error = BrokerError(
          .offsetOutOfRange, "Offset \(wanted.offset) is outside [\(logStart), \(highWatermark)]")
        hasError = true
      } else if wanted.offset < highWatermark && total < options.maxBytes {
        let limit = min(max(0, wanted.maxBytes), options.maxBytes - total)
        do throws(StorageError) {
          let read = try partition.log.read(
            from: wanted.offset, maxBytes: limit, upTo: highWatermark, minOneBatch: total == 0)
          var records = RecordData(read)
          total += records.count
          let keepFile =
            options.fileRegions
            && (records.count > Self.copyBelowBytes || copied + records.count > Self.copyBudgetBytes)
          if records.hasFileRegions && (!keepFile || options.refuseZstd) {
            records = RecordData(pieces: [.bytes(try read.loadBytes())])
            copied += records.count
          }
          if options.refuseZstd, case .bytes(let bytes)? = records.pieces.first, Self.containsZstd(bytes) {
            total -= records.count
            records = RecordData()
            result.error = BrokerError(
              .unsupportedCompressionType, "zstd batches need Fetch v10 or later")
          }
          result.records = records
          if records.count > 0 {
            sent.append(
              Sent(
                metrics: partition.metrics, bytes: Int64(records.count),
                records: max(0, (read.nextOffset ?? wanted.offset) - wanted.offset)))
          }
        } catch {
          result.error = BrokerError(ErrorCode.from(error), error.message)
          hasError = true
        }
      }
      results.append(result)
    }
    return (results, total, hasError, registered, sent)
  }

  /// What a read pass would send from one partition: counted (records and bytes out) only
  /// when the pass's results are the answer, not when the read parks and reads again.
  struct Sent {
    var metrics: TopicMetrics
    var bytes: Int64
    var records: Int64

    func count() {
      metrics.bytesOut.increment(by: bytes)
      if records > 0 {
        metrics.recordsOut.increment(by: records)
        metrics.recordsOutTotal.add(records, ordering: .relaxed)
      }
    }
  }

  static func containsZstd(_ records: ByteBuffer) -> Bool {
    var splitter = RecordBatchSplitter(records)
    while let batch = try? splitter.next() {
      if batch.compression == .zstd { return true }
    }
    return false
  }
}
