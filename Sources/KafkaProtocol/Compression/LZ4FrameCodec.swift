import CSluiceSupport
import NIOCore

/// The LZ4 frame format (magic 0x184D2204) through `liblz4.so.1`, loaded with `dlopen` by
/// CSluiceSupport. Kafka's record batches (magic 2) carry standard LZ4 frames.
enum LZ4FrameCodec {
  static func unavailable() -> KafkaProtocolError {
    let reason = String(cString: sluice_lz4_unavailable_reason())
    return KafkaProtocolError(.unsupportedCompression, "lz4: runtime library unavailable (\(reason))")
  }

  static func compress(_ input: ByteBuffer, level: Int32 = 0, allocator: ByteBufferAllocator)
    throws(KafkaProtocolError) -> ByteBuffer
  {
    guard sluice_lz4_available() != 0 else { throw unavailable() }
    let bound = sluice_lz4_compress_frame_bound(input.readableBytes)
    guard bound > 0 else {
      throw KafkaProtocolError(.compressionFailed, "lz4: input of \(input.readableBytes) bytes is too large")
    }
    var output = allocator.buffer(capacity: bound)
    try withNonNullReadableBytes(input) { (src, count) throws(KafkaProtocolError) -> Void in
      var failure: UnsafePointer<CChar>? = nil
      try output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) {
        (region) throws(KafkaProtocolError) -> Int in
        var written = 0
        let rc = sluice_lz4_compress_frame(
          region.baseAddress, region.count, src, count, level, &written, &failure)
        guard rc == 0 else {
          let reason = failure.map { String(cString: $0) } ?? "unknown error"
          throw KafkaProtocolError(.compressionFailed, "lz4: \(reason)")
        }
        return written
      }
    }
    return output
  }

  static func decompress(_ input: ByteBuffer, limit: Int, allocator: ByteBufferAllocator)
    throws(KafkaProtocolError) -> ByteBuffer
  {
    guard sluice_lz4_available() != 0 else { throw unavailable() }
    guard let context = sluice_lz4_dctx_create() else {
      throw KafkaProtocolError(.compressionFailed, "lz4: cannot create a decompression context")
    }
    defer { sluice_lz4_dctx_free(context) }
    return try BoundedStreamDecoder.run(input, limit: limit, codec: "lz4", allocator: allocator) {
      (source, inPos, output, outPos) throws(KafkaProtocolError) -> Bool in
      var srcPos = inPos
      var dstPos = outPos
      var failure: UnsafePointer<CChar>? = nil
      let result = sluice_lz4_dctx_step(
        context, source.baseAddress, source.count, &srcPos, output.baseAddress, output.count, &dstPos,
        &failure)
      inPos = srcPos
      outPos = dstPos
      if result == SLUICE_STEP_ERROR {
        let reason = failure.map { String(cString: $0) } ?? "unknown error"
        throw KafkaProtocolError(.compressionFailed, "lz4: \(reason)")
      }
      return result == SLUICE_STEP_FRAME_END
    }
  }
}
