import KafkaProtocol
public import NIOCore
public import NIOPosix
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// One segment of a ``FileLog``: `<base offset>.log` with its `.index` and `.timeindex`.
struct Segment {
  let baseOffset: Int64
  let file: SegmentFile
  var index: SparseIndex
  /// Bytes of whole batches in the file.
  var size: Int
  /// The offset after the last batch (the base offset when empty).
  var nextOffset: Int64
  /// The largest record timestamp in the segment (batch headers, which the broker
  /// recomputes from the records at append); -1 when no record has one.
  var maxTimestamp: Int64 = -1
  var maxTimestampOffset: Int64 = -1
  /// The broker's wall-clock time of the last append (after a restart, the file's
  /// modification time). Retention never deletes a segment until `retention.ms` after
  /// this, whatever timestamps the producers wrote (see ``retentionAge``).
  var lastAppendMs: Int64 = 0
  /// Wall-clock time of the first append (or, after a restart, the first batch's
  /// timestamp): `segment.ms` counts from here.
  var createdMs: Int64?
  /// How much earlier than `segment.ms` this segment rolls (`segment.jitter.ms`).
  var rollJitterMs: Int64 = 0
  var bytesSinceIndexEntry = 0
  /// Written since its last fsync.
  var needsSync = false

  var isEmpty: Bool { size == 0 }

  /// The time time-based retention counts from: the newer of the largest record timestamp
  /// (Kafka's rule) and the last append. Kafka falls back to the file's modification time
  /// only when no record has a timestamp, so a producer's timestamps of 0 or an hour ago
  /// expire records at once; here nothing goes before `retention.ms` after it was written.
  var retentionAge: Int64 { max(maxTimestamp, lastAppendMs) }

  /// Whether time-based retention deletes the segment at `now`.
  func expired(now: Int64, retentionMs: Int64) -> Bool {
    retentionMs >= 0 && !isEmpty && retentionAge < now &- retentionMs
  }

  /// A random roll jitter for a new segment: in [0, min(`segment.jitter.ms`, `segment.ms`)).
  static func rollJitter(_ config: LogConfig) -> Int64 {
    let bound = min(config.segmentJitterMs, config.segmentMs)
    return bound > 0 ? Int64.random(in: 0..<bound) : 0
  }

  static func fileName(_ baseOffset: Int64, _ suffix: String) -> String {
    let digits = String(baseOffset)
    return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
  }
}

/// A partition log on local disk, in Kafka's layout: a directory of segments named by
/// base offset, each with a sparse offset index and time index.
///
/// Concurrency: all mutable state sits in one `Mutex`. Appends write to the page cache
/// while holding it (a `pwrite`, which the architecture allows on an event loop); fsync runs
/// on a thread pool and never under the lock. Reads take the lock only to snapshot the
/// segment list, then use positional reads.
///
/// Durability: `flush.messages=1` makes an append wait for an fsync that covers it. Flushes
/// are group commits: while one fsync runs, later appends queue, and the next fsync covers
/// all of them. A failed fsync takes the log offline (the kernel may have dropped the
/// dirty pages, so retrying could report lost data as durable); every waiting and later
/// append fails.
///
/// Crash safety: a clean close leaves a marker; without it, the next open re-reads every
/// segment, verifying each batch's CRC and rebuilding the indexes. Corruption at or past
/// the recovery point (the last offset known flushed) is a torn tail: it is truncated
/// away with everything after it. Corruption below the recovery point is damage to data
/// that was durable: the log opens offline with an error naming the file and position.
public final class FileLog: PartitionLog {
  struct Waiter {
    var offset: Int64
    var continuation: CheckedContinuation<Result<Void, StorageError>, Never>
  }

  struct State {
    var config: LogConfig
    var segments: [Segment]
    var logStartOffset: Int64
    var logEndOffset: Int64
    var durableOffset: Int64
    var recoveryPoint: Int64
    var unflushedMessages: Int64 = 0
    var oldestUnflushedMs: Int64?
    var flushing = false
    var directoryNeedsSync = false
    var checkpointNeeded = false
    /// A log start moved by ``trim(toBytes:)``, to be written by the next flush.
    var unwrittenLogStart: Int64?
    var waiters: [Waiter] = []
    var failure: StorageError?
    var closed = false
    /// Flush rounds run (each one fsync per dirty file): lets tests observe group commit.
    var flushCount = 0
  }

  public let directory: String
  let threadPool: NIOThreadPool
  let state: Mutex<State>
  /// Serialises writes of the log-start file (flush jobs on pool threads, DeleteRecords,
  /// close) and remembers the last value written, so an older value never replaces a newer.
  let logStartWritten = Mutex<Int64>(Int64.min)

  static let cleanShutdownFile = ".clean-shutdown"
  static let recoveryPointFile = "recovery-point"
  static let logStartFile = "log-start-offset"

  // MARK: Opening

  /// Opens (creating if needed) the log in `directory`, recovering it if it was not closed
  /// cleanly. A log found damaged opens offline: every operation then throws `.offline`.
  public init(directory: String, config: LogConfig, threadPool: NIOThreadPool, now: Int64)
    throws(StorageError)
  {
    self.directory = directory
    self.threadPool = threadPool
    try FileSystem.makeDirectory(directory)
    let recovered = try Self.recover(directory: directory, config: config, now: now)
    self.state = Mutex(recovered)
  }

  public var config: LogConfig { state.withLock { $0.config } }

  public func updateConfig(_ config: LogConfig) {
    state.withLock { $0.config = config }
  }

  public var logStartOffset: Int64 { state.withLock { $0.logStartOffset } }
  public var logEndOffset: Int64 { state.withLock { $0.logEndOffset } }
  public var durableEndOffset: Int64 { state.withLock { $0.durableOffset } }

  public var failure: StorageError? { state.withLock { $0.failure } }

  /// How many flush rounds (group commits) have run.
  package var flushCount: Int { state.withLock { $0.flushCount } }

  /// The error that took the log offline, if any.
  public var offlineError: StorageError? { state.withLock { $0.failure } }

  static func readNumber(_ path: String) throws(StorageError) -> Int64? {
    guard let bytes = try FileSystem.readAll(path) else { return nil }
    guard let text = String(validating: bytes, as: UTF8.self),
      let value = Int64(text.filter { !$0.isWhitespace })
    else {
      throw StorageError(.corruptMetadata, "\(path): not a number")
    }
    return value
  }

  static func writeNumber(_ path: String, _ value: Int64) throws(StorageError) {
    try FileSystem.writeAtomically(path, Array("\(value)\n".utf8))
  }

  static func openSegment(directory: String, baseOffset: Int64, create: Bool) throws(StorageError) -> Segment
  {
    let file = try SegmentFile(path: directory + "/" + Segment.fileName(baseOffset, ".log"), create: create)
    let offsetFile = try SegmentFile(
      path: directory + "/" + Segment.fileName(baseOffset, ".index"), create: true)
    let timeFile = try SegmentFile(
      path: directory + "/" + Segment.fileName(baseOffset, ".timeindex"), create: true)
    return Segment(
      baseOffset: baseOffset, file: file,
      index: SparseIndex(baseOffset: baseOffset, offsetFile: offsetFile, timeFile: timeFile),
      size: 0, nextOffset: baseOffset)
  }

  static func recover(directory: String, config: LogConfig, now: Int64) throws(StorageError) -> State {
    let names = try FileSystem.list(directory)
    // Leftovers of an interrupted atomic write are never the real file.
    for name in names where name.hasSuffix(".tmp") { try FileSystem.remove(directory + "/" + name) }
    let bases = names.compactMap { name -> Int64? in
      guard name.hasSuffix(".log"), name.count == 24 else { return nil }
      return Int64(name.dropLast(4))
    }.sorted()
    let clean = FileSystem.exists(directory + "/" + cleanShutdownFile)
    let recoveryPoint = try readNumber(directory + "/" + recoveryPointFile) ?? 0
    let storedStart = try readNumber(directory + "/" + logStartFile) ?? 0

    var segments: [Segment] = []
    var failure: StorageError?
    var truncatedAt: Int?
    for base in bases {
      // Segments follow each other without gaps (a roll starts the next one at the log
      // end). One that does not is what a torn roll leaves after a lost tail.
      if truncatedAt == nil, let previous = segments.last, previous.nextOffset != base {
        if previous.nextOffset < recoveryPoint {
          failure = StorageError(
            .offline,
            "\(directory): segment \(Segment.fileName(base, ".log")) starts at \(base) but the one before ends at "
              + "\(previous.nextOffset), below the recovery point \(recoveryPoint)")
          break
        }
        truncatedAt = previous.size
      }
      if truncatedAt != nil {
        // Everything after a torn tail was written after it and never flushed.
        for suffix in [".log", ".index", ".timeindex"] {
          try FileSystem.remove(directory + "/" + Segment.fileName(base, suffix))
        }
        continue
      }
      var segment = try openSegment(directory: directory, baseOffset: base, create: false)
      let fileSize = try segment.file.size()
      if clean,
        let index = try SparseIndex.load(
          baseOffset: base, offsetFile: segment.index.offsetFile, timeFile: segment.index.timeFile,
          logSize: fileSize)
      {
        // Clean stop: trust the index, scan only from its last entry to find the end, and
        // index what follows that entry (a truncated or deleted index file is completed).
        segment.index = index
        let lastEntry = index.offsets.last
        if let last = index.times.last {
          segment.maxTimestamp = last.timestamp
          segment.maxTimestampOffset = base + Int64(last.relativeOffset)
        }
        var scanner = BatchScanner(
          file: segment.file, from: lastEntry.map { Int($0.position) } ?? 0, end: fileSize, verifyCRC: false)
        var consistent = true
        var first = true
        scanLoop: while true {
          switch try scanner.next() {
          case .batch(let info):
            if first, let lastEntry {
              // The entry must point at the batch it names; that batch is indexed already.
              guard info.baseOffset == base + Int64(lastEntry.relativeOffset) else {
                consistent = false
                break scanLoop
              }
              segment.bytesSinceIndexEntry = info.size
              if info.maxTimestamp > segment.maxTimestamp {
                segment.maxTimestamp = info.maxTimestamp
                segment.maxTimestampOffset = info.lastOffset
              }
            } else {
              Self.indexBatch(&segment, info: info, interval: config.indexIntervalBytes)
            }
            first = false
            segment.nextOffset = info.nextOffset
            segment.size = info.position + info.size
          case .end:
            break scanLoop
          case .corrupt:
            consistent = false
            break scanLoop
          }
        }
        // Offset entries without any time entry: the time index was lost.
        if !segment.index.offsets.isEmpty && segment.index.times.isEmpty && segment.maxTimestamp >= 0 {
          consistent = false
        }
        if consistent && segment.size == fileSize {
          segment.lastAppendMs = try segment.file.modifiedMs()
          segment.rollJitterMs = Segment.rollJitter(config)
          segment.createdMs = segment.maxTimestamp >= 0 ? min(segment.maxTimestamp, now) : now
          try? segment.index.persist()
          segments.append(segment)
          continue
        }
        // A "clean" log that does not scan cleanly: fall through to a full recovery.
      }
      // Full recovery of this segment: verify every batch and rebuild its indexes.
      try segment.index.reset()
      segment.size = 0
      segment.nextOffset = base
      segment.maxTimestamp = -1
      segment.maxTimestampOffset = -1
      segment.bytesSinceIndexEntry = 0
      var scanner = BatchScanner(file: segment.file, from: 0, end: fileSize, verifyCRC: true)
      recoveryLoop: while true {
        switch try scanner.next() {
        case .batch(let info):
          // Offsets are dense (the base offset is outside the CRC: this catches damage to it).
          guard info.baseOffset == segment.nextOffset else {
            let reason =
              "batch at position \(info.position) has offset \(info.baseOffset), expected \(segment.nextOffset)"
            if segment.nextOffset < recoveryPoint {
              failure = StorageError(
                .offline, "\(segment.file.path): \(reason), below the recovery point \(recoveryPoint)")
            } else {
              truncatedAt = info.position
            }
            break recoveryLoop
          }
          Self.indexBatch(&segment, info: info, interval: config.indexIntervalBytes)
          segment.size = info.position + info.size
          segment.nextOffset = info.nextOffset
        case .end:
          break recoveryLoop
        case .corrupt(let at, let reason):
          if segment.nextOffset < recoveryPoint {
            failure = StorageError(
              .offline,
              "\(segment.file.path): corrupt data at position \(at) (\(reason)) below the recovery point "
                + "\(recoveryPoint); the partition is offline until the segment is repaired or removed")
          } else {
            truncatedAt = at
          }
          break recoveryLoop
        }
      }
      if failure != nil {
        segments.append(segment)
        break
      }
      if let at = truncatedAt {
        try segment.file.truncate(to: at)
        try segment.file.sync()
      }
      segment.lastAppendMs = try segment.file.modifiedMs()
      segment.rollJitterMs = Segment.rollJitter(config)
      segment.createdMs = segment.maxTimestamp >= 0 ? min(segment.maxTimestamp, now) : now
      try? segment.index.persist()
      segments.append(segment)
    }

    if segments.isEmpty {
      let base = max(storedStart, 0)
      var segment = try openSegment(directory: directory, baseOffset: base, create: true)
      segment.createdMs = now
      segment.lastAppendMs = now
      segment.rollJitterMs = Segment.rollJitter(config)
      segments.append(segment)
      try FileSystem.syncDirectory(directory)
    }
    let logEnd = segments.last!.nextOffset
    let logStart = min(max(storedStart, segments.first!.baseOffset), logEnd)
    if clean {
      try FileSystem.remove(directory + "/" + cleanShutdownFile)
      try FileSystem.syncDirectory(directory)
    }
    var state = State(
      config: config, segments: segments, logStartOffset: logStart, logEndOffset: logEnd,
      durableOffset: min(recoveryPoint, logEnd), recoveryPoint: min(recoveryPoint, logEnd))
    state.failure = failure
    if failure == nil {
      // Make the recovered state the recovery point (after an unclean stop, sync what
      // recovery kept, which may have been only in the page cache of a living kernel).
      if !clean {
        for segment in state.segments { try segment.file.sync() }
      }
      state.durableOffset = logEnd
      state.recoveryPoint = logEnd
      try writeNumber(directory + "/" + recoveryPointFile, logEnd)
    }
    return state
  }

  /// Adds index entries for a batch just written (or re-read during recovery).
  static func indexBatch(_ segment: inout Segment, info: BatchInfo, interval: Int) {
    if segment.bytesSinceIndexEntry >= interval || segment.index.offsets.isEmpty && info.position > 0 {
      try? segment.index.appendOffset(info.baseOffset, position: info.position)
      if segment.maxTimestamp >= 0 {
        try? segment.index.appendTime(segment.maxTimestamp, offset: segment.maxTimestampOffset)
      }
      segment.bytesSinceIndexEntry = 0
    }
    segment.bytesSinceIndexEntry += info.size
    if info.maxTimestamp > segment.maxTimestamp {
      segment.maxTimestamp = info.maxTimestamp
      segment.maxTimestampOffset = info.lastOffset
    }
  }

  // MARK: Append

  public func append(_ batches: ByteBuffer, now: Int64) async throws(StorageError) -> AppendResult {
    let pending = try appendBuffered(batches, now: now)
    try await awaitDurable(pending)
    return pending.result
  }

  public func appendBuffered(_ batches: ByteBuffer, now: Int64) throws(StorageError) -> PendingAppend {
    let (result, mustWait, flushJob) = try appendToPageCache(batches, now: now)
    if let flushJob { startFlush(flushJob) }
    return PendingAppend(result: result, mustFlush: mustWait)
  }

  public func awaitDurable(_ pending: PendingAppend) async throws(StorageError) {
    if pending.mustFlush { try await waitDurable(pending.result.lastOffset) }
  }

  struct FlushJob {
    var files: [SegmentFile]
    var target: Int64
    var syncDirectory: Bool
    var checkpoint: Bool
    var logStart: Int64? = nil
  }

  /// Writes the log-start file, unless a value at least as high was written already.
  func persistLogStart(_ value: Int64) throws(StorageError) {
    try logStartWritten.withLock { (written: inout Int64) throws(StorageError) in
      guard value > written else { return }
      try Self.writeNumber(directory + "/" + Self.logStartFile, value)
      written = value
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

  /// Writes the batches at the end of the log (no fsync). Returns the assigned offsets,
  /// whether the caller must wait for a flush, and a flush to start (outside the lock).
  func appendToPageCache(_ input: ByteBuffer, now: Int64) throws(StorageError) -> (
    AppendResult, Bool, FlushJob?
  ) {
    var bytes = input
    // Split first, outside the lock: only structure is checked here; the broker has
    // already validated CRCs and record counts.
    var splitter = RecordBatchSplitter(bytes)
    var batches: [(offset: Int, delta: Int64, maxTimestamp: Int64, records: Int64)] = []
    var position = 0
    do {
      while let batch = try splitter.next() {
        guard batch.magic == 2, batch.lastOffsetDelta >= 0 else {
          throw StorageError(.invalidBatch, "batch at byte \(position) is not a v2 batch")
        }
        batches.append(
          (position, Int64(batch.lastOffsetDelta), batch.maxTimestamp, Int64(batch.recordsCount)))
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

    return try state.withLock {
      (state: inout State) throws(StorageError) -> (AppendResult, Bool, FlushJob?) in
      if let failure = state.failure { throw failure }
      if state.closed { throw StorageError(.closed, "\(directory) is closed") }
      let config = state.config

      // Roll the active segment if it is full or old.
      var active = state.segments.count - 1
      // Only the fields: a copy of the whole segment would share its index arrays, and the
      // next index entry would then copy them (every few appends: quadratic).
      let (activeSize, activeCreated, jitter) = (
        state.segments[active].size, state.segments[active].createdMs, state.segments[active].rollJitterMs
      )
      // Index positions are 32-bit, as in Kafka: a segment never grows past Int32.max.
      if activeSize > 0
        && (activeSize + bytes.readableBytes > min(config.segmentBytes, Int(Int32.max))
          || now - (activeCreated ?? now) >= config.segmentMs - jitter)
      {
        try roll(&state, now: now)
        active = state.segments.count - 1
      }

      // Assign offsets: with LogAppendTime the batches are rewritten in place (a copy of the
      // request's bytes); otherwise only the 8-byte base offsets are new, written from a
      // side buffer with pwritev around the untouched batch bytes.
      let firstOffset = state.logEndOffset
      var next = firstOffset
      var baseOffsets: [Int64] = []
      if !config.logAppendTime { baseOffsets.reserveCapacity(batches.count) }
      for batch in batches {
        if config.logAppendTime {
          bytes.setInteger(next, at: bytes.readerIndex + batch.offset)
          // Stamp the batch: attributes bit 3, max timestamp = now, CRC recomputed.
          let start = bytes.readerIndex + batch.offset
          let size = Int(bytes.getInteger(at: start + 8, as: Int32.self)!) + 12
          if var view = try? RecordBatch(bytes.getSlice(at: start, length: size)!) {
            view.setMaxTimestamp(now, timestampType: .logAppendTime)
            bytes.setBuffer(view.buffer, at: start)
          }
        } else {
          baseOffsets.append(next.bigEndian)
        }
        next += batch.delta + 1
      }

      let segmentIndex = active
      let writePosition = state.segments[segmentIndex].size
      do throws(StorageError) {
        let file = state.segments[segmentIndex].file
        if config.logAppendTime {
          try file.write(bytes, at: writePosition)
        } else {
          try Self.write(
            bytes, batchStarts: batches.map(\.offset), baseOffsets: baseOffsets, to: file, at: writePosition)
        }
      } catch {
        // Take back any partial write so the file ends on a batch boundary again.
        do {
          try state.segments[segmentIndex].file.truncate(to: writePosition)
        } catch let truncateError {
          state.failure = StorageError(
            .offline, "\(directory): write failed (\(error)) and could not be undone (\(truncateError))")
        }
        throw error
      }

      // Account, index. In place: a copy of the segment would share its index arrays with
      // the one in `state`, and appending an entry would copy them all (quadratic).
      func account(_ segment: inout Segment) {
        if segment.createdMs == nil || segment.isEmpty { segment.createdMs = now }
        var offset = firstOffset
        for batch in batches {
          let size = Int(bytes.getInteger(at: bytes.readerIndex + batch.offset + 8, as: Int32.self)!) + 12
          let maxTimestamp = config.logAppendTime ? now : batch.maxTimestamp
          let info = BatchInfo(
            position: writePosition + batch.offset, size: size, baseOffset: offset,
            lastOffset: offset + batch.delta, maxTimestamp: maxTimestamp)
          Self.indexBatch(&segment, info: info, interval: config.indexIntervalBytes)
          offset += batch.delta + 1
        }
        segment.size = writePosition + bytes.readableBytes
        segment.nextOffset = next
        segment.lastAppendMs = max(segment.lastAppendMs, now)
        segment.needsSync = true
      }
      account(&state.segments[segmentIndex])
      state.logEndOffset = next
      state.unflushedMessages += batches.reduce(0) { $0 + $1.records }
      if state.oldestUnflushedMs == nil { state.oldestUnflushedMs = now }

      let result = AppendResult(
        firstOffset: firstOffset, lastOffset: next - 1, logAppendTime: config.logAppendTime ? now : -1,
        logStartOffset: state.logStartOffset)
      let mustFlush = state.unflushedMessages >= config.flushMessages
      let job = mustFlush ? prepareFlush(&state) : nil
      return (result, mustFlush, job)
    }
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
    var segment = try Self.openSegment(directory: directory, baseOffset: state.logEndOffset, create: true)
    segment.createdMs = now
    segment.lastAppendMs = now
    segment.rollJitterMs = Segment.rollJitter(state.config)
    state.segments.append(segment)
    state.directoryNeedsSync = true
    state.checkpointNeeded = true
  }

  // MARK: Flushing

  /// Under the lock: decides what the next flush covers, or nil if one is running or
  /// nothing needs it.
  func prepareFlush(_ state: inout State) -> FlushJob? {
    guard !state.flushing, state.failure == nil, !state.closed else { return nil }
    let files = state.segments.indices.filter { state.segments[$0].needsSync }
    guard
      !files.isEmpty || state.directoryNeedsSync || state.checkpointNeeded
        || state.durableOffset < state.logEndOffset || state.unwrittenLogStart != nil
    else { return nil }
    for index in files { state.segments[index].needsSync = false }
    let job = FlushJob(
      files: files.map { state.segments[$0].file }, target: state.logEndOffset,
      syncDirectory: state.directoryNeedsSync, checkpoint: state.checkpointNeeded,
      logStart: state.unwrittenLogStart)
    state.unwrittenLogStart = nil
    state.directoryNeedsSync = false
    state.checkpointNeeded = false
    state.flushing = true
    state.unflushedMessages = 0
    state.oldestUnflushedMs = nil
    return job
  }

  func startFlush(_ job: FlushJob) {
    threadPool.submit { [self] _ in
      // Late binding: by the time a pool thread runs this, more appends may have arrived
      // (typically those of the appenders the previous round just woke): cover them too.
      // Without it, concurrent appenders split into two cohorts that alternate rounds.
      let job = state.withLock { extend(job, &$0) }
      self.runFlush(job)
    }
  }

  /// Under the lock: widens a prepared flush to everything appended since.
  func extend(_ prepared: FlushJob, _ state: inout State) -> FlushJob {
    var job = prepared
    for index in state.segments.indices where state.segments[index].needsSync {
      state.segments[index].needsSync = false
      let file = state.segments[index].file
      if !job.files.contains(where: { $0 === file }) { job.files.append(file) }
    }
    job.target = state.logEndOffset
    job.syncDirectory = job.syncDirectory || state.directoryNeedsSync
    job.checkpoint = job.checkpoint || state.checkpointNeeded
    if let start = state.unwrittenLogStart { job.logStart = max(job.logStart ?? start, start) }
    state.unwrittenLogStart = nil
    state.directoryNeedsSync = false
    state.checkpointNeeded = false
    state.unflushedMessages = 0
    state.oldestUnflushedMs = nil
    return job
  }

  /// On a thread-pool thread: fsync, then publish the new durable point and wake waiters.
  func runFlush(_ job: FlushJob) {
    var error: StorageError?
    do throws(StorageError) {
      for file in job.files { try file.sync() }
      if job.syncDirectory { try FileSystem.syncDirectory(directory) }
      if job.checkpoint { try Self.writeNumber(directory + "/" + Self.recoveryPointFile, job.target) }
      if let start = job.logStart { try persistLogStart(start) }
    } catch let failure {
      error = failure
    }
    var resume: [(Waiter, Result<Void, StorageError>)] = []
    let next: FlushJob? = state.withLock { state in
      state.flushing = false
      state.flushCount += 1
      if let error {
        let offline = StorageError(
          .offline, "\(directory): fsync failed (\(error.message)); the log is offline", errno: error.errno)
        state.failure = offline
        resume = state.waiters.map { ($0, .failure(offline)) }
        state.waiters.removeAll()
        return nil
      }
      state.durableOffset = max(state.durableOffset, job.target)
      if job.checkpoint { state.recoveryPoint = max(state.recoveryPoint, job.target) }
      let durable = state.durableOffset
      let (done, waiting) = state.waiters.reduce(into: ([Waiter](), [Waiter]())) { split, waiter in
        if waiter.offset < durable { split.0.append(waiter) } else { split.1.append(waiter) }
      }
      resume = done.map { ($0, .success(())) }
      state.waiters = waiting
      return waiting.isEmpty ? nil : prepareFlush(&state)
    }
    for (waiter, result) in resume { waiter.continuation.resume(returning: result) }
    if let next { startFlush(next) }
  }

  /// Waits until every offset ≤ `offset` is durable.
  func waitDurable(_ offset: Int64) async throws(StorageError) {
    let result = await withCheckedContinuation {
      (continuation: CheckedContinuation<Result<Void, StorageError>, Never>) in
      let (immediate, job): (Result<Void, StorageError>?, FlushJob?) = state.withLock { state in
        if let failure = state.failure { return (.failure(failure), nil) }
        if offset < state.durableOffset { return (.success(()), nil) }
        state.waiters.append(Waiter(offset: offset, continuation: continuation))
        return (nil, prepareFlush(&state))
      }
      if let immediate { continuation.resume(returning: immediate) }
      if let job { startFlush(job) }
    }
    try result.get()
  }

  public func flush() async throws(StorageError) {
    let end = state.withLock { $0.logEndOffset }
    if end > 0 { try await waitDurable(end - 1) }
    // Also sync a freshly rolled empty segment and the directory.
    let job = state.withLock { prepareFlush(&$0) }
    if let job { runFlush(job) }
    if let failure = state.withLock({ $0.failure }) { throw failure }
  }

  public func flushIfDue(now: Int64) {
    let job: FlushJob? = state.withLock { state in
      guard let oldest = state.oldestUnflushedMs, now - oldest >= state.config.flushMs else {
        return state.checkpointNeeded || state.unwrittenLogStart != nil ? prepareFlush(&state) : nil
      }
      state.checkpointNeeded = true
      return prepareFlush(&state)
    }
    if let job { startFlush(job) }
  }

  // MARK: Reading

  struct Snapshot {
    var segments: [Segment]
    var logStartOffset: Int64
    var logEndOffset: Int64
  }

  func snapshot() throws(StorageError) -> Snapshot {
    try state.withLock { (state: inout State) throws(StorageError) -> Snapshot in
      if let failure = state.failure { throw failure }
      if state.closed { throw StorageError(.closed, "\(directory) is closed") }
      return Snapshot(
        segments: state.segments, logStartOffset: state.logStartOffset, logEndOffset: state.logEndOffset)
    }
  }

  public func read(from offset: Int64, maxBytes: Int, upTo: Int64?, minOneBatch: Bool) throws(StorageError)
    -> LogReadResult
  {
    let snap = try snapshot()
    var result = LogReadResult(
      chunks: [], logStartOffset: snap.logStartOffset, logEndOffset: snap.logEndOffset)
    guard offset >= snap.logStartOffset, offset <= snap.logEndOffset else {
      throw StorageError(
        .offsetOutOfRange, "offset \(offset) is outside [\(snap.logStartOffset), \(snap.logEndOffset)]")
    }
    let bound = min(upTo ?? snap.logEndOffset, snap.logEndOffset)
    guard offset < bound else { return result }
    // The segment holding `offset`: the last with base ≤ offset, moving on if it ends first.
    guard var segmentIndex = snap.segments.lastIndex(where: { $0.baseOffset <= offset }) else {
      return result
    }
    while segmentIndex < snap.segments.count && snap.segments[segmentIndex].nextOffset <= offset {
      segmentIndex += 1
    }
    guard segmentIndex < snap.segments.count else { return result }
    let segment = snap.segments[segmentIndex]

    var scanner = BatchScanner(
      file: segment.file, from: segment.index.floorPosition(for: offset), end: segment.size, verifyCRC: false,
      windowSize: 16384)
    var start: BatchInfo?
    while start == nil {
      switch try scanner.next() {
      case .batch(let info) where info.lastOffset >= offset: start = info
      case .batch: continue
      case .end: return result
      case .corrupt(let position, let reason):
        throw StorageError(.offline, "\(segment.file.path): corrupt batch at position \(position): \(reason)")
      }
    }
    guard let first = start, first.baseOffset < bound else { return result }
    let limit = first.position + maxBytes
    var end = first.position
    if first.size <= maxBytes || minOneBatch { end = first.position + first.size }
    if end > first.position {
      // Jump ahead via the index to a batch boundary near the limit, then scan to it.
      var from = end
      if let boundary = segment.index.floorBoundary(atOrBefore: limit), boundary > end,
        let entry = segment.index.offsets.last(where: { Int($0.position) == boundary }),
        segment.baseOffset + Int64(entry.relativeOffset) < bound
      {
        from = boundary
        end = boundary
      }
      var tail = BatchScanner(
        file: segment.file, from: from, end: segment.size, verifyCRC: false, windowSize: 16384)
      scan: while true {
        switch try tail.next() {
        case .batch(let info):
          guard info.position + info.size <= limit, info.baseOffset < bound else { break scan }
          end = info.position + info.size
        case .end, .corrupt:
          break scan
        }
      }
    }
    if let bytes = scanner.bytesInWindow(at: first.position, length: end - first.position) {
      // Already read while looking for the first batch (a tailing reader's usual case).
      result.chunks = [.bytes(bytes)]
    } else if end > first.position {
      result.chunks = [.file(segment.file, position: first.position, length: end - first.position)]
    }
    return result
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

  // MARK: Retention

  public func deleteRecords(before offset: Int64) throws(StorageError) -> Int64 {
    let newStart: Int64 = try state.withLock { (state: inout State) throws(StorageError) -> Int64 in
      if let failure = state.failure { throw failure }
      guard offset <= state.logEndOffset else {
        throw StorageError(.offsetOutOfRange, "offset \(offset) is past the log end \(state.logEndOffset)")
      }
      guard offset > state.logStartOffset else { return state.logStartOffset }
      try persistLogStart(offset)
      state.logStartOffset = offset
      if let pending = state.unwrittenLogStart, pending <= offset { state.unwrittenLogStart = nil }
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
      if let failure = state.failure { throw failure }
      if state.closed { throw StorageError(.closed, "\(directory) is closed") }
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
      if state.config.flushesEveryAppend { newStart = min(newStart, state.durableOffset) }
      guard newStart > oldStart else { return TrimResult() }
      let kept = try exactBytes(from: newStart, state)
      state.logStartOffset = newStart
      state.unwrittenLogStart = newStart
      state.checkpointNeeded = true
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
      if let failure = state.failure { throw failure }
      let config = state.config
      guard config.retentionApplies else { return 0 }
      var deleted = 0
      // Only what consumers may have read goes: for fsync-every-append logs the high
      // watermark is the durable end (Kafka deletes only below the high watermark too).
      let readable = config.flushesEveryAppend ? state.durableOffset : state.logEndOffset
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
    while state.segments.count > 1, shouldDelete(state.segments[0], 0) {
      let segment = state.segments.removeFirst()
      for suffix in [".log", ".index", ".timeindex"] {
        try FileSystem.remove(directory + "/" + Segment.fileName(segment.baseOffset, suffix))
      }
      bytes += segment.size
      state.logStartOffset = max(state.logStartOffset, state.segments[0].baseOffset)
    }
    if bytes > 0 { state.directoryNeedsSync = true }
    return bytes
  }

  // MARK: Closing

  public func close() throws(StorageError) {
    let first = state.withLock { state in
      defer { state.closed = true }
      return !state.closed
    }
    guard first else { return }
    // No append or flush starts from here on; let a running flush finish (it may be writing
    // the recovery point, which close writes too).
    while state.withLock({ $0.flushing }) { usleep(1000) }
    let (segments, failure) = state.withLock { ($0.segments, $0.failure) }
    if let failure { throw failure }
    var result: Result<Void, StorageError> = .success(())
    do throws(StorageError) {
      for var segment in segments {
        try segment.file.sync()
        try segment.index.sync()
      }
      let end = segments.last!.nextOffset
      try Self.writeNumber(directory + "/" + Self.recoveryPointFile, end)
      if let start = state.withLock({ $0.unwrittenLogStart }) { try persistLogStart(start) }
      try FileSystem.writeAtomically(directory + "/" + Self.cleanShutdownFile, [])
    } catch {
      result = .failure(
        StorageError(.offline, "\(directory): close failed (\(error.message))", errno: error.errno))
    }
    // Appends still waiting for a flush are durable now (or never will be).
    let waiters: [Waiter] = state.withLock { state in
      if case .success = result { state.durableOffset = state.logEndOffset }
      if case .failure(let error) = result { state.failure = error }
      defer { state.waiters.removeAll() }
      return state.waiters
    }
    for waiter in waiters { waiter.continuation.resume(returning: result) }
    try result.get()
  }

  public func delete() throws(StorageError) {
    state.withLock { $0.closed = true }
    try FileSystem.removeTree(directory)
  }
}
