/// Checking a log on disk without opening it, and cutting a damaged one back to its intact
/// prefix: what `sluice storage verify` and `sluice storage repair` run.
///
/// Verify makes the checks an open after a crash makes (``BatchScanner/verify`` — structure,
/// CRC-32C, dense offsets — and segments following each other without gaps) on every batch,
/// whether or not the log was closed cleanly, and changes nothing: files are opened
/// read-only, nothing is written, created or removed. Repair truncates after the last intact
/// batch so that the next open finds a healthy log; it must not run while the log is open
/// (the `sluice storage repair` command holds the data directory's lock).
extension FileLog {
  /// The partition logs of a broker's data directory: its `<topic>-<partition>`
  /// subdirectories, sorted (files, hidden entries and `group-offsets` are not logs).
  public static func partitionDirectories(in dataDirectory: String) throws(StorageError) -> [String] {
    try FileSystem.list(dataDirectory).filter { name in
      guard !name.hasPrefix("."), let dash = name.lastIndex(of: "-"), dash > name.startIndex else {
        return false
      }
      let partition = name[name.index(after: dash)...]
      return !partition.isEmpty && partition.allSatisfy(\.isASCII) && partition.allSatisfy(\.isNumber)
        && FileSystem.isDirectory(dataDirectory + "/" + name)
    }.map { dataDirectory + "/" + $0 }
  }

  /// Checks every batch of the log in `directory`, changing nothing.
  public static func verify(directory: String) throws(StorageError) -> LogVerification {
    guard FileSystem.isDirectory(directory) else {
      throw StorageError(.io, "\(directory): no such directory")
    }
    var result = LogVerification(directory: directory)
    var metadataDamage: LogDamage?
    func number(_ file: String) -> Int64? {
      do throws(StorageError) {
        return try readNumber(directory + "/" + file)
      } catch {
        metadataDamage = metadataDamage ?? LogDamage(metadata: directory + "/" + file, reason: error.message)
        return nil
      }
    }
    let recoveryPoint = number(recoveryPointFile)
    // An unreadable recovery point: count any damage as damage to acknowledged data.
    result.recoveryPoint = recoveryPoint ?? (metadataDamage == nil ? 0 : .max)
    let storedStart = max(number(logStartFile) ?? 0, 0)
    let bases = Segment.baseOffsets(in: try FileSystem.list(directory))
    result.intactEnd = bases.first ?? storedStart
    result.damage = try verifySegments(directory: directory, bases, into: &result) ?? metadataDamage
    result.startOffset = min(max(storedStart, bases.first ?? 0), result.intactEnd)
    return result
  }

  /// Verifies the segments in order, counting into `result` and advancing its intact end;
  /// returns the first damage.
  static func verifySegments(directory: String, _ bases: [Int64], into result: inout LogVerification)
    throws(StorageError) -> LogDamage?
  {
    for base in bases {
      let path = directory + "/" + Segment.fileName(base, ".log")
      if result.segments > 0, base != result.intactEnd {
        return LogDamage(
          kind: .segmentGap, file: path, position: 0, offset: result.intactEnd,
          reason: "segment starts at offset \(base) but the one before ends at \(result.intactEnd)",
          belowRecoveryPoint: result.intactEnd < result.recoveryPoint)
      }
      let file = try SegmentFile(path: path, creation: .existing, readOnly: true)
      result.segments += 1
      let damage = try BatchScanner.verify(file: file, baseOffset: base, end: try file.size()) { info in
        result.batches += 1
        result.intactEnd = info.nextOffset
      }
      if let damage {
        return LogDamage(
          kind: .corruptBatch, file: path, position: damage.position, offset: damage.expectedOffset,
          reason: damage.reason, belowRecoveryPoint: damage.expectedOffset < result.recoveryPoint)
      }
    }
    return nil
  }

  /// What ``repair(directory:)`` would do to the log in `directory`; nil if it is healthy.
  public static func planRepair(directory: String) throws(StorageError) -> LogRepair? {
    let verification = try verify(directory: directory)
    guard let damage = verification.damage else { return nil }
    var plan = LogRepair(directory: directory, damage: damage, newEnd: verification.intactEnd)
    let bases = Segment.baseOffsets(in: try FileSystem.list(directory))
    // The segment the damage is in: cut there (a gap: it goes whole, as do all after it).
    let damagedBase =
      damage.kind == .metadata ? nil : Segment.baseOffsets(in: [lastComponent(damage.file)]).first
    for base in bases where damagedBase.map({ base >= $0 }) == true {
      let log = directory + "/" + Segment.fileName(base, ".log")
      let size = FileSystem.size(log) ?? 0
      if base == damagedBase, damage.kind == .corruptBatch {
        plan.truncatedFile = log
        plan.truncatedAt = damage.position
        plan.droppedBytes += size - damage.position
        // Its indexes may point past the cut: the next open rebuilds them.
        plan.removedFiles += [".index", ".timeindex"].map { directory + "/" + Segment.fileName(base, $0) }
      } else {
        plan.droppedBytes += size
        plan.removedFiles += Segment.suffixes.map { directory + "/" + Segment.fileName(base, $0) }
      }
    }
    plan.removedFiles = plan.removedFiles.filter(FileSystem.exists)
    if damage.kind == .metadata, damage.file.hasSuffix("/" + logStartFile) {
      plan.removedFiles.append(damage.file)  // the log then starts at its first segment
    }
    return plan
  }

  /// Cuts the log in `directory` after its last intact batch: truncates the damaged segment
  /// there, removes later segments and indexes that may point past the cut, records the new
  /// end as the recovery point and removes the clean-shutdown marker, so that the next open
  /// re-verifies everything, rebuilds the indexes and finds a healthy log ending at
  /// ``LogRepair/newEnd``. Every record from the damage on is lost. Returns what was done,
  /// or nil if the log was healthy. The log must not be open.
  @discardableResult
  public static func repair(directory: String) throws(StorageError) -> LogRepair? {
    guard let plan = try planRepair(directory: directory) else { return nil }
    if let path = plan.truncatedFile {
      let file = try SegmentFile(path: path, creation: .existing)
      try file.truncate(to: plan.truncatedAt)
      try file.sync()
    }
    for path in plan.removedFiles { try FileSystem.remove(path) }
    try FileSystem.remove(directory + "/" + cleanShutdownFile)
    try writeNumber(directory + "/" + recoveryPointFile, plan.newEnd)
    try FileSystem.syncDirectory(directory)
    return plan
  }

  static func lastComponent(_ path: String) -> String {
    path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
  }
}

/// What ``FileLog/verify(directory:)`` found in one partition directory.
public struct LogVerification: Hashable, Sendable {
  public var directory: String
  /// Segments checked (up to the damage).
  public var segments = 0
  /// Intact batches found.
  public var batches = 0
  /// The first offset of the log (the log start an open would give).
  public var startOffset: Int64 = 0
  /// The offset after the last intact batch: the log end, or where a damaged log is cut.
  public var intactEnd: Int64 = 0
  /// The recovery-point file's offset: everything below it had been fsynced.
  public var recoveryPoint: Int64 = 0
  /// The first damage, or nil for a healthy log.
  public var damage: LogDamage?

  /// Acknowledged data is damaged: an open refuses appends and serves the records before
  /// the damage read-only until the log is repaired. (Damage past the recovery point is a
  /// torn tail an unclean stop leaves, which the next open truncates by itself.)
  public var isCorrupt: Bool { damage?.belowRecoveryPoint == true }

  public init(directory: String) { self.directory = directory }
}

/// The first thing wrong in a log.
public struct LogDamage: Hashable, Sendable {
  /// What kind of damage: a struct of static values, so that new kinds do not break callers.
  public struct Kind: Hashable, Sendable, CustomStringConvertible {
    let name: String
    /// A batch that fails a check (structure, CRC, offset): the segment is cut there.
    public static let corruptBatch = Kind(name: "corruptBatch")
    /// A segment that does not start where the one before ends: it and all after it go.
    public static let segmentGap = Kind(name: "segmentGap")
    /// An unreadable `recovery-point` or `log-start-offset` file (an open fails on it).
    public static let metadata = Kind(name: "metadata")
    public var description: String { name }
  }

  public var kind: Kind
  /// The damaged file's path.
  public var file: String
  /// Where in it the damage starts (a batch boundary: the bytes before it are intact).
  public var position: Int
  /// The offset the damaged batch should hold: the first offset lost.
  public var offset: Int64
  public var reason: String
  /// Whether the damage is below the recovery point, in data that had been acknowledged.
  public var belowRecoveryPoint: Bool

  init(kind: Kind, file: String, position: Int, offset: Int64, reason: String, belowRecoveryPoint: Bool) {
    self.kind = kind
    self.file = file
    self.position = position
    self.offset = offset
    self.reason = reason
    self.belowRecoveryPoint = belowRecoveryPoint
  }

  init(metadata file: String, reason: String) {
    self.init(kind: .metadata, file: file, position: 0, offset: -1, reason: reason, belowRecoveryPoint: true)
  }
}

/// What ``FileLog/repair(directory:)`` does (or did) to a damaged log.
public struct LogRepair: Hashable, Sendable {
  public var directory: String
  /// The damage that makes the repair necessary.
  public var damage: LogDamage
  /// The segment cut at the damage, if one is (a gap removes whole segments instead).
  public var truncatedFile: String?
  /// Where it is cut: its new size.
  public var truncatedAt = 0
  /// Files removed: later segments with their indexes, the cut segment's indexes.
  public var removedFiles: [String] = []
  /// Bytes of log data dropped: the cut segment's tail and every later segment.
  public var droppedBytes = 0
  /// The log end after the repair, where appends continue; also the new recovery point.
  public var newEnd: Int64

  init(directory: String, damage: LogDamage, newEnd: Int64) {
    self.directory = directory
    self.damage = damage
    self.newEnd = newEnd
  }
}
