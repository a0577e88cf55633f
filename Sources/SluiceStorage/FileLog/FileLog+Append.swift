import KafkaProtocol
public import NIOCore

/// Appending: whole v2 batches written at the end of the active segment (page cache only;
/// the flush policy decides when they are fsynced), offsets assigned by rewriting each
/// batch's base offset, the segment rolled when full or old, index entries added.
extension FileLog {
  public func append(_ batches: ByteBuffer, now: Int64) async throws(StorageError) -> AppendResult {
    let pending = try appendBuffered(batches, now: now)
    try await awaitDurable(pending)
    return pending.result
  }

  public func appendBuffered(_ batches: ByteBuffer, now: Int64) throws(StorageError) -> PendingAppend {
    let (result, mustWait, flushAction) = try appendToPageCache(batches, now: now)
    perform(flushAction)
    return PendingAppend(result: result, mustFlush: mustWait)
  }

  public func awaitDurable(_ pending: PendingAppend) async throws(StorageError) {
    if pending.mustFlush { try await waitDurable(pending.result.lastOffset) }
  }

  /// One batch of an append: where it starts in the appended bytes and what its header says.
  struct IncomingBatch {
    var start: Int
    var lastOffsetDelta: Int64
    var maxTimestamp: Int64
    var records: Int64
  }

  /// Splits appended bytes into batches. Only structure is checked here (outside the lock):
  /// the broker has already validated CRCs and record counts.
  static func split(_ bytes: ByteBuffer) throws(StorageError) -> [IncomingBatch] {
    var splitter = RecordBatchSplitter(bytes)
    var batches: [IncomingBatch] = []
    var position = 0
    do {
      while let batch = try splitter.next() {
        guard batch.magic == 2, batch.lastOffsetDelta >= 0 else {
          throw StorageError(.invalidBatch, "batch at byte \(position) is not a v2 batch")
        }
        batches.append(
          IncomingBatch(
            start: position, lastOffsetDelta: Int64(batch.lastOffsetDelta), maxTimestamp: batch.maxTimestamp,
            records: Int64(batch.recordsCount)))
        position += batch.size
      }
    } catch let error as KafkaProtocolError {
      throw StorageError(.invalidBatch, "appended bytes are not record batches: \(error)")
    } catch let error as StorageError {
      throw error
    } catch {
      throw StorageError(.invalidBatch, "\(error)")
    }
    guard !batches.isEmpty, splitter.partialTail == nil, position == bytes.readableBytes else {
      throw StorageError(.invalidBatch, "appended bytes do not end on a batch boundary")
    }
    return batches
  }

  /// Writes the batches at the end of the log (no fsync). Returns the assigned offsets,
  /// whether the caller must wait for a flush, and what the flush state machine wants done
  /// (outside the lock).
  func appendToPageCache(_ input: ByteBuffer, now: Int64) throws(StorageError) -> (
    AppendResult, Bool, Flush.Action
  ) {
    let batches = try Self.split(input)
    var offline = Flush.Action.none
    let outcome = state.withLock { state in
      Result { () throws(StorageError) in
        try append(batches, of: input, now: now, &state, wentOffline: &offline)
      }
    }
    perform(offline)
    return try outcome.get()
  }

  /// Under the lock: rolls if due, assigns offsets, writes, accounts. A write failure that
  /// takes the log offline leaves in `wentOffline` the waiters to fail.
  func append(
    _ batches: [IncomingBatch], of input: ByteBuffer, now: Int64, _ state: inout State,
    wentOffline: inout Flush.Action
  ) throws(StorageError) -> (AppendResult, Bool, Flush.Action) {
    if let failure = state.flush.failure { throw failure }
    if state.flush.isClosed { throw StorageError(.closed, "\(directory) is closed") }
    let config = state.config
    try rollIfDue(&state, incomingBytes: input.readableBytes, now: now)
    var bytes = input
    let firstOffset = state.logEndOffset
    let (next, baseOffsets) = Self.assignOffsets(
      &bytes, batches, from: firstOffset, logAppendTime: config.logAppendTime ? now : nil)
    let active = state.segments.count - 1
    let position = state.segments[active].size
    if let undoFailed = try writeOrUndo(
      bytes, batches: batches, baseOffsets: baseOffsets, segment: active, at: position, &state)
    {
      wentOffline = state.flush.writeFailed(undoFailed.offline)
      throw undoFailed.write
    }
    // In place: a copy of the segment would share its index arrays with the one in
    // `state`, and appending an entry would copy them all (quadratic).
    Self.account(
      &state.segments[active], bytes: bytes, batches: batches, writtenAt: position,
      firstOffset: firstOffset,
      logAppendTime: config.logAppendTime ? now : nil, interval: config.indexIntervalBytes, now: now)
    state.segments[active].nextOffset = next
    state.logEndOffset = next
    let (mustWait, action) = state.flush.appendWritten(
      to: state.segments[active].file, records: batches.reduce(0) { $0 + $1.records }, logEnd: next,
      now: now, flushMessages: config.flushMessages)
    let result = AppendResult(
      firstOffset: firstOffset, lastOffset: next - 1, logAppendTime: config.logAppendTime ? now : -1,
      logStartOffset: state.logStartOffset)
    return (result, mustWait, action)
  }

  /// Rolls the active segment before an append of `incomingBytes` if it is full or old.
  func rollIfDue(_ state: inout State, incomingBytes: Int, now: Int64) throws(StorageError) {
    let config = state.config
    let active = state.segments.count - 1
    // Only the fields: a copy of the whole segment would share its index arrays, and the
    // next index entry would then copy them (every few appends: quadratic).
    let (size, created, jitter) = (
      state.segments[active].size, state.segments[active].createdMs, state.segments[active].rollJitterMs
    )
    // Index positions are 32-bit, as in Kafka: a segment never grows past Int32.max.
    if size > 0
      && (size + incomingBytes > min(config.segmentBytes, Int(Int32.max))
        || now - (created ?? now) >= config.segmentMs - jitter)
    {
      try roll(&state, now: now)
    }
  }

  /// Assigns offsets from `firstOffset` on. With LogAppendTime (`logAppendTime` is the
  /// broker's time) the batches are rewritten in place — stamped, base offset set, CRC
  /// recomputed — in a copy of the request's bytes; otherwise only the 8-byte base offsets
  /// are new, returned big-endian for a `pwritev` around the untouched batch bytes.
  static func assignOffsets(
    _ bytes: inout ByteBuffer, _ batches: [IncomingBatch], from firstOffset: Int64, logAppendTime: Int64?
  ) -> (next: Int64, baseOffsets: [Int64]) {
    var next = firstOffset
    var baseOffsets: [Int64] = []
    if logAppendTime == nil { baseOffsets.reserveCapacity(batches.count) }
    for batch in batches {
      if let now = logAppendTime {
        let start = bytes.readerIndex + batch.start
        bytes.setInteger(next, at: start)
        // Stamp the batch: attributes bit 3, max timestamp = now, CRC recomputed.
        let size = Int(bytes.getInteger(at: start + 8, as: Int32.self)!) + 12
        if var view = try? RecordBatch(bytes.getSlice(at: start, length: size)!) {
          view.setMaxTimestamp(now, timestampType: .logAppendTime)
          bytes.setBuffer(view.buffer, at: start)
        }
      } else {
        baseOffsets.append(next.bigEndian)
      }
      next += batch.lastOffsetDelta + 1
    }
    return (next, baseOffsets)
  }

  /// Writes the batches at `position` of a segment. A write that fails part-way (ENOSPC) is
  /// taken back so the file ends on a batch boundary again, and its error thrown. If even
  /// that fails, the log's contents are unknown: returns the write's error and the error
  /// that takes the log offline.
  func writeOrUndo(
    _ bytes: ByteBuffer, batches: [IncomingBatch], baseOffsets: [Int64], segment: Int, at position: Int,
    _ state: inout State
  ) throws(StorageError) -> (write: StorageError, offline: StorageError)? {
    let file = state.segments[segment].file
    do throws(StorageError) {
      if baseOffsets.isEmpty {  // LogAppendTime: the batches were rewritten whole
        try file.write(bytes, at: position)
      } else {
        try Self.write(
          bytes, batchStarts: batches.map(\.start), baseOffsets: baseOffsets, to: file, at: position)
      }
      return nil
    } catch {
      // The file could not be opened (descriptors exhausted): nothing was written, the log
      // is unchanged and stays online.
      if error.code == .openFailed { throw error }
      do {
        try file.truncate(to: position)
      } catch let truncateError {
        return (
          error,
          StorageError(
            .offline, "\(directory): write failed (\(error)) and could not be undone (\(truncateError))")
        )
      }
      throw error
    }
  }

  /// Writes `bytes` (whole batches starting at `batchStarts`) with each batch's first 8
  /// bytes replaced by the matching big-endian `baseOffsets` entry, without copying `bytes`.
  static func write(
    _ bytes: ByteBuffer, batchStarts: [Int], baseOffsets: [Int64], to file: SegmentFile, at position: Int
  ) throws(StorageError) {
    let result: Result<Void, StorageError> = bytes.withUnsafeReadableBytes { data in
      baseOffsets.withUnsafeBytes { offsets in
        var pieces: [UnsafeRawBufferPointer] = []
        pieces.reserveCapacity(batchStarts.count * 2)
        for (index, start) in batchStarts.enumerated() {
          let end = index + 1 < batchStarts.count ? batchStarts[index + 1] : data.count
          pieces.append(UnsafeRawBufferPointer(rebasing: offsets[(index * 8)..<(index * 8 + 8)]))
          pieces.append(UnsafeRawBufferPointer(rebasing: data[(start + 8)..<end]))
        }
        do throws(StorageError) {
          try file.write(pieces: pieces, at: position)
          return .success(())
        } catch {
          return .failure(error)
        }
      }
    }
    try result.get()
  }

  /// Accounts for batches just written at `position` of `segment`: size, index entries,
  /// timestamps, times.
  static func account(
    _ segment: inout Segment, bytes: ByteBuffer, batches: [IncomingBatch], writtenAt position: Int,
    firstOffset: Int64, logAppendTime: Int64?, interval: Int, now: Int64
  ) {
    if segment.createdMs == nil || segment.isEmpty { segment.createdMs = now }
    var offset = firstOffset
    for batch in batches {
      let size = Int(bytes.getInteger(at: bytes.readerIndex + batch.start + 8, as: Int32.self)!) + 12
      let info = BatchInfo(
        position: position + batch.start, size: size, baseOffset: offset,
        lastOffset: offset + batch.lastOffsetDelta, maxTimestamp: logAppendTime ?? batch.maxTimestamp)
      segment.index(info, interval: interval)
      segment.newestBatch = (info.baseOffset, info.position)
      offset += batch.lastOffsetDelta + 1
    }
    segment.size = position + bytes.readableBytes
    segment.lastAppendMs = max(segment.lastAppendMs, now)
  }

  /// Seals the active segment and starts a new one at the log end. The sealed segment is
  /// fsynced by the next flush, after which the recovery point moves past it.
  func roll(_ state: inout State, now: Int64) throws(StorageError) {
    let last = state.segments.count - 1
    if state.segments[last].maxTimestamp >= 0 {
      try? state.segments[last].index.appendTime(
        state.segments[last].maxTimestamp, offset: state.segments[last].maxTimestampOffset)
    }
    try? state.segments[last].index.persist()
    var segment = try Segment.open(
      directory: directory, baseOffset: state.logEndOffset, create: true, cache: fileCache)
    segment.createdMs = now
    segment.lastAppendMs = now
    segment.rollJitterMs = Segment.rollJitter(state.config)
    state.segments.append(segment)
    state.flush.segmentRolled()
  }
}
