/// Opening a log: reading what is on disk back into a ``FileLog/State``, after a clean
/// stop or a crash.
///
/// A clean close leaves a marker; with it, the indexes are trusted once their last entry is
/// checked against the batch it names. Without it every segment is re-read: each batch's
/// header and CRC are verified, offsets must be dense, and the indexes are rebuilt. Damage at
/// or past the recovery point (the last offset known flushed) is a torn tail: truncated away
/// with everything after it. Damage below it is damage to data that was durable: nothing is
/// truncated, and the log opens offline for appends while serving the intact records before
/// the damage read-only (``FileLog/readOnlyEnd``), until an operator repairs it
/// (``FileLog/repair(directory:)``).
extension FileLog {
  /// What recovery reads before deciding anything: the segments on disk and the log's small
  /// metadata files.
  struct DiskInventory {
    var baseOffsets: [Int64]
    /// A clean close left its marker: the indexes can be trusted.
    var clean: Bool
    var recoveryPoint: Int64
    var storedStart: Int64
  }

  /// The segments recovery keeps, and the damage that stopped it early, if any.
  struct RecoveredSegments {
    var segments: [Segment] = []
    /// Damage below the recovery point: the log opens offline with this error, serving the
    /// segments kept (which end where the damage begins) read-only.
    var damage: StorageError?
  }

  /// What damage below the recovery point means for the partition, for its error message.
  static func readOnlyNote(end: Int64) -> String {
    "; data that had been flushed is damaged. The records before offset \(end) are served read-only; "
      + "appends are refused until the log is repaired (sluice storage repair truncates it there)"
  }

  /// `syncMarkerRemoval` false: the caller makes the reset of the clean-shutdown marker
  /// durable itself, for many logs at once (``FileLog/syncFileSystem(of:)``), before any of
  /// them takes an append.
  static func recover(
    directory: String, config: LogConfig, now: Int64, syncMarkerRemoval: Bool, cache: OpenFileCache
  )
    throws(StorageError) -> State
  {
    let inventory = try takeInventory(directory: directory)
    var recovered = try recoverSegments(
      directory: directory, inventory, config: config, now: now, cache: cache)
    // A new log (or one emptied by a repair): its first segment's directory entry becomes
    // durable with the first flush that has data to make durable, not now.
    var directoryUnsynced = false
    if recovered.segments.isEmpty {
      recovered.segments.append(
        try createFirstSegment(
          directory: directory, baseOffset: max(inventory.storedStart, 0), config: config, now: now,
          cache: cache))
      directoryUnsynced = true
    }
    let segments = recovered.segments
    let logEnd = segments.last!.nextOffset
    let logStart = min(max(inventory.storedStart, segments.first!.baseOffset), logEnd)
    if inventory.clean {
      // Until this is durable the log takes no append: a crash after one must not find the
      // marker saying clean and trust the indexes. (Written in place: see
      // `FileSystem.overwrite`.)
      let marker = directory + "/" + cleanShutdownFile
      if syncMarkerRemoval {
        try FileSystem.overwriteDurably(marker, dirtyMarker)
      } else {
        try FileSystem.overwrite(marker, dirtyMarker)
      }
    }
    var recoveryPoint = min(inventory.recoveryPoint, logEnd)
    if recovered.damage == nil {
      // Make the recovered state the recovery point (after an unclean stop, sync what
      // recovery kept, which may have been only in the page cache of a living kernel).
      if !inventory.clean {
        for segment in segments { try segment.file.sync() }
      }
      // After a clean stop it usually says so already (a missing file reads as 0).
      if inventory.recoveryPoint != logEnd {
        try writeNumber(directory + "/" + recoveryPointFile, logEnd)
      }
      recoveryPoint = logEnd
    }
    var flush = Flush(
      logEnd: logEnd, durableOffset: recoveryPoint, recoveryPoint: recoveryPoint, failure: recovered.damage)
    if directoryUnsynced { flush.directoryCreated() }
    return State(
      config: config, segments: segments, logStartOffset: logStart, logEndOffset: logEnd,
      readOnlyEnd: recovered.damage == nil ? nil : logEnd, flush: flush)
  }

  /// Lists the directory (removing leftovers of interrupted atomic writes, which are never
  /// the real file) and reads the markers and numbers recovery starts from.
  static func takeInventory(directory: String) throws(StorageError) -> DiskInventory {
    let names = try FileSystem.list(directory)
    for name in names where name.hasSuffix(".tmp") { try FileSystem.remove(directory + "/" + name) }
    var clean = false
    if names.contains(cleanShutdownFile) {
      // `clean`, or empty (what a single close wrote before markers had content); anything
      // else — `dirty`, a torn sector — is not.
      let content = try FileSystem.readAll(directory + "/" + cleanShutdownFile) ?? dirtyMarker
      clean = content.isEmpty || content == cleanMarker
    }
    return DiskInventory(
      baseOffsets: Segment.baseOffsets(in: names),
      clean: clean,
      recoveryPoint: try readNumber(directory + "/" + recoveryPointFile) ?? 0,
      storedStart: try readNumber(directory + "/" + logStartFile) ?? 0)
  }

  /// Opens the segments in order, keeping each that checks out. Stops at the first damage:
  /// past the recovery point it is a torn tail (cut there, later segments removed); below
  /// it, the segments so far are kept as they are and the damage is reported.
  static func recoverSegments(
    directory: String, _ inventory: DiskInventory, config: LogConfig, now: Int64, cache: OpenFileCache
  ) throws(StorageError) -> RecoveredSegments {
    var result = RecoveredSegments()
    let recoveryPoint = inventory.recoveryPoint
    let bases = inventory.baseOffsets
    for (ordinal, base) in bases.enumerated() {
      // Segments follow each other without gaps (a roll starts the next one at the log
      // end). One that does not is what a torn roll leaves after a lost tail.
      if let previous = result.segments.last, previous.nextOffset != base {
        if previous.nextOffset < recoveryPoint {
          result.damage = StorageError(
            .offline,
            "\(directory): segment \(Segment.fileName(base, ".log")) starts at \(base) but the one before ends at "
              + "\(previous.nextOffset), below the recovery point \(recoveryPoint)"
              + readOnlyNote(end: previous.nextOffset))
        } else {
          // Everything after a torn tail was written after it and never flushed.
          try removeSegments(directory: directory, bases[ordinal...])
        }
        return result
      }
      var segment = try Segment.open(directory: directory, baseOffset: base, create: false, cache: cache)
      if inventory.clean, try reuseIndex(of: &segment, config: config, now: now) {
        result.segments.append(segment)
        continue
      }
      // A crash, or a "clean" log that does not scan cleanly: verify every batch.
      let damage = try rebuild(&segment, config: config)
      if let damage, segment.nextOffset < recoveryPoint {
        result.damage = StorageError(
          .offline,
          "\(segment.file.path): corrupt data at position \(damage.position) (\(damage.reason)) below the "
            + "recovery point \(recoveryPoint)" + readOnlyNote(end: segment.nextOffset))
        result.segments.append(segment)
        return result
      }
      if let damage {
        try segment.file.truncate(to: damage.position)
        try segment.file.sync()
      }
      try segment.restoreTimes(config: config, now: now)
      try? segment.index.persist()
      result.segments.append(segment)
      if damage != nil {
        try removeSegments(directory: directory, bases[(ordinal + 1)...])
        return result
      }
    }
    return result
  }

  static func removeSegments(directory: String, _ bases: ArraySlice<Int64>) throws(StorageError) {
    for base in bases { try Segment.removeFiles(directory: directory, baseOffset: base) }
  }

  /// After a clean stop: loads the segment's index files and trusts them if their last
  /// entry points at the batch it names, scanning only from there to find the end (and
  /// indexing what follows that entry: a truncated or deleted index file is completed).
  /// Returns false when anything disagrees; the caller then rebuilds the segment.
  static func reuseIndex(of segment: inout Segment, config: LogConfig, now: Int64) throws(StorageError)
    -> Bool
  {
    let fileSize = try segment.file.size()
    let base = segment.baseOffset
    guard
      let index = try SparseIndex.load(
        baseOffset: base, offsetFile: segment.index.offsetFile, timeFile: segment.index.timeFile,
        logSize: fileSize)
    else { return false }
    segment.index = index
    let lastEntry = index.offsets.last
    if let last = index.times.last {
      segment.maxTimestamp = last.timestamp
      segment.maxTimestampOffset = base + Int64(last.relativeOffset)
    }
    var scanner = BatchScanner(
      file: segment.file, from: lastEntry.map { Int($0.position) } ?? 0, end: fileSize, verifyCRC: false)
    var first = true
    while case .batch(let info) = try scanner.next() {
      if first, let lastEntry {
        // The entry must point at the batch it names; that batch is indexed already.
        guard info.baseOffset == base + Int64(lastEntry.relativeOffset) else { return false }
        segment.bytesSinceIndexEntry = info.size
        if info.maxTimestamp > segment.maxTimestamp {
          segment.maxTimestamp = info.maxTimestamp
          segment.maxTimestampOffset = info.lastOffset
        }
      } else {
        segment.index(info, interval: config.indexIntervalBytes)
      }
      first = false
      segment.nextOffset = info.nextOffset
      segment.size = info.position + info.size
    }
    // Offset entries without any time entry: the time index was lost.
    if !segment.index.offsets.isEmpty && segment.index.times.isEmpty && segment.maxTimestamp >= 0 {
      return false
    }
    // A corrupt batch ends the scan early: the size then falls short of the file's.
    guard segment.size == fileSize else { return false }
    try segment.restoreTimes(config: config, now: now)
    try? segment.index.persist()
    return true
  }

  /// Full recovery of one segment: verifies every batch and rebuilds the indexes from them.
  /// Returns the first damage, if any; the segment then holds what came before it.
  static func rebuild(_ segment: inout Segment, config: LogConfig) throws(StorageError) -> SegmentDamage? {
    try segment.index.reset()
    segment.size = 0
    segment.nextOffset = segment.baseOffset
    segment.maxTimestamp = -1
    segment.maxTimestampOffset = -1
    segment.bytesSinceIndexEntry = 0
    let end = try segment.file.size()
    return try BatchScanner.verify(file: segment.file, baseOffset: segment.baseOffset, end: end) { info in
      segment.index(info, interval: config.indexIntervalBytes)
      segment.size = info.position + info.size
      segment.nextOffset = info.nextOffset
    }
  }

  /// The first segment of a new (or emptied) log. Its directory entry is not synced here
  /// (see ``FlushStateMachine/directoryCreated()``).
  static func createFirstSegment(
    directory: String, baseOffset: Int64, config: LogConfig, now: Int64, cache: OpenFileCache
  )
    throws(StorageError) -> Segment
  {
    var segment = try Segment.open(directory: directory, baseOffset: baseOffset, create: true, cache: cache)
    segment.createdMs = now
    segment.lastAppendMs = now
    segment.rollJitterMs = Segment.rollJitter(config)
    return segment
  }
}
