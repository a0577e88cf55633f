/// One segment of a ``FileLog``: `<base offset>.log` with its `.index` and `.timeindex`.
///
/// Owns what the log knows of the segment in memory (size, offsets, timestamps, when it was
/// written and when it rolls) and the rules that depend only on the segment: its file
/// names, when retention may delete it, how a batch is indexed.
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
  /// Where the newest batch appended since the segment was opened starts: a consumer at
  /// the tail reads from there rather than from the index entry before it (up to
  /// `index.interval.bytes` earlier, read and skipped at every Fetch).
  var newestBatch: (baseOffset: Int64, position: Int)?

  var isEmpty: Bool { size == 0 }

  /// Where to start scanning for the batch holding `offset`.
  func scanStart(for offset: Int64) -> Int {
    if let newestBatch, offset >= newestBatch.baseOffset { return newestBatch.position }
    return index.floorPosition(for: offset)
  }

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

  /// The suffixes of a segment's files: the log and its two indexes.
  static let suffixes = [".log", ".index", ".timeindex"]

  /// `<base offset, 20 digits><suffix>`, as Kafka names segment files.
  static func fileName(_ baseOffset: Int64, _ suffix: String) -> String {
    let digits = String(baseOffset)
    return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
  }

  /// The base offsets of the segments in a directory listing, ascending.
  static func baseOffsets(in names: [String]) -> [Int64] {
    names.compactMap { name -> Int64? in
      guard name.hasSuffix(".log"), name.count == 24 else { return nil }
      return Int64(name.dropLast(4))
    }.sorted()
  }

  /// A segment's files (the log created now if `create`, the indexes when first used), empty
  /// in memory: recovery or the first append fills it in.
  static func open(directory: String, baseOffset: Int64, create: Bool, cache: OpenFileCache)
    throws(StorageError) -> Segment
  {
    let file = try SegmentFile(
      path: directory + "/" + fileName(baseOffset, ".log"), creation: create ? .now : .existing, cache: cache)
    let offsetFile = try SegmentFile(
      path: directory + "/" + fileName(baseOffset, ".index"), creation: .onFirstUse, cache: cache)
    let timeFile = try SegmentFile(
      path: directory + "/" + fileName(baseOffset, ".timeindex"), creation: .onFirstUse, cache: cache)
    return Segment(
      baseOffset: baseOffset, file: file,
      index: SparseIndex(baseOffset: baseOffset, offsetFile: offsetFile, timeFile: timeFile),
      size: 0, nextOffset: baseOffset)
  }

  /// Removes a segment's three files (retention, a torn tail, a repair).
  static func removeFiles(directory: String, baseOffset: Int64) throws(StorageError) {
    for suffix in suffixes { try FileSystem.remove(directory + "/" + fileName(baseOffset, suffix)) }
  }

  /// Adds index entries for a batch just written (or re-read during recovery).
  mutating func index(_ info: BatchInfo, interval: Int) {
    if bytesSinceIndexEntry >= interval || index.offsets.isEmpty && info.position > 0 {
      try? index.appendOffset(info.baseOffset, position: info.position)
      if maxTimestamp >= 0 {
        try? index.appendTime(maxTimestamp, offset: maxTimestampOffset)
      }
      bytesSinceIndexEntry = 0
    }
    bytesSinceIndexEntry += info.size
    if info.maxTimestamp > maxTimestamp {
      maxTimestamp = info.maxTimestamp
      maxTimestampOffset = info.lastOffset
    }
  }

  /// Sets what a restart cannot read from the batches: the last append (the file's
  /// modification time), the roll jitter and when `segment.ms` counts from.
  mutating func restoreTimes(config: LogConfig, now: Int64) throws(StorageError) {
    lastAppendMs = try file.modifiedMs()
    rollJitterMs = Segment.rollJitter(config)
    createdMs = maxTimestamp >= 0 ? min(maxTimestamp, now) : now
  }
}
