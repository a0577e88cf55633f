/// Retention: DeleteRecords, `retention.ms` / `retention.bytes`, the `drop-oldest` trim,
/// and the exact byte counts they need.
extension FileLog {
  public func deleteRecords(before offset: Int64) throws(StorageError) -> Int64 {
    let newStart: Int64 = try state.withLock { (state: inout State) throws(StorageError) -> Int64 in
      if let failure = state.flush.failure { throw failure }
      guard offset <= state.logEndOffset else {
        throw StorageError(.offsetOutOfRange, "offset \(offset) is past the log end \(state.logEndOffset)")
      }
      guard offset > state.logStartOffset else { return state.logStartOffset }
      try persistLogStart(offset)
      state.logStartOffset = offset
      state.flush.logStartWritten(offset)
      try deleteSegments(&state) { segment, _ in segment.nextOffset <= offset }
      return state.logStartOffset
    }
    return newStart
  }

  public func retainedBytes(from offset: Int64) -> Int64 {
    state.withLock { state in
      let from = max(offset, state.logStartOffset)
      if let exact = try? exactBytes(from: from, state) { return exact }
      // The segment could not be read: answer at sparse-index granularity.
      var total: Int64 = 0
      for segment in state.segments.reversed() {
        if segment.baseOffset <= from {
          total += Int64(segment.size - segment.index.floorPosition(for: from))
          break
        }
        total += Int64(segment.size)
      }
      return from < state.logEndOffset ? total : 0
    }
  }

  @discardableResult
  public func trim(toBytes maxBytes: Int64) throws(StorageError) -> TrimResult {
    try state.withLock { (state: inout State) throws(StorageError) -> TrimResult in
      if let failure = state.flush.failure { throw failure }
      if state.flush.isClosed { throw StorageError(.closed, "\(directory) is closed") }
      let oldStart = state.logStartOffset
      guard oldStart < state.logEndOffset else { return TrimResult() }
      guard var (segmentIndex, position) = try exactStart(of: oldStart, state) else { return TrimResult() }
      let total = Self.bytes(fromSegment: segmentIndex, position: position, state)
      var excess = total - max(0, maxBytes)
      guard excess > 0 else { return TrimResult() }
      // Whole remainders of segments first, then batch by batch in the segment where the
      // cut falls.
      var newStart = oldStart
      while segmentIndex < state.segments.count && excess > 0 {
        let segment = state.segments[segmentIndex]
        let remaining = Int64(segment.size - position)
        if remaining <= excess {
          excess -= remaining
          newStart = max(newStart, segment.nextOffset)
          segmentIndex += 1
          position = 0
          continue
        }
        var scanner = BatchScanner(
          file: segment.file, from: position, end: segment.size, verifyCRC: false, windowSize: 65536)
        scan: while excess > 0 {
          switch try scanner.next() {
          case .batch(let info):
            excess -= Int64(info.size)
            newStart = info.nextOffset
          case .end, .corrupt:
            break scan
          }
        }
        break  // the cut is in this segment (or it cannot be read further: stop there)
      }
      // The newest batch stays, even when it alone is over the bound: only older data goes.
      if newStart >= state.logEndOffset, let last = state.segments.last(where: { !$0.isEmpty }) {
        newStart = try exactBatch(containing: state.logEndOffset - 1, in: last).baseOffset
      }
      // Never past what consumers may read: for fsync-every-append logs the high watermark
      // is the durable end.
      if state.config.flushesEveryAppend { newStart = min(newStart, state.flush.durableOffset) }
      guard newStart > oldStart else { return TrimResult() }
      let kept = try exactBytes(from: newStart, state)
      state.logStartOffset = newStart
      state.flush.logStartMoved(to: newStart)
      try deleteSegments(&state) { segment, _ in segment.nextOffset <= newStart }
      return TrimResult(records: newStart - oldStart, bytes: total - kept)
    }
  }

  /// Exact bytes of the batches from the one holding `offset` to the log end.
  func exactBytes(from offset: Int64, _ state: State) throws(StorageError) -> Int64 {
    guard let (segment, position) = try exactStart(of: offset, state) else { return 0 }
    return Self.bytes(fromSegment: segment, position: position, state)
  }

  /// The segment and position of the batch holding `offset`, or nil at or past the end.
  func exactStart(of offset: Int64, _ state: State) throws(StorageError) -> (segment: Int, position: Int)? {
    guard offset < state.logEndOffset,
      let index = state.segments.lastIndex(where: { $0.baseOffset <= offset })
    else { return nil }
    return (index, try exactBatch(containing: offset, in: state.segments[index]).position)
  }

  /// Bytes from `position` in segment `index` to the log end.
  static func bytes(fromSegment index: Int, position: Int, _ state: State) -> Int64 {
    var total = Int64(state.segments[index].size - position)
    for later in state.segments[(index + 1)...] { total += Int64(later.size) }
    return total
  }

  /// The position and base offset of the batch holding `offset` in `segment` (scanning
  /// from the sparse index's floor entry); the segment's end if no batch holds it.
  func exactBatch(containing offset: Int64, in segment: Segment) throws(StorageError) -> (
    position: Int, baseOffset: Int64
  ) {
    var scanner = BatchScanner(
      file: segment.file, from: segment.index.floorPosition(for: offset), end: segment.size,
      verifyCRC: false, windowSize: 16384)
    while true {
      switch try scanner.next() {
      case .batch(let info):
        if info.lastOffset >= offset { return (info.position, info.baseOffset) }
      case .end, .corrupt:
        return (segment.size, segment.nextOffset)
      }
    }
  }

  @discardableResult
  public func enforceRetention(now: Int64) throws(StorageError) -> Int {
    try state.withLock { (state: inout State) throws(StorageError) -> Int in
      if let failure = state.flush.failure { throw failure }
      let config = state.config
      guard config.retentionApplies else { return 0 }
      var deleted = 0
      // Only what consumers may have read goes: for fsync-every-append logs the high
      // watermark is the durable end (Kafka deletes only below the high watermark too).
      let readable = config.flushesEveryAppend ? state.flush.durableOffset : state.logEndOffset
      if config.retentionMs >= 0 {
        let active = state.segments[state.segments.count - 1]
        if active.expired(now: now, retentionMs: config.retentionMs) && active.nextOffset <= readable {
          // Everything is expired: roll so the active segment can go too.
          try roll(&state, now: now)
        }
        deleted += try deleteSegments(&state) { segment, _ in
          segment.expired(now: now, retentionMs: config.retentionMs) && segment.nextOffset <= readable
        }
      }
      if config.retentionBytes >= 0 {
        var excess = Int64(state.segments.reduce(0) { $0 + $1.size }) - config.retentionBytes
        deleted += try deleteSegments(&state) { segment, _ in
          guard excess - Int64(segment.size) >= 0, segment.nextOffset <= readable else { return false }
          excess -= Int64(segment.size)
          return true
        }
      }
      return deleted
    }
  }

  /// Deletes segments from the oldest while `shouldDelete` says so, never the active one.
  @discardableResult
  func deleteSegments(_ state: inout State, _ shouldDelete: (Segment, Int) -> Bool) throws(StorageError)
    -> Int
  {
    var bytes = 0
    var deleted: [SegmentFile] = []
    defer { state.flush.segmentsDeleted(deleted) }
    while state.segments.count > 1, shouldDelete(state.segments[0], 0) {
      let segment = state.segments.removeFirst()
      deleted.append(segment.file)
      // A fetch may still hold the segment: its descriptor stays open until that is done.
      segment.file.keepOpen()
      try Segment.removeFiles(directory: directory, baseOffset: segment.baseOffset)
      bytes += segment.size
      state.logStartOffset = max(state.logStartOffset, state.segments[0].baseOffset)
    }
    return bytes
  }
}
