public import NIOCore
import SluiceStorage

/// Records as they travel from a log to a front door's encoder: whole record batches, as
/// bytes in memory or as a region of a segment file that the network layer sends with
/// sendfile. Nothing downstream needs to know which log they came from.
public struct RecordData: Sendable {
  public var pieces: [RecordPiece]

  public init(pieces: [RecordPiece] = []) { self.pieces = pieces }

  /// Bytes in all pieces.
  public var count: Int { pieces.reduce(0) { $0 + $1.count } }

  /// Whether any piece is a file region (a front door that cannot send those loads them).
  public var hasFileRegions: Bool {
    pieces.contains { if case .file = $0 { true } else { false } }
  }

  /// Every piece in memory, concatenated (a `pread` for file regions).
  public func load() throws(BrokerError) -> ByteBuffer {
    if pieces.count == 1, case .bytes(let bytes) = pieces[0] { return bytes }
    var result = ByteBuffer()
    result.reserveCapacity(count)
    for piece in pieces {
      var bytes = try piece.load()
      result.writeBuffer(&bytes)
    }
    return result
  }
}

/// One piece of ``RecordData``.
public enum RecordPiece: Sendable {
  case bytes(ByteBuffer)
  case file(FileSlice)

  public var count: Int {
    switch self {
    case .bytes(let bytes): bytes.readableBytes
    case .file(let slice): slice.length
    }
  }

  public func load() throws(BrokerError) -> ByteBuffer {
    switch self {
    case .bytes(let bytes): return bytes
    case .file(let slice): return try slice.load()
    }
  }
}

/// A region of a segment file. The file stays readable for as long as a handle from
/// ``makeFileHandle()`` is open, even if retention deletes the segment meanwhile.
public struct FileSlice: Sendable {
  let file: SegmentFile
  public let position: Int
  public let length: Int

  /// A new descriptor for the file (the caller closes it once the region is sent).
  public func makeFileHandle() throws(BrokerError) -> NIOFileHandle {
    do {
      return try file.makeFileHandle()
    } catch {
      throw BrokerError(.kafkaStorageError, error.message)
    }
  }

  public func load() throws(BrokerError) -> ByteBuffer {
    do {
      return try LogChunk.file(file, position: position, length: length).load()
    } catch {
      throw BrokerError(.kafkaStorageError, error.message)
    }
  }
}

extension RecordData {
  /// The pieces of a log read.
  init(_ read: LogReadResult) {
    self.init(
      pieces: read.chunks.map { chunk in
        switch chunk {
        case .bytes(let bytes): .bytes(bytes)
        case .file(let file, let position, let length):
          .file(FileSlice(file: file, position: position, length: length))
        }
      })
  }
}
