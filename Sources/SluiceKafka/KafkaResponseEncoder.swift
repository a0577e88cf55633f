public import KafkaProtocol
public import NIOCore
public import SluiceBroker

/// One piece of an encoded response frame: bytes, or record data sent as it is (a file
/// region goes out with sendfile).
public enum FramePiece: Sendable {
  case bytes(ByteBuffer)
  case records(RecordPiece)

  public var count: Int {
    switch self {
    case .bytes(let bytes): bytes.readableBytes
    case .records(let piece): piece.count
    }
  }
}

/// Encodes a ``KafkaReply`` into a response frame: size prefix, header, body. Record data
/// that travels beside the body (``KafkaReply/records``) is handed to the generated encoder
/// through a records writer, which writes each such field's length prefix and notes where
/// its bytes go; the frame is then the encoded bytes cut at those points with the record
/// pieces in between. Nothing searches the encoded bytes.
public enum KafkaResponseEncoder {
  /// The frame as pieces (a single `.bytes` piece when no record data travels beside it).
  public static func encode(_ reply: KafkaReply, correlationId: Int32, apiVersion: Int16)
    throws(KafkaProtocolError) -> [FramePiece]
  {
    guard let body = reply.body else { return [] }
    // Sized once: the record bytes inside the body, plus room for the rest of a small
    // response (growing a buffer from empty reallocates it several times).
    var capacity = 256
    if case .fetch(let fetch) = body {
      for topic in fetch.responses {
        for partition in topic.partitions { capacity += (partition.records?.readableBytes ?? 0) + 64 }
      }
    }
    var buffer = ByteBufferAllocator().buffer(capacity: capacity)
    buffer.writeInteger(Int32(0))  // the frame size, set below
    try ResponseHeader(correlationId: correlationId).encode(
      to: &buffer, version: body.apiKey.responseHeaderVersion(apiVersion: apiVersion))
    guard case .fetch(let fetch) = body, !reply.records.isEmpty else {
      try body.encode(to: &buffer, version: apiVersion)
      buffer.setInteger(Int32(buffer.readableBytes - 4), at: buffer.readerIndex)
      return [.bytes(buffer)]
    }
    var writer = ExternalRecordsWriter(records: reply.records)
    try fetch.encode(to: &buffer, version: apiVersion, records: &writer)
    guard writer.index == reply.records.count else {
      throw KafkaProtocolError(
        .invalidLength, "the response has \(writer.index) records fields, \(reply.records.count) were given")
    }
    let external = writer.holes.reduce(0) { $0 + $1.data.count }
    buffer.setInteger(Int32(buffer.readableBytes - 4 + external), at: buffer.readerIndex)
    var pieces: [FramePiece] = []
    var cursor = buffer.readerIndex
    for hole in writer.holes {
      pieces.append(.bytes(buffer.getSlice(at: cursor, length: hole.offset - cursor)!))
      pieces += hole.data.pieces.map { .records($0) }
      cursor = hole.offset
    }
    pieces.append(.bytes(buffer.getSlice(at: cursor, length: buffer.writerIndex - cursor)!))
    return pieces
  }

  /// Writes the records fields of a Fetch response: those whose data travels beside the
  /// body get only their length prefix, and their position is noted.
  struct ExternalRecordsWriter: KafkaRecordsWriter {
    let records: [RecordData?]
    var index = 0
    var holes: [(offset: Int, data: RecordData)] = []

    init(records: [RecordData?]) { self.records = records }

    mutating func writeRecords(
      _ value: ByteBuffer?, compact: Bool, nullable: Bool, into buffer: inout ByteBuffer
    )
      throws(KafkaProtocolError)
    {
      let external = index < records.count ? records[index] : nil
      index += 1
      guard let external else {
        try buffer.kafkaWriteNullableBytes(value, compact: compact, nullable: nullable)
        return
      }
      buffer.kafkaWriteBytesLength(external.count, compact: compact)
      holes.append((buffer.writerIndex, external))
    }
  }
}
