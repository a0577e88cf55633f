import KafkaProtocol
public import NIOCore
import Synchronization

/// A partition log held in memory (`sluice.storage=memory`): the same interface as
/// ``FileLog``, no disk, bounded by `retention.bytes` (or ``LogConfig/memoryDefaultMaxBytes``
/// when that is unlimited) and `retention.ms`. Its data is gone after a restart, by design.
public final class MemoryLog: PartitionLog {
  struct StoredBatch {
    var baseOffset: Int64
    var lastOffset: Int64
    var maxTimestamp: Int64
    /// The broker's clock at append: retention counts from the newer of this and
    /// `maxTimestamp`, as for disk segments (`Segment.retentionAge`).
    var appendedMs: Int64
    var bytes: ByteBuffer
  }

  struct State {
    var config: LogConfig
    var batches: [StoredBatch] = []
    var logStartOffset: Int64 = 0
    var logEndOffset: Int64 = 0
    var size = 0
    var closed = false
  }

  let state: Mutex<State>

  public init(config: LogConfig, startOffset: Int64 = 0) {
    var initial = State(config: config)
    initial.logStartOffset = startOffset
    initial.logEndOffset = startOffset
    state = Mutex(initial)
  }

  public var config: LogConfig { state.withLock { $0.config } }
  public func updateConfig(_ config: LogConfig) {
    state.withLock {
      $0.config = config
      Self.trim(&$0)
    }
  }
  public var logStartOffset: Int64 { state.withLock { $0.logStartOffset } }
  public var logEndOffset: Int64 { state.withLock { $0.logEndOffset } }
  public var durableEndOffset: Int64 { logEndOffset }

  /// Memory does not fail.
  public var failure: StorageError? { nil }

  static func maxBytes(_ config: LogConfig) -> Int64 {
    config.retentionApplies && config.retentionBytes >= 0
      ? config.retentionBytes : config.memoryDefaultMaxBytes
  }

  /// Drops the oldest batches beyond the byte bound (always keeping the newest one).
  static func trim(_ state: inout State) {
    let bound = maxBytes(state.config)
    var drop = 0
    var size = state.size
    while drop < state.batches.count - 1 && Int64(size) > bound {
      size -= state.batches[drop].bytes.readableBytes
      drop += 1
    }
    if drop > 0 { removeFirst(&state, drop) }
  }

  static func removeFirst(_ state: inout State, _ count: Int) {
    for batch in state.batches.prefix(count) { state.size -= batch.bytes.readableBytes }
    state.batches.removeFirst(count)
    let next = state.batches.first?.baseOffset ?? state.logEndOffset
    state.logStartOffset = max(state.logStartOffset, next)
  }

  public func append(_ input: ByteBuffer, now: Int64) async throws(StorageError) -> AppendResult {
    try appendBuffered(input, now: now).result
  }

  public func awaitDurable(_ pending: PendingAppend) async throws(StorageError) {}

  public func appendBuffered(_ input: ByteBuffer, now: Int64) throws(StorageError) -> PendingAppend {
    var parsed: [RecordBatch] = []
    do {
      var splitter = RecordBatchSplitter(input)
      while let batch = try splitter.next() { parsed.append(batch) }
      guard splitter.partialTail == nil, !parsed.isEmpty else {
        throw KafkaProtocolError(.truncated, "partial batch")
      }
    } catch {
      throw StorageError(.invalidBatch, "appended bytes are not record batches: \(error)")
    }
    return try state.withLock { (state: inout State) throws(StorageError) -> PendingAppend in
      if state.closed { throw StorageError(.closed, "memory log is closed") }
      let first = state.logEndOffset
      var next = first
      for var batch in parsed {
        // Own the bytes: the request buffer they came in must not be kept alive or shared.
        batch = try! RecordBatch(ByteBuffer(buffer: batch.buffer))
        batch.setBaseOffset(next)
        if state.config.logAppendTime { batch.setMaxTimestamp(now, timestampType: .logAppendTime) }
        state.batches.append(
          StoredBatch(
            baseOffset: next, lastOffset: batch.lastOffset, maxTimestamp: batch.maxTimestamp,
            appendedMs: now, bytes: batch.buffer))
        state.size += batch.size
        next = batch.nextOffset
      }
      state.logEndOffset = next
      Self.trim(&state)
      let result = AppendResult(
        firstOffset: first, lastOffset: next - 1, logAppendTime: state.config.logAppendTime ? now : -1,
        logStartOffset: state.logStartOffset)
      return PendingAppend(result: result, mustFlush: false)
    }
  }

  public func read(from offset: Int64, maxBytes: Int, upTo: Int64?, minOneBatch: Bool) throws(StorageError)
    -> LogReadResult
  {
    try state.withLock { (state: inout State) throws(StorageError) -> LogReadResult in
      var result = LogReadResult(
        chunks: [], logStartOffset: state.logStartOffset, logEndOffset: state.logEndOffset)
      guard offset >= state.logStartOffset, offset <= state.logEndOffset else {
        throw StorageError(
          .offsetOutOfRange, "offset \(offset) is outside [\(state.logStartOffset), \(state.logEndOffset)]")
      }
      let bound = min(upTo ?? state.logEndOffset, state.logEndOffset)
      // First batch whose last offset ≥ offset.
      var low = 0
      var high = state.batches.count
      while low < high {
        let mid = (low + high) / 2
        if state.batches[mid].lastOffset < offset { low = mid + 1 } else { high = mid }
      }
      var total = 0
      var index = low
      while index < state.batches.count, state.batches[index].baseOffset < bound {
        let size = state.batches[index].bytes.readableBytes
        if total + size > maxBytes && !(total == 0 && minOneBatch) { break }
        result.chunks.append(.bytes(state.batches[index].bytes))
        result.nextOffset = state.batches[index].lastOffset + 1
        total += size
        index += 1
      }
      return result
    }
  }

  public func offset(forTimestamp timestamp: Int64) throws(StorageError) -> (offset: Int64, timestamp: Int64)?
  {
    let (batches, start) = state.withLock { ($0.batches, $0.logStartOffset) }
    for batch in batches where batch.maxTimestamp >= timestamp {
      if let found = try FileLog.firstRecord(in: batch.bytes, atOrAfter: timestamp, minimumOffset: start) {
        return found
      }
    }
    return nil
  }

  public func maxTimestamp() throws(StorageError) -> (offset: Int64, timestamp: Int64)? {
    let best: StoredBatch? = state.withLock { state in
      var best: StoredBatch?
      for batch in state.batches where best == nil || batch.maxTimestamp > best!.maxTimestamp { best = batch }
      return best
    }
    guard let best else { return nil }
    // The batch's first record with that timestamp, as Kafka gives it.
    return try FileLog.firstRecord(
      in: best.bytes, atOrAfter: best.maxTimestamp, minimumOffset: best.baseOffset)
      ?? (best.lastOffset, best.maxTimestamp)
  }

  public func deleteRecords(before offset: Int64) throws(StorageError) -> Int64 {
    try state.withLock { (state: inout State) throws(StorageError) -> Int64 in
      guard offset <= state.logEndOffset else {
        throw StorageError(.offsetOutOfRange, "offset \(offset) is past the log end \(state.logEndOffset)")
      }
      state.logStartOffset = max(state.logStartOffset, offset)
      let drop = state.batches.prefix { $0.lastOffset < offset }.count
      if drop > 0 { Self.removeFirst(&state, drop) }
      return state.logStartOffset
    }
  }

  public func retainedBytes(from offset: Int64) -> Int64 {
    state.withLock { state in
      guard offset > state.logStartOffset else { return Int64(state.size) }
      // The first batch whose last offset ≥ offset, and every one after it.
      var low = 0
      var high = state.batches.count
      while low < high {
        let mid = (low + high) / 2
        if state.batches[mid].lastOffset < offset { low = mid + 1 } else { high = mid }
      }
      return Int64(state.batches[low...].reduce(0) { $0 + $1.bytes.readableBytes })
    }
  }

  @discardableResult
  public func trim(toBytes maxBytes: Int64) throws(StorageError) -> TrimResult {
    state.withLock { state in
      var excess = Int64(state.size) - max(0, maxBytes)
      guard excess > 0 else { return TrimResult() }
      let before = (start: state.logStartOffset, size: state.size)
      var drop = 0
      // The newest batch stays, even when it alone is over the bound: only older data goes.
      while excess > 0 && drop < state.batches.count - 1 {
        excess -= Int64(state.batches[drop].bytes.readableBytes)
        drop += 1
      }
      guard drop > 0 else { return TrimResult() }
      Self.removeFirst(&state, drop)
      return TrimResult(
        records: state.logStartOffset - before.start, bytes: Int64(before.size - state.size))
    }
  }

  @discardableResult
  public func enforceRetention(now: Int64) throws(StorageError) -> Int {
    state.withLock { state in
      guard state.config.retentionApplies, state.config.retentionMs >= 0 else { return 0 }
      let cutoff = now &- state.config.retentionMs
      let drop = state.batches.prefix { max($0.maxTimestamp, $0.appendedMs) < cutoff }.count
      let bytes = state.batches.prefix(drop).reduce(0) { $0 + $1.bytes.readableBytes }
      if drop > 0 {
        Self.removeFirst(&state, drop)
        if state.batches.isEmpty { state.logStartOffset = state.logEndOffset }
      }
      return bytes
    }
  }

  public func flush() async throws(StorageError) {}
  public func flushIfDue(now: Int64) {}

  public func close() throws(StorageError) {
    state.withLock { $0.closed = true }
  }

  public func delete() throws(StorageError) {
    state.withLock {
      $0.closed = true
      $0.batches.removeAll()
    }
  }
}
