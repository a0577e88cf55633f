import CSluiceSupport
import NIOCore

/// zstd through `libzstd.so.1`, loaded with `dlopen` by CSluiceSupport.
enum ZstdCodec {
  static let level: Int32 = 3

  static func unavailable() -> KafkaProtocolError {
    let reason = String(cString: sluice_zstd_unavailable_reason())
    return KafkaProtocolError(.unsupportedCompression, "zstd: runtime library unavailable (\(reason))")
  }

  static func compress(_ input: ByteBuffer, level: Int32 = Self.level, allocator: ByteBufferAllocator)
    throws(KafkaProtocolError) -> ByteBuffer
  {
    guard sluice_zstd_available() != 0 else { throw unavailable() }
    let bound = sluice_zstd_compress_bound(input.readableBytes)
    guard bound > 0 else {
      throw KafkaProtocolError(.compressionFailed, "zstd: input of \(input.readableBytes) bytes is too large")
    }
    var output = allocator.buffer(capacity: bound)
    try withNonNullReadableBytes(input) { (src, count) throws(KafkaProtocolError) -> Void in
      var failure: UnsafePointer<CChar>? = nil
      try output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) {
        (region) throws(KafkaProtocolError) -> Int in
        var written = 0
        let rc = sluice_zstd_compress(region.baseAddress, region.count, src, count, level, &written, &failure)
        guard rc == 0 else {
          let reason = failure.map { String(cString: $0) } ?? "unknown error"
          throw KafkaProtocolError(.compressionFailed, "zstd: \(reason)")
        }
        return written
      }
    }
    return output
  }

  /// The largest window a frame may ask for: twice the limit, at least 8 MiB (what any level
  /// up to 19 uses for streamed input of unknown size), at most 128 MiB (zstd's own default).
  static func windowLogMax(limit: Int) -> Int32 {
    let needed = limit <= 1 ? 0 : Int.bitWidth - (limit - 1).leadingZeroBitCount
    return Int32(min(27, max(23, needed + 1)))
  }

  static func decompress(_ input: ByteBuffer, limit: Int, allocator: ByteBufferAllocator)
    throws(KafkaProtocolError) -> ByteBuffer
  {
    guard sluice_zstd_available() != 0 else { throw unavailable() }
    guard let stream = sluice_zstd_dstream_create(windowLogMax(limit: limit)) else {
      throw KafkaProtocolError(.compressionFailed, "zstd: cannot create a decompression stream")
    }
    defer { sluice_zstd_dstream_free(stream) }
    return try BoundedStreamDecoder.run(input, limit: limit, codec: "zstd", allocator: allocator) {
      (source, inPos, output, outPos) throws(KafkaProtocolError) -> Bool in
      var srcPos = inPos
      var dstPos = outPos
      var failure: UnsafePointer<CChar>? = nil
      let result = sluice_zstd_dstream_step(
        stream, source.baseAddress, source.count, &srcPos, output.baseAddress, output.count, &dstPos,
        &failure)
      inPos = srcPos
      outPos = dstPos
      if result == SLUICE_STEP_ERROR {
        let reason = failure.map { String(cString: $0) } ?? "unknown error"
        throw KafkaProtocolError(.compressionFailed, "zstd: \(reason)")
      }
      return result == SLUICE_STEP_FRAME_END
    }
  }
}
