public import NIOCore

/// The compression codec of a record batch: bits 0-2 of its attributes.
///
/// gzip uses zlib; snappy is pure Swift; lz4 (frame format) and zstd use the runtime libraries
/// `liblz4.so.1` / `libzstd.so.1`, loaded on first use with `dlopen`. When one of those is
/// missing, its codec throws `.unsupportedCompression`. See docs/compression.md.
public enum CompressionCodec: Int8, Sendable, CaseIterable {
  case none = 0
  case gzip = 1
  case snappy = 2
  case lz4 = 3
  case zstd = 4
}

extension CompressionCodec {
  /// The codec in bits 0-2 of a record batch's attributes. Returns nil for 5, 6, 7.
  public init?(attributes: Int16) {
    self.init(rawValue: Int8(truncatingIfNeeded: attributes & 0x7))
  }

  /// The codec of a `compression.type` name (any case); nil for another name.
  public init?(name: String) {
    let lowered = name.lowercased()
    guard let codec = Self.allCases.first(where: { $0.name == lowered }) else { return nil }
    self = codec
  }

  /// Kafka's `compression.type` name.
  public var name: String {
    switch self {
    case .none: "none"
    case .gzip: "gzip"
    case .snappy: "snappy"
    case .lz4: "lz4"
    case .zstd: "zstd"
    }
  }

  /// Compresses the readable bytes of `input`. `.none` returns the input unchanged.
  ///
  /// - gzip: one gzip member (zlib; `level` 1–9, default zlib's 6).
  /// - snappy: the raw (unframed) format, which every Kafka client reads; no levels.
  /// - lz4: one LZ4 frame with 64 KiB independent blocks (`level` 1–17; 3 and above is
  ///   LZ4 HC; default the library's fast mode).
  /// - zstd: one frame (`level` as zstd numbers them; default 3).
  ///
  /// `level` nil is each codec's default (Kafka's `compression.<codec>.level`, KIP-390).
  public func compress(
    _ input: ByteBuffer, level: Int32? = nil,
    allocator: ByteBufferAllocator = ByteBufferAllocator()
  ) throws(KafkaProtocolError) -> ByteBuffer {
    switch self {
    case .none: input
    case .gzip: try GzipCodec.compress(input, level: level ?? -1, allocator: allocator)
    case .snappy: SnappyCodec.compress(input, allocator: allocator)
    case .lz4: try LZ4FrameCodec.compress(input, level: level ?? 0, allocator: allocator)
    case .zstd: try ZstdCodec.compress(input, level: level ?? ZstdCodec.level, allocator: allocator)
    }
  }

  /// Decompresses the readable bytes of `input`, producing at most `maxDecompressedSize` bytes.
  ///
  /// Output grows in steps and never beyond the limit (rounded up to a power of two by
  /// `ByteBuffer`); sizes claimed by headers are only checked against the limit, never
  /// trusted for allocation beyond it.
  ///
  /// - Throws: `.decompressedSizeExceeded` when the data expands past the limit,
  ///   `.compressionFailed` for corrupt, truncated or empty data, `.unsupportedCompression`
  ///   when the codec's runtime library cannot be loaded.
  public func decompress(
    _ input: ByteBuffer,
    maxDecompressedSize: Int,
    allocator: ByteBufferAllocator = ByteBufferAllocator()
  ) throws(KafkaProtocolError) -> ByteBuffer {
    let limit = max(0, maxDecompressedSize)
    switch self {
    case .none:
      guard input.readableBytes <= limit else {
        throw KafkaProtocolError(
          .decompressedSizeExceeded,
          "uncompressed data of \(input.readableBytes) bytes exceeds the limit of \(limit) bytes")
      }
      return input
    case .gzip: return try GzipCodec.decompress(input, limit: limit, allocator: allocator)
    case .snappy: return try SnappyCodec.decompress(input, limit: limit, allocator: allocator)
    case .lz4: return try LZ4FrameCodec.decompress(input, limit: limit, allocator: allocator)
    case .zstd: return try ZstdCodec.decompress(input, limit: limit, allocator: allocator)
    }
  }
}
