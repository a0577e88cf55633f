import NIOCore

/// Snappy in pure Swift (no header or library for it on the build machines).
///
/// Compression writes the raw format: a varint of the uncompressed length, then literal
/// and copy elements. Decompression reads the raw format and the xerial framing Java clients
/// send (`\x82SNAPPY\x00`, two big-endian int32 versions, then blocks of a big-endian int32
/// length followed by one raw snappy block).
enum SnappyCodec {
  static let xerialMagic: [UInt8] = [0x82, 0x53, 0x4E, 0x41, 0x50, 0x50, 0x59, 0x00]
  /// Magic plus version and compatible-version fields.
  static let xerialHeaderLength = 16

  // MARK: Decompression

  static func decompress(_ input: ByteBuffer, limit: Int, allocator: ByteBufferAllocator)
    throws(KafkaProtocolError) -> ByteBuffer
  {
    guard input.readableBytes > 0 else {
      throw corrupt("empty compressed input")
    }
    return try input.withUnsafeReadableBytes { (source) throws(KafkaProtocolError) -> ByteBuffer in
      if source.count >= xerialMagic.count && source.prefix(xerialMagic.count).elementsEqual(xerialMagic) {
        return try decodeXerial(source, limit: limit, allocator: allocator)
      }
      var output = allocator.buffer(capacity: 0)
      try decodeRaw(source, into: &output, limit: limit)
      return output
    }
  }

  private static func decodeXerial(
    _ source: UnsafeRawBufferPointer, limit: Int, allocator: ByteBufferAllocator
  ) throws(KafkaProtocolError) -> ByteBuffer {
    guard source.count >= xerialHeaderLength else {
      throw corrupt("xerial header truncated (\(source.count) bytes)")
    }
    var output = allocator.buffer(capacity: min(limit, max(256, source.count &* 2)))
    var pos = xerialHeaderLength
    while pos < source.count {
      guard source.count - pos >= 4 else {
        throw corrupt("xerial block length truncated at offset \(pos)")
      }
      let length = Int(loadBigEndianUInt32(source, pos))
      pos += 4
      guard length <= source.count - pos else {
        throw corrupt("xerial block of \(length) bytes at offset \(pos) runs past the input")
      }
      let block = UnsafeRawBufferPointer(rebasing: source[pos..<(pos + length)])
      try decodeRaw(block, into: &output, limit: limit)
      pos += length
    }
    return output
  }

  /// Decodes one raw snappy block and appends it to `output`, which may then hold at most
  /// `limit` bytes in all.
  static func decodeRaw(
    _ source: UnsafeRawBufferPointer, into output: inout ByteBuffer, limit: Int
  ) throws(KafkaProtocolError) {
    let n = source.count
    guard n > 0, let src = source.baseAddress else {
      throw corrupt("empty block")
    }
    // Preamble: varint of the uncompressed length, at most 32 bits.
    var claimed = 0
    var ip = 0
    var shift = 0
    while true {
      guard ip < n else { throw corrupt("length preamble truncated") }
      let byte = src.load(fromByteOffset: ip, as: UInt8.self)
      ip += 1
      guard shift < 32, shift < 28 || byte < 16 else { throw corrupt("length preamble too long") }
      claimed |= Int(byte & 0x7F) << shift
      if byte < 0x80 { break }
      shift += 7
    }
    let room = limit - output.writerIndex
    guard claimed <= room else {
      throw KafkaProtocolError(
        .decompressedSizeExceeded,
        "snappy: block claims \(claimed) bytes, over the limit of \(limit) bytes")
    }
    // No element yields more than 64 bytes per 3 input bytes; a larger claim is corrupt, so
    // the allocation below stays proportional to the input as well as below the limit.
    guard claimed <= (n - ip) &* 22 else {
      throw corrupt("block claims \(claimed) bytes from \(n - ip) bytes of input")
    }
    if claimed == 0 {
      guard ip == n else { throw corrupt("data after an empty block") }
      return
    }
    try output.writeWithUnsafeMutableBytes(minimumWritableBytes: claimed) {
      (region) throws(KafkaProtocolError) -> Int in
      try decodeElements(src, n, from: ip, into: region.baseAddress!, count: claimed)
      return claimed
    }
  }

  /// Decodes the elements of src[ip..<n] into exactly `count` bytes at `dst`.
  private static func decodeElements(
    _ src: UnsafeRawPointer, _ n: Int, from start: Int, into dst: UnsafeMutableRawPointer, count: Int
  ) throws(KafkaProtocolError) {
    var ip = start
    var op = 0
    while ip < n {
      let tag = Int(src.load(fromByteOffset: ip, as: UInt8.self))
      ip += 1
      let length: Int
      let offset: Int
      switch tag & 3 {
      case 0:
        var literal = tag >> 2
        if literal >= 60 {
          let extra = literal - 59
          guard extra <= n - ip else { throw corrupt("literal length truncated at offset \(ip)") }
          literal = 0
          for k in 0..<extra {
            literal |= Int(src.load(fromByteOffset: ip + k, as: UInt8.self)) << (8 * k)
          }
          ip += extra
        }
        literal += 1
        guard literal <= n - ip else {
          throw corrupt("literal of \(literal) bytes runs past the input at offset \(ip)")
        }
        guard literal <= count - op else {
          throw corrupt("literal of \(literal) bytes overruns the claimed length \(count)")
        }
        (dst + op).copyMemory(from: src + ip, byteCount: literal)
        op += literal
        ip += literal
        continue
      case 1:
        guard ip < n else { throw corrupt("copy truncated at offset \(ip)") }
        length = 4 + ((tag >> 2) & 7)
        offset = ((tag & 0xE0) << 3) | Int(src.load(fromByteOffset: ip, as: UInt8.self))
        ip += 1
      case 2:
        guard n - ip >= 2 else { throw corrupt("copy truncated at offset \(ip)") }
        length = 1 + (tag >> 2)
        offset = Int(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: ip, as: UInt16.self)))
        ip += 2
      default:
        guard n - ip >= 4 else { throw corrupt("copy truncated at offset \(ip)") }
        length = 1 + (tag >> 2)
        offset = Int(UInt32(littleEndian: src.loadUnaligned(fromByteOffset: ip, as: UInt32.self)))
        ip += 4
      }
      guard offset > 0, offset <= op else {
        throw corrupt("copy offset \(offset) invalid at output position \(op)")
      }
      guard length <= count - op else {
        throw corrupt("copy of \(length) bytes overruns the claimed length \(count)")
      }
      let from = dst + (op - offset)
      let to = dst + op
      if offset >= length {
        to.copyMemory(from: UnsafeRawPointer(from), byteCount: length)
      } else {
        // Overlapping copy: the last `offset` bytes repeat. Copy in doubling chunks that
        // never overlap their source: with `copied` a multiple of `offset`, the bytes at
        // `from` continue the pattern at `to + copied`.
        var copied = 0
        while copied < length {
          let chunk = min(length - copied, copied + offset)
          (to + copied).copyMemory(from: UnsafeRawPointer(from), byteCount: chunk)
          copied += chunk
        }
      }
      op += length
    }
    guard op == count else {
      throw corrupt("decoded \(op) bytes, the block claims \(count)")
    }
  }

  private static func corrupt(_ detail: String) -> KafkaProtocolError {
    KafkaProtocolError(.compressionFailed, "snappy: \(detail)")
  }

  private static func loadBigEndianUInt32(_ buffer: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
    UInt32(bigEndian: buffer.baseAddress!.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
  }

  // MARK: Compression

  /// Input is compressed in independent 64 KiB blocks, so in-block positions fit in UInt16.
  private static let blockSize = 1 << 16
  private static let maxHashBits = 14
  /// Below this many bytes a block is emitted as one literal; matching stops this far from
  /// the block's end, which keeps every 4- and 8-byte load in bounds.
  private static let inputMargin = 15

  static func maxCompressedLength(_ count: Int) -> Int { 32 &+ count &+ count / 6 }

  static func compress(_ input: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
    let count = input.readableBytes
    let bound = maxCompressedLength(count)
    var output = allocator.buffer(capacity: bound)
    let tableSize = 1 << min(maxHashBits, max(8, Int.bitWidth - max(count, 1).leadingZeroBitCount))
    let table = UnsafeMutablePointer<UInt16>.allocate(capacity: tableSize)
    defer { table.deallocate() }
    input.withUnsafeReadableBytes { source in
      _ = output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { region in
        let dst = region.baseAddress!
        var op = 0
        var value = UInt64(count)
        while value >= 0x80 {
          dst.storeBytes(of: UInt8(truncatingIfNeeded: value) | 0x80, toByteOffset: op, as: UInt8.self)
          op += 1
          value >>= 7
        }
        dst.storeBytes(of: UInt8(value), toByteOffset: op, as: UInt8.self)
        op += 1
        guard let src = source.baseAddress else { return op }
        var start = 0
        while start < count {
          let length = min(blockSize, count - start)
          op = compressBlock(src + start, length, into: dst, at: op, table: table, tableSize: tableSize)
          start += length
        }
        precondition(op <= region.count, "snappy: compressed output overran its bound")
        return op
      }
    }
    return output
  }

  @inline(__always)
  private static func load32(_ p: UnsafeRawPointer, _ i: Int) -> UInt32 {
    p.loadUnaligned(fromByteOffset: i, as: UInt32.self)
  }

  @inline(__always)
  private static func hash(_ v: UInt32, _ shift: UInt32) -> Int {
    Int((v &* 0x1E35_A7BD) >> shift)
  }

  /// Greedy matcher over one block: hash the 4 bytes at each position (skipping faster
  /// through data that does not match), extend every match as far as it goes, emit copies.
  private static func compressBlock(
    _ src: UnsafeRawPointer, _ length: Int, into dst: UnsafeMutableRawPointer, at start: Int,
    table: UnsafeMutablePointer<UInt16>, tableSize: Int
  ) -> Int {
    var op = start
    guard length >= inputMargin else {
      return emitLiteral(src, 0, length, dst, op)
    }
    table.initialize(repeating: 0, count: tableSize)
    let shift = UInt32(32 - tableSize.trailingZeroBitCount)
    let ipLimit = length - inputMargin
    var nextEmit = 0
    var ip = 1
    var nextHash = hash(load32(src, ip), shift)

    outer: while true {
      // Find a 4-byte match.
      var skip = 32
      var nextIp = ip
      var candidate = 0
      repeat {
        ip = nextIp
        let h = nextHash
        nextIp = ip + (skip >> 5)
        skip += 1
        if nextIp > ipLimit { break outer }
        nextHash = hash(load32(src, nextIp), shift)
        candidate = Int(table[h])
        table[h] = UInt16(truncatingIfNeeded: ip)
      } while load32(src, ip) != load32(src, candidate)

      op = emitLiteral(src, nextEmit, ip - nextEmit, dst, op)

      // Emit the match, then keep matching at the position right after it.
      repeat {
        let base = ip
        let matched = 4 + matchLength(src, candidate + 4, ip + 4, length)
        ip += matched
        op = emitCopy(offset: base - candidate, length: matched, dst, op)
        nextEmit = ip
        if ip >= ipLimit { break outer }
        table[hash(load32(src, ip - 1), shift)] = UInt16(truncatingIfNeeded: ip - 1)
        let h = hash(load32(src, ip), shift)
        candidate = Int(table[h])
        table[h] = UInt16(truncatingIfNeeded: ip)
      } while load32(src, ip) == load32(src, candidate)

      ip += 1
      nextHash = hash(load32(src, ip), shift)
    }
    if nextEmit < length {
      op = emitLiteral(src, nextEmit, length - nextEmit, dst, op)
    }
    return op
  }

  /// How many bytes at `a` and `b` (a < b) agree, comparing until `b` reaches `end`.
  @inline(__always)
  private static func matchLength(_ src: UnsafeRawPointer, _ a: Int, _ b: Int, _ end: Int) -> Int {
    var i = 0
    while b + i + 8 <= end {
      let x = src.loadUnaligned(fromByteOffset: a + i, as: UInt64.self)
      let y = src.loadUnaligned(fromByteOffset: b + i, as: UInt64.self)
      let diff = UInt64(littleEndian: x ^ y)
      if diff != 0 { return i + diff.trailingZeroBitCount >> 3 }
      i += 8
    }
    while b + i < end
      && src.load(fromByteOffset: a + i, as: UInt8.self) == src.load(fromByteOffset: b + i, as: UInt8.self)
    {
      i += 1
    }
    return i
  }

  @inline(__always)
  private static func put(_ dst: UnsafeMutableRawPointer, _ op: Int, _ byte: Int) {
    dst.storeBytes(of: UInt8(truncatingIfNeeded: byte), toByteOffset: op, as: UInt8.self)
  }

  private static func emitLiteral(
    _ src: UnsafeRawPointer, _ from: Int, _ length: Int, _ dst: UnsafeMutableRawPointer, _ start: Int
  ) -> Int {
    guard length > 0 else { return start }
    var op = start
    let n = length - 1
    if n < 60 {
      put(dst, op, n << 2)
      op += 1
    } else {
      var extra = 1
      while extra < 4 && n >> (8 * extra) != 0 { extra += 1 }
      put(dst, op, (59 + extra) << 2)
      op += 1
      for k in 0..<extra {
        put(dst, op, n >> (8 * k))
        op += 1
      }
    }
    (dst + op).copyMemory(from: src + from, byteCount: length)
    return op + length
  }

  private static func emitCopy(
    offset: Int, length: Int, _ dst: UnsafeMutableRawPointer, _ start: Int
  ) -> Int {
    var op = start
    var remaining = length
    // Copies carry at most 64 bytes; keep the last one at 4 bytes or more.
    while remaining >= 68 {
      op = emitShortCopy(offset: offset, length: 64, dst, op)
      remaining -= 64
    }
    if remaining > 64 {
      op = emitShortCopy(offset: offset, length: 60, dst, op)
      remaining -= 60
    }
    return emitShortCopy(offset: offset, length: remaining, dst, op)
  }

  /// One copy element, 4 <= length <= 64, offset < 65536.
  @inline(__always)
  private static func emitShortCopy(
    offset: Int, length: Int, _ dst: UnsafeMutableRawPointer, _ start: Int
  ) -> Int {
    if length < 12 && offset < 2048 {
      put(dst, start, 1 | ((length - 4) << 2) | ((offset >> 8) << 5))
      put(dst, start + 1, offset & 0xFF)
      return start + 2
    }
    put(dst, start, 2 | ((length - 1) << 2))
    put(dst, start + 1, offset & 0xFF)
    put(dst, start + 2, offset >> 8)
    return start + 3
  }
}
