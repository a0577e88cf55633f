import KafkaProtocol
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@Suite struct FrameDecoderTests {
  func frame(_ payload: [UInt8]) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeInteger(Int32(payload.count))
    buffer.writeBytes(payload)
    return buffer
  }

  /// Fed whole, byte by byte and in every split, the decoder yields the same frames.
  @Test func verifierByteByByte() throws {
    let payloads: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 7, count: 300)]
    let pairs = payloads.map { (frame($0), [ByteBuffer(bytes: $0)]) }
    try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
      KafkaFrameDecoder(maximumFrameSize: 1024)
    }
  }

  @Test func oversizedAndNegativeSizesFailBeforeBuffering() throws {
    for size: Int32 in [1025, Int32.max, -1, Int32.min] {
      var buffer = ByteBuffer()
      buffer.writeInteger(size)
      #expect(throws: KafkaProtocolError.self) {
        try KafkaFrameDecoder.nextFrame(from: &buffer, maximumFrameSize: 1024)
      }
    }
    // Through a channel: the handler errors as soon as the 4-byte prefix arrives.
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(KafkaFrameDecoder(maximumFrameSize: 16)))
    var prefix = ByteBuffer()
    prefix.writeInteger(Int32(1 << 30))
    #expect(throws: (any Error).self) { try channel.writeInbound(prefix) }
    _ = try? channel.finish()
  }

  @Test func partialFrameConsumesNothing() throws {
    var buffer = frame([1, 2, 3, 4])
    buffer.moveWriterIndex(to: buffer.writerIndex - 1)
    #expect(try KafkaFrameDecoder.nextFrame(from: &buffer, maximumFrameSize: 100) == nil)
    #expect(buffer.readableBytes == 7)
  }

  /// A request frame built with the codec decodes back, header and body.
  @Test func requestFrameRoundTrip() throws {
    let request = KafkaRequest(
      correlationId: 42, clientId: "me", apiVersion: 12,
      body: .metadata(MetadataRequest(topics: [.init(name: "orders")], allowAutoTopicCreation: false)))
    var wire = ByteBuffer()
    try request.encodeFrame(into: &wire)
    let frame = try #require(try KafkaFrameDecoder.nextFrame(from: &wire, maximumFrameSize: 1 << 20))
    let prefix = try #require(RequestHeaderPrefix.peek(frame))
    #expect(prefix.apiKey == .metadata && prefix.apiVersion == 12 && prefix.correlationId == 42)
    let decoded = try KafkaRequest.decode(frame: frame)
    #expect(decoded == request)
    #expect(decoded.header.clientId == "me")
  }

  @Test func unknownApiKeyAndVersionAreTypedErrors() {
    var unknown = ByteBuffer()
    unknown.writeMultipleIntegers(Int16(999), Int16(0), Int32(1), Int16(-1))
    #expect(throws: KafkaProtocolError.self) { try KafkaRequest.decode(frame: unknown) }
    var badVersion = ByteBuffer()
    badVersion.writeMultipleIntegers(Int16(0), Int16(99), Int32(1), Int16(-1))
    #expect(throws: KafkaProtocolError.self) { try KafkaRequest.decode(frame: badVersion) }
    #expect(throws: KafkaProtocolError.self) { try KafkaRequest.decode(frame: ByteBuffer(bytes: [0, 1])) }
  }

  @Test func responseFrameRoundTrip() throws {
    let response = KafkaResponse(
      correlationId: 7,
      body: .apiVersions(
        ApiVersionsResponse(errorCode: 0, apiKeys: [.init(apiKey: 0, minVersion: 3, maxVersion: 10)])))
    var wire = ByteBuffer()
    try response.encodeFrame(into: &wire, apiVersion: 3)
    let frame = try #require(try KafkaFrameDecoder.nextFrame(from: &wire, maximumFrameSize: 1 << 20))
    // ApiVersions uses response header v0: correlation id only, no tag section.
    #expect(frame.getInteger(at: frame.readerIndex, as: Int32.self) == 7)
    #expect(try KafkaResponse.decode(frame: frame, apiKey: .apiVersions, apiVersion: 3) == response)
  }
}
