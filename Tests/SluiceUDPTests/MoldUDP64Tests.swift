import NIOCore
import Testing

@testable import SluiceFeed

/// The MoldUDP64 codec against bytes laid out by hand from NASDAQ's spec (a Python decoder
/// written from the spec checks real datagrams in compat/test_feed.py).
@Suite struct MoldUDP64Tests {
  let session = MoldUDP64.Session("V000000003")!

  func bytes(_ parts: [UInt8]...) -> ByteBuffer { ByteBuffer(bytes: parts.flatMap { $0 }) }
  func u64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) } }
  func u16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }

  @Test func aPacketDecodesFromTheSpecLayoutAndBuildsBackToIt() throws {
    let wire = bytes(Array("V000000003".utf8), u64(42), u16(2), u16(3), Array("abc".utf8), u16(0))
    let packet = try MoldUDP64.decodePacket(wire)
    #expect(packet.session == session)
    #expect(packet.sequence == 42)
    #expect(packet.messages == [ByteBuffer(string: "abc"), ByteBuffer()])
    #expect(!packet.isHeartbeat && !packet.isEndOfSession)

    var builder = MoldUDP64.PacketBuilder(session: session, sequence: 42, capacity: 1500)
    builder.append(ByteBuffer(string: "abc"))
    builder.append(ByteBuffer())
    #expect(builder.finish() == wire)
  }

  @Test func heartbeatsEndsOfSessionAndRequests() throws {
    let heartbeat = MoldUDP64.heartbeat(session, next: 7)
    #expect(heartbeat == bytes(Array("V000000003".utf8), u64(7), u16(0)))
    #expect(try MoldUDP64.decodePacket(heartbeat).isHeartbeat)
    let end = MoldUDP64.endOfSession(session, next: 7)
    #expect(end == bytes(Array("V000000003".utf8), u64(7), u16(0xFFFF)))
    let decodedEnd = try MoldUDP64.decodePacket(end)
    #expect(decodedEnd.isEndOfSession && decodedEnd.messages.isEmpty && decodedEnd.sequence == 7)
    let request = MoldUDP64.Request(session: session, sequence: 9, count: 300)
    #expect(MoldUDP64.request(request) == bytes(Array("V000000003".utf8), u64(9), u16(300)))
    #expect(try MoldUDP64.decodeRequest(MoldUDP64.request(request)) == request)
  }

  @Test func malformedDatagramsAreRefusedWithAReason() {
    let header = Array("V000000003".utf8) + u64(1)
    #expect(throws: MoldUDP64.DecodingError.tooShort(5)) {
      try MoldUDP64.decodePacket(bytes([1, 2, 3, 4, 5]))
    }
    #expect(throws: MoldUDP64.DecodingError.badSession) {
      try MoldUDP64.decodePacket(bytes(Array("V00000000\n".utf8), u64(1), u16(0)))
    }
    // A count of 1000 messages in a 4-byte body: refused before any array grows to 1000.
    #expect(throws: MoldUDP64.DecodingError.self) {
      try MoldUDP64.decodePacket(bytes(header, u16(1000), u16(1), [65]))
    }
    #expect(throws: MoldUDP64.DecodingError.truncatedMessage(index: 1)) {
      try MoldUDP64.decodePacket(bytes(header, u16(2), u16(1), [65], u16(5), [66]))
    }
    #expect(throws: MoldUDP64.DecodingError.trailingBytes(1)) {
      try MoldUDP64.decodePacket(bytes(header, u16(1), u16(1), [65], [0]))
    }
    #expect(throws: MoldUDP64.DecodingError.trailingBytes(2)) {
      try MoldUDP64.decodePacket(bytes(header, u16(0), [1, 2]))
    }
    #expect(throws: MoldUDP64.DecodingError.wrongRequestSize(21)) {
      try MoldUDP64.decodeRequest(bytes(header, u16(1), [0]))
    }
    #expect(throws: MoldUDP64.DecodingError.zeroCount) { try MoldUDP64.decodeRequest(bytes(header, u16(0))) }
    // Found by FuzzMoldUDP64: a sequence number whose messages would pass 2^64.
    let overflowing = bytes(Array("V000000000".utf8), u64(.max), u16(3), u16(0), u16(0), u16(0))
    #expect(throws: MoldUDP64.DecodingError.sequenceOverflow) { try MoldUDP64.decodePacket(overflowing) }
    #expect(throws: MoldUDP64.DecodingError.sequenceOverflow) {
      try MoldUDP64.decodeRequest(bytes(Array("V000000000".utf8), u64(.max), u16(1)))
    }
  }

  @Test func thePacketBuilderFillsUpToItsCapacityButAlwaysTakesOneMessage() {
    var builder = MoldUDP64.PacketBuilder(session: session, sequence: 1, capacity: 100)
    #expect(builder.fits(2000))  // the first message goes in whatever its size
    builder.append(ByteBuffer(repeating: 1, count: 50))
    #expect(builder.size == 72)
    #expect(builder.fits(26))  // 72 + 2 + 26 = 100
    #expect(!builder.fits(27))
    #expect(!builder.fits(MoldUDP64.maxMessage + 1))
    var empty = MoldUDP64.PacketBuilder(session: session, sequence: 1, capacity: 100)
    #expect(!empty.fits(MoldUDP64.maxMessage + 1))
    empty.append(ByteBuffer(repeating: 1, count: MoldUDP64.maxMessage))
    #expect(empty.size == MoldUDP64.maxDatagram)
  }

  @Test func recordEnvelopesRoundTripAndTruncatedOnesAreRefused() throws {
    let headers: [(name: String, value: ByteBuffer?)] = [
      ("trace", ByteBuffer(string: "t-1")), ("empty", nil),
    ]
    var buffer = ByteBuffer()
    FeedRecord.encode(
      timestamp: 1_700_000_000_123, key: ByteBuffer(string: "k"), value: nil, headers: headers, into: &buffer)
    #expect(
      buffer.readableBytes
        == FeedRecord.encodedSize(key: ByteBuffer(string: "k"), value: nil, headers: headers))
    let record = try FeedRecord(decoding: buffer)
    #expect(
      record
        == FeedRecord(
          timestamp: 1_700_000_000_123, key: ByteBuffer(string: "k"), value: nil, headers: headers))
    // The documented layout, byte by byte.
    let expected: [UInt8] =
      u64(1_700_000_000_123) + [0, 0, 0, 1] + Array("k".utf8) + [0xFF, 0xFF, 0xFF, 0xFF] + u16(2)
      + u16(5) + Array("trace".utf8) + [0, 0, 0, 3] + Array("t-1".utf8)
      + u16(5) + Array("empty".utf8) + [0xFF, 0xFF, 0xFF, 0xFF]
    #expect(Array(buffer.readableBytesView) == expected)
    for length in 0..<buffer.readableBytes {
      #expect(throws: FeedRecord.DecodingError.self) {
        try FeedRecord(decoding: buffer.getSlice(at: 0, length: length)!)
      }
    }
  }

  @Test func sessionsNameThePayloadAndThePartition() {
    let value = FeedSession.session(partition: 12, payload: .value)
    #expect(value.description == "V000000012")
    #expect(FeedSession.partition(value) == 12)
    #expect(FeedSession.payload(value) == .value)
    let record = FeedSession.session(partition: 0, payload: .record)
    #expect(record.description == "R000000000" && FeedSession.payload(record) == .record)
    #expect(FeedSession.partition(MoldUDP64.Session("20261207AB")!) == nil)
    #expect(MoldUDP64.Session("short") == nil)
  }
}
