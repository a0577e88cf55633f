import NIOCore

/// Runs a streaming decoder (zlib, LZ4F, zstd) into a `ByteBuffer` that never holds more than
/// `limit` bytes.
///
/// The output grows by doubling, capped at the limit. Once the limit is reached, the decoder
/// gets a 16-byte scratch buffer: if it can still produce a byte, the data expands past the
/// limit and decoding stops with `.decompressedSizeExceeded`. Memory therefore never depends
/// on sizes the input claims.
enum BoundedStreamDecoder {
  /// One decoding step: consume from `input[inPos...]`, write into `output[outPos...]`,
  /// advance both positions, return true when a frame (gzip member) ended.
  typealias Step = (
    _ input: UnsafeRawBufferPointer, _ inPos: inout Int,
    _ output: UnsafeMutableRawBufferPointer, _ outPos: inout Int
  ) throws(KafkaProtocolError) -> Bool

  static func run(
    _ input: ByteBuffer,
    limit: Int,
    codec: String,
    allocator: ByteBufferAllocator,
    step: Step
  ) throws(KafkaProtocolError) -> ByteBuffer {
    guard input.readableBytes > 0 else {
      throw KafkaProtocolError(.compressionFailed, "\(codec): empty compressed input")
    }
    let initial = min(limit, max(4096, input.readableBytes &* 4))
    var output = allocator.buffer(capacity: initial)

    try input.withUnsafeReadableBytes { (source) throws(KafkaProtocolError) -> Void in
      var inPos = 0
      while true {
        let room = limit - output.writerIndex
        let consumedBefore = inPos
        var produced = 0
        var offered = 0
        var frameEnded = false

        if room == 0 {
          // At the limit: probe whether anything is left to produce.
          var scratch: (UInt64, UInt64) = (0, 0)
          try withUnsafeMutableBytes(of: &scratch) { (probe) throws(KafkaProtocolError) -> Void in
            offered = probe.count
            frameEnded = try step(source, &inPos, probe, &produced)
          }
          if produced > 0 {
            throw KafkaProtocolError(
              .decompressedSizeExceeded,
              "\(codec): decompressed data exceeds the limit of \(limit) bytes")
          }
        } else {
          if output.writableBytes == 0 {
            let target = min(limit, max(4096, output.capacity &* 2))
            output.reserveCapacity(target)
          }
          try output.writeWithUnsafeMutableBytes(minimumWritableBytes: 1) {
            (region) throws(KafkaProtocolError) -> Int in
            let usable = UnsafeMutableRawBufferPointer(rebasing: region.prefix(room))
            offered = usable.count
            frameEnded = try step(source, &inPos, usable, &produced)
            return produced
          }
        }

        if frameEnded {
          if inPos >= source.count { return }
          continue  // another frame / member follows
        }
        if inPos >= source.count && produced < offered {
          throw KafkaProtocolError(.compressionFailed, "\(codec): input ends in the middle of a frame")
        }
        if inPos == consumedBefore && produced == 0 {
          throw KafkaProtocolError(.compressionFailed, "\(codec): decoder made no progress")
        }
      }
    }
    return output
  }
}

/// Calls `body` with the readable bytes of `buffer`, substituting a valid one-byte region
/// (with count 0) when the buffer has no storage, so C code never sees a NULL pointer.
func withNonNullReadableBytes<T>(
  _ buffer: ByteBuffer,
  _ body: (UnsafeRawPointer, Int) throws(KafkaProtocolError) -> T
) throws(KafkaProtocolError) -> T {
  try buffer.withUnsafeReadableBytes { (raw) throws(KafkaProtocolError) -> T in
    if let base = raw.baseAddress {
      return try body(base, raw.count)
    }
    var dummy: UInt8 = 0
    return try withUnsafeBytes(of: &dummy) { (one) throws(KafkaProtocolError) -> T in
      try body(one.baseAddress!, 0)
    }
  }
}
