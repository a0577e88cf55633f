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
  public func validateRecords(
    _ policy: ValidationPolicy = .clientProduce, maxDecompressedSize: Int,
    allocator: ByteBufferAllocator = ByteBufferAllocator()
  ) throws(KafkaProtocolError) {
    let (records, count) = try recordsSection(maxDecompressedSize: maxDecompressedSize, allocator: allocator)
    let lastOffsetDelta = self.lastOffsetDelta
    let dense = policy.requireDenseOffsets
    do throws(RecordWalker.Failure) {
      try records.withUnsafeReadableBytes { (raw) throws(RecordWalker.Failure) -> Void in
        try RecordWalker.walk(raw, count: count, lastOffsetDelta: lastOffsetDelta, requireDenseOffsets: dense)
      }
    } catch {
      throw error.protocolError(count: count)
    }
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
  }

  /// Walks `count` records filling `raw` exactly (see `RecordBatch.validateRecords`).
  static func walk(
    _ raw: UnsafeRawBufferPointer, count: Int, lastOffsetDelta: Int32, requireDenseOffsets: Bool
  ) throws(Failure) {
    var position = 0
    var previous: Int32 = -1
    var index = 0
    while index < count {
      guard position < raw.count else { throw Failure(index: index, problem: .missingRecord) }
      let offsetDelta: Int32
      do throws(RecordLayout.Failure) {
        offsetDelta = try record(raw, at: &position)
      } catch {
        throw Failure(index: index, problem: .record(error))
      }
      if requireDenseOffsets {
        guard Int(offsetDelta) == index else {
          throw Failure(index: index, problem: .offsetDelta(value: offsetDelta, expected: Int32(index)))
        }
      } else {
        guard offsetDelta > previous, offsetDelta <= lastOffsetDelta else {
          throw Failure(
            index: index,
            problem: .offsetDeltaOrder(value: offsetDelta, previous: previous, last: lastOffsetDelta))
        }
      }
      previous = offsetDelta
      index += 1
    }
    if requireDenseOffsets && count > 0 && previous != lastOffsetDelta {
      throw Failure(index: count - 1, problem: .lastOffsetDelta(value: previous, last: lastOffsetDelta))
    }
    guard position == raw.count else {
      throw Failure(index: count, problem: .trailing(bytes: raw.count - position))
    }
  }

  /// Checks the record at `position` and moves past it; returns its offsetDelta. The
  /// fixed fields are `RecordLayout.parse`'s (as the iterator reads them); the headers are
  /// skipped here rather than decoded.
  @inline(__always)
  private static func record(_ raw: UnsafeRawBufferPointer, at position: inout Int)
    throws(RecordLayout.Failure) -> Int32
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
    return layout.offsetDelta
  }
}

extension RecordWalker.Failure {
  /// The record at fault, if one is: a missing record or bytes after the last one are the
  /// batch's fault, not a record's.
  var recordIndex: Int? {
    switch problem {
    case .missingRecord, .trailing: return nil
    case .record, .offsetDelta, .offsetDeltaOrder, .lastOffsetDelta: return index
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
    case .trailing(let bytes):
      return KafkaProtocolError(
        .corruptRecordBatch, "\(bytes) bytes after the last of recordsCount \(count) records")
    }
  }
}
