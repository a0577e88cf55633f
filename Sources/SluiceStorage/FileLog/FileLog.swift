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
