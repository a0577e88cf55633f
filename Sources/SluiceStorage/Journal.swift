import KafkaProtocol
public import NIOCore
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Crash-safe storage for small state that changes often (committed consumer offsets): an
/// append-only log of checksummed records plus a snapshot that compaction replaces
/// atomically.
///
/// Files in `directory`: `<name>.log` — records, each `length u32 | crc32c u32 | payload`;
/// `<name>.snapshot` — a magic, then records in the same framing, written with
/// write-temp + fsync + rename + directory fsync. Recovery returns the snapshot's records
/// followed by the log's, in order; a log tail that is torn (short, or failing its
/// checksum) is cut off, so a crash mid-append loses only the unacknowledged append.
///
/// The owner must make records idempotent under replay (last writer wins per key): after
/// a crash between "snapshot renamed" and "log truncated" the old log is replayed on top
/// of the new snapshot, which ends in the same state.
///
/// Calls block (write, fdatasync): run them off event loops. One writer at a time.
public final class Journal: Sendable {
  public let logPath: String
  public let snapshotPath: String
  let directory: String
  /// The log's descriptor and size, and a failure that makes the journal unusable (an
  /// fsync error: the page cache can no longer be trusted to match the disk).
  let file: Mutex<(descriptor: CInt, size: Int, failure: StorageError?)>

  static let snapshotMagic: [UInt8] = Array("SLJ1".utf8)
  /// Upper bound on one record: a larger length field is corruption, not a record.
  public static let maximumRecordSize = 64 << 20

  /// Opens (creating if needed) `<directory>/<name>.log`. Call ``recover()`` before
  /// appending.
  public init(directory: String, name: String) throws(StorageError) {
    try FileSystem.makeDirectory(directory)
    self.directory = directory
    logPath = directory + "/" + name + ".log"
    snapshotPath = directory + "/" + name + ".snapshot"
    let descriptor = open(logPath, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else { throw StorageError.system("open", path: logPath, errno: errno) }
    var info = stat()
    guard fstat(descriptor, &info) == 0 else {
      let err = errno
      closeDescriptor(descriptor)
      throw StorageError.system("fstat", path: logPath, errno: err)
    }
    file = Mutex((descriptor, Int(info.st_size), nil))
    // The log file's directory entry must be durable before anything in it is.
    try FileSystem.syncDirectory(directory)
  }

  /// Bytes in the log (since the last compaction).
  public var logSize: Int { file.withLock { $0.size } }

  /// Every record: the snapshot's, then the log's. Truncates a torn log tail.
  public func recover() throws(StorageError) -> [ByteBuffer] {
    var records: [ByteBuffer] = []
    if let bytes = try FileSystem.readAll(snapshotPath) {
      guard bytes.count >= 4, Array(bytes[0..<4]) == Self.snapshotMagic else {
        throw StorageError(.corruptMetadata, "\(snapshotPath): not a journal snapshot")
      }
      let (parsed, valid) = Self.parse(bytes, from: 4)
      guard valid == bytes.count else {
        // The snapshot was fsynced before it was renamed into place: damage is real corruption.
        throw StorageError(.corruptMetadata, "\(snapshotPath): damaged record at byte \(valid)")
      }
      records += parsed
    }
    let bytes = try FileSystem.readAll(logPath) ?? []
    let (parsed, valid) = Self.parse(bytes, from: 0)
    records += parsed
    if valid < bytes.count {
      try file.withLock {
        (state: inout (descriptor: CInt, size: Int, failure: StorageError?)) throws(StorageError) in
        if ftruncate(state.descriptor, off_t(valid)) != 0 {
          throw StorageError.system("ftruncate", path: logPath, errno: errno)
        }
        if fsync(state.descriptor) != 0 { throw StorageError.system("fsync", path: logPath, errno: errno) }
        state.size = valid
      }
    }
    return records
  }

  /// Parses framed records from `start`; returns them and the offset after the last good one.
  static func parse(_ bytes: [UInt8], from start: Int) -> ([ByteBuffer], Int) {
    var buffer = ByteBuffer(bytes: bytes)
    buffer.moveReaderIndex(to: start)
    var records: [ByteBuffer] = []
    var valid = start
    while let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
      let crc = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt32.self),
      Int(length) <= maximumRecordSize,
      let payload = buffer.getSlice(at: buffer.readerIndex + 8, length: Int(length)),
      CRC32C.checksum(payload) == crc
    {
      records.append(payload)
      buffer.moveReaderIndex(forwardBy: 8 + Int(length))
      valid = buffer.readerIndex
    }
    return (records, valid)
  }

  static func frame(_ records: [ByteBuffer], into buffer: inout ByteBuffer) {
    for record in records {
      buffer.writeInteger(UInt32(record.readableBytes))
      buffer.writeInteger(CRC32C.checksum(record))
      var copy = record
      buffer.writeBuffer(&copy)
    }
  }

  /// Appends records with one write and one fdatasync; durable when this returns. A failed
  /// write is rolled back (the log is truncated to its previous size); a failed sync makes
  /// the journal refuse every later call. With `sync` false the records are only written
  /// (they survive the process, not the machine, until a later append syncs).
  public func append(_ records: [ByteBuffer], sync: Bool = true) throws(StorageError) {
    BlockingCalls.check("a journal append")
    var buffer = ByteBuffer()
    Self.frame(records, into: &buffer)
    try file.withLock {
      (state: inout (descriptor: CInt, size: Int, failure: StorageError?)) throws(StorageError) in
      if let failure = state.failure { throw failure }
      let path = logPath
      let descriptor = state.descriptor
      let written = buffer.withUnsafeReadableBytes { bytes -> Int32 in
        var done = 0
        while done < bytes.count {
          let n = write(descriptor, bytes.baseAddress! + done, bytes.count - done)
          if n < 0 {
            if errno == EINTR { continue }
            return errno
          }
          done += n
        }
        return 0
      }
      if written != 0 {
        if ftruncate(descriptor, off_t(state.size)) != 0 {
          state.failure = StorageError(.offline, "\(path): write failed and could not be rolled back")
        }
        throw StorageError.system("write", path: path, errno: written)
      }
      if sync && fdatasync(descriptor) != 0 {
        let error = StorageError.system("fdatasync", path: path, errno: errno)
        state.failure = StorageError(.offline, "\(path): \(error.message)")
        throw error
      }
      state.size += buffer.readableBytes
    }
  }

  /// Compaction: makes `records` the whole content (a new snapshot, written atomically),
  /// then empties the log.
  public func replace(with records: [ByteBuffer]) throws(StorageError) {
    var buffer = ByteBuffer()
    buffer.writeBytes(Self.snapshotMagic)
    Self.frame(records, into: &buffer)
    try file.withLock {
      (state: inout (descriptor: CInt, size: Int, failure: StorageError?)) throws(StorageError) in
      if let failure = state.failure { throw failure }
      try FileSystem.writeAtomically(snapshotPath, Array(buffer.readableBytesView))
      if ftruncate(state.descriptor, 0) != 0 || fsync(state.descriptor) != 0 {
        // Harmless for correctness (the old log replays idempotently over the snapshot),
        // but the log's size is no longer known: stop using it.
        let error = StorageError.system("ftruncate", path: logPath, errno: errno)
        state.failure = StorageError(.offline, "\(logPath): \(error.message)")
        throw error
      }
      state.size = 0
    }
  }

  public func close() {
    file.withLock { state in
      if state.descriptor >= 0 {
        closeDescriptor(state.descriptor)
        state.descriptor = -1
        if state.failure == nil { state.failure = StorageError(.closed, "\(logPath) is closed") }
      }
    }
  }
}

private func closeDescriptor(_ descriptor: CInt) {
  _ = close(descriptor)
}
