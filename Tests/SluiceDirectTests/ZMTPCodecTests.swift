import NIOCore
import Testing

@testable import SluiceDirect

@Suite struct ZMTPCodecTests {
  /// A peer's greeting as the spec writes it, built by hand (not by `ZMTP.greeting`).
  static func greeting(major: UInt8 = 3, minor: UInt8 = 1, mechanism: String = "NULL") -> ByteBuffer {
    var bytes: [UInt8] = [0xFF] + Array(repeating: 0, count: 8) + [0x7F, major, minor]
    let name = Array(mechanism.utf8)
    bytes += name + Array(repeating: 0, count: 20 - name.count)
    bytes += [0] + Array(repeating: 0, count: 31)
    return ByteBuffer(bytes: bytes)
  }

  static func ready(_ socketType: String, identity: String? = nil) -> ByteBuffer {
    var body: [UInt8] = [5] + Array("READY".utf8)
    func property(_ name: String, _ value: String) {
      body += [UInt8(name.utf8.count)] + Array(name.utf8)
      let count = UInt32(value.utf8.count)
      body += [UInt8(count >> 24), UInt8(count >> 16 & 0xFF), UInt8(count >> 8 & 0xFF), UInt8(count & 0xFF)]
      body += Array(value.utf8)
    }
    property("Socket-Type", socketType)
    if let identity { property("Identity", identity) }
    return ByteBuffer(bytes: [0x04, UInt8(body.count)] + body)
  }

  @Test func ourGreetingIsTheSpecsBytes() {
    #expect(ZMTP.greeting() == Self.greeting())
  }

  @Test func decodesGreetingCommandsAndMultipartMessagesByteByByte() throws {
    var input = Self.greeting(minor: 0)
    input.writeImmutableBuffer(Self.ready("PUB"))
    // A two-frame message, the second frame long (flags MORE, then LONG).
    input.writeBytes([0x01, 3] + Array("abc".utf8))
    input.writeBytes([0x02, 0, 0, 0, 0, 0, 0, 1, 0] + Array(repeating: UInt8(7), count: 256))
    var decoder = ZMTPDecoder()
    var buffer = ByteBuffer()
    var events: [ZMTPDecoder.Event] = []
    for byte in input.readableBytesView {
      buffer.writeInteger(byte)
      while let event = try decoder.next(&buffer) { events.append(event) }
    }
    #expect(events.count == 3)
    #expect(events[0] == .greeting(.init(major: 3, minor: 0, mechanism: "NULL", asServer: false)))
    guard case .command("READY", let data) = events[1] else {
      Issue.record("expected READY, got \(events[1])")
      return
    }
    #expect(try ZMTP.parseProperties(data)["socket-type"] == ByteBuffer(string: "PUB"))
    #expect(
      events[2] == .message([ByteBuffer(string: "abc"), ByteBuffer(bytes: Array(repeating: 7, count: 256))]))
  }

  @Test func encodedMessagesDecodeBack() throws {
    var decoder = ZMTPDecoder()
    var buffer = Self.greeting()
    #expect(try decoder.next(&buffer) != nil)
    let frames = [ByteBuffer(), ByteBuffer(string: "x"), ByteBuffer(bytes: Array(repeating: 1, count: 300))]
    ZMTP.writeMessage(frames, into: &buffer)
    ZMTP.writeCommand("SUBSCRIBE", data: ByteBuffer(string: "topic"), into: &buffer)
    #expect(try decoder.next(&buffer) == .message(frames))
    #expect(try decoder.next(&buffer) == .command(name: "SUBSCRIBE", data: ByteBuffer(string: "topic")))
    #expect(try decoder.next(&buffer) == nil)
  }

  @Test func refusesOversizedFramesFromTheHeaderAlone() throws {
    var decoder = ZMTPDecoder(limits: ZMTPLimits(maxMessageSize: 1000, maxFrames: 3, maxCommandSize: 100))
    var buffer = Self.greeting()
    _ = try decoder.next(&buffer)
    // 2^40 bytes announced; only the 9-byte header is there.
    buffer.writeBytes([0x02, 0, 0, 1, 0, 0, 0, 0, 0])
    #expect(throws: ZMTPError.self) { try decoder.next(&buffer) }

    // The limit counts all frames of a message together.
    var second = ZMTPDecoder(limits: ZMTPLimits(maxMessageSize: 1000, maxFrames: 3, maxCommandSize: 100))
    var parts = Self.greeting()
    _ = try second.next(&parts)
    parts.writeBytes([0x03, 0, 0, 0, 0, 0, 0, 2, 0x58] + Array(repeating: UInt8(0), count: 600))
    parts.writeBytes([0x02, 0, 0, 0, 0, 0, 0, 2, 0x58])
    #expect(throws: ZMTPError.self) { try second.next(&parts) }

    var third = ZMTPDecoder(limits: ZMTPLimits(maxMessageSize: 1000, maxFrames: 3, maxCommandSize: 100))
    var frames = Self.greeting()
    _ = try third.next(&frames)
    for _ in 0..<4 { frames.writeBytes([0x01, 0]) }
    #expect(throws: ZMTPError.self) { try third.next(&frames) }

    var fourth = ZMTPDecoder(limits: ZMTPLimits(maxMessageSize: 1000, maxFrames: 3, maxCommandSize: 100))
    var command = Self.greeting()
    _ = try fourth.next(&command)
    command.writeBytes([0x04, 101])
    #expect(throws: ZMTPError.self) { try fourth.next(&command) }
  }

  @Test func refusesWhatIsNotZMTP3() throws {
    var http = ByteBuffer(string: "GET / HTTP/1.1\r\n")
    var decoder = ZMTPDecoder()
    #expect(throws: ZMTPError.self) { try decoder.next(&http) }
    var old = Self.greeting(major: 2)
    decoder = ZMTPDecoder()
    #expect(throws: ZMTPError.self) { try decoder.next(&old) }
    var flags = Self.greeting()
    decoder = ZMTPDecoder()
    _ = try decoder.next(&flags)
    flags.writeBytes([0x08, 0])
    #expect(throws: ZMTPError.self) { try decoder.next(&flags) }
    var commandWithMore = Self.greeting()
    decoder = ZMTPDecoder()
    _ = try decoder.next(&commandWithMore)
    commandWithMore.writeBytes([0x05, 1, 1])
    #expect(throws: ZMTPError.self) { try decoder.next(&commandWithMore) }
  }
}

@Suite struct ZMTPSessionTests {
  func writes(_ outputs: [ZMTPSession.Output]) -> [ByteBuffer] {
    outputs.compactMap { if case .write(let bytes) = $0 { bytes } else { nil } }
  }

  func closed(_ outputs: [ZMTPSession.Output]) -> String? {
    outputs.compactMap { if case .close(let reason) = $0 { reason } else { nil } }.first
  }

  @Test func nullHandshakeThenSubscriptionsBothWays() {
    var session = ZMTPSession(socketType: .pub, nowMs: 0)
    var input = ZMTPCodecTests.greeting()
    var outputs = session.receive(&input, nowMs: 1)
    // Our READY goes out once the peer's greeting is in.
    #expect(writes(outputs).count == 1)
    #expect(session.phase == .handshake)
    var ready = ZMTPCodecTests.ready("SUB", identity: "me")
    outputs = session.receive(&ready, nowMs: 2)
    #expect(outputs == [.ready(.init(socketType: "SUB", identity: ByteBuffer(string: "me"), minor: 1))])
    // ZMTP 3.1 SUBSCRIBE command and the 3.0 form (a message: 1, prefix) both subscribe.
    var subscriptions = ByteBuffer()
    ZMTP.writeCommand("SUBSCRIBE", data: ByteBuffer(string: "a"), into: &subscriptions)
    ZMTP.writeMessage([ByteBuffer(bytes: [1] + Array("b".utf8))], into: &subscriptions)
    ZMTP.writeMessage([ByteBuffer(bytes: [0] + Array("b".utf8))], into: &subscriptions)
    ZMTP.writeCommand("CANCEL", data: ByteBuffer(string: "a"), into: &subscriptions)
    outputs = session.receive(&subscriptions, nowMs: 3)
    #expect(
      outputs == [
        .subscribe(ByteBuffer(string: "a")), .subscribe(ByteBuffer(string: "b")),
        .cancel(ByteBuffer(string: "b")),
        .cancel(ByteBuffer(string: "a")),
      ])
  }

  @Test func refusesAnIncompatiblePeerWithAnErrorCommand() {
    var session = ZMTPSession(socketType: .sub, nowMs: 0)
    var input = ZMTPCodecTests.greeting()
    input.writeImmutableBuffer(ZMTPCodecTests.ready("PUSH"))
    let outputs = session.receive(&input, nowMs: 1)
    #expect(session.phase == .closed)
    #expect(closed(outputs)?.contains("PUSH") == true)
    // The last write is ERROR with a reason.
    var error = writes(outputs).last!
    #expect(error.readInteger(as: UInt8.self) == 0x04)
    error.moveReaderIndex(forwardBy: 1)
    #expect(error.readInteger(as: UInt8.self) == 5)
    #expect(error.readString(length: 5) == "ERROR")
  }

  @Test func refusesAnotherSecurityMechanismAndMessagesBeforeReady() {
    var session = ZMTPSession(socketType: .pull, nowMs: 0)
    var curve = ZMTPCodecTests.greeting(mechanism: "CURVE")
    #expect(closed(session.receive(&curve, nowMs: 1))?.contains("CURVE") == true)
    var early = ZMTPSession(socketType: .pull, nowMs: 0)
    var input = ZMTPCodecTests.greeting()
    ZMTP.writeMessage([ByteBuffer(string: "too soon")], into: &input)
    #expect(closed(early.receive(&input, nowMs: 1))?.contains("before the handshake") == true)
    // Refused from the frame header: a 16 MiB body announced before READY is not waited for.
    var big = ZMTPSession(socketType: .pull, nowMs: 0)
    var header = ZMTPCodecTests.greeting()
    header.writeBytes([0x02, 0, 0, 0, 0, 0, 0xFF, 0, 0])
    #expect(closed(big.receive(&header, nowMs: 1)) != nil)
  }

  @Test func handshakeTimeoutWithAnInjectedClock() {
    var session = ZMTPSession(socketType: .pull, timing: .init(handshakeTimeoutMs: 500), nowMs: 1000)
    #expect(session.tick(nowMs: 1499).isEmpty)
    #expect(closed(session.tick(nowMs: 1500)) != nil)
    #expect(session.phase == .closed)
  }

  @Test func heartbeatsPingAnswerPongAndTimeOut() {
    var session = ZMTPSession(
      socketType: .push, timing: .init(heartbeatIntervalMs: 100, heartbeatTimeoutMs: 300), nowMs: 0)
    var input = ZMTPCodecTests.greeting()
    input.writeImmutableBuffer(ZMTPCodecTests.ready("PULL"))
    _ = session.receive(&input, nowMs: 0)
    #expect(session.phase == .ready)
    var ping = writes(session.tick(nowMs: 100))
    #expect(ping.count == 1)
    #expect(ping[0].getBytes(at: 2, length: 5) == Array("\u{4}PING".utf8))
    // The peer's PING gets a PONG with the same context.
    var peerPing = ByteBuffer()
    ZMTP.writeCommand("PING", data: ByteBuffer(bytes: [0, 10] + Array("ctx".utf8)), into: &peerPing)
    let pong = writes(session.receive(&peerPing, nowMs: 150))
    var expected = ByteBuffer()
    ZMTP.writeCommand("PONG", data: ByteBuffer(string: "ctx"), into: &expected)
    #expect(pong == [expected])
    #expect(session.tick(nowMs: 449).allSatisfy { if case .close = $0 { false } else { true } })
    #expect(closed(session.tick(nowMs: 450)) != nil)
    ping.removeAll()
  }
}
