#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// An error from the storage layer. Shaped like `KafkaProtocolError`: a struct with a
/// nested `Code`, so callers can map codes to Kafka error codes without exhaustive switches.
public struct StorageError: Error, Hashable, Sendable, CustomStringConvertible {
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    let name: String
    /// A system call failed (`errno` says which way); the operation did not take effect.
    public static let io = Code(name: "io")
    /// The disk is full (ENOSPC, EDQUOT). The log is unchanged and usable once space is freed.
    public static let noSpace = Code(name: "noSpace")
    /// A file of the log could not be opened (descriptors exhausted, or the file is gone);
    /// the operation did not take effect and the log is unchanged.
    public static let openFailed = Code(name: "openFailed")
    /// The file system is read-only (EROFS).
    public static let readOnly = Code(name: "readOnly")
    /// The log is offline: an fsync failed (its data can no longer be trusted) or recovery
    /// found corruption in data that had been flushed. Only an operator can bring it back.
    public static let offline = Code(name: "offline")
    /// A read asked for an offset outside [log start, log end].
    public static let offsetOutOfRange = Code(name: "offsetOutOfRange")
    /// Appended bytes are not a sequence of well-formed v2 record batches.
    public static let invalidBatch = Code(name: "invalidBatch")
    /// The log has been closed.
    public static let closed = Code(name: "closed")
    /// Metadata on disk could not be parsed.
    public static let corruptMetadata = Code(name: "corruptMetadata")
    /// The data directory is in use by another process (another broker): see
    /// `DataDirectoryLock`.
    public static let locked = Code(name: "locked")
    public var description: String { name }
  }

  public var code: Code
  public var message: String
  /// The `errno` behind an `.io`, `.noSpace` or `.readOnly` error, else 0.
  public var errno: Int32

  public init(_ code: Code, _ message: String, errno: Int32 = 0) {
    self.code = code
    self.message = message
    self.errno = errno
  }

  /// Classifies a failed system call.
  static func system(_ operation: String, path: String, errno err: Int32) -> StorageError {
    let reason = String(cString: strerror(err))
    switch err {
    case ENOSPC, EDQUOT:
      return StorageError(.noSpace, "\(operation) \(path): \(reason)", errno: err)
    case EROFS:
      return StorageError(.readOnly, "\(operation) \(path): \(reason)", errno: err)
    default:
      return StorageError(.io, "\(operation) \(path): \(reason)", errno: err)
    }
  }

  public var description: String { "StorageError(\(code)): \(message)" }
}
