import NIOCore
import SluiceTestSupport
import Testing

@testable import SluiceHTTP

@Suite struct JSONParsingTests {
  func parse(_ text: String) throws -> JSONValue { try JSONParser.parse(ByteBuffer(string: text)) }

  @Test func acceptsValidDocumentsAndKeepsRawText() throws {
    let value = try parse(#" { "a" : [1, -2.5e3, true, null, "x\u00e9\n"], "b": {} } "#)
    #expect(value["a"]?.array?.count == 5)
    #expect(value["a"]?.array?[1].json == .number("-2.5e3"))
    #expect(value["a"]?.array?[4].string == "xé\n")
    #expect(String(buffer: value["a"]!.raw) == #"[1, -2.5e3, true, null, "x\u00e9\n"]"#)
    var writer = JSONWriter()
    writer.value(value)
    #expect(String(buffer: writer.buffer) == #"{"a":[1,-2.5e3,true,null,"xé\n"],"b":{}}"#)
  }

  @Test(arguments: [
    "", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "\"\\x\"", "\"\u{01}\"", "tru", "nul", "[1] 2",
    "\"\\ud800\"", "{\"a\" 1}", "{1:2}", "1e", "\"abc",
  ])
  func refusesInvalidDocuments(_ text: String) {
    #expect(throws: JSONError.self) { try parse(text) }
  }

  @Test func refusesInvalidUTF8() {
    var buffer = ByteBuffer(string: "\"")
    buffer.writeBytes([0xC3, 0x28])
    buffer.writeString("\"")
    #expect(throws: JSONError.self) { try JSONParser.parse(buffer) }
  }

  @Test func boundsNesting() throws {
    let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
    #expect(throws: JSONError.self) { try parse(deep) }
    let ok = String(repeating: "[", count: 60) + String(repeating: "]", count: 60)
    _ = try parse(ok)
  }

  @Test func escapesControlCharactersWhenWriting() {
    var writer = JSONWriter()
    writer.string("a\"b\\c\u{01}\t")
    #expect(String(buffer: writer.buffer) == #""a\"b\\c\u0001\t""#)
  }
}

@Suite struct Base64Tests {
  @Test func rfc4648Vectors() {
    let vectors = [
      ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
      ("foobar", "Zm9vYmFy"),
    ]
    for (plain, encoded) in vectors {
      #expect(Base64.encode(ByteBuffer(string: plain)) == encoded)
      #expect(Base64.decode(encoded).map { String(buffer: $0) } == plain)
      // Padding is optional on input.
      let bare = encoded.replacingOccurrences(of: "=", with: "")
      #expect(Base64.decode(bare).map { String(buffer: $0) } == plain)
    }
  }

  @Test(arguments: ["Z", "Zg=", "Zg===", "Zm9v!", "Zm 9v", "Zm9v-_", "=Zm9v", "Zm=v", "Zm9vY"])
  func refusesInvalidText(_ text: String) {
    #expect(Base64.decode(text) == nil)
  }

  @Test func roundTripsRandomBytes() {
    var random = SplitMix64(seed: 7)
    for length in 0..<200 {
      let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
      let encoded = Base64.encode(ByteBuffer(bytes: bytes))
      #expect(Base64.decode(encoded) == ByteBuffer(bytes: bytes))
    }
  }
}

@Suite struct RestProduceParsingTests {
  func parse(_ text: String, _ format: EmbeddedFormat) -> Result<RestProduceRequest, RestError> {
    RestProduceRequest.parse(ByteBuffer(string: text), format: format)
  }

  @Test func jsonValuesAreStoredCompactAndNullIsKafkaNull() throws {
    let request = try parse(
      #"{"records":[{"key": {"id" : 1}, "value": [ 1, "two" ]}, {"value": null}, {"partition": 2}]}"#, .json
    ).get()
    #expect(request.records.count == 3)
    #expect(request.records[0].key.map { String(buffer: $0) } == #"{"id":1}"#)
    #expect(request.records[0].value.map { String(buffer: $0) } == #"[1,"two"]"#)
    #expect(request.records[1].value == nil && request.records[1].key == nil)
    #expect(request.records[2].partition == 2)
  }

  @Test func binaryValuesAreBase64() throws {
    let request = try parse(#"{"records":[{"key":"aGk","value":"/w=="}]}"#, .binary).get()
    #expect(request.records[0].key == ByteBuffer(string: "hi"))
    #expect(request.records[0].value == ByteBuffer(bytes: [0xFF]))
  }

  @Test(arguments: [
    (#"{"records":[]}"#, 422), (#"{}"#, 422), (#"[]"#, 422),
    (#"{"records":[{"value":"x","headers":[]}]}"#, 422),
    (#"{"records":[1]}"#, 422), (#"{"records":[{"partition":-1}]}"#, 422),
    (#"{"records":[{"partition":"0"}]}"#, 422), (#"{"records":[{"value":1}]}"#, 400),
    (#"{"records":[{"value":"a b"}]}"#, 400), (#"{"records":"#, 400), (#"{"record":[]}"#, 422),
  ])
  func refusals(_ text: String, _ code: Int) {
    guard case .failure(let error) = parse(text, .binary) else {
      Issue.record("accepted \(text)")
      return
    }
    #expect(error.code == code)
  }

  @Test func contentTypes() {
    #expect(
      (try? EmbeddedFormat.produceFormat(contentType: "application/vnd.kafka.json.v2+json").get()) == .json)
    #expect(
      (try? EmbeddedFormat.produceFormat(contentType: "Application/vnd.kafka.binary.v2+json; charset=utf-8")
        .get())
        == .binary)
    for refused in [
      "application/json", "application/vnd.kafka.v2+json", "application/vnd.kafka.avro.v2+json", "",
    ] {
      guard case .failure(let error) = EmbeddedFormat.produceFormat(contentType: refused) else {
        Issue.record("accepted \(refused)")
        continue
      }
      #expect(error.code == 415)
    }
  }

  @Test func keyedRecordsGoWhereTheJavaClientPutsThem() {
    // The Java client's Utils.murmur2("21") is -973932308 (Kafka's UtilsTest); the partition
    // is toPositive(hash) % count, the sign bit masked.
    let expected = Int32((-973_932_308 & 0x7fff_ffff) % 7)
    #expect(RestPartitioner.partition(key: ByteBuffer(string: "21"), count: 7) == expected)
  }
}

@Suite struct EventIDTests {
  @Test func parsesEventIdsAndCheckpoints() {
    #expect(EventID.parse("3:41") == [3: 41])
    #expect(EventID.parse("0:-1,1:7") == [0: -1, 1: 7])
    for bad in ["", "3", "3:", ":4", "a:1", "1:2:3", "-1:4", "1:-2", "1:4,", "0:9223372036854775807"] {
      #expect(EventID.parse(bad) == nil, "\(bad)")
    }
    #expect(EventID.format([1: 7, 0: -1]) == "0:-1,1:7")
  }

  @Test func streamStarts() {
    #expect(StreamStart(parameter: "beginning") == .beginning)
    #expect(StreamStart(parameter: "end") == .end)
    #expect(StreamStart(parameter: "@1700000000000") == .timestamp(1_700_000_000_000))
    #expect(StreamStart(parameter: "@-1") == nil)
    #expect(StreamStart(parameter: "now") == nil)
  }
}

@Suite struct OpenAPITests {
  /// The document names exactly the routes the router serves.
  @Test func documentMatchesRoutes() throws {
    let document = try JSONParser.parse(ByteBuffer(string: OpenAPIDocument.text))
    #expect(document["openapi"]?.string?.hasPrefix("3.") == true)
    guard case .object(let paths) = document["paths"]?.json else {
      Issue.record("no paths")
      return
    }
    var documented: Set<String> = []
    for (path, item) in paths {
      guard case .object(let operations) = item.json else { continue }
      for (method, _) in operations { documented.insert("\(method.uppercased()) \(path)") }
    }
    let served = Set(Router.routes.map { "\($0.method.rawValue) \($0.template)" })
    #expect(documented == served)
  }
}
