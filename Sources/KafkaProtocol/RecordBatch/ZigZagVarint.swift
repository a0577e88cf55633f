public import NIOCore

/// Record-level zigzag varints (`varint` and `varlong` in Kafka's record format).
///
/// Records inside a RecordBatch v2 encode lengths, deltas and counts as zigzag
/// variable-length integers: 7 bits per byte, least significant group first, high bit set on
/// every byte but the last, with the sign folded into bit 0 so small negatives (-1 for null)
/// stay one byte. The protocol's own *unsigned* varints (compact lengths, tagged fields) are a
/// different encoding and live in `Primitives/`.
///
/// Reads follow ByteBuffer's verbs: `nil` (reader index unchanged) when the input ends before
/// the last byte; `.invalidVarint` when the encoding runs past 5 bytes (`varint`) or 10 bytes
/// (`varlong`), or its last byte carries bits beyond the type's width.
extension ByteBuffer {
  /// Reads a zigzag `varint` (at most 5 bytes).
  @inlinable
  public mutating func readZigZagVarInt32() throws(KafkaProtocolError) -> Int32? {
    let (raw, length) = self._peekVarUInt(maxBytes: 5, lastByteMax: 0x0F)
    if length <= 0 {
      if length == 0 { return nil }
      throw KafkaProtocolError(.invalidVarint, "varint longer than 5 bytes or wider than 32 bits")
    }
    self.moveReaderIndex(forwardBy: length)
    let u = UInt32(truncatingIfNeeded: raw)
    return Int32(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
  }

  /// Reads a zigzag `varlong` (at most 10 bytes).
  @inlinable
  public mutating func readZigZagVarInt64() throws(KafkaProtocolError) -> Int64? {
    let (raw, length) = self._peekVarUInt(maxBytes: 10, lastByteMax: 0x01)
    if length <= 0 {
      if length == 0 { return nil }
      throw KafkaProtocolError(.invalidVarint, "varlong longer than 10 bytes or wider than 64 bits")
    }
    self.moveReaderIndex(forwardBy: length)
    return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
  }

  /// Writes `value` as a zigzag `varint`; returns the number of bytes written (1...5).
  @inlinable
  @discardableResult
  public mutating func writeZigZagVarInt32(_ value: Int32) -> Int {
    let zigzag = UInt32(bitPattern: (value << 1) ^ (value >> 31))
    return self._writeVarUInt(UInt64(zigzag))
  }

  /// Writes `value` as a zigzag `varlong`; returns the number of bytes written (1...10).
  @inlinable
  @discardableResult
  public mutating func writeZigZagVarInt64(_ value: Int64) -> Int {
    let zigzag = UInt64(bitPattern: (value << 1) ^ (value >> 63))
    return self._writeVarUInt(zigzag)
  }

  /// The encoded size of `value` as a zigzag `varint`.
  @inlinable
  public static func zigZagVarInt32Size(_ value: Int32) -> Int {
    let zigzag = UInt32(bitPattern: (value << 1) ^ (value >> 31))
    return Self._varUIntSize(UInt64(zigzag))
  }

  /// The encoded size of `value` as a zigzag `varlong`.
  @inlinable
  public static func zigZagVarInt64Size(_ value: Int64) -> Int {
    Self._varUIntSize(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
  }

  // MARK: Shared machinery

  /// Decodes the unsigned base-128 integer at the reader index without moving it.
  /// Returns its length, 0 when the input ends first, -1 when it is overlong.
  @inlinable
  func _peekVarUInt(maxBytes: Int, lastByteMax: UInt8) -> (value: UInt64, length: Int) {
    self.withUnsafeReadableBytes { raw in
      Self._decodeVarUInt(raw, at: 0, end: raw.count, maxBytes: maxBytes, lastByteMax: lastByteMax)
    }
  }

  /// Decodes the unsigned base-128 integer at `start` in `raw`, reading no further than
  /// `end` (at most `raw.count`). Returns its length, 0 when the bytes end first, -1 when it runs past `maxBytes` or its last byte exceeds
  /// `lastByteMax` (bits beyond the type's width).
  @inlinable
  @inline(__always)
  static func _decodeVarUInt(
    _ raw: UnsafeRawBufferPointer, at start: Int, end: Int, maxBytes: Int, lastByteMax: UInt8
  ) -> (value: UInt64, length: Int) {
    var value: UInt64 = 0
    var shift: UInt64 = 0
    let available = end - start
    let limit = Swift.min(available, maxBytes)
    var index = 0
    while index < limit {
      let byte = raw[start + index]
      value |= UInt64(byte & 0x7F) << shift
      index += 1
      if byte & 0x80 == 0 {
        if index == maxBytes && byte > lastByteMax { return (0, -1) }
        return (value, index)
      }
      shift += 7
    }
    return available >= maxBytes ? (0, -1) : (0, 0)
  }

  @inlinable
  mutating func _writeVarUInt(_ value: UInt64) -> Int {
    self.writeWithUnsafeMutableBytes(minimumWritableBytes: 10) { out in
      var v = value
      var index = 0
      while v >= 0x80 {
        out[index] = UInt8(truncatingIfNeeded: v) | 0x80
        v >>= 7
        index += 1
      }
      out[index] = UInt8(truncatingIfNeeded: v)
      return index + 1
    }
  }

  @inlinable
  static func _varUIntSize(_ value: UInt64) -> Int {
    let bits = 64 - value.leadingZeroBitCount
    return bits == 0 ? 1 : (bits + 6) / 7
  }
}
