import KafkaProtocol
import NIOCore
import Testing

@Suite struct UnsignedVarIntTests {
  /// Hand-checked LEB128 encodings.
  static let vectors: [(UInt32, [UInt8])] = [
    (0, [0x00]), (1, [0x01]), (127, [0x7F]), (128, [0x80, 0x01]), (300, [0xAC, 0x02]),
    (16383, [0xFF, 0x7F]), (16384, [0x80, 0x80, 0x01]),
    (UInt32.max, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
  ]

  @Test func vectorsEncodeAndDecode() throws {
    for (value, bytes) in Self.vectors {
      var buffer = ByteBuffer()
      let written = buffer.writeUnsignedVarInt(value)
      #expect(Array(buffer.readableBytesView) == bytes, "\(value)")
      #expect(written == bytes.count)
      #expect(try buffer.readUnsignedVarInt() == value)
      #expect(buffer.readableBytes == 0)
    }
  }

  @Test func overlongVarIntIsRejected() {
    var six = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
    #expect(throws: KafkaProtocolError(.invalidVarint, "unsigned varint longer than 32 bits")) {
      try six.readUnsignedVarInt()
    }
    var tooBig = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x1F])
    #expect(throws: KafkaProtocolError.self) { try tooBig.readUnsignedVarInt() }
  }

  @Test func truncatedVarIntConsumesNothing() {
    var buffer = ByteBuffer(bytes: [0x80, 0x80])
    #expect(throws: KafkaProtocolError.self) { try buffer.readUnsignedVarInt() }
    #expect(buffer.readableBytes == 2)
  }
}

@Suite struct HeaderVersionTests {
  @Test func requestHeaderVersionFollowsFlexibleVersions() {
    #expect(ApiKey.produce.requestHeaderVersion(apiVersion: 8) == 1)
    #expect(ApiKey.produce.requestHeaderVersion(apiVersion: 9) == 2)
    #expect(ApiKey.fetch.requestHeaderVersion(apiVersion: 11) == 1)
    #expect(ApiKey.fetch.requestHeaderVersion(apiVersion: 12) == 2)
    #expect(ApiKey.metadata.requestHeaderVersion(apiVersion: 9) == 2)
    #expect(ApiKey.apiVersions.requestHeaderVersion(apiVersion: 3) == 2)
    #expect(ApiKey.controlledShutdown.requestHeaderVersion(apiVersion: 0) == 0)
  }

  @Test func apiVersionsResponseHeaderIsAlwaysV0() {
    for version in ApiKey.apiVersions.definedVersions! {
      #expect(ApiKey.apiVersions.responseHeaderVersion(apiVersion: version) == 0)
    }
    #expect(ApiKey.metadata.responseHeaderVersion(apiVersion: 8) == 0)
    #expect(ApiKey.metadata.responseHeaderVersion(apiVersion: 9) == 1)
  }

  @Test func apiKeyNamesAndRegistry() {
    #expect(ApiKey.produce.rawValue == 0)
    #expect(ApiKey.fetch.name == "Fetch")
    #expect(ApiKey(rawValue: 18) == .apiVersions)
    #expect(ApiKey(rawValue: 9999).definedVersions == nil)
    #expect(ApiKey.allKnown.count == 88)
    #expect(ApiKey.produce.requestType == ProduceRequest.self)
    #expect(ApiKey.fetch.responseType == FetchResponse.self)
  }
}

@Suite struct HandEncodedMessageTests {
  /// MetadataRequest v1 for topic "t": array count 1, string "t".
  @Test func metadataV1Bytes() throws {
    let request = MetadataRequest(topics: [.init(name: "t")])
    let bytes = try request.encoded(version: 1)
    #expect(Array(bytes.readableBytesView) == [0, 0, 0, 1, 0, 1, 0x74])
    // v1: a null topic array means "all topics".
    #expect(
      Array(try MetadataRequest(topics: nil).encoded(version: 1).readableBytesView) == [
        0xFF, 0xFF, 0xFF, 0xFF,
      ])
    // v0 cannot express null.
    #expect(throws: KafkaProtocolError.self) { try MetadataRequest(topics: nil).encoded(version: 0) }
  }

  /// MetadataRequest v9 is flexible: compact array (n+1), compact nullable string, tag sections.
  @Test func metadataV9CompactBytes() throws {
    let request = MetadataRequest(topics: [.init(name: "ab")], allowAutoTopicCreation: true)
    let bytes = try request.encoded(version: 9)
    // topics: 02; topic: name 03 'a' 'b', no tags 00; allowAuto 01;
    // includeClusterAuthorizedOperations (v8-10) 00; includeTopicAuthorizedOperations 00; tags 00
    #expect(Array(bytes.readableBytesView) == [0x02, 0x03, 0x61, 0x62, 0x00, 0x01, 0x00, 0x00, 0x00])
  }

  /// A tagged field is written only when it differs from its default, and read back.
  @Test func taggedFieldOnlyWhenNotDefault() throws {
    var request = FetchRequest(maxWaitMs: 500, minBytes: 1)
    let plain = try request.encoded(version: 12)
    request.clusterId = "c"
    let tagged = try request.encoded(version: 12)
    // tag section: count 1, tag 0, size 2, compact string "c" (02 63)
    #expect(tagged.readableBytes == plain.readableBytes + 4)
    #expect(Array(tagged.readableBytesView.suffix(5)) == [0x01, 0x00, 0x02, 0x02, 0x63])
    #expect(try FetchRequest.decodeWhole(tagged, version: 12).clusterId == "c")
    #expect(try FetchRequest.decodeWhole(plain, version: 12).clusterId == nil)
  }

  /// Unknown tags survive a decode/encode round trip; out-of-order tags are rejected.
  @Test func unknownTaggedFieldsArePreservedAndOrdered() throws {
    // ApiVersionsRequest v3: client name "a", version "b", then tags {5: [0xAA]}
    let bytes = ByteBuffer(bytes: [0x02, 0x61, 0x02, 0x62, 0x01, 0x05, 0x01, 0xAA])
    let decoded = try ApiVersionsRequest.decodeWhole(bytes, version: 3)
    #expect(decoded.unknownTaggedFields == [TaggedField(tag: 5, data: ByteBuffer(bytes: [0xAA]))])
    #expect(try decoded.encoded(version: 3) == bytes)
    let outOfOrder = ByteBuffer(bytes: [0x02, 0x61, 0x02, 0x62, 0x02, 0x05, 0x00, 0x03, 0x00])
    #expect(throws: KafkaProtocolError.self) { try ApiVersionsRequest.decodeWhole(outOfOrder, version: 3) }
  }

  @Test func nonIgnorableFieldMissingFromVersionIsAnError() throws {
    // FetchRequest.LastFetchedEpoch exists from v12 and is not ignorable.
    let request = FetchRequest(topics: [.init(topic: "t", partitions: [.init(lastFetchedEpoch: 3)])])
    #expect(throws: KafkaProtocolError.self) { try request.encoded(version: 11) }
    _ = try request.encoded(version: 12)
  }

  @Test func samplesAreNotAllDefaults() {
    var nonDefault = 0
    for type in allGeneratedMessageTypes {
      if hasNonDefaultSample(type) { nonDefault += 1 }
    }
    #expect(nonDefault > allGeneratedMessageTypes.count * 9 / 10)
  }

  func hasNonDefaultSample<M: KafkaMessage & Sampleable>(_ type: M.Type) -> Bool {
    var rng = SampleRNG(seed: 9)
    return M.sample(version: M.validVersions.upperBound, rng: &rng) != M()
  }
}

@Suite struct HostileInputTests {
  @Test func negativeAndHugeLengthsAreRejected() {
    // MetadataRequest v1: array count -2 → invalid; count 2^31-1 with no bytes → invalid.
    for bytes: [UInt8] in [[0xFF, 0xFF, 0xFF, 0xFE], [0x7F, 0xFF, 0xFF, 0xFF], [0, 0, 0, 1, 0x7F, 0xFF]] {
      #expect(throws: KafkaProtocolError.self) {
        try MetadataRequest.decodeWhole(ByteBuffer(bytes: bytes), version: 1)
      }
    }
    // Compact array claiming 2^32-2 elements in a 5-byte body.
    #expect(throws: KafkaProtocolError.self) {
      try MetadataRequest.decodeWhole(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]), version: 9)
    }
    // Null where the version does not allow null: MetadataRequest v0 topics.
    #expect(throws: KafkaProtocolError.self) {
      try MetadataRequest.decodeWhole(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF]), version: 0)
    }
  }

  @Test func tagCountBeyondInputIsRejected() {
    // ApiVersionsRequest v3 with a tagged-field count of 2^31.
    let bytes = ByteBuffer(bytes: [0x01, 0x01, 0x80, 0x80, 0x80, 0x80, 0x08])
    #expect(throws: KafkaProtocolError.self) { try ApiVersionsRequest.decodeWhole(bytes, version: 3) }
  }

  @Test func trailingBytesAndBadVersionsAreRejected() {
    #expect(throws: KafkaProtocolError.self) {
      try MetadataRequest.decodeWhole(ByteBuffer(bytes: [0, 0, 0, 0, 9]), version: 1)
    }
    #expect(throws: KafkaProtocolError.self) {
      try MetadataRequest.decodeWhole(ByteBuffer(bytes: [0, 0, 0, 0]), version: 99)
    }
  }
}
