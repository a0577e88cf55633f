import NIOCore

/// The sparse indexes of one segment, in Kafka's file formats:
/// - `.index`: 8-byte entries (relative offset int32, file position int32), big-endian;
/// - `.timeindex`: 12-byte entries (timestamp int64, relative offset int32).
///
/// Entries are kept in memory (a few per 4 KiB of log) and written to the files in bulk
/// (every 512 entries, when the segment is sealed, and on close), not one syscall each.
/// The files are a cache: after an unclean stop, or when they disagree with the log, they
/// are rebuilt from the log itself.
struct SparseIndex {
  struct OffsetEntry: Equatable {
    var relativeOffset: UInt32
    var position: UInt32
  }

  struct TimeEntry: Equatable {
    var timestamp: Int64
    var relativeOffset: UInt32
  }

  let baseOffset: Int64
  private(set) var offsets: [OffsetEntry] = []
  private(set) var times: [TimeEntry] = []
  let offsetFile: SegmentFile
  let timeFile: SegmentFile
  /// How many entries of each kind are in the files already.
  private var persistedOffsets = 0
  private var persistedTimes = 0
  static let persistBatch = 512

  init(baseOffset: Int64, offsetFile: SegmentFile, timeFile: SegmentFile) {
    self.baseOffset = baseOffset
    self.offsetFile = offsetFile
    self.timeFile = timeFile
  }

  /// Loads entries from the files; returns nil if they are malformed (odd sizes, not
  /// ascending, positions beyond `logSize`), in which case the caller rebuilds.
  static func load(
    baseOffset: Int64, offsetFile: SegmentFile, timeFile: SegmentFile, logSize: Int
  ) throws(StorageError) -> SparseIndex? {
    var index = SparseIndex(baseOffset: baseOffset, offsetFile: offsetFile, timeFile: timeFile)
    // Index files are created when first written: a missing one is empty (and stays
    // missing: no descriptor, no inode for a segment that never had an entry).
    let offsetSize = FileSystem.size(offsetFile.path) ?? 0
    let timeSize = FileSystem.size(timeFile.path) ?? 0
    guard offsetSize % 8 == 0, timeSize % 12 == 0 else { return nil }
    var bytes = offsetSize == 0 ? ByteBuffer() : try offsetFile.read(at: 0, length: offsetSize)
    while let (relative, position) = bytes.readMultipleIntegers(as: (UInt32, UInt32).self) {
      if let last = index.offsets.last, relative <= last.relativeOffset || position <= last.position {
        return nil
      }
      guard Int(position) < logSize else { return nil }
      index.offsets.append(OffsetEntry(relativeOffset: relative, position: position))
    }
    var timeBytes = timeSize == 0 ? ByteBuffer() : try timeFile.read(at: 0, length: timeSize)
    while let (timestamp, relative) = timeBytes.readMultipleIntegers(as: (Int64, UInt32).self) {
      if let last = index.times.last, timestamp < last.timestamp || relative < last.relativeOffset {
        return nil
      }
      index.times.append(TimeEntry(timestamp: timestamp, relativeOffset: relative))
    }
    index.persistedOffsets = index.offsets.count
    index.persistedTimes = index.times.count
    return index
  }

  /// Appends an offset entry (a batch starting at `offset` lies at `position`).
  mutating func appendOffset(_ offset: Int64, position: Int) throws(StorageError) {
    let entry = OffsetEntry(relativeOffset: UInt32(offset - baseOffset), position: UInt32(position))
    if let last = offsets.last, entry.relativeOffset <= last.relativeOffset { return }
    offsets.append(entry)
    if offsets.count - persistedOffsets >= Self.persistBatch { try persist() }
  }

  /// Appends a time entry if `timestamp` is newer than the last one.
  mutating func appendTime(_ timestamp: Int64, offset: Int64) throws(StorageError) {
    if let last = times.last, timestamp <= last.timestamp { return }
    times.append(TimeEntry(timestamp: timestamp, relativeOffset: UInt32(offset - baseOffset)))
    if times.count - persistedTimes >= Self.persistBatch { try persist() }
  }

  /// Writes the entries not yet in the files (one write per file).
  mutating func persist() throws(StorageError) {
    if persistedOffsets < offsets.count {
      var bytes = ByteBuffer()
      bytes.reserveCapacity((offsets.count - persistedOffsets) * 8)
      for entry in offsets[persistedOffsets...] {
        bytes.writeMultipleIntegers(entry.relativeOffset, entry.position)
      }
      try offsetFile.write(bytes, at: persistedOffsets * 8)
      persistedOffsets = offsets.count
    }
    if persistedTimes < times.count {
      var bytes = ByteBuffer()
      bytes.reserveCapacity((times.count - persistedTimes) * 12)
      for entry in times[persistedTimes...] {
        bytes.writeMultipleIntegers(entry.timestamp, entry.relativeOffset)
      }
      try timeFile.write(bytes, at: persistedTimes * 12)
      persistedTimes = times.count
    }
  }

  /// Drops every entry and empties the files (before a rebuild or a truncation).
  mutating func reset() throws(StorageError) {
    offsets.removeAll()
    times.removeAll()
    persistedOffsets = 0
    persistedTimes = 0
    // (A missing file is empty already: not created here.)
    for file in [offsetFile, timeFile] where (FileSystem.size(file.path) ?? 0) > 0 {
      try file.truncate(to: 0)
    }
  }

  /// Drops entries at or after `position` / `offset` (the log was truncated there).
  mutating func truncate(toPosition position: Int, offset: Int64) throws(StorageError) {
    let keepOffsets = offsets.prefix { Int($0.position) < position }.count
    let keepTimes = times.prefix { Int64($0.relativeOffset) + baseOffset < offset }.count
    if keepOffsets != offsets.count {
      offsets.removeLast(offsets.count - keepOffsets)
      persistedOffsets = min(persistedOffsets, keepOffsets)
      try offsetFile.truncate(to: keepOffsets * 8)
    }
    if keepTimes != times.count {
      times.removeLast(times.count - keepTimes)
      persistedTimes = min(persistedTimes, keepTimes)
      try timeFile.truncate(to: keepTimes * 12)
    }
  }

  /// The position of the last indexed batch starting at or before `offset` (0 if none).
  func floorPosition(for offset: Int64) -> Int {
    let relative = offset - baseOffset
    var low = 0
    var high = offsets.count
    while low < high {
      let mid = (low + high) / 2
      if Int64(offsets[mid].relativeOffset) <= relative { low = mid + 1 } else { high = mid }
    }
    return low == 0 ? 0 : Int(offsets[low - 1].position)
  }

  /// The largest indexed position that is ≤ `position` (a batch boundary), or nil.
  func floorBoundary(atOrBefore position: Int) -> Int? {
    var low = 0
    var high = offsets.count
    while low < high {
      let mid = (low + high) / 2
      if Int(offsets[mid].position) <= position { low = mid + 1 } else { high = mid }
    }
    return low == 0 ? nil : Int(offsets[low - 1].position)
  }

  /// An offset from which to scan for the first record with timestamp ≥ `timestamp`: the
  /// offset of the last time entry older than it (or the segment's base).
  func scanStart(forTimestamp timestamp: Int64) -> Int64 {
    var low = 0
    var high = times.count
    while low < high {
      let mid = (low + high) / 2
      if times[mid].timestamp < timestamp { low = mid + 1 } else { high = mid }
    }
    return low == 0 ? baseOffset : baseOffset + Int64(times[low - 1].relativeOffset)
  }

  mutating func sync() throws(StorageError) {
    try persist()
    for file in [offsetFile, timeFile] where FileSystem.exists(file.path) { try file.sync() }
  }
}
