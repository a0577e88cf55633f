import KafkaProtocol
import NIOCore
import Testing

@Suite struct VarintTests {
  static let int32Vectors: [(Int32, [UInt8])] = [
    (0, [0x00]),
    (-1, [0x01]),
    (1, [0x02]),
    (-2, [0x03]),
    (63, [0x7E]),
    (-64, [0x7F]),
    (64, [0x80, 0x01]),
    (-65, [0x81, 0x01]),
    (300, [0xD8, 0x04]),
    (Int32.max, [0xFE, 0xFF, 0xFF, 0xFF, 0x0F]),
    (Int32.min, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
  ]

  static let int64Vectors: [(Int64, [UInt8])] = [
    (0, [0x00]),
    (-1, [0x01]),
    (1, [0x02]),
    (-64, [0x7F]),
    (64, [0x80, 0x01]),
    (Int64(Int32.max), [0xFE, 0xFF, 0xFF, 0xFF, 0x0F]),
    (Int64(Int32.min), [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
    (Int64(Int32.max) + 1, [0x80, 0x80, 0x80, 0x80, 0x10]),
    (Int64.max, [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
    (Int64.min, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
  ]

  @Test(arguments: int32Vectors)
  func int32EncodesAndDecodes(value: Int32, bytes: [UInt8]) throws {
    var buffer = ByteBuffer()
    #expect(buffer.writeZigZagVarInt32(value) == bytes.count)
    #expect(Array(buffer.readableBytesView) == bytes)
    #expect(ByteBuffer.zigZagVarInt32Size(value) == bytes.count)
    #expect(try buffer.readZigZagVarInt32() == value)
    #expect(buffer.readableBytes == 0)
    // The same bytes read as a varlong give the same value.
    var wide = ByteBuffer(bytes: bytes)
    #expect(try wide.readZigZagVarInt64() == Int64(value))
  }

  @Test(arguments: int64Vectors)
  func int64EncodesAndDecodes(value: Int64, bytes: [UInt8]) throws {
    var buffer = ByteBuffer()
    #expect(buffer.writeZigZagVarInt64(value) == bytes.count)
    #expect(Array(buffer.readableBytesView) == bytes)
    #expect(ByteBuffer.zigZagVarInt64Size(value) == bytes.count)
    #expect(try buffer.readZigZagVarInt64() == value)
    #expect(buffer.readableBytes == 0)
  }

  @Test func randomRoundTrips() throws {
    var rng = SystemRandomNumberGenerator()
    var buffer = ByteBuffer()
    var values32: [Int32] = []
    var values64: [Int64] = []
    for _ in 0..<2000 {
      let shift32 = Int32.random(in: 0...31, using: &rng)
      let v32 = Int32.random(in: Int32.min...Int32.max, using: &rng) >> shift32
      let shift64 = Int64.random(in: 0...63, using: &rng)
      let v64 = Int64.random(in: Int64.min...Int64.max, using: &rng) >> shift64
      values32.append(v32)
      values64.append(v64)
      buffer.writeZigZagVarInt32(v32)
      buffer.writeZigZagVarInt64(v64)
    }
    for (v32, v64) in zip(values32, values64) {
      #expect(try buffer.readZigZagVarInt32() == v32)
      #expect(try buffer.readZigZagVarInt64() == v64)
    }
    #expect(buffer.readableBytes == 0)
  }

  /// Short input is nil and leaves the reader index where it was.
  @Test func shortInputIsNil() throws {
    for bytes in [[], [0x80], [0xFF, 0xFF], [0xFE, 0xFF, 0xFF, 0xFF]] as [[UInt8]] {
      var buffer = ByteBuffer(bytes: bytes)
      #expect(try buffer.readZigZagVarInt32() == nil)
      #expect(try buffer.readZigZagVarInt64() == nil)
      #expect(buffer.readableBytes == bytes.count)
    }
    var nine = ByteBuffer(bytes: [UInt8](repeating: 0xFF, count: 9))
    #expect(try nine.readZigZagVarInt64() == nil)
    #expect(nine.readableBytes == 9)
  }

  @Test func overlongVarintThrows() {
    let cases: [[UInt8]] = [
      [0x80, 0x80, 0x80, 0x80, 0x80, 0x00],  // six bytes
      [0xFF, 0xFF, 0xFF, 0xFF, 0xFF],  // fifth byte continues
      [0xFF, 0xFF, 0xFF, 0xFF, 0x10],  // bit 32 set
      [0x80, 0x80, 0x80, 0x80, 0x7F],
    ]
    for bytes in cases {
      var buffer = ByteBuffer(bytes: bytes)
      let error = #expect(throws: KafkaProtocolError.self) { _ = try buffer.readZigZagVarInt32() }
      #expect(error?.code == .invalidVarint)
      #expect(buffer.readableBytes == bytes.count)
    }
  }

  @Test func overlongVarlongThrows() {
    let cases: [[UInt8]] = [
      [UInt8](repeating: 0x80, count: 10) + [0x00],  // eleven bytes
      [UInt8](repeating: 0xFF, count: 10),  // tenth byte continues
      [UInt8](repeating: 0xFF, count: 9) + [0x02],  // bit 64 set
    ]
    for bytes in cases {
      var buffer = ByteBuffer(bytes: bytes)
      let error = #expect(throws: KafkaProtocolError.self) { _ = try buffer.readZigZagVarInt64() }
      #expect(error?.code == .invalidVarint)
    }
  }

  @Test func nonCanonicalButInRangeEncodingsDecode() throws {
    // Padding with continuation bytes is wasteful but legal up to the width limit.
    var buffer = ByteBuffer(bytes: [0x82, 0x80, 0x80, 0x80, 0x00])
    #expect(try buffer.readZigZagVarInt32() == 1)
  }
}
