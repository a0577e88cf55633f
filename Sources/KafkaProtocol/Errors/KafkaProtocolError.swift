/// An error raised while decoding or encoding Kafka protocol data.
///
/// Every malformed input maps to one of these codes; decoders never trap on hostile bytes.
/// Shaped like `PSQLError`: a struct with a nested `Code` of static members, so new codes do
/// not break a caller's `switch`.
public struct KafkaProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    enum Base: String, Hashable, Sendable {
      case truncated
      case invalidLength
      case invalidVarint
      case unsupportedVersion
      case nullNotAllowed
      case fieldNotSupportedInVersion
      case frameTooLarge
      case trailingBytes
      case unknownApiKey
      case corruptRecordBatch
      case invalidRecord
      case crcMismatch
      case unsupportedMagic
      case unsupportedCompression
      case compressionFailed
      case decompressedSizeExceeded
      case invalidTimestamp
    }
    let base: Base

    /// The input ended before the value was complete.
    public static let truncated = Code(base: .truncated)
    /// A length or count field is negative (other than -1 for null) or larger than the input.
    public static let invalidLength = Code(base: .invalidLength)
    /// A varint ran past its maximum width.
    public static let invalidVarint = Code(base: .invalidVarint)
    /// The API version is outside the message's valid versions.
    public static let unsupportedVersion = Code(base: .unsupportedVersion)
    /// A null was read or written where the version does not allow one.
    public static let nullNotAllowed = Code(base: .nullNotAllowed)
    /// A non-ignorable field has a non-default value the target version cannot carry.
    public static let fieldNotSupportedInVersion = Code(base: .fieldNotSupportedInVersion)
    /// A frame's size prefix exceeds the configured maximum (or is negative).
    public static let frameTooLarge = Code(base: .frameTooLarge)
    /// Bytes were left over after a message that must consume its whole frame.
    public static let trailingBytes = Code(base: .trailingBytes)
    /// The request header names an API key this codec does not know.
    public static let unknownApiKey = Code(base: .unknownApiKey)
    /// A record batch or record is structurally invalid.
    public static let corruptRecordBatch = Code(base: .corruptRecordBatch)
    /// A record decodes but breaks a rule of its batch (offset deltas out of order).
    public static let invalidRecord = Code(base: .invalidRecord)
    /// A record batch's CRC-32C does not match its contents.
    public static let crcMismatch = Code(base: .crcMismatch)
    /// A record batch has a magic byte other than 2.
    public static let unsupportedMagic = Code(base: .unsupportedMagic)
    /// The compression codec is unknown, or its runtime library is unavailable.
    public static let unsupportedCompression = Code(base: .unsupportedCompression)
    /// The codec reported corrupt or undecodable data.
    public static let compressionFailed = Code(base: .compressionFailed)
    /// Decompression would produce more bytes than the caller allowed.
    public static let decompressedSizeExceeded = Code(base: .decompressedSizeExceeded)
    /// A record's timestamp lies outside the bounds the caller allowed, or a producer set
    /// the LogAppendTime bit (Kafka's INVALID_TIMESTAMP).
    public static let invalidTimestamp = Code(base: .invalidTimestamp)

    public var description: String { base.rawValue }
  }

  public var code: Code
  /// Human-readable detail: which field, which length, which limit.
  public var message: String
  /// The record the error is about, as its index within its batch, when it is about one
  /// record (`RecordBatch.validateRecords`); nil otherwise. Produce v8+ reports it to the
  /// client as a `record_errors` entry (KIP-467).
  public var recordIndex: Int?

  public init(_ code: Code, _ message: String = "", recordIndex: Int? = nil) {
    self.code = code
    self.message = message
    self.recordIndex = recordIndex
  }

  public var description: String {
    message.isEmpty ? "KafkaProtocolError(\(code))" : "KafkaProtocolError(\(code)): \(message)"
  }
}
