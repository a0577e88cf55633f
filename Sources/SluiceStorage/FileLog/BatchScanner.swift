import KafkaProtocol
import NIOCore

/// What the log needs to know of a stored batch without decoding its records.
struct BatchInfo: Equatable {
  var position: Int
  var size: Int
  var baseOffset: Int64
  var lastOffset: Int64
  var maxTimestamp: Int64
  var nextOffset: Int64 { lastOffset + 1 }
}

/// Walks the record batches of a segment file through a read window, so a scan costs one
/// `pread` per window rather than one per batch.
///
/// Structural checks (magic, a length that fits the file and the header) are always made;
/// with `verifyCRC` every batch's CRC-32C is checked too (recovery). A batch that fails a
/// check ends the scan with `.corrupt`.
struct BatchScanner {
  enum Step: Equatable {
    case batch(BatchInfo)
    case end
    case corrupt(position: Int, reason: String)
  }

  static let headerBytes = RecordBatch.Layout.headerSize
  let file: SegmentFile
  let end: Int
  let verifyCRC: Bool
  let windowSize: Int
  private(set) var position: Int
  private var window = ByteBuffer()
  private var windowStart = 0

  init(file: SegmentFile, from position: Int, end: Int, verifyCRC: Bool, windowSize: Int = 1 << 20) {
    self.file = file
    self.position = position
    self.end = end
    self.verifyCRC = verifyCRC
    self.windowSize = windowSize
  }

  /// Makes bytes [position, position + count) available in the window.
  private mutating func ensure(_ count: Int) throws(StorageError) -> Bool {
    if position >= windowStart && position + count <= windowStart + window.readableBytes { return true }
    guard position + count <= end else { return false }
    let length = min(max(count, windowSize), end - position)
    window = try file.read(at: position, length: length)
    windowStart = position
    return window.readableBytes >= count
  }

  /// The bytes [position, position + length) if the window already holds them, without a read.
  func bytesInWindow(at position: Int, length: Int) -> ByteBuffer? {
    guard length > 0, position >= windowStart, position + length <= windowStart + window.readableBytes else {
      return nil
    }
    return window.getSlice(at: window.readerIndex + position - windowStart, length: length)
  }

  mutating func next() throws(StorageError) -> Step {
    if position >= end { return .end }
    guard try ensure(Self.headerBytes) else {
      return .corrupt(
        position: position, reason: "\(end - position) bytes at the end are less than a batch header")
    }
    let at = window.readerIndex + (position - windowStart)
    let baseOffset = window.getInteger(at: at, as: Int64.self)!
    let batchLength = window.getInteger(at: at + 8, as: Int32.self)!
    let magic = window.getInteger(at: at + 16, as: Int8.self)!
    let lastOffsetDelta = window.getInteger(at: at + 23, as: Int32.self)!
    let maxTimestamp = window.getInteger(at: at + 35, as: Int64.self)!
    let size = Int(batchLength) + RecordBatch.Layout.logOverhead
    guard magic == 2 else { return .corrupt(position: position, reason: "magic \(magic)") }
    guard batchLength >= Int32(Self.headerBytes - RecordBatch.Layout.logOverhead), lastOffsetDelta >= 0 else {
      return .corrupt(
        position: position, reason: "batch length \(batchLength), last offset delta \(lastOffsetDelta)")
    }
    guard position + size <= end else {
      return .corrupt(
        position: position, reason: "batch of \(size) bytes runs past the end (\(end - position) left)")
    }
    if verifyCRC {
      guard try ensure(size) else {
        return .corrupt(position: position, reason: "batch of \(size) bytes runs past the end")
      }
      let start = window.readerIndex + (position - windowStart)
      let slice = window.getSlice(at: start, length: size)!
      let batch = try? RecordBatch(slice)
      guard let batch, batch.verifyCRC() else {
        return .corrupt(position: position, reason: "CRC mismatch in batch at offset \(baseOffset)")
      }
    }
    let info = BatchInfo(
      position: position, size: size, baseOffset: baseOffset,
      lastOffset: baseOffset + Int64(lastOffsetDelta), maxTimestamp: maxTimestamp)
    position += size
    return .batch(info)
  }
}

/// The first bad batch of a segment: where it starts, the offset it should hold, and why it
/// is bad.
struct SegmentDamage: Equatable {
  var position: Int
  var expectedOffset: Int64
  var reason: String
}

extension BatchScanner {
  /// Reads a segment file batch by batch with every check recovery makes: structure, CRC-32C,
  /// and offsets dense from `baseOffset` (the base offset is outside the CRC: this catches
  /// damage to it). Calls `body` for each intact batch, in order; returns the first damage,
  /// or nil when the file is intact to `end`. Shared by recovery and `FileLog.verify`, so
  /// that what verify reports is exactly what an open would find.
  static func verify(
    file: SegmentFile, baseOffset: Int64, end: Int, _ body: (BatchInfo) -> Void
  ) throws(StorageError) -> SegmentDamage? {
    var scanner = BatchScanner(file: file, from: 0, end: end, verifyCRC: true)
    var expected = baseOffset
    while true {
      switch try scanner.next() {
      case .batch(let info):
        guard info.baseOffset == expected else {
          return SegmentDamage(
            position: info.position, expectedOffset: expected,
            reason: "batch has offset \(info.baseOffset), expected \(expected)")
        }
        body(info)
        expected = info.nextOffset
      case .end:
        return nil
      case .corrupt(let position, let reason):
        return SegmentDamage(position: position, expectedOffset: expected, reason: reason)
      }
    }
  }
}
