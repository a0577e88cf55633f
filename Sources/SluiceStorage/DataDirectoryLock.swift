import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// One process's exclusive use of a broker's data directory, as Kafka's `.lock`: an advisory
/// `flock` on `<data-dir>/.lock`, taken before anything else in the directory is opened and
/// held until ``release()`` (or deinit).
///
/// A second broker on the same directory fails at once, told the directory and the process
/// that holds it: the holder writes its PID into the file. The kernel drops the lock when the
/// holder dies, however it dies, so the lock file a crashed broker leaves never blocks a
/// restart — there is nothing to clean up, and a stale PID in it means nothing. The file is
/// never deleted: unlinking it while another process opens it would let two processes each
/// lock a different inode.
public final class DataDirectoryLock: Sendable {
  public static let fileName = ".lock"

  public let directory: String
  /// The lock file's descriptor while held, -1 once released.
  private let descriptor: Mutex<CInt>

  public var path: String { directory + "/" + Self.fileName }

  /// Creates the directory if needed and takes the lock, or throws `.locked` naming the
  /// directory and the process holding it.
  public init(directory: String) throws(StorageError) {
    self.directory = directory
    try FileSystem.makeDirectory(directory)
    let path = directory + "/" + Self.fileName
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw StorageError.system("open", path: path, errno: errno) }
    while flock(fd, LOCK_EX | LOCK_NB) != 0 {
      let error = errno
      if error == EINTR { continue }
      let holder = Self.holder(fd)
      close(fd)
      guard error == EWOULDBLOCK else { throw StorageError.system("flock", path: path, errno: error) }
      throw StorageError(
        .locked,
        "data directory \(Self.absolute(directory)) is in use by another process: \(holder) holds \(path). "
          + "Is another broker running on it? Stop that one first, or use another data directory",
        errno: error)
    }
    // Who holds it, for the message a second process gets. Best effort: the lock is what
    // matters, and a disk too full for a few bytes fails the broker soon enough anyway.
    let pid = Array("\(getpid())\n".utf8)
    _ = ftruncate(fd, 0)
    _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, 0) }
    descriptor = Mutex(fd)
  }

  deinit { release() }

  /// Releases the lock (once; later calls do nothing). The PID is cleared first, so that
  /// the file does not name a process that no longer holds it.
  public func release() {
    descriptor.withLock { fd in
      guard fd >= 0 else { return }
      _ = ftruncate(fd, 0)
      close(fd)
      fd = -1
    }
  }

  /// "pid N (command)" from the lock file and /proc, as far as they tell.
  static func holder(_ fd: CInt) -> String {
    var bytes = [UInt8](repeating: 0, count: 32)
    let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, 0) }
    let text = String(decoding: bytes.prefix(max(0, count)), as: UTF8.self)
    guard let pid = Int32(text.filter { !$0.isWhitespace }), pid > 0 else { return "a process (pid unknown)" }
    guard let name = try? FileSystem.readAll("/proc/\(pid)/comm") else { return "pid \(pid)" }
    let command = String(decoding: name, as: UTF8.self).filter { !$0.isNewline }
    return command.isEmpty ? "pid \(pid)" : "pid \(pid) (\(command))"
  }

  /// The directory as an absolute path, for messages (as given if it cannot be resolved).
  static func absolute(_ directory: String) -> String {
    guard let resolved = realpath(directory, nil) else { return directory }
    defer { free(resolved) }
    return String(cString: resolved)
  }
}
