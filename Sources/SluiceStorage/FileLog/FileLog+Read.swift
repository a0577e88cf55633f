import KafkaProtocol
import NIOCore

/// Reading: whole batches from a snapshot of the segment list (the lock is held only to
/// take it), positional reads through the sparse index; offset-for-timestamp and the
/// largest timestamp.
extension FileLog {
  struct Snapshot {
    var segments: [Segment]
    var logStartOffset: Int64
    var logEndOffset: Int64
    /// Set when the log serves its intact prefix read-only (``FileLog/readOnlyEnd``): the
    /// damage, for the error a read past it gets.
    var damage: StorageError?

    /// The segment holding `offset`: the last with base ≤ offset, moving on if it ends first.
    func segment(holding offset: Int64) -> Segment? {
      guard var index = segments.lastIndex(where: { $0.baseOffset <= offset }) else { return nil }
      while index < segments.count && segments[index].nextOffset <= offset { index += 1 }
      return index < segments.count ? segments[index] : nil
    }
  }

  /// The segment list and bounds, taken under the lock. An offline log has none to give —
  /// unless it serves its intact prefix read-only.
  func snapshot() throws(StorageError) -> Snapshot {
    try state.withLock { (state: inout State) throws(StorageError) -> Snapshot in
      if state.flush.isClosed { throw state.flush.failure ?? StorageError(.closed, "\(directory) is closed") }
      if let failure = state.flush.failure, state.readOnlyEnd == nil { throw failure }
      return Snapshot(
        segments: state.segments, logStartOffset: state.logStartOffset, logEndOffset: state.logEndOffset,
        damage: state.readOnlyEnd == nil ? nil : state.flush.failure)
    }
  }

  public func read(from offset: Int64, maxBytes: Int, upTo: Int64?, minOneBatch: Bool) throws(StorageError)
    -> LogReadResult
  {
    let snap = try snapshot()
    var result = LogReadResult(
      chunks: [], logStartOffset: snap.logStartOffset, logEndOffset: snap.logEndOffset)
    if let damage = snap.damage, offset >= snap.logEndOffset {
      throw StorageError(
        .offline,
        "offset \(offset) is not readable: only [\(snap.logStartOffset), \(snap.logEndOffset)) is served "
          + "(read-only) before damage to the log: \(damage.message)")
    }
    guard offset >= snap.logStartOffset, offset <= snap.logEndOffset else {
      throw StorageError(
        .offsetOutOfRange, "offset \(offset) is outside [\(snap.logStartOffset), \(snap.logEndOffset)]")
    }
    let bound = min(upTo ?? snap.logEndOffset, snap.logEndOffset)
    guard offset < bound, let segment = snap.segment(holding: offset) else { return result }
    var scanner = BatchScanner(
      file: segment.file, from: segment.scanStart(for: offset), end: segment.size, verifyCRC: false,
      windowSize: 16384)
    guard let first = try Self.batch(holding: offset, in: segment, &scanner), first.baseOffset < bound else {
      return result
    }
    let (end, next) = try Self.readEnd(
      from: first, in: segment, maxBytes: maxBytes, bound: bound, minOneBatch: minOneBatch)
    if end > first.position { result.nextOffset = next }
    if let bytes = scanner.bytesInWindow(at: first.position, length: end - first.position) {
      // Already read while looking for the first batch (a tailing reader's usual case).
      result.chunks = [.bytes(bytes)]
    } else if end > first.position {
      result.chunks = [.file(segment.file, position: first.position, length: end - first.position)]
    }
    return result
  }

  /// Scans to the batch holding `offset`; nil if the segment ends first.
  static func batch(holding offset: Int64, in segment: Segment, _ scanner: inout BatchScanner)
    throws(StorageError) -> BatchInfo?
  {
    while true {
      switch try scanner.next() {
      case .batch(let info) where info.lastOffset >= offset: return info
      case .batch: continue
      case .end: return nil
      case .corrupt(let position, let reason):
        throw StorageError(.offline, "\(segment.file.path): corrupt batch at position \(position): \(reason)")
      }
    }
  }

  /// Where a read starting with `first` ends: whole batches up to `maxBytes` (the first one
  /// whole, if asked, whatever its size: KIP-74), none at or past `bound`; with the offset
  /// after the last batch included.
  static func readEnd(
    from first: BatchInfo, in segment: Segment, maxBytes: Int, bound: Int64, minOneBatch: Bool
  )
    throws(StorageError) -> (end: Int, nextOffset: Int64)
  {
    guard first.size <= maxBytes || minOneBatch else { return (first.position, first.baseOffset) }
    let limit = first.position + maxBytes
    var end = first.position + first.size
    var next = first.lastOffset + 1
    // Jump ahead via the index to a batch boundary near the limit, then scan to it.
    var from = end
    if let boundary = segment.index.floorBoundary(atOrBefore: limit), boundary > end,
      let entry = segment.index.offsets.last(where: { Int($0.position) == boundary }),
      segment.baseOffset + Int64(entry.relativeOffset) < bound
    {
      from = boundary
      end = boundary
      next = segment.baseOffset + Int64(entry.relativeOffset)
    }
    var tail = BatchScanner(
      file: segment.file, from: from, end: segment.size, verifyCRC: false, windowSize: 16384)
    while case .batch(let info) = try tail.next(), info.position + info.size <= limit, info.baseOffset < bound
    {
      end = info.position + info.size
      next = info.lastOffset + 1
    }
    return (end, next)
  }

  public func offset(forTimestamp timestamp: Int64) throws(StorageError) -> (offset: Int64, timestamp: Int64)?
  {
    let snap = try snapshot()
    for segment in snap.segments where segment.maxTimestamp >= timestamp {
      let startOffset = max(segment.index.scanStart(forTimestamp: timestamp), snap.logStartOffset)
      var scanner = BatchScanner(
        file: segment.file, from: segment.index.floorPosition(for: startOffset), end: segment.size,
        verifyCRC: false)
      while case .batch(let info) = try scanner.next() {
        guard info.lastOffset >= snap.logStartOffset, info.maxTimestamp >= timestamp else { continue }
        let bytes = try segment.file.read(at: info.position, length: info.size)
        if let found = try Self.firstRecord(
          in: bytes, atOrAfter: timestamp, minimumOffset: snap.logStartOffset)
        {
          return found
        }
      }
    }
    return nil
  }

  /// The first record of a stored batch with timestamp ≥ `timestamp` and offset ≥ `minimumOffset`.
  static func firstRecord(in bytes: ByteBuffer, atOrAfter timestamp: Int64, minimumOffset: Int64)
    throws(StorageError) -> (offset: Int64, timestamp: Int64)?
  {
    do {
      let batch = try RecordBatch(bytes)
      if batch.timestampType == .logAppendTime {
        return batch.maxTimestamp >= timestamp
          ? (max(batch.baseOffset, minimumOffset), batch.maxTimestamp) : nil
      }
      for record in try batch.records(maxDecompressedSize: 64 << 20) {
        if record.offset >= minimumOffset && record.timestamp >= timestamp {
          return (record.offset, record.timestamp)
        }
      }
      return nil
    } catch {
      throw StorageError(.invalidBatch, "stored batch could not be read: \(error)")
    }
  }

  public func maxTimestamp() throws(StorageError) -> (offset: Int64, timestamp: Int64)? {
    let snap = try snapshot()
    var best: Segment?
    for segment in snap.segments where segment.maxTimestamp >= 0 {
      if best == nil || segment.maxTimestamp > best!.maxTimestamp { best = segment }
    }
    guard let segment = best else { return nil }
    // The segment knows the batch (by its last offset); the answer is the batch's first
    // record with that timestamp, as Kafka gives it.
    var scanner = BatchScanner(
      file: segment.file, from: segment.index.floorPosition(for: segment.maxTimestampOffset),
      end: segment.size,
      verifyCRC: false)
    while case .batch(let info) = try scanner.next() {
      guard info.lastOffset >= segment.maxTimestampOffset else { continue }
      let bytes = try segment.file.read(at: info.position, length: info.size)
      if let found = try Self.firstRecord(
        in: bytes, atOrAfter: segment.maxTimestamp, minimumOffset: info.baseOffset)
      {
        return found
      }
      break
    }
    return (segment.maxTimestampOffset, segment.maxTimestamp)
  }
}
