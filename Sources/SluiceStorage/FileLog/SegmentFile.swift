import CSluiceSupport
public import NIOCore
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// A file of a log: a segment, or an index. Its descriptor is opened on first use and may be
/// closed again whenever no call is using it (``OpenFileCache`` bounds how many are open);
/// callers never see that. Reference-counted: a segment that retention deletes is detached
/// from the cache first (``keepOpen()``), so a fetch that already holds it can still read it
/// (the descriptor closes when the last reference goes).
///
/// All I/O is positional (`pread`/`pwrite`), so concurrent readers need no lock; the log
/// serialises writers.
public final class SegmentFile: Sendable {
  public let path: String
  let flags: CInt
  /// O_CREAT for a file created on first use, until it has been opened once.
  let createOnFirstOpen: CInt
  let cache: OpenFileCache
  /// The file's slot in ``cache`` while it holds a descriptor, else -1 (set under its lock).
  let slot = Atomic<Int>(-1)
  /// Calls using the descriptor right now: the cache closes only unpinned descriptors.
  let pins = Atomic<Int>(0)
  /// A descriptor taken out of the cache by ``keepOpen()``, closed at deinit; else -1.
  let detached = Atomic<CInt>(-1)
  /// Written since the last fsync began: the cache evicts such files last (see
  /// ``OpenFileCache/evictOne(_:)``).
  let unsynced = Atomic<Bool>(false)
  /// The file's device and inode once first opened (else 0, 0): a reopen that finds another
  /// file at the path (the log deleted, a new topic of the same name created) fails instead
  /// of reading or writing that file.
  let device = Atomic<UInt64>(0)
  let inode = Atomic<UInt64>(0)
  /// Set when the log is deleted: the file is never opened again by path (which may name
  /// a new topic's file by then; an inode number can be reused at once).
  let gone = Atomic<Bool>(false)

  /// The log was deleted: later opens by path fail (a descriptor open now stays usable).
  func markGone() {
    gone.store(true, ordering: .releasing)
  }

  /// How a file comes to exist.
  enum Creation {
    /// It must exist already (checked now).
    case existing
    /// Created now if absent.
    case now
    /// Created when first used (index files, which may never be written).
    case onFirstUse
  }

  /// A file for reading and writing, or, with `readOnly`, for reading only
  /// (`FileLog.verify`, which must change nothing). Its descriptor is opened when first used.
  init(path: String, creation: Creation, readOnly: Bool = false, cache: OpenFileCache = .shared)
    throws(StorageError)
  {
    self.path = path
    self.flags = (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC
    self.createOnFirstOpen = creation == .onFirstUse ? O_CREAT : 0
    self.cache = cache
    switch creation {
    case .now:
      // Through the cache, which makes room when descriptors run out; the new file is
      // likely to be written soon.
      _ = try cache.pin(self, extraFlags: O_CREAT)
      pins.subtract(1, ordering: .releasing)
    case .existing:
      if access(path, F_OK) != 0 { throw StorageError.system("open", path: path, errno: errno) }
    case .onFirstUse:
      break
    }
  }

  deinit {
    let own = detached.load(ordering: .relaxed)
    if own >= 0 { close(own) }
    if slot.load(ordering: .relaxed) >= 0 { cache.forget(self) }
  }

  /// Opens a new descriptor for the file (the cache calls this, under its lock): -1 and
  /// `errno` when the system refuses; throws when the path now names another file.
  func openDescriptor(extraFlags: CInt = 0) throws(StorageError) -> CInt {
    if let injected = OpenFaultInjection.errno(for: path) {
      errno = injected
      return -1
    }
    if gone.load(ordering: .acquiring) {
      throw StorageError(.openFailed, "open \(path): the log was deleted", errno: ENOENT)
    }
    let known = inode.load(ordering: .relaxed) != 0
    let fd = open(path, flags | extraFlags | (known ? 0 : createOnFirstOpen), 0o644)
    guard fd >= 0 else { return fd }
    var info = stat()
    guard fstat(fd, &info) == 0 else {
      let err = errno
      close(fd)
      errno = err
      return -1
    }
    if !known {
      device.store(UInt64(info.st_dev), ordering: .relaxed)
      inode.store(UInt64(info.st_ino), ordering: .relaxed)
    } else if UInt64(info.st_dev) != device.load(ordering: .relaxed)
      || UInt64(info.st_ino) != inode.load(ordering: .relaxed)
    {
      close(fd)
      throw StorageError(
        .openFailed, "open \(path): the file was deleted (another file has its name now)", errno: ENOENT)
    }
    return fd
  }

  /// Runs `body` with the file's descriptor, open and pinned for the duration of the call.
  func withOpenDescriptor<R, E: Error>(_ body: (CInt) throws(E) -> R) throws(StorageError) -> Result<R, E> {
    var fd = detached.load(ordering: .relaxed)
    var pinned = false
    if fd < 0 {
      do throws(StorageError) {
        fd = try cache.pin(self)
        pinned = true
      } catch {
        // Retention may have detached and unlinked the file meanwhile (`keepOpen`).
        fd = detached.load(ordering: .acquiring)
        guard fd >= 0 else { throw error }
      }
    }
    defer { if pinned { pins.subtract(1, ordering: .releasing) } }
    do throws(E) { return .success(try body(fd)) } catch { return .failure(error) }
  }

  /// Like ``withOpenDescriptor(_:)`` for a body that reports failure as an errno (0: none),
  /// thrown as `operation` failing on this file.
  func withDescriptor(_ operation: String, _ body: (CInt) -> Int32) throws(StorageError) {
    let err = try withOpenDescriptor { fd -> Int32 in body(fd) }.get()
    if err != 0 { throw StorageError.system(operation, path: path, errno: err) }
  }

  /// Calls `body` with the raw descriptor, e.g. to `dup` it for a zero-copy `FileRegion`.
  /// The descriptor stays open for the duration of the call.
  public func withDescriptor<R>(_ body: (CInt) throws -> R) throws -> R {
    try withOpenDescriptor { fd throws(any Error) -> R in try body(fd) }.get()
  }

  /// Takes the descriptor out of the cache for good: it stays open until the last
  /// reference goes, so the file stays readable after it is unlinked (retention).
  func keepOpen() {
    guard detached.load(ordering: .relaxed) < 0, let fd = try? cache.detach(self) else { return }
    detached.store(fd, ordering: .releasing)
  }

  /// A new `NIOFileHandle` on a duplicate of this file's descriptor, for `FileRegion`s
  /// (NIO requires one handle per concurrent user). The caller closes it.
  public func makeFileHandle() throws(StorageError) -> NIOFileHandle {
    var fd: CInt = -1
    try withDescriptor("dup") { descriptor in
      fd = dup(descriptor)
      return fd >= 0 ? 0 : errno
    }
    return NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: fd)
  }

  func size() throws(StorageError) -> Int {
    var info = stat()
    try withDescriptor("fstat") { fstat($0, &info) == 0 ? 0 : errno }
    return Int(info.st_size)
  }

  /// The file's last-modification time in epoch milliseconds: after a restart, when the
  /// segment was last appended to (retention counts from it; see `FileLog.Segment`).
  func modifiedMs() throws(StorageError) -> Int64 {
    var info = stat()
    try withDescriptor("fstat") { fstat($0, &info) == 0 ? 0 : errno }
    return Int64(info.st_mtim.tv_sec) * 1000 + Int64(info.st_mtim.tv_nsec) / 1_000_000
  }

  /// Writes all of `bytes` at `position`. A short write that cannot be completed throws;
  /// the caller truncates back so no partial batch stays in the log.
  func write(_ bytes: UnsafeRawBufferPointer, at position: Int) throws(StorageError) {
    try write(pieces: [bytes], at: position)
  }

  /// Linux's IOV_MAX (a macro Swift does not import).
  static let maxVectors = 1024

  /// Writes `pieces` back to back at `position` with `pwritev` (at most IOV_MAX pieces per
  /// call), completing short writes. Same contract as ``write(_:at:)``.
  func write(pieces: [UnsafeRawBufferPointer], at position: Int) throws(StorageError) {
    // The vectors live on the stack (an append writes two or three pieces).
    let failure = withUnsafeTemporaryAllocation(of: iovec.self, capacity: pieces.count) {
      vectors -> StorageError? in
      var count = 0
      for piece in pieces where piece.count > 0 {
        vectors[count] = iovec(
          iov_base: UnsafeMutableRawPointer(mutating: piece.baseAddress), iov_len: piece.count)
        count += 1
      }
      do throws(StorageError) {
        try write(vectors: UnsafeMutableBufferPointer(rebasing: vectors[..<count]), at: position)
        return nil
      } catch {
        return error
      }
    }
    if let failure { throw failure }
  }

  /// `pwritev` of `vectors` (modified as short writes are completed).
  private func write(vectors: UnsafeMutableBufferPointer<iovec>, at position: Int) throws(StorageError) {
    var wroteNothing = false
    try withDescriptor("write") { descriptor in
      unsynced.store(true, ordering: .relaxed)  // while pinned: the cache sees it before evicting
      var first = 0
      var offset = position
      while first < vectors.count {
        let count = min(vectors.count - first, Self.maxVectors)
        let n = pwritev(descriptor, vectors.baseAddress! + first, Int32(count), off_t(offset))
        if n < 0 {
          if errno == EINTR { continue }
          return errno
        }
        if n == 0 {
          wroteNothing = true
          return 0
        }
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
      return 0
    }
    if wroteNothing { throw StorageError(.io, "write \(path): wrote 0 bytes") }
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
    try withDescriptor("read") { descriptor in
      var failure: Int32 = 0
      buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { target in
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
      return failure
    }
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
    try withDescriptor("fsync") { descriptor in
      // Cleared before the fsync: a write that races it sets it again.
      unsynced.store(false, ordering: .relaxed)
      while fdatasync(descriptor) != 0 {
        if errno == EINTR { continue }
        let err = errno
        unsynced.store(true, ordering: .relaxed)
        return err
      }
      return 0
    }
  }

  func truncate(to size: Int) throws(StorageError) {
    try withDescriptor("truncate") { descriptor in
      unsynced.store(true, ordering: .relaxed)
      while ftruncate(descriptor, off_t(size)) != 0 {
        if errno == EINTR { continue }
        return errno
      }
      return 0
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

/// Test hook: makes opening files (and creating directories) under a directory fail with
/// an errno after `after` more successes, as a full disk (ENOSPC) or an exhausted descriptor
/// table (EMFILE) would part-way through a large CreateTopics.
package enum OpenFaultInjection {
  private struct Rule {
    var remaining: Int
    var errno: Int32
  }
  private static let rules = Mutex<[String: Rule]>([:])
  private static let active = Atomic<Bool>(false)

  /// Paths starting with `prefix` (a directory's ends with "/"; a directory itself is
  /// matched as its path with "/" appended).
  package static func fail(pathsStartingWith prefix: String, after successes: Int, errno: Int32) {
    rules.withLock {
      $0[prefix] = Rule(remaining: successes, errno: errno)
      active.store(true, ordering: .releasing)
    }
  }

  package static func clear(pathsStartingWith prefix: String) {
    rules.withLock {
      $0[prefix] = nil
      active.store(!$0.isEmpty, ordering: .releasing)
    }
  }

  static func errno(for path: String) -> Int32? {
    guard active.load(ordering: .acquiring) else { return nil }
    return rules.withLock { rules -> Int32? in
      guard let key = rules.keys.first(where: { path.hasPrefix($0) }) else { return nil }
      if rules[key]!.remaining > 0 {
        rules[key]!.remaining -= 1
        return nil
      }
      return rules[key]!.errno
    }
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
    if let injected = OpenFaultInjection.errno(for: path + "/") {
      throw StorageError.system("mkdir", path: path, errno: injected)
    }
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

  /// Whether `syncfs` reports writeback errors (Linux 5.8 and later); callers that rely on
  /// it for durability fall back to an fsync per file otherwise.
  static let syncfsReportsErrors: Bool = {
    var name = utsname()
    guard uname(&name) == 0 else { return false }
    let release = withUnsafeBytes(of: &name.release) { bytes in
      String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
    let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
    guard parts.count == 2 else { return false }
    return parts[0] > 5 || (parts[0] == 5 && parts[1] >= 8)
  }()

  /// Makes everything written to the file system holding `path` durable: `syncfs`, which
  /// reports writeback errors since Linux 5.8 (``syncfsReportsErrors``).
  static func syncFileSystem(_ path: String) throws(StorageError) {
    BlockingCalls.check("syncfs")
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw StorageError.system("open", path: path, errno: errno) }
    defer { close(fd) }
    if let injected = SyncFaultInjection.errno(for: path + "/") {
      throw StorageError.system("syncfs", path: path, errno: injected)
    }
    if sluice_syncfs(fd) != 0 { throw StorageError.system("syncfs", path: path, errno: errno) }
  }

  /// Writes `bytes` over the start of `path` in place (created if absent), cut to their
  /// length; no fsync (a later ``syncFileSystem(_:)`` does it). For the few bytes of a
  /// log's marker and numbers: a write within one 512-byte sector is atomic on the devices
  /// this runs on (PostgreSQL relies on the same for pg_control), and unlike a rename over
  /// the old file it allocates and frees no inode — thousands of those per second make
  /// ext4's inode allocator scan (its `recently_deleted` check).
  static func overwrite(_ path: String, _ bytes: [UInt8]) throws(StorageError) {
    try overwrite(path, bytes, sync: false)
  }

  /// ``overwrite(_:_:)``, then fsync (and, for a new file, an fsync of its directory), on
  /// one descriptor.
  static func overwriteDurably(_ path: String, _ bytes: [UInt8]) throws(StorageError) {
    BlockingCalls.check("an fsync of a small file")
    if try overwrite(path, bytes, sync: true) {
      let slash = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
      try syncDirectory(slash.isEmpty ? "/" : slash)
    }
  }

  /// Returns whether the file was created.
  @discardableResult
  private static func overwrite(_ path: String, _ bytes: [UInt8], sync: Bool) throws(StorageError) -> Bool {
    precondition(bytes.count <= 512)
    var created = false
    var fd = open(path, O_WRONLY | O_CLOEXEC)
    if fd < 0 && errno == ENOENT {
      fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
      created = true
    }
    guard fd >= 0 else { throw StorageError.system("open", path: path, errno: errno) }
    defer { close(fd) }
    let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    guard written == bytes.count else {
      throw StorageError.system("write", path: path, errno: written < 0 ? errno : EIO)
    }
    var info = stat()
    if fstat(fd, &info) == 0 && Int(info.st_size) != bytes.count && ftruncate(fd, off_t(bytes.count)) != 0 {
      throw StorageError.system("truncate", path: path, errno: errno)
    }
    if sync {
      while fsync(fd) != 0 {
        if errno == EINTR { continue }
        throw StorageError.system("fsync", path: path, errno: errno)
      }
    }
    return created
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
