public import NIOCore

extension RecordBatch {
  /// Checks every record of the batch without decoding any into values: the broker's
  /// record-level validation of a produced batch (Kafka's LogValidator).
  ///
  /// A compressed records section is first decompressed — at most `maxDecompressedSize`
  /// bytes, so a decompression bomb stops at the limit (`.decompressedSizeExceeded`) — and
  /// the decompressed bytes are only walked, then dropped. An uncompressed section is walked
  /// in place. Either way the walk allocates nothing and creates no values: one pass of
  /// bounds-checked varint reads per record (see `RecordWalker`).
  ///
  /// Checked, for each record: a length of at least 6 that fits in the bytes left; inside
  /// it the attributes, timestampDelta and offsetDelta; key and value lengths of -1 or
  /// within the record; a header count of at least 0 and at most the bytes left over two;
  /// per header a key length of at least 0 and a value length of at least -1, within the
  /// record; the fields filling the record's length exactly. Then: exactly `recordsCount`
  /// records and nothing after the last one. With `policy.requireDenseOffsets` (client
  /// batches) record *i* must have offsetDelta *i* and the last one `lastOffsetDelta`;
  /// otherwise (stored batches, which compaction thins) offset deltas must increase within
  /// 0...lastOffsetDelta. The header checks are `validate(_:)`'s; call it first.
  ///
  /// - Throws: `.corruptRecordBatch` for records that cannot be decoded, `.invalidVarint`
  ///   for an overlong varint, `.invalidRecord` for offset deltas breaking the rule above,
  ///   and, from decompression, `.compressionFailed`, `.decompressedSizeExceeded` or
  ///   `.unsupportedCompression` (runtime library missing). Messages name the record; when
  ///   one record is at fault (not for a missing record or bytes after the last one),
  ///   `recordIndex` is its index in the batch.
  ///
  /// With `timestampBounds`, every record timestamp other than -1 (none given) must lie in
  /// them (`.invalidTimestamp`, naming the record), as Kafka checks CreateTime records
  /// against `message.timestamp.before.max.ms` / `after.max.ms`. Returns the largest record
  /// timestamp and where it is, which the broker writes into the header when the producer's
  /// `maxTimestamp` differs (Kafka recomputes it the same way).
  @discardableResult
  public func validateRecords(
    _ policy: ValidationPolicy = .clientProduce, maxDecompressedSize: Int,
    timestampBounds: ClosedRange<Int64>? = nil,
    allocator: ByteBufferAllocator = ByteBufferAllocator()
  ) throws(KafkaProtocolError) -> RecordsSummary {
    let (records, count) = try recordsSection(maxDecompressedSize: maxDecompressedSize, allocator: allocator)
    let rules = RecordWalker.Rules(
      count: count, lastOffsetDelta: lastOffsetDelta, requireDenseOffsets: policy.requireDenseOffsets,
      baseTimestamp: baseTimestamp, timestampBounds: timestampBounds)
    do throws(RecordWalker.Failure) {
      return try records.withUnsafeReadableBytes { (raw) throws(RecordWalker.Failure) -> RecordsSummary in
        try RecordWalker.walk(raw, rules)
      }
    } catch {
      throw error.protocolError(count: count)
    }
  }
}

/// What a record walk found out besides the records being sound.
public struct RecordsSummary: Hashable, Sendable {
  /// The largest record timestamp (`baseTimestamp + timestampDelta`), ignoring records
  /// without one (-1); -1 when no record has one. Kafka's recomputed batch max timestamp.
  public var maxTimestamp: Int64
  /// The offsetDelta of the first record with `maxTimestamp`; -1 when there is none.
  public var maxTimestampOffsetDelta: Int32

  public init(maxTimestamp: Int64 = -1, maxTimestampOffsetDelta: Int32 = -1) {
    self.maxTimestamp = maxTimestamp
    self.maxTimestampOffsetDelta = maxTimestampOffsetDelta
  }
}

/// The record walk behind `RecordBatch.validateRecords`: the record format of CLIENTS.md §3
/// checked over raw bytes, no allocation, no values created. The cost is one pass of
/// varint reads per record (key, value and header bytes are skipped, not read); a failure
/// becomes an error message only once, at the end.
enum RecordWalker {
  /// Which record failed, and how.
  struct Failure: Error {
    var index: Int
    var problem: Problem
  }

  enum Problem: Error {
    /// The bytes end before record `index` starts (fewer records than `recordsCount`).
    case missingRecord
    /// The record itself does not decode (`RecordLayout.parse`, or its headers).
    case record(RecordLayout.Failure)
    case offsetDelta(value: Int32, expected: Int32)
    case offsetDeltaOrder(value: Int32, previous: Int32, last: Int32)
    /// The last record's offsetDelta is not the batch's lastOffsetDelta.
    case lastOffsetDelta(value: Int32, last: Int32)
    /// Bytes after the last of `recordsCount` records.
    case trailing(bytes: Int)
    /// A record timestamp outside the allowed bounds.
    case timestamp(value: Int64, bounds: ClosedRange<Int64>)
  }

  /// What a walk checks beyond the record format.
  struct Rules {
    var count: Int
    var lastOffsetDelta: Int32
    var requireDenseOffsets: Bool
    /// The batch's first timestamp, to which each record's timestampDelta is added.
    var baseTimestamp: Int64 = -1
    /// Record timestamps other than -1 must lie in these, when given.
    var timestampBounds: ClosedRange<Int64>? = nil
  }

  /// Walks `count` records filling `raw` exactly (see `RecordBatch.validateRecords`).
  static func walk(_ raw: UnsafeRawBufferPointer, _ rules: Rules) throws(Failure) -> RecordsSummary {
    var position = 0
    var previous: Int32 = -1
    var index = 0
    var summary = RecordsSummary()
    while index < rules.count {
      guard position < raw.count else { throw Failure(index: index, problem: .missingRecord) }
      let layout: RecordLayout
      do throws(RecordLayout.Failure) {
        layout = try record(raw, at: &position)
      } catch {
        throw Failure(index: index, problem: .record(error))
      }
      let offsetDelta = layout.offsetDelta
      if rules.requireDenseOffsets {
        guard Int(offsetDelta) == index else {
          throw Failure(index: index, problem: .offsetDelta(value: offsetDelta, expected: Int32(index)))
        }
      } else {
        guard offsetDelta > previous, offsetDelta <= rules.lastOffsetDelta else {
          throw Failure(
            index: index,
            problem: .offsetDeltaOrder(value: offsetDelta, previous: previous, last: rules.lastOffsetDelta))
        }
      }
      let timestamp = rules.baseTimestamp &+ layout.timestampDelta
      if timestamp != -1 {
        if let bounds = rules.timestampBounds, !bounds.contains(timestamp) {
          throw Failure(index: index, problem: .timestamp(value: timestamp, bounds: bounds))
        }
        if timestamp > summary.maxTimestamp {
          summary.maxTimestamp = timestamp
          summary.maxTimestampOffsetDelta = offsetDelta
        }
      }
      previous = offsetDelta
      index += 1
    }
    if rules.requireDenseOffsets && rules.count > 0 && previous != rules.lastOffsetDelta {
      throw Failure(
        index: rules.count - 1, problem: .lastOffsetDelta(value: previous, last: rules.lastOffsetDelta))
    }
    guard position == raw.count else {
      throw Failure(index: rules.count, problem: .trailing(bytes: raw.count - position))
    }
    return summary
  }

  /// Checks the record at `position` and moves past it; returns its layout. The
  /// fixed fields are `RecordLayout.parse`'s (as the iterator reads them); the headers are
  /// skipped here rather than decoded.
  @inline(__always)
  private static func record(_ raw: UnsafeRawBufferPointer, at position: inout Int)
    throws(RecordLayout.Failure) -> RecordLayout
  {
    let rest = UnsafeRawBufferPointer(rebasing: raw[position...])
    let layout = try RecordLayout.parse(rest)
    var cursor = RecordLayout.Cursor(raw: rest, position: layout.headersStart, end: layout.end)
    for _ in 0..<layout.headerCount {
      try cursor.skipBytes("header key length", allowNull: false)
      try cursor.skipBytes("header value length", allowNull: true)
    }
    guard cursor.position == cursor.end else {
      throw .leftover(
        consumed: cursor.position - layout.fieldsStart, declared: layout.end - layout.fieldsStart)
    }
    position += layout.end
    return layout
  }
}

extension RecordWalker.Failure {
  /// The record at fault, if one is: a missing record or bytes after the last one are the
  /// batch's fault, not a record's.
  var recordIndex: Int? {
    switch problem {
    case .missingRecord, .trailing: return nil
    case .record, .offsetDelta, .offsetDeltaOrder, .lastOffsetDelta, .timestamp: return index
    }
  }

  /// The error `validateRecords` throws; `count` is the batch's recordsCount.
  func protocolError(count: Int) -> KafkaProtocolError {
    var error = describe(count: count)
    error.recordIndex = recordIndex
    return error
  }

  private func describe(count: Int) -> KafkaProtocolError {
    let record = "record \(index) of \(count)"
    switch problem {
    case .missingRecord:
      return KafkaProtocolError(
        .corruptRecordBatch, "recordsCount \(count) but the records end after \(index) of them")
    case .record(.endsEarly(let field)):
      return KafkaProtocolError(.corruptRecordBatch, "\(record) ends inside its \(field)")
    case .record(.overlong(let field)):
      return KafkaProtocolError(.invalidVarint, "\(record): \(field) varint is overlong")
    case .record(.badLength(let field, let value, let available)):
      return KafkaProtocolError(
        .corruptRecordBatch, "\(record): \(field) \(value) with \(available) bytes left")
    case .record(.leftover(let consumed, let declared)):
      return KafkaProtocolError(
        .corruptRecordBatch, "\(record): fields take \(consumed) bytes but its length is \(declared)")
    case .offsetDelta(let value, let expected):
      return KafkaProtocolError(
        .invalidRecord, "\(record): offsetDelta \(value), expected \(expected) (offsets must be sequential)")
    case .offsetDeltaOrder(let value, let previous, let last):
      return KafkaProtocolError(
        .invalidRecord,
        "\(record): offsetDelta \(value) after \(previous), must increase up to lastOffsetDelta \(last)")
    case .lastOffsetDelta(let value, let last):
      return KafkaProtocolError(
        .invalidRecord, "\(record): offsetDelta \(value) but the batch's lastOffsetDelta is \(last)")
    case .timestamp(let value, let bounds):
      return KafkaProtocolError(
        .invalidTimestamp,
        "\(record): timestamp \(value) is out of range; it must be within [\(bounds.lowerBound), "
          + "\(bounds.upperBound)] (message.timestamp.before.max.ms / after.max.ms)")
    case .trailing(let bytes):
      return KafkaProtocolError(
        .corruptRecordBatch, "\(bytes) bytes after the last of recordsCount \(count) records")
    }
  }
}
