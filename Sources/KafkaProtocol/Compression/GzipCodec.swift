import CZlib
import NIOCore

/// gzip through the system zlib.
enum GzipCodec {
  /// windowBits for deflate: 15 (32 KiB window) + 16 (gzip wrapper).
  private static let gzipWindowBits: Int32 = 31
  /// windowBits for inflate: 15 + 32 (detect gzip or zlib wrapper automatically).
  private static let autoDetectWindowBits: Int32 = 47

  static func compress(
    _ input: ByteBuffer, level: Int32 = Z_DEFAULT_COMPRESSION, allocator: ByteBufferAllocator
  )
    throws(KafkaProtocolError) -> ByteBuffer
  {
    let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    stream.initialize(to: z_stream())
    defer {
      stream.deinitialize(count: 1)
      stream.deallocate()
    }
    let rc = deflateInit2_(
      stream, level, Z_DEFLATED, gzipWindowBits, 8, Z_DEFAULT_STRATEGY,
      zlibVersion(), Int32(MemoryLayout<z_stream>.size))
    guard rc == Z_OK else {
      throw KafkaProtocolError(.compressionFailed, "gzip: deflateInit2 failed (\(rc))")
    }
    defer { deflateEnd(stream) }

    let count = input.readableBytes
    let bound = Int(deflateBound(stream, UInt(count))) + 64
    var output = allocator.buffer(capacity: bound)
    try withNonNullReadableBytes(input) { (src, n) throws(KafkaProtocolError) -> Void in
      stream.pointee.next_in = UnsafeMutablePointer(mutating: src.assumingMemoryBound(to: Bytef.self))
      var remainingIn = n
      while true {
        if output.writableBytes == 0 {
          output.reserveCapacity(output.capacity &* 2)
        }
        var status: Int32 = Z_OK
        output.writeWithUnsafeMutableBytes(minimumWritableBytes: 1) { region in
          let chunkIn = min(remainingIn, Int(UInt32.max))
          let chunkOut = min(region.count, Int(UInt32.max))
          stream.pointee.avail_in = UInt32(chunkIn)
          stream.pointee.next_out = region.baseAddress!.assumingMemoryBound(to: Bytef.self)
          stream.pointee.avail_out = UInt32(chunkOut)
          let flush = chunkIn == remainingIn ? Z_FINISH : Z_NO_FLUSH
          status = deflate(stream, flush)
          remainingIn -= chunkIn - Int(stream.pointee.avail_in)
          return chunkOut - Int(stream.pointee.avail_out)
        }
        if status == Z_STREAM_END { return }
        guard status == Z_OK || status == Z_BUF_ERROR else {
          throw KafkaProtocolError(.compressionFailed, "gzip: deflate failed (\(status))")
        }
      }
    }
    return output
  }

  static func decompress(_ input: ByteBuffer, limit: Int, allocator: ByteBufferAllocator)
    throws(KafkaProtocolError) -> ByteBuffer
  {
    let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    stream.initialize(to: z_stream())
    defer {
      stream.deinitialize(count: 1)
      stream.deallocate()
    }
    let rc = inflateInit2_(stream, autoDetectWindowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
    guard rc == Z_OK else {
      throw KafkaProtocolError(.compressionFailed, "gzip: inflateInit2 failed (\(rc))")
    }
    defer { inflateEnd(stream) }

    return try BoundedStreamDecoder.run(input, limit: limit, codec: "gzip", allocator: allocator) {
      (source, inPos, output, outPos) throws(KafkaProtocolError) -> Bool in
      let availIn = min(source.count - inPos, Int(UInt32.max))
      let availOut = min(output.count - outPos, Int(UInt32.max))
      stream.pointee.next_in = UnsafeMutablePointer(
        mutating: source.baseAddress!.advanced(by: inPos).assumingMemoryBound(to: Bytef.self))
      stream.pointee.avail_in = UInt32(availIn)
      stream.pointee.next_out = output.baseAddress!.advanced(by: outPos).assumingMemoryBound(to: Bytef.self)
      stream.pointee.avail_out = UInt32(availOut)
      let status = inflate(stream, Z_NO_FLUSH)
      inPos += availIn - Int(stream.pointee.avail_in)
      outPos += availOut - Int(stream.pointee.avail_out)
      switch status {
      case Z_STREAM_END:
        // A gzip member ended; concatenated members follow on the same stream.
        if inPos < source.count { inflateReset(stream) }
        return true
      case Z_OK, Z_BUF_ERROR:
        return false
      default:
        let detail = stream.pointee.msg.map { String(cString: $0) } ?? "error \(status)"
        throw KafkaProtocolError(.compressionFailed, "gzip: \(detail)")
      }
    }
  }
}
