public import NIOCore

/// A zero-copy view of one RecordBatch (magic 2) held in a `ByteBuffer`.
///
/// Kafka's unit of storage and transfer: the broker validates a batch's header and CRC,
/// rewrites its `baseOffset` (and, for LogAppendTime topics, its max timestamp) in place and
/// stores the bytes verbatim; fetches send them back unchanged. This type owns that header:
/// getters read the fixed offsets of CLIENTS.md §3 straight from the buffer, setters patch
/// them in place, and `validate(_:)` performs the broker's checks that need no
/// decompression. Records are decoded lazily (`makeRecordIterator`), never on the hot path.
///
/// The view's bytes are `buffer`'s readable bytes, the batch starting at the reader index.
/// Construction only guarantees that the 61-byte header is present, so getters never trap;
/// whether the rest is consistent (magic, length, CRC, counts) is `validate(_:)`'s job.
/// Header fields are meaningful only when `magic == 2`.
public struct RecordBatch: Hashable, Sendable {
  /// Byte offsets of the header fields from the start of the batch.
  public enum Layout {
    public static let baseOffset = 0
    public static let batchLength = 8
    public static let partitionLeaderEpoch = 12
    public static let magic = 16
    public static let crc = 17
    public static let attributes = 21
    public static let lastOffsetDelta = 23
    public static let baseTimestamp = 27
    public static let maxTimestamp = 35
    public static let producerId = 43
    public static let producerEpoch = 51
    public static let baseSequence = 53
    public static let recordsCount = 57
    /// Size of the fixed header; the records (or one compressed block of them) follow.
    public static let headerSize = 61
    /// Bytes before the region `batchLength` counts (baseOffset + batchLength).
    public static let logOverhead = 12
    /// First byte covered by the CRC.
    public static let crcStart = 21
  }

  /// The only magic value this view understands.
  public static let currentMagic: Int8 = 2

  /// The batch's bytes: readable bytes from the reader index.
  public private(set) var buffer: ByteBuffer

  /// Wraps `buffer`'s readable bytes as a batch; throws `.truncated` when they are shorter
  /// than the 61-byte header. Nothing else is checked: call `validate(_:)`.
  public init(_ buffer: ByteBuffer) throws(KafkaProtocolError) {
    guard buffer.readableBytes >= Layout.headerSize else {
      throw KafkaProtocolError(
        .truncated, "record batch has \(buffer.readableBytes) bytes, header needs \(Layout.headerSize)")
    }
    self.buffer = buffer
  }

  /// Wraps a buffer known to hold at least the header (the builder's and splitter's output).
  init(uncheckedBuffer buffer: ByteBuffer) {
    assert(buffer.readableBytes >= Layout.headerSize)
    self.buffer = buffer
  }

  @inline(__always)
  private func field<T: FixedWidthInteger>(_ offset: Int, as: T.Type = T.self) -> T {
    // The initializer guarantees the whole header is readable.
    buffer.getInteger(at: buffer.readerIndex + offset, as: T.self)!
  }

  // MARK: Header fields

  /// Offset of the first record; the broker overwrites it with the log end offset.
  public var baseOffset: Int64 { field(Layout.baseOffset) }
  /// Bytes after this field (the whole batch is `batchLength + 12` bytes).
  public var batchLength: Int32 { field(Layout.batchLength) }
  public var partitionLeaderEpoch: Int32 { field(Layout.partitionLeaderEpoch) }
  public var magic: Int8 { field(Layout.magic) }
  /// The CRC-32C stored in the header.
  public var crc: UInt32 { field(Layout.crc) }
  public var attributes: Attributes { Attributes(rawValue: field(Layout.attributes)) }
  public var lastOffsetDelta: Int32 { field(Layout.lastOffsetDelta) }
  public var baseTimestamp: Int64 { field(Layout.baseTimestamp) }
  public var maxTimestamp: Int64 { field(Layout.maxTimestamp) }
  /// -1 when the producer is neither idempotent nor transactional.
  public var producerId: Int64 { field(Layout.producerId) }
  public var producerEpoch: Int16 { field(Layout.producerEpoch) }
  /// -1 when the producer is neither idempotent nor transactional.
  public var baseSequence: Int32 { field(Layout.baseSequence) }
  public var recordsCount: Int32 { field(Layout.recordsCount) }

  /// The codec of the records section; nil for the reserved codec ids 5–7.
  public var compression: CompressionCodec? { CompressionCodec(attributes: attributes.rawValue) }
  public var timestampType: TimestampType { attributes.timestampType }
  public var isTransactional: Bool { attributes.isTransactional }
  public var isControl: Bool { attributes.isControl }
  public var hasDeleteHorizon: Bool { attributes.hasDeleteHorizon }

  /// Offset of the last record (`baseOffset + lastOffsetDelta`, wrapping like Kafka's).
  public var lastOffset: Int64 { baseOffset &+ Int64(lastOffsetDelta) }
  /// The offset after this batch.
  public var nextOffset: Int64 { lastOffset &+ 1 }
  /// Size the batch declares for itself: `batchLength + 12`.
  public var declaredSize: Int { Int(batchLength) + Layout.logOverhead }
  /// Bytes this view holds.
  public var size: Int { buffer.readableBytes }

  // MARK: In-place updates

  /// Overwrites `baseOffset` (offset assignment on append). The CRC does not cover it.
  public mutating func setBaseOffset(_ offset: Int64) {
    buffer.setInteger(offset, at: buffer.readerIndex + Layout.baseOffset)
  }

  /// Overwrites the partition leader epoch. The CRC does not cover it.
  public mutating func setPartitionLeaderEpoch(_ epoch: Int32) {
    buffer.setInteger(epoch, at: buffer.readerIndex + Layout.partitionLeaderEpoch)
  }

  /// Sets `maxTimestamp` and the timestamp-type bit, then rewrites the CRC (both fields are
  /// covered by it). For LogAppendTime topics the broker calls this with the append time;
  /// consumers then report that time for every record of the batch.
  public mutating func setMaxTimestamp(_ timestamp: Int64, timestampType: TimestampType) {
    var attributes = self.attributes
    attributes.timestampType = timestampType
    buffer.setInteger(attributes.rawValue, at: buffer.readerIndex + Layout.attributes)
    buffer.setInteger(timestamp, at: buffer.readerIndex + Layout.maxTimestamp)
    updateCRC()
  }

  /// Recomputes the CRC over bytes 21..end and stores it.
  public mutating func updateCRC() {
    buffer.setInteger(computeCRC(), at: buffer.readerIndex + Layout.crc)
  }

  // MARK: Checks

  /// CRC-32C of bytes 21..end (attributes through the last record).
  public func computeCRC() -> UInt32 {
    buffer.withUnsafeReadableBytes {
      CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[Layout.crcStart...]))
    }
  }

  /// Whether the stored CRC matches the bytes.
  public func verifyCRC() -> Bool {
    computeCRC() == crc
  }

  /// Performs the broker-side checks that need no decompression, in this order:
  /// magic is 2 (`.unsupportedMagic`); `batchLength` covers exactly the buffer and at least
  /// the header (`.truncated` when the buffer is shorter, `.corruptRecordBatch` otherwise);
  /// the CRC (`.crcMismatch`); a known compression codec (`.unsupportedCompression`); then
  /// the record counts, control flag and producer sequence as `policy` demands
  /// (`.corruptRecordBatch`).
  ///
  /// Kafka maps a CRC mismatch and a malformed size to CORRUPT_MESSAGE (2), the policy
  /// checks to INVALID_RECORD (87).
  public func validate(_ policy: ValidationPolicy = .clientProduce) throws(KafkaProtocolError) {
    guard magic == Self.currentMagic else {
      throw KafkaProtocolError(.unsupportedMagic, "record batch magic \(magic), expected 2")
    }
    let length = Int(batchLength)
    guard length >= Layout.headerSize - Layout.logOverhead else {
      throw KafkaProtocolError(.corruptRecordBatch, "batchLength \(length) is smaller than the header")
    }
    let available = buffer.readableBytes - Layout.logOverhead
    guard length <= available else {
      throw KafkaProtocolError(.truncated, "batchLength \(length) but only \(available) bytes follow it")
    }
    guard length == available else {
      throw KafkaProtocolError(
        .corruptRecordBatch, "batchLength \(length) but \(available) bytes follow it")
    }
    let stored = crc
    let computed = computeCRC()
    guard stored == computed else {
      throw KafkaProtocolError(
        .crcMismatch, "record batch CRC \(hex(stored)), computed \(hex(computed))")
    }
    let attributes = self.attributes
    guard let codec = CompressionCodec(attributes: attributes.rawValue) else {
      throw KafkaProtocolError(
        .unsupportedCompression, "compression codec id \(attributes.rawValue & 0x07)")
    }
    let count = Int64(recordsCount)
    let denseCount = Int64(lastOffsetDelta) + 1
    if policy.requireDenseOffsets {
      guard count >= 1 else {
        throw KafkaProtocolError(.corruptRecordBatch, "recordsCount \(count): a batch must hold records")
      }
      guard count == denseCount else {
        throw KafkaProtocolError(
          .corruptRecordBatch, "recordsCount \(count) but lastOffsetDelta \(lastOffsetDelta)")
      }
    } else {
      // Compaction may drop records (and even all of them) but keeps lastOffsetDelta.
      guard count >= 0, count <= denseCount else {
        throw KafkaProtocolError(
          .corruptRecordBatch, "recordsCount \(count) but lastOffsetDelta \(lastOffsetDelta)")
      }
    }
    if codec == .none {
      // Each record takes at least 7 bytes, so an uncompressed count is bounded by the size.
      let room = Int64(length + Layout.logOverhead - Layout.headerSize)
      guard count <= room / Record.minimumEncodedSize else {
        throw KafkaProtocolError(
          .corruptRecordBatch, "recordsCount \(count) cannot fit in \(room) bytes of records")
      }
    }
    if !policy.allowControlBatches && attributes.isControl {
      throw KafkaProtocolError(.corruptRecordBatch, "clients may not write control batches")
    }
    if policy.requireSequenceWithProducerId && producerId >= 0 && baseSequence < 0 {
      throw KafkaProtocolError(
        .corruptRecordBatch, "producerId \(producerId) with invalid baseSequence \(baseSequence)")
    }
  }

  private func hex(_ value: UInt32) -> String {
    "0x" + String(value, radix: 16, uppercase: true)
  }
}

extension RecordBatch {
  /// Which of Kafka's batch rules `validate(_:)` enforces beyond magic, length and CRC.
  public struct ValidationPolicy: Hashable, Sendable {
    /// `recordsCount >= 1` and `recordsCount == lastOffsetDelta + 1`. Off for stored data,
    /// where compaction leaves gaps; then `0 <= recordsCount <= lastOffsetDelta + 1`.
    public var requireDenseOffsets: Bool
    /// Whether a control batch (transaction marker) is acceptable.
    public var allowControlBatches: Bool
    /// `producerId >= 0` requires `baseSequence >= 0`.
    public var requireSequenceWithProducerId: Bool

    public init(requireDenseOffsets: Bool, allowControlBatches: Bool, requireSequenceWithProducerId: Bool) {
      self.requireDenseOffsets = requireDenseOffsets
      self.allowControlBatches = allowControlBatches
      self.requireSequenceWithProducerId = requireSequenceWithProducerId
    }

    /// Batches a client sends in a Produce request.
    public static let clientProduce = ValidationPolicy(
      requireDenseOffsets: true, allowControlBatches: false, requireSequenceWithProducerId: true)
    /// Batches read back from a log or a Fetch response (compacted, transaction markers).
    public static let stored = ValidationPolicy(
      requireDenseOffsets: false, allowControlBatches: true, requireSequenceWithProducerId: false)
  }

  /// The attributes field: codec, timestamp type and flags.
  public struct Attributes: Hashable, Sendable {
    public var rawValue: Int16

    public init(rawValue: Int16) { self.rawValue = rawValue }

    public init(
      compression: CompressionCodec = .none, timestampType: TimestampType = .createTime,
      isTransactional: Bool = false, isControl: Bool = false, hasDeleteHorizon: Bool = false
    ) {
      self.rawValue = Int16(compression.rawValue)
      self.timestampType = timestampType
      self.isTransactional = isTransactional
      self.isControl = isControl
      self.hasDeleteHorizon = hasDeleteHorizon
    }

    static let timestampTypeBit: Int16 = 1 << 3
    static let transactionalBit: Int16 = 1 << 4
    static let controlBit: Int16 = 1 << 5
    static let deleteHorizonBit: Int16 = 1 << 6

    /// Bits 0–2; nil for the reserved ids 5–7.
    public var compression: CompressionCodec? { CompressionCodec(attributes: rawValue) }

    public var timestampType: TimestampType {
      get { rawValue & Self.timestampTypeBit != 0 ? .logAppendTime : .createTime }
      set { set(Self.timestampTypeBit, newValue == .logAppendTime) }
    }
    public var isTransactional: Bool {
      get { rawValue & Self.transactionalBit != 0 }
      set { set(Self.transactionalBit, newValue) }
    }
    public var isControl: Bool {
      get { rawValue & Self.controlBit != 0 }
      set { set(Self.controlBit, newValue) }
    }
    /// Set by compaction when `baseTimestamp` holds the delete horizon of tombstones.
    public var hasDeleteHorizon: Bool {
      get { rawValue & Self.deleteHorizonBit != 0 }
      set { set(Self.deleteHorizonBit, newValue) }
    }

    private mutating func set(_ bit: Int16, _ on: Bool) {
      rawValue = on ? rawValue | bit : rawValue & ~bit
    }
  }
}

/// What a batch's timestamps mean (attributes bit 3).
public enum TimestampType: Int8, Hashable, Sendable {
  /// Each record's timestamp is the producer's: `baseTimestamp + timestampDelta`.
  case createTime = 0
  /// The broker's append time, stored once as `maxTimestamp`, applies to every record.
  case logAppendTime = 1
}
