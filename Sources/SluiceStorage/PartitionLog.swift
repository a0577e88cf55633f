public import NIOCore

/// A piece of a read: a region of a segment file (sent zero-copy by the network layer on
/// plaintext connections) or bytes in memory (memory logs).
public enum LogChunk: Sendable {
  case file(SegmentFile, position: Int, length: Int)
  case bytes(ByteBuffer)

  public var length: Int {
    switch self {
    case .file(_, _, let length): length
    case .bytes(let buffer): buffer.readableBytes
    }
  }

  /// The chunk's bytes in memory (a `pread` for file chunks). For tests and TLS paths.
  public func load() throws(StorageError) -> ByteBuffer {
    switch self {
    case .file(let file, let position, let length): try file.read(at: position, length: length)
    case .bytes(let buffer): buffer
    }
  }
}

/// What a read returns: whole batches, starting with the one that holds the requested
/// offset, up to the byte limit (always at least that first batch when asked to).
public struct LogReadResult: Sendable {
  public var chunks: [LogChunk]
  public var logStartOffset: Int64
  public var logEndOffset: Int64
  /// The offset after the last batch read (nil when nothing was read).
  public var nextOffset: Int64?

  public var byteCount: Int { chunks.reduce(0) { $0 + $1.length } }

  /// All chunks concatenated in memory.
  public func loadBytes() throws(StorageError) -> ByteBuffer {
    var result = ByteBuffer()
    for chunk in chunks {
      var bytes = try chunk.load()
      result.writeBuffer(&bytes)
    }
    return result
  }
}

/// What an append assigned.
public struct AppendResult: Hashable, Sendable {
  /// Offset of the first record appended.
  public var firstOffset: Int64
  /// Offset of the last record appended.
  public var lastOffset: Int64
  /// The broker's timestamp for LogAppendTime logs, else -1.
  public var logAppendTime: Int64
  public var logStartOffset: Int64
}

/// An append that has been written but perhaps not yet made durable.
public struct PendingAppend: Hashable, Sendable {
  public var result: AppendResult
  /// Whether the flush policy requires an fsync before acknowledging.
  public var mustFlush: Bool
}

/// What ``PartitionLog/trim(toBytes:)`` dropped.
public struct TrimResult: Hashable, Sendable {
  public var records: Int64
  public var bytes: Int64
  public init(records: Int64 = 0, bytes: Int64 = 0) {
    self.records = records
    self.bytes = bytes
  }
}

/// A partition's log: the interface the broker uses, with a disk implementation
/// (``FileLog``) and a memory one (``MemoryLog``).
///
/// Appends take whole, already validated v2 record batches (one or more, concatenated) and
/// assign offsets by rewriting each batch's base offset; the bytes are stored verbatim.
public protocol PartitionLog: AnyObject, Sendable {
  var config: LogConfig { get }
  func updateConfig(_ config: LogConfig)

  /// The first offset still in the log.
  var logStartOffset: Int64 { get }
  /// The offset the next record will get.
  var logEndOffset: Int64 { get }
  /// Every record below this offset is on stable storage (memory logs: the log end).
  var durableEndOffset: Int64 { get }

  /// Appends batches; returns once they are written and, if the flush policy asks for it
  /// (`flush.messages=1`), fsynced. `now` is the broker's clock in epoch milliseconds.
  func append(_ batches: ByteBuffer, now: Int64) async throws(StorageError) -> AppendResult

  /// The first half of `append`, synchronous: writes the batches (page cache) and assigns
  /// offsets. The broker uses it to check producer sequences and append atomically; it must
  /// then call ``awaitDurable(_:)`` before acknowledging.
  func appendBuffered(_ batches: ByteBuffer, now: Int64) throws(StorageError) -> PendingAppend

  /// The second half of `append`: waits for the fsync the flush policy asks for, if any.
  func awaitDurable(_ pending: PendingAppend) async throws(StorageError)

  /// Reads whole batches from the one containing `offset`, up to `maxBytes` (exceeded only
  /// by a first batch when `minOneBatch`), and never a batch at or beyond `upTo`.
  func read(from offset: Int64, maxBytes: Int, upTo: Int64?, minOneBatch: Bool) throws(StorageError)
    -> LogReadResult

  /// The first record whose timestamp is ≥ `timestamp`, or nil if there is none.
  func offset(forTimestamp timestamp: Int64) throws(StorageError) -> (offset: Int64, timestamp: Int64)?

  /// The record with the largest timestamp (ListOffsets -3), or nil for an empty log.
  func maxTimestamp() throws(StorageError) -> (offset: Int64, timestamp: Int64)?

  /// Advances the log start offset to `offset` (DeleteRecords); returns the new start.
  func deleteRecords(before offset: Int64) throws(StorageError) -> Int64

  /// Bytes of the batches from the one holding `offset` (at least the log start) to the log
  /// end. Disk logs find that batch from the sparse index with one small read.
  func retainedBytes(from offset: Int64) -> Int64

  /// Advances the log start over the oldest whole batches until at most `maxBytes` remain
  /// (exactly, at batch boundaries) — but never past the newest batch, which stays even
  /// when it alone is larger; the overflow policy `drop-oldest`. Whole segments below the
  /// new start are deleted; the new start is made durable by the next flush.
  @discardableResult
  func trim(toBytes maxBytes: Int64) throws(StorageError) -> TrimResult

  /// Deletes data past `retention.ms` / `retention.bytes`; returns the bytes deleted.
  @discardableResult
  func enforceRetention(now: Int64) throws(StorageError) -> Int

  /// Makes everything appended so far durable.
  func flush() async throws(StorageError)

  /// Starts a background flush if unflushed data is older than `flush.ms`.
  func flushIfDue(now: Int64)

  /// Why the log is offline (a failed write or fsync, corruption found at open), or nil
  /// while it serves. An offline log refuses appends until the broker restarts.
  var failure: StorageError? { get }

  /// Set while an offline log still serves the intact records before damage found at open
  /// (data below the recovery point, lost by the disk): reads, offset-for-timestamp and the
  /// max timestamp work for offsets in [log start, this), which is also the log end; reads
  /// at or past it fail with `.offline`. Appends are refused (``failure`` says why) until an
  /// operator repairs the log. Nil otherwise (a serving log, or one offline altogether).
  var readOnlyEnd: Int64? { get }

  /// Flushes and closes; a later open finds a clean log.
  func close() throws(StorageError)

  /// Closes and removes every file of the log (topic deletion).
  func delete() throws(StorageError)
}

extension PartitionLog {
  /// Logs that are never damaged at open (memory) never serve read-only.
  public var readOnlyEnd: Int64? { nil }
}
