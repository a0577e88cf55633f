public import NIOCore

// Kafka's protocol primitives on ByteBuffer.
//
// Readers follow ByteBuffer's verbs but throw instead of returning nil: a generated decoder
// is always working on a whole frame, so running short is malformed input, not "wait for
// more". Every length and count is checked against the bytes that remain *before* anything
// is allocated for it, so a hostile length field cannot make the decoder allocate more than
// the frame it already holds.

extension ByteBuffer {
  // MARK: Fixed-width values

  @inlinable
  package mutating func kafkaReadInt<T: FixedWidthInteger>(_: T.Type = T.self) throws(KafkaProtocolError) -> T
  {
    guard let value = self.readInteger(endianness: .big, as: T.self) else {
      throw KafkaProtocolError(.truncated, "expected \(MemoryLayout<T>.size)-byte integer")
    }
    return value
  }

  @inlinable
  package mutating func kafkaReadBool() throws(KafkaProtocolError) -> Bool {
    try kafkaReadInt(UInt8.self) != 0
  }

  @inlinable
  package mutating func kafkaWriteBool(_ value: Bool) {
    self.writeInteger(value ? UInt8(1) : 0)
  }

  @inlinable
  package mutating func kafkaReadFloat64() throws(KafkaProtocolError) -> Double {
    Double(bitPattern: try kafkaReadInt(UInt64.self))
  }

  @inlinable
  package mutating func kafkaWriteFloat64(_ value: Double) {
    self.writeInteger(value.bitPattern)
  }

  @inlinable
  package mutating func kafkaReadUUID() throws(KafkaProtocolError) -> KafkaUUID {
    let high = try kafkaReadInt(UInt64.self)
    let low = try kafkaReadInt(UInt64.self)
    return KafkaUUID(high: high, low: low)
  }

  @inlinable
  package mutating func kafkaWriteUUID(_ value: KafkaUUID) {
    self.writeMultipleIntegers(value.high, value.low)
  }

  // MARK: Unsigned varint (flexible versions; not zigzag)

  /// Reads an unsigned LEB128 varint of at most 5 bytes (a 32-bit value).
  @inlinable
  public mutating func readUnsignedVarInt() throws(KafkaProtocolError) -> UInt32 {
    var result: UInt32 = 0
    var shift: UInt32 = 0
    var index = self.readerIndex
    while true {
      guard let byte = self.getInteger(at: index, as: UInt8.self) else {
        throw KafkaProtocolError(.truncated, "unsigned varint")
      }
      index += 1
      if shift == 28 && byte & 0xF0 != 0 {
        throw KafkaProtocolError(.invalidVarint, "unsigned varint longer than 32 bits")
      }
      result |= UInt32(byte & 0x7F) << shift
      if byte & 0x80 == 0 { break }
      shift += 7
    }
    self.moveReaderIndex(to: index)
    return result
  }

  /// Writes an unsigned LEB128 varint; returns the number of bytes written.
  @inlinable
  @discardableResult
  public mutating func writeUnsignedVarInt(_ value: UInt32) -> Int {
    var v = value
    var written = 0
    while v >= 0x80 {
      self.writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
      v >>= 7
      written += 1
    }
    self.writeInteger(UInt8(truncatingIfNeeded: v))
    return written + 1
  }

  // MARK: Lengths

  /// Reads a length prefix: int16 (strings) or int32 (bytes, arrays) in classic versions,
  /// unsigned varint of length+1 in compact ones. Returns nil for null (-1 / 0).
  @inlinable
  package mutating func kafkaReadLength(compact: Bool, wide: Bool) throws(KafkaProtocolError) -> Int? {
    let length: Int
    if compact {
      let raw = try readUnsignedVarInt()
      if raw == 0 { return nil }
      length = Int(raw) - 1
    } else if wide {
      let raw = try kafkaReadInt(Int32.self)
      if raw == -1 { return nil }
      guard raw >= 0 else { throw KafkaProtocolError(.invalidLength, "negative length \(raw)") }
      length = Int(raw)
    } else {
      let raw = try kafkaReadInt(Int16.self)
      if raw == -1 { return nil }
      guard raw >= 0 else { throw KafkaProtocolError(.invalidLength, "negative length \(raw)") }
      length = Int(raw)
    }
    guard length <= self.readableBytes else {
      throw KafkaProtocolError(
        .invalidLength, "length \(length) exceeds the \(self.readableBytes) bytes left")
    }
    return length
  }

  @inlinable
  package mutating func kafkaWriteLength(_ length: Int?, compact: Bool, wide: Bool) {
    if compact {
      self.writeUnsignedVarInt(length.map { UInt32(truncatingIfNeeded: $0 + 1) } ?? 0)
    } else if wide {
      self.writeInteger(length.map { Int32(truncatingIfNeeded: $0) } ?? -1)
    } else {
      self.writeInteger(length.map { Int16(truncatingIfNeeded: $0) } ?? -1)
    }
  }

  // MARK: Strings

  @inlinable
  package mutating func kafkaReadNullableString(compact: Bool) throws(KafkaProtocolError) -> String? {
    guard let length = try kafkaReadLength(compact: compact, wide: false) else { return nil }
    return self.readString(length: length)!
  }

  @inlinable
  package mutating func kafkaReadString(compact: Bool) throws(KafkaProtocolError) -> String {
    guard let value = try kafkaReadNullableString(compact: compact) else {
      throw KafkaProtocolError(.nullNotAllowed, "null string in a non-nullable field")
    }
    return value
  }

  @inlinable
  package mutating func kafkaWriteString(_ value: String, compact: Bool) throws(KafkaProtocolError) {
    let length = value.utf8.count
    guard compact || length <= Int(Int16.max) else {
      throw KafkaProtocolError(.invalidLength, "string of \(length) bytes exceeds int16 length")
    }
    kafkaWriteLength(length, compact: compact, wide: false)
    self.writeString(value)
  }

  @inlinable
  package mutating func kafkaWriteNullableString(
    _ value: String?, compact: Bool, nullable: Bool
  ) throws(KafkaProtocolError) {
    if let value {
      try kafkaWriteString(value, compact: compact)
    } else {
      guard nullable else { throw KafkaProtocolError(.nullNotAllowed, "null string in this version") }
      kafkaWriteLength(nil, compact: compact, wide: false)
    }
  }

  // MARK: Bytes and records

  /// Reads a bytes (or records) field as a slice sharing this buffer's storage.
  @inlinable
  package mutating func kafkaReadNullableBytes(compact: Bool) throws(KafkaProtocolError) -> ByteBuffer? {
    guard let length = try kafkaReadLength(compact: compact, wide: true) else { return nil }
    return self.readSlice(length: length)!
  }

  @inlinable
  package mutating func kafkaReadBytes(compact: Bool) throws(KafkaProtocolError) -> ByteBuffer {
    guard let value = try kafkaReadNullableBytes(compact: compact) else {
      throw KafkaProtocolError(.nullNotAllowed, "null bytes in a non-nullable field")
    }
    return value
  }

  @inlinable
  package mutating func kafkaWriteBytes(_ value: ByteBuffer, compact: Bool) {
    kafkaWriteLength(value.readableBytes, compact: compact, wide: true)
    var copy = value
    self.writeBuffer(&copy)
  }

  @inlinable
  package mutating func kafkaWriteNullableBytes(
    _ value: ByteBuffer?, compact: Bool, nullable: Bool
  ) throws(KafkaProtocolError) {
    if let value {
      kafkaWriteBytes(value, compact: compact)
    } else {
      guard nullable else { throw KafkaProtocolError(.nullNotAllowed, "null bytes in this version") }
      kafkaWriteLength(nil, compact: compact, wide: true)
    }
  }

  // MARK: Arrays

  /// Reads an array. The count is bounded by the bytes left (every element takes at least
  /// one byte in any version a real schema uses), so capacity is reserved only after the
  /// check.
  @inlinable
  package mutating func kafkaReadNullableArray<T>(
    compact: Bool,
    _ element: (inout ByteBuffer) throws(KafkaProtocolError) -> T
  ) throws(KafkaProtocolError) -> [T]? {
    guard let count = try kafkaReadLength(compact: compact, wide: true) else { return nil }
    var result: [T] = []
    result.reserveCapacity(count)
    for _ in 0..<count {
      result.append(try element(&self))
    }
    return result
  }

  @inlinable
  package mutating func kafkaReadArray<T>(
    compact: Bool,
    _ element: (inout ByteBuffer) throws(KafkaProtocolError) -> T
  ) throws(KafkaProtocolError) -> [T] {
    guard let value = try kafkaReadNullableArray(compact: compact, element) else {
      throw KafkaProtocolError(.nullNotAllowed, "null array in a non-nullable field")
    }
    return value
  }

  @inlinable
  package mutating func kafkaWriteArray<T>(
    _ value: [T], compact: Bool,
    _ element: (inout ByteBuffer, T) throws(KafkaProtocolError) -> Void
  ) throws(KafkaProtocolError) {
    kafkaWriteLength(value.count, compact: compact, wide: true)
    for item in value {
      try element(&self, item)
    }
  }

  @inlinable
  package mutating func kafkaWriteNullableArray<T>(
    _ value: [T]?, compact: Bool, nullable: Bool,
    _ element: (inout ByteBuffer, T) throws(KafkaProtocolError) -> Void
  ) throws(KafkaProtocolError) {
    if let value {
      try kafkaWriteArray(value, compact: compact, element)
    } else {
      guard nullable else { throw KafkaProtocolError(.nullNotAllowed, "null array in this version") }
      kafkaWriteLength(nil, compact: compact, wide: true)
    }
  }

  // MARK: Tagged fields

  /// Writes a tagged-field section from (tag, encoded bytes) pairs, sorted by tag.
  @inlinable
  package mutating func kafkaWriteTaggedFields(_ fields: [TaggedField]) {
    if fields.isEmpty {
      self.writeInteger(UInt8(0))
      return
    }
    let sorted = fields.sorted { $0.tag < $1.tag }
    self.writeUnsignedVarInt(UInt32(sorted.count))
    for field in sorted {
      self.writeUnsignedVarInt(field.tag)
      self.writeUnsignedVarInt(UInt32(field.data.readableBytes))
      var data = field.data
      self.writeBuffer(&data)
    }
  }
}

/// Requires that a tagged field's slice was consumed exactly.
@inlinable
package func kafkaExpectConsumed(_ buffer: ByteBuffer, tag: UInt32) throws(KafkaProtocolError) {
  guard buffer.readableBytes == 0 else {
    throw KafkaProtocolError(.trailingBytes, "tagged field \(tag) has \(buffer.readableBytes) unread bytes")
  }
}
