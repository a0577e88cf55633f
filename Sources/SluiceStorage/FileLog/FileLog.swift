import KafkaProtocol
import NIOCore
public import NIOPosix
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A partition log on local disk, in Kafka's layout: a directory of segments named by
/// base offset, each with a sparse offset index and time index.
///
/// The type is spread over files by concern: ``Segment`` (one segment and its files),
/// `FileLog+Recovery` (opening), `FileLog+Append`, `FileLog+Flush` (the I/O half of
/// ``FlushStateMachine``), `FileLog+Read`, `FileLog+Retention`, `FileLog+Verify` (checking
/// and repairing a log on disk).
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
/// append fails. ``FlushStateMachine`` holds these rules.
///
/// Crash safety: a clean close leaves a marker; without it, the next open re-reads every
/// segment, verifying each batch's CRC and rebuilding the indexes. Corruption at or past
/// the recovery point (the last offset known flushed) is a torn tail: it is truncated
/// away with everything after it. Corruption below the recovery point is damage to data
/// that was durable: the log opens offline for appends, with an error naming the file and
/// position, and serves the records before the damage read-only (``readOnlyEnd``) until
/// an operator cuts it with ``FileLog/repair(directory:)``.
public final class FileLog: PartitionLog {
  struct State {
    var config: LogConfig
    var segments: [Segment]
    var logStartOffset: Int64
    var logEndOffset: Int64
    /// Set when recovery found data below the recovery point damaged: the log refuses
    /// appends (``FlushStateMachine`` is offline) but serves the intact records before the
    /// damage, up to here (the log end), read-only.
    var readOnlyEnd: Int64?
    /// Flush scheduling, group commit and the log's lifecycle (open, closing, closed,
    /// offline).
    var flush: Flush
  }

  public let directory: String
  let threadPool: NIOThreadPool
  let fileCache: OpenFileCache
  let state: Mutex<State>
  /// Serialises writes of the log-start file (flush jobs on pool threads, DeleteRecords,
  /// close) and remembers the last value written, so an older value never replaces a newer.
  let logStartWritten = Mutex<Int64>(Int64.min)

  /// The clean-shutdown marker: a log closed cleanly has it, empty or saying `clean`; an
  /// open log has it saying `dirty` (rewritten in place, not removed, so that opening and
  /// closing thousands of logs frees and allocates no inodes), or not at all.
  static let cleanShutdownFile = ".clean-shutdown"
  static let dirtyMarker = Array("dirty\n".utf8)
  static let cleanMarker = Array("clean\n".utf8)
  static let recoveryPointFile = "recovery-point"
  static let logStartFile = "log-start-offset"

  // MARK: Opening

  /// Opens (creating if needed) the log in `directory`, recovering it if it was not closed
  /// cleanly. A log found damaged opens offline: every operation then throws `.offline`.
  ///
  /// `syncMarkerRemoval` false is for opening many logs at once (a broker's start): the
  /// removal of each clean-shutdown marker is then made durable by one
  /// ``syncFileSystem(of:)`` that the caller runs before any log takes an append.
  /// Its files' descriptors are kept in `fileCache` (see ``OpenFileCache``).
  public init(
    directory: String, config: LogConfig, threadPool: NIOThreadPool, now: Int64,
    syncMarkerRemoval: Bool = true,
    fileCache: OpenFileCache = .shared
  ) throws(StorageError) {
    self.directory = directory
    self.threadPool = threadPool
    self.fileCache = fileCache
    try FileSystem.makeDirectory(directory)
    let recovered = try Self.recover(
      directory: directory, config: config, now: now, syncMarkerRemoval: syncMarkerRemoval, cache: fileCache)
    self.state = Mutex(recovered)
  }

  public var config: LogConfig { state.withLock { $0.config } }

  public func updateConfig(_ config: LogConfig) {
    state.withLock { $0.config = config }
  }

  public var logStartOffset: Int64 { state.withLock { $0.logStartOffset } }
  public var logEndOffset: Int64 { state.withLock { $0.logEndOffset } }
  public var durableEndOffset: Int64 { state.withLock { $0.flush.durableOffset } }

  public var failure: StorageError? { state.withLock { $0.flush.failure } }

  public var readOnlyEnd: Int64? { state.withLock { $0.flush.isClosed ? nil : $0.readOnlyEnd } }

  /// How many flush rounds (group commits) have run.
  package var flushCount: Int { state.withLock { $0.flush.completedRounds } }

  /// The error that took the log offline, if any.
  public var offlineError: StorageError? { state.withLock { $0.flush.failure } }

  static func readNumber(_ path: String) throws(StorageError) -> Int64? {
    guard let bytes = try FileSystem.readAll(path) else { return nil }
    guard let text = String(validating: bytes, as: UTF8.self),
      let value = Int64(text.filter { !$0.isWhitespace })
    else {
      throw StorageError(.corruptMetadata, "\(path): not a number")
    }
    return value
  }

  /// Writes a log's number file (recovery point, log start) in place and fsyncs it (and
  /// its directory when the file is new). In place, not by a rename over it: flush rounds
  /// of thousands of partitions checkpoint every `flush.ms`, and a rename per checkpoint
  /// allocates and frees an inode each time (see `FileSystem.overwrite`).
  static func writeNumber(_ path: String, _ value: Int64) throws(StorageError) {
    try FileSystem.overwriteDurably(path, numberBytes(value))
  }

  /// A number as its files hold it: 20 digits, zero-padded, and a newline — always the same
  /// length, so an in-place rewrite never needs a truncation a crash could separate from it.
  static func numberBytes(_ value: Int64) -> [UInt8] {
    let digits = String(value)
    return Array((String(repeating: "0", count: max(0, 20 - digits.count)) + digits + "\n").utf8)
  }

  /// Makes everything written to the file system holding `directory` durable (`syncfs`):
  /// one call for what would otherwise be an fsync per log.
  public static func syncFileSystem(of directory: String) throws(StorageError) {
    try FileSystem.syncFileSystem(directory)
  }

  // MARK: Closing

  public func close() throws(StorageError) {
    guard let (segments, logStart) = try beginClose() else { return }
    let error = syncForClose(segments, logStart: logStart)
    perform(state.withLock { $0.flush.closeCompleted(error) })
    if let error { throw error }
  }

  /// The first half of ``close()`` (and of ``closeAll(_:fileSystemOf:)``): no append or round
  /// starts from here on, and a running round is let finish (it may be writing the recovery
  /// point, which a close writes too). Returns what the close must make durable, or nil if
  /// the log is closing or closed already; throws the error that took the log offline.
  func beginClose() throws(StorageError) -> (segments: [Segment], logStart: Int64?)? {
    switch state.withLock({ $0.flush.closeRequested() }) {
    case .none: return nil
    case .fail(let error): throw error
    case .syncEverything: break
    }
    waitForRunningFlush()
    let (segments, logStart, failure) = state.withLock {
      ($0.segments, $0.flush.pending.logStart, $0.flush.failure)
    }
    if let failure { throw failure }
    return (segments, logStart)
  }

  /// Blocks until no flush round runs (called once no new round can start).
  func waitForRunningFlush() {
    while state.withLock({ $0.flush.isFlushRunning }) { usleep(1000) }
  }

  /// Syncs every segment and index, records the recovery point and the log start, and
  /// leaves the clean-shutdown marker. Returns the error that stopped it, if any.
  func syncForClose(_ segments: [Segment], logStart: Int64?) -> StorageError? {
    do throws(StorageError) {
      for var segment in segments {
        try segment.file.sync()
        try segment.index.sync()
      }
      try Self.writeNumber(directory + "/" + Self.recoveryPointFile, segments.last!.nextOffset)
      if let logStart { try persistLogStart(logStart) }
      try FileSystem.overwriteDurably(directory + "/" + Self.cleanShutdownFile, Self.cleanMarker)
      return nil
    } catch {
      return StorageError(.offline, "\(directory): close failed (\(error.message))", errno: error.errno)
    }
  }

  /// Closes many logs, as ``close()`` does each, with two file-system syncs in all instead
  /// of several fsyncs per log (a broker's stop with thousands of partitions): first every
  /// log's indexes are written and everything synced with the segments; then each log's
  /// recovery point, log start and clean-shutdown marker are written in place (see
  /// `FileSystem.overwrite`) and synced again. A crash in between leaves logs marked
  /// dirty, which the next open recovers in full. All logs must be on the file system of
  /// `directory`. Returns each log's error, if any.
  public static func closeAll(_ logs: [FileLog], fileSystemOf directory: String) -> [StorageError?] {
    // Before Linux 5.8 syncfs reports no writeback error: close each log with its fsyncs.
    guard FileSystem.syncfsReportsErrors else {
      return logs.map { log in
        do throws(StorageError) {
          try log.close()
          return nil
        } catch {
          return error
        }
      }
    }
    var results = [StorageError?](repeating: nil, count: logs.count)
    var closing: [(position: Int, end: Int64, logStart: Int64?)] = []
    func fail(_ position: Int, _ error: StorageError) {
      let failed = StorageError(
        .offline, "\(logs[position].directory): close failed (\(error.message))", errno: error.errno)
      results[position] = failed
      logs[position].perform(logs[position].state.withLock { $0.flush.closeCompleted(failed) })
    }
    for (position, log) in logs.enumerated() {
      let segments: [Segment]
      let logStart: Int64?
      do throws(StorageError) {
        guard let begun = try log.beginClose() else { continue }
        (segments, logStart) = begun
      } catch {
        results[position] = error
        continue
      }
      do throws(StorageError) {
        for var segment in segments { try segment.index.persist() }
        closing.append((position, segments.last!.nextOffset, logStart))
      } catch {
        fail(position, error)
      }
    }
    for round in 0..<2 {
      do throws(StorageError) {
        try FileSystem.syncFileSystem(directory)
      } catch {
        for entry in closing {
          // Markers written in this round may reach the disk anyway: say dirty again.
          if round == 1 {
            try? FileSystem.overwrite(logs[entry.position].directory + "/" + cleanShutdownFile, dirtyMarker)
          }
          fail(entry.position, error)
        }
        return results
      }
      guard round == 0 else { break }
      var marked: [(position: Int, end: Int64, logStart: Int64?)] = []
      for entry in closing {
        let log = logs[entry.position]
        do throws(StorageError) {
          try FileSystem.overwrite(log.directory + "/" + recoveryPointFile, numberBytes(entry.end))
          if let logStart = entry.logStart, log.logStartWritten.withLock({ $0 < logStart }) {
            try FileSystem.overwrite(log.directory + "/" + logStartFile, numberBytes(logStart))
          }
          try FileSystem.overwrite(log.directory + "/" + cleanShutdownFile, cleanMarker)
          marked.append(entry)
        } catch {
          fail(entry.position, error)
        }
      }
      closing = marked
    }
    for entry in closing {
      logs[entry.position].perform(logs[entry.position].state.withLock { $0.flush.closeCompleted(nil) })
    }
    return results
  }

  /// Removes what is left in `directory` of a log that is not open (a deletion that failed
  /// half-way), so that a new log there starts empty.
  /// Returns whether there was anything to remove.
  @discardableResult
  public static func removeLeftovers(in directory: String) throws(StorageError) -> Bool {
    guard FileSystem.exists(directory) else { return false }
    try FileSystem.removeTree(directory)
    return true
  }

  /// fsyncs a directory (the data directory, once partitions were created or removed in it).
  public static func syncDirectory(_ path: String) throws(StorageError) {
    try FileSystem.syncDirectory(path)
  }

  /// (Its directory may have been moved aside already: ``moveAside(_:)``.)
  public func delete() throws(StorageError) {
    perform(state.withLock { $0.flush.deleted() })
    // A round still running would write its recovery point into the directory, which by
    // then may belong to a new topic of the same name.
    waitForRunningFlush()
    for segment in state.withLock({ $0.segments }) {
      for file in [segment.file, segment.index.offsetFile, segment.index.timeFile] { file.markGone() }
    }
    if FileSystem.exists(directory) { try FileSystem.removeTree(directory) }
  }

  /// The prefix of a directory a deletion moved aside (``moveAside(_:)``): hidden, so no
  /// listing of partitions sees it, and removed by ``removeMovedAside(in:)``.
  static let movedAsidePrefix = ".deleting-"

  /// Renames a log's directory out of the way (the first step of deleting a topic: after
  /// it, a crash leaves nothing that looks like a partition) and returns the new path. The
  /// rename is durable once the parent directory is synced.
  public static func moveAside(_ directory: String) throws(StorageError) -> String {
    let parent = directory.lastIndex(of: "/").map { String(directory[..<$0]) } ?? "."
    // Not the partition's name: with it, a topic name of 249 characters would pass NAME_MAX.
    let target = parent + "/" + movedAsidePrefix + String(UInt64.random(in: 0...UInt64.max), radix: 16)
    if rename(directory, target) != 0 {
      if errno == ENOENT { return target }  // never created (a log with no directory)
      throw StorageError.system("rename", path: directory, errno: errno)
    }
    return target
  }

  /// Renames a directory moved aside back (a deletion that failed before it took effect).
  public static func undoMoveAside(_ moved: String, to original: String) {
    _ = rename(moved, original)
  }

  /// Removes every directory a deletion moved aside in `dataDirectory` (at a broker's
  /// start: what a crash during a deletion left). Returns how many.
  @discardableResult
  public static func removeMovedAside(in dataDirectory: String) throws(StorageError) -> Int {
    let names = try FileSystem.list(dataDirectory).filter { $0.hasPrefix(movedAsidePrefix) }
    for name in names { try FileSystem.removeTree(dataDirectory + "/" + name) }
    return names.count
  }
}
