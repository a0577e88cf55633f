import Foundation
import KafkaProtocol
import NIOCore
import Testing

// Round trips, vectors made by the real libraries (scripts/gen-compression-fixtures.py),
// xerial-framed snappy, bounded decompression, corrupt and truncated input.

private let compressed: [CompressionCodec] = [.gzip, .snappy, .lz4, .zstd]

/// Deterministic pseudo-random bytes (xorshift64*).
private func randomBytes(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
  var state = seed
  var out = [UInt8]()
  out.reserveCapacity(count)
  while out.count < count {
    state ^= state >> 12
    state ^= state << 25
    state ^= state >> 27
    let value = state &* 0x2545_F491_4F6C_DD1D
    for shift in stride(from: 0, to: 64, by: 8) where out.count < count {
      out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
    }
  }
  return out
}

/// Text-like data with repeats at many distances, plus runs and noise.
private func mixedBytes(_ count: Int) -> [UInt8] {
  let words = ["sluice", "kafka", "event", "broker", "partition", "offset", "{\"k\":", "}\n", " "]
    .map { Array($0.utf8) }
  let noise = randomBytes(count, seed: 42)
  var out = [UInt8]()
  out.reserveCapacity(count)
  var i = 0
  while out.count < count {
    let pick = Int(noise[i % noise.count])
    switch pick % 10 {
    case 0: out.append(contentsOf: repeatElement(UInt8(pick), count: pick % 200))
    case 1:
      out.append(contentsOf: noise[(i * 7) % (noise.count - 64)..<((i * 7) % (noise.count - 64) + pick % 64)])
    default: out.append(contentsOf: words[pick % words.count])
    }
    i += 1
  }
  return Array(out.prefix(count))
}

private let roundTripInputs: [(String, [UInt8])] = [
  ("empty", []),
  ("one byte", [0x2A]),
  ("random 10 KiB", randomBytes(10_000)),
  ("zeros 100 KiB", [UInt8](repeating: 0, count: 100_000)),
  (
    "repeated text",
    Array(String(repeating: "the quick brown fox jumps over the lazy dog. ", count: 2_000).utf8)
  ),
  ("mixed 1 MiB", mixedBytes(1 << 20)),
  ("random 1 MiB", randomBytes(1 << 20, seed: 7)),
]

private func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

private func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

private func fixture(_ name: String) throws -> [UInt8] {
  let base = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
  return [UInt8](
    try Data(contentsOf: base.appendingPathComponent("compression").appendingPathComponent(name)))
}

/// Runs `body` and returns the KafkaProtocolError code it threw (nil if it returned).
private func thrownCode(_ body: () throws(KafkaProtocolError) -> ByteBuffer) -> KafkaProtocolError.Code? {
  do {
    _ = try body()
    return nil
  } catch {
    return error.code
  }
}

@Suite struct CompressionTests {
  @Test func namesAndAttributes() {
    #expect(CompressionCodec.allCases.map(\.name) == ["none", "gzip", "snappy", "lz4", "zstd"])
    for codec in CompressionCodec.allCases {
      #expect(CompressionCodec(attributes: Int16(codec.rawValue)) == codec)
      // Other attribute bits do not matter.
      #expect(CompressionCodec(attributes: Int16(codec.rawValue) | 0x78) == codec)
    }
    for bits: Int16 in 5...7 {
      #expect(CompressionCodec(attributes: bits) == nil)
    }
  }

  @Test(arguments: CompressionCodec.allCases)
  func roundTrip(codec: CompressionCodec) throws {
    for (label, input) in roundTripInputs {
      let packed = try codec.compress(buffer(input))
      if codec == .none { #expect(bytes(packed) == input) }
      let unpacked = try codec.decompress(packed, maxDecompressedSize: input.count)
      #expect(bytes(unpacked) == input, "\(codec.name): \(label)")
      if codec != .none, input.count < 200_000 && input.count > 1_000,
        label.hasPrefix("zeros") || label.hasPrefix("repeated")
      {
        #expect(packed.readableBytes < input.count / 10, "\(codec.name) compresses \(label)")
      }
    }
  }

  @Test(arguments: CompressionCodec.allCases)
  func inputWithReaderIndexOffset(codec: CompressionCodec) throws {
    let payload = mixedBytes(5_000)
    var source = ByteBuffer(bytes: [1, 2, 3] + payload)
    source.moveReaderIndex(forwardBy: 3)
    var packedWithPrefix = ByteBuffer(bytes: [9, 9])
    var packed = try codec.compress(source)
    packedWithPrefix.writeBuffer(&packed)
    packedWithPrefix.moveReaderIndex(forwardBy: 2)
    #expect(bytes(try codec.decompress(packedWithPrefix, maxDecompressedSize: 1 << 20)) == payload)
  }

  @Test(arguments: [
    ("plain.gzip", CompressionCodec.gzip),
    ("plain-2members.gzip", .gzip),
    ("plain.zlib", .gzip),
    ("plain.snappy", .snappy),
    ("plain.snappy-xerial", .snappy),
    ("plain.lz4", .lz4),
    ("plain-checksums.lz4", .lz4),
    ("plain.zst", .zstd),
    ("plain-stream.zst", .zstd),
    ("plain-2frames.zst", .zstd),
  ])
  func decodesRealLibraryOutput(file: String, codec: CompressionCodec) throws {
    let plain = try fixture("plain.bin")
    let packed = try fixture(file)
    #expect(bytes(try codec.decompress(buffer(packed), maxDecompressedSize: plain.count)) == plain)
    // One byte short of the plaintext: the limit holds.
    #expect(
      thrownCode { () throws(KafkaProtocolError) in
        try codec.decompress(buffer(packed), maxDecompressedSize: plain.count - 1)
      } == .decompressedSizeExceeded)
    // Truncated anywhere: an error, never a crash or silent success.
    for cut in [1, 5, 17, packed.count / 2, packed.count - 1] {
      let code = thrownCode { () throws(KafkaProtocolError) in
        try codec.decompress(buffer(Array(packed.prefix(cut))), maxDecompressedSize: plain.count)
      }
      #expect(code == .compressionFailed, "\(file) cut at \(cut)")
    }
  }

  @Test func snappyHandVectors() throws {
    func decode(_ raw: [UInt8], limit: Int = 1_000) throws(KafkaProtocolError) -> [UInt8] {
      bytes(try CompressionCodec.snappy.decompress(buffer(raw), maxDecompressedSize: limit))
    }
    // Literal "hello": length 5, tag (5-1)<<2.
    #expect(try decode([0x05, 0x10] + Array("hello".utf8)) == Array("hello".utf8))
    // "ab" then a 1-byte-offset copy of 6 at distance 2 (overlapping).
    #expect(try decode([0x08, 0x04, 0x61, 0x62, 0x09, 0x02]) == Array("abababab".utf8))
    // Same with a 2-byte-offset copy: tag 2 | (6-1)<<2.
    #expect(try decode([0x08, 0x04, 0x61, 0x62, 0x16, 0x02, 0x00]) == Array("abababab".utf8))
    // 4-byte-offset copy: tag 3 | (6-1)<<2.
    #expect(try decode([0x08, 0x04, 0x61, 0x62, 0x17, 0x02, 0, 0, 0]) == Array("abababab".utf8))
    // Literal with a 1-byte length extension (tag 60<<2): 100 bytes.
    let hundred = randomBytes(100)
    #expect(try decode([100, 0xF0, 99] + hundred) == hundred)
    // Empty block.
    #expect(try decode([0x00]) == [])

    let failures: [(String, [UInt8])] = [
      ("copy before any output", [0x04, 0x01, 0x01]),
      ("offset zero", [0x08, 0x04, 0x61, 0x62, 0x09, 0x00]),
      ("offset beyond output start", [0x08, 0x04, 0x61, 0x62, 0x09, 0x03]),
      ("literal past input", [0x05, 0x10, 0x61]),
      ("output shorter than claimed", [0x06, 0x10] + Array("hello".utf8)),
      ("output longer than claimed", [0x04, 0x10] + Array("hello".utf8)),
      ("copy past claimed length", [0x04, 0x04, 0x61, 0x62, 0x09, 0x02]),
      ("truncated 2-byte offset", [0x08, 0x04, 0x61, 0x62, 0x16, 0x02]),
      ("truncated 4-byte offset", [0x08, 0x04, 0x61, 0x62, 0x17, 0x02, 0]),
      ("truncated literal length", [0x64, 0xF4, 0x01]),
      ("preamble runs on", [0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
      ("preamble truncated", [0x80]),
      ("data after empty block", [0x00, 0x00]),
      ("claim impossible for its input", [0xFF, 0xFF, 0x03, 0x00, 0x61]),
      ("empty input", []),
    ]
    for (label, raw) in failures {
      let code = thrownCode { () throws(KafkaProtocolError) in
        try CompressionCodec.snappy.decompress(buffer(raw), maxDecompressedSize: 1 << 20)
      }
      #expect(code == .compressionFailed, "\(label)")
    }
  }

  /// Java clients (snappy-java's SnappyOutputStream) frame snappy the xerial way.
  @Test func snappyXerialFraming() throws {
    let plain = mixedBytes(200_000)
    var framed: [UInt8] = [0x82, 0x53, 0x4E, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1]
    for start in stride(from: 0, to: plain.count, by: 32_768) {
      let chunk = Array(plain[start..<min(plain.count, start + 32_768)])
      let raw = bytes(try CompressionCodec.snappy.compress(buffer(chunk)))
      withUnsafeBytes(of: UInt32(raw.count).bigEndian) { framed.append(contentsOf: $0) }
      framed.append(contentsOf: raw)
    }
    let decoded = try CompressionCodec.snappy.decompress(buffer(framed), maxDecompressedSize: plain.count)
    #expect(bytes(decoded) == plain)
    #expect(
      thrownCode { () throws(KafkaProtocolError) in
        try CompressionCodec.snappy.decompress(buffer(framed), maxDecompressedSize: plain.count - 1)
      } == .decompressedSizeExceeded)

    // Header only: no blocks, no data.
    let headerOnly = Array(framed.prefix(16))
    #expect(
      try CompressionCodec.snappy.decompress(buffer(headerOnly), maxDecompressedSize: 10).readableBytes == 0)
    // Truncated header, block length, block.
    for cut in [9, 18, 16 + 4 + 10, framed.count - 1] {
      let code = thrownCode { () throws(KafkaProtocolError) in
        try CompressionCodec.snappy.decompress(
          buffer(Array(framed.prefix(cut))), maxDecompressedSize: 1 << 20)
      }
      #expect(code == .compressionFailed, "cut at \(cut)")
    }
  }

  /// Small inputs that expand far past the limit fail cleanly, for every codec.
  @Test(arguments: compressed)
  func decompressionBomb(codec: CompressionCodec) throws {
    let huge = [UInt8](repeating: 0, count: 16 << 20)
    let bomb = try codec.compress(buffer(huge))
    #expect(bomb.readableBytes < 1 << 20)
    for limit in [0, 1, 1_000, 1 << 20] {
      let code = thrownCode { () throws(KafkaProtocolError) in
        try codec.decompress(bomb, maxDecompressedSize: limit)
      }
      #expect(code == .decompressedSizeExceeded, "\(codec.name) limit \(limit)")
    }
    #expect(try codec.decompress(bomb, maxDecompressedSize: huge.count).readableBytes == huge.count)
  }

  /// A raw snappy block that claims 4 GiB in its preamble is rejected before any allocation.
  @Test func snappyLyingPreamble() {
    let claim: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00, 0x61]
    #expect(
      thrownCode { () throws(KafkaProtocolError) in
        try CompressionCodec.snappy.decompress(buffer(claim), maxDecompressedSize: 1 << 20)
      } == .decompressedSizeExceeded)
    #expect(
      thrownCode { () throws(KafkaProtocolError) in
        try CompressionCodec.snappy.decompress(buffer(claim), maxDecompressedSize: Int.max)
      } == .compressionFailed)
  }

  @Test(arguments: compressed)
  func emptyAndGarbageInputThrow(codec: CompressionCodec) {
    for garbage: [UInt8] in [
      [], [0x01], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], Array("not compressed".utf8),
    ] {
      let code = thrownCode { () throws(KafkaProtocolError) in
        try codec.decompress(buffer(garbage), maxDecompressedSize: 1 << 20)
      }
      #expect(code == .compressionFailed, "\(codec.name) \(garbage)")
    }
  }

  @Test func noneHonoursTheLimit() throws {
    let data = buffer(randomBytes(100))
    #expect(try CompressionCodec.none.decompress(data, maxDecompressedSize: 100) == data)
    #expect(
      thrownCode { () throws(KafkaProtocolError) in
        try CompressionCodec.none.decompress(data, maxDecompressedSize: 99)
      } == .decompressedSizeExceeded)
  }

  /// Corrupt data: a broken magic must throw; random damage must never crash (it may decode
  /// to wrong bytes when a format carries no checksum).
  @Test(arguments: compressed)
  func corruptData(codec: CompressionCodec) throws {
    let plain = mixedBytes(20_000)
    let packed = bytes(try codec.compress(buffer(plain)))
    var badMagic = packed
    badMagic[0] ^= 0xFF
    if codec != .snappy {
      #expect(
        thrownCode { () throws(KafkaProtocolError) in
          try codec.decompress(buffer(badMagic), maxDecompressedSize: 1 << 20)
        } == .compressionFailed)
    }
    var noise = randomBytes(4_000, seed: UInt64(codec.rawValue) + 1)[...]
    for round in 0..<300 {
      var damaged = packed
      let flips = 1 + Int(noise.popFirst()! % 4)
      for _ in 0..<flips {
        let position = (Int(noise.popFirst()!) << 8 | Int(noise.popFirst()!)) % damaged.count
        damaged[position] ^= noise.popFirst()! | 1
      }
      let code = thrownCode { () throws(KafkaProtocolError) in
        try codec.decompress(buffer(damaged), maxDecompressedSize: plain.count)
      }
      #expect(
        code == nil || code == .compressionFailed || code == .decompressedSizeExceeded, "round \(round)")
    }
  }

  @Test func snappyCompressorMatchesAtEveryDistance() throws {
    // Repeats at distances from 1 byte to past the 64 KiB block size.
    var input = [UInt8]()
    for distance in [1, 2, 3, 4, 7, 100, 2047, 2048, 5000, 65_535, 70_000] {
      let chunk = randomBytes(min(distance, 3000), seed: UInt64(distance))
      input.append(contentsOf: chunk)
      input.append(contentsOf: randomBytes(max(0, distance - chunk.count), seed: 99))
      input.append(contentsOf: chunk)
    }
    let packed = try CompressionCodec.snappy.compress(buffer(input))
    #expect(bytes(try CompressionCodec.snappy.decompress(packed, maxDecompressedSize: input.count)) == input)
    #expect(packed.readableBytes < input.count)
  }
}
