import CSluiceSupport
public import NIOCore

/// CRC-32C (Castagnoli), the checksum Kafka puts in every RecordBatch v2 header.
///
/// Owns the Swift face of the C implementation in `CSluiceSupport/crc32c.c`, which picks the
/// CPU's CRC instructions (SSE4.2 on x86_64, the CRC extension on aarch64) or a
/// slicing-by-8 table once per process. Values chain: `update(checksum(a), b)` equals the
/// checksum of `a` followed by `b`, and the checksum of no bytes is 0.
public enum CRC32C {
  /// The CRC-32C of `bytes`.
  @inlinable
  public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    update(0, bytes)
  }

  /// The CRC-32C of the readable bytes of `buffer` (the reader index does not move).
  @inlinable
  public static func checksum(_ buffer: ByteBuffer) -> UInt32 {
    update(0, buffer)
  }

  /// The CRC-32C of a byte collection (convenience for tests and small inputs).
  public static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
    update(0, bytes)
  }

  /// Continues `crc` (a previous result, or 0) over `bytes`.
  public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
    guard let base = bytes.baseAddress else { return crc }
    return sluice_crc32c_update(crc, base, bytes.count)
  }

  /// Continues `crc` over the readable bytes of `buffer`.
  @inlinable
  public static func update(_ crc: UInt32, _ buffer: ByteBuffer) -> UInt32 {
    buffer.withUnsafeReadableBytes { update(crc, $0) }
  }

  /// Continues `crc` over a byte collection.
  public static func update(_ crc: UInt32, _ bytes: some Collection<UInt8>) -> UInt32 {
    if let result = bytes.withContiguousStorageIfAvailable({ update(crc, UnsafeRawBufferPointer($0)) }) {
      return result
    }
    return Array(bytes).withUnsafeBytes { update(crc, $0) }
  }

  /// Whether `update` runs on the CPU's CRC instructions rather than the table fallback.
  public static var isHardwareAccelerated: Bool {
    sluice_crc32c_hardware_available() != 0
  }

  /// The table-driven implementation regardless of the CPU (tests and benchmarks compare the
  /// two paths).
  package static func portableUpdate(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
    guard let base = bytes.baseAddress else { return crc }
    return sluice_crc32c_update_portable(crc, base, bytes.count)
  }
}
