public import NIOCore
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// An open file of a log: a segment, or an index. Reference-counted so that a segment
/// deleted by retention stays readable for a fetch that already holds it (the descriptor
/// closes when the last reference goes).
///
/// All I/O is positional (`pread`/`pwrite`), so concurrent readers need no lock; the log
/// serialises writers.
public final class SegmentFile: Sendable {
  public let path: String
  let descriptor: CInt

  /// Opens `path` for reading and writing (creating it if `create`), or, with `readOnly`,
  /// for reading only (`FileLog.verify`, which must change nothing).
  init(path: String, create: Bool, readOnly: Bool = false) throws(StorageError) {
    self.path = path
    let flags = (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (create ? O_CREAT : 0)
    let fd = open(path, flags, 0o644)
    guard fd >= 0 else { throw StorageError.system("open", path: path, errno: errno) }
    self.descriptor = fd
  }

  deinit { close(descriptor) }

  /// Calls `body` with the raw descriptor, e.g. to `dup` it for a zero-copy `FileRegion`.
  /// The descriptor stays open for the duration of the call.
  public func withDescriptor<R>(_ body: (CInt) throws -> R) rethrows -> R {
    try body(descriptor)
  }

  /// A new `NIOFileHandle` on a duplicate of this file's descriptor, for `FileRegion`s
  /// (NIO requires one handle per concurrent user). The caller closes it.
  public func makeFileHandle() throws(StorageError) -> NIOFileHandle {
    let fd = dup(descriptor)
    guard fd >= 0 else { throw StorageError.system("dup", path: path, errno: errno) }
    return NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: fd)
  }

  func size() throws(StorageError) -> Int {
    var info = stat()
    guard fstat(descriptor, &info) == 0 else { throw StorageError.system("fstat", path: path, errno: errno) }
    return Int(info.st_size)
  }

  /// The file's last-modification time in epoch milliseconds: after a restart, when the
  /// segment was last appended to (retention counts from it; see `FileLog.Segment`).
  func modifiedMs() throws(StorageError) -> Int64 {
    var info = stat()
    guard fstat(descriptor, &info) == 0 else { throw StorageError.system("fstat", path: path, errno: errno) }
    return Int64(info.st_mtim.tv_sec) * 1000 + Int64(info.st_mtim.tv_nsec) / 1_000_000
  }

  /// Writes all of `bytes` at `position`. A short write that cannot be completed throws;
  /// the caller truncates back so no partial batch stays in the log.
  func write(_ bytes: UnsafeRawBufferPointer, at position: Int) throws(StorageError) {
    var done = 0
    while done < bytes.count {
      let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(position + done))
      if n < 0 {
        if errno == EINTR { continue }
        throw StorageError.system("write", path: path, errno: errno)
      }
      if n == 0 { throw StorageError(.io, "write \(path): wrote 0 bytes") }
      done += n
    }
  }

  /// Linux's IOV_MAX (a macro Swift does not import).
  static let maxVectors = 1024

  /// Writes `pieces` back to back at `position` with `pwritev` (at most IOV_MAX pieces per
  /// call), completing short writes. Same contract as ``write(_:at:)``.
  func write(pieces: [UnsafeRawBufferPointer], at position: Int) throws(StorageError) {
    var vectors = pieces.filter { $0.count > 0 }.map {
      iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count)
    }
    var first = 0
    var offset = position
    while first < vectors.count {
      let count = min(vectors.count - first, Self.maxVectors)
      let n = vectors.withUnsafeBufferPointer { all in
        pwritev(descriptor, all.baseAddress! + first, Int32(count), off_t(offset))
      }
      if n < 0 {
        if errno == EINTR { continue }
        throw StorageError.system("write", path: path, errno: errno)
      }
      if n == 0 { throw StorageError(.io, "write \(path): wrote 0 bytes") }
      offset += n
      // Skip what was written: whole vectors, then part of the next.
      var left = n
      while left > 0 && first < vectors.count {
        if left >= vectors[first].iov_len {
          left -= vectors[first].iov_len
          first += 1
        } else {
          vectors[first].iov_base = vectors[first].iov_base! + left
          vectors[first].iov_len -= left
          left = 0
        }
      }
    }
  }

  func write(_ buffer: ByteBuffer, at position: Int) throws(StorageError) {
    let result: Result<Void, StorageError> = buffer.withUnsafeReadableBytes { bytes in
      do throws(StorageError) {
        try write(bytes, at: position)
        return .success(())
      } catch {
        return .failure(error)
      }
    }
    try result.get()
  }

  /// Reads up to `length` bytes at `position` (fewer only at end of file).
  func read(at position: Int, length: Int, allocator: ByteBufferAllocator = ByteBufferAllocator())
    throws(StorageError) -> ByteBuffer
  {
    var buffer = allocator.buffer(capacity: length)
    var failure: Int32 = 0
    let got = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { target in
      var done = 0
      while done < length {
        let n = pread(descriptor, target.baseAddress! + done, length - done, off_t(position + done))
        if n < 0 {
          if errno == EINTR { continue }
          failure = errno
          return done
        }
        if n == 0 { break }
        done += n
      }
      return done
    }
    _ = got
    if failure != 0 { throw StorageError.system("read", path: path, errno: failure) }
    return buffer
  }

  /// fdatasync: the data (and the size) is durable when this returns without error. A
  /// failure means the kernel may have dropped dirty pages: callers must not retry as if
  /// nothing happened (see `FileLog`: the log goes offline).
  func sync() throws(StorageError) {
    BlockingCalls.check("fdatasync")
    if let injected = SyncFaultInjection.errno(for: path) {
      throw StorageError.system("fsync", path: path, errno: injected)
    }
    while fdatasync(descriptor) != 0 {
      if errno == EINTR { continue }
      throw StorageError.system("fsync", path: path, errno: errno)
    }
  }

  func truncate(to size: Int) throws(StorageError) {
    while ftruncate(descriptor, off_t(size)) != 0 {
      if errno == EINTR { continue }
      throw StorageError.system("truncate", path: path, errno: errno)
    }
  }
}

/// Test hook: makes `SegmentFile.sync()` fail with an errno for files under a directory, as
/// a failing disk would (the `fiu-run` tests show the same with a real failing fdatasync).
package enum SyncFaultInjection {
  private static let failures = Mutex<[String: Int32]>([:])
  private static let active = Atomic<Bool>(false)

  package static func fail(under directory: String, errno: Int32) {
    failures.withLock {
      $0[directory.hasSuffix("/") ? directory : directory + "/"] = errno
      active.store(true, ordering: .releasing)
    }
  }

  package static func clear(under directory: String) {
    failures.withLock {
      $0[directory.hasSuffix("/") ? directory : directory + "/"] = nil
      active.store(!$0.isEmpty, ordering: .releasing)
    }
  }

  static func errno(for path: String) -> Int32? {
    guard active.load(ordering: .acquiring) else { return nil }
    return failures.withLock { failures in failures.first { path.hasPrefix($0.key) }?.value }
  }
}

/// Small file-system helpers with errors as `StorageError`.
enum FileSystem {
  static func exists(_ path: String) -> Bool {
    access(path, F_OK) == 0
  }

  static func isDirectory(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
  }

  static func size(_ path: String) -> Int? {
    var info = stat()
    return stat(path, &info) == 0 ? Int(info.st_size) : nil
  }

  static func makeDirectory(_ path: String) throws(StorageError) {
    if mkdir(path, 0o755) != 0 && errno != EEXIST {
      throw StorageError.system("mkdir", path: path, errno: errno)
    }
  }

  static func remove(_ path: String) throws(StorageError) {
    if unlink(path) != 0 && errno != ENOENT {
      throw StorageError.system("unlink", path: path, errno: errno)
    }
  }

  static func removeTree(_ path: String) throws(StorageError) {
    for name in try list(path) {
      let child = path + "/" + name
      var info = stat()
      if lstat(child, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
        try removeTree(child)
      } else {
        try remove(child)
      }
    }
    if rmdir(path) != 0 && errno != ENOENT {
      throw StorageError.system("rmdir", path: path, errno: errno)
    }
  }

  static func list(_ path: String) throws(StorageError) -> [String] {
    guard let dir = opendir(path) else { throw StorageError.system("opendir", path: path, errno: errno) }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
      let name = withUnsafePointer(to: entry.pointee.d_name) {
        $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
      }
      if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
  }

  /// fsyncs a directory, making creations, renames and deletions in it durable.
  static func syncDirectory(_ path: String) throws(StorageError) {
    BlockingCalls.check("fsync of a directory")
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw StorageError.system("open", path: path, errno: errno) }
    defer { close(fd) }
    if fsync(fd) != 0 { throw StorageError.system("fsync", path: path, errno: errno) }
  }

  static func readAll(_ path: String) throws(StorageError) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
      if errno == ENOENT { return nil }
      throw StorageError.system("open", path: path, errno: errno)
    }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
      if n < 0 {
        if errno == EINTR { continue }
        throw StorageError.system("read", path: path, errno: errno)
      }
      if n == 0 { break }
      result.append(contentsOf: chunk[0..<n])
    }
    return result
  }

  /// Replaces `path` with `bytes` so that a crash at any instant leaves either the old or
  /// the new content: write a temporary file, fsync it, rename over, fsync the directory.
  static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws(StorageError) {
    BlockingCalls.check("an atomic file write")
    let temporary = path + ".tmp"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw StorageError.system("open", path: temporary, errno: errno) }
    var written = 0
    while written < bytes.count {
      let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
      if n < 0 {
        if errno == EINTR { continue }
        let err = errno
        close(fd)
        unlink(temporary)
        throw StorageError.system("write", path: temporary, errno: err)
      }
      written += n
    }
    if fsync(fd) != 0 {
      let err = errno
      close(fd)
      unlink(temporary)
      throw StorageError.system("fsync", path: temporary, errno: err)
    }
    close(fd)
    if rename(temporary, path) != 0 {
      let err = errno
      unlink(temporary)
      throw StorageError.system("rename", path: path, errno: err)
    }
    let slash = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
    try syncDirectory(slash.isEmpty ? "/" : slash)
  }
}
