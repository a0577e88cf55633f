import Foundation
import KafkaProtocol
import NIOCore
import Testing

/// Request frames captured from real clients (kcat/librdkafka 2.0.2, confluent-kafka with
/// librdkafka 2.16, kafka-python 3.0, aiokafka 0.14; see tools/capture) decode, re-encode to
/// the very same bytes, and carry the records the clients were asked to send.
@Suite struct CapturedFrameTests {
  struct Fixture: Sendable, CustomTestStringConvertible {
    let file: String
    let entry: [String: any Sendable]
    var testDescription: String { file }
  }

  static let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    .appendingPathComponent("captured")

  static let fixtures: [Fixture] = {
    let data = try! Data(contentsOf: directory.appendingPathComponent("MANIFEST.json"))
    let manifest = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    let files = manifest["files"] as! [[String: Any]]
    return files.map { entry in
      Fixture(file: entry["file"] as! String, entry: entry.mapValues { sendable($0) })
    }
  }()

  static func sendable(_ value: Any) -> any Sendable {
    switch value {
    case let s as String: return s
    case let n as NSNumber: return n.intValue
    case let a as [Any]: return a.map { sendable($0) }
    case let d as [String: Any]: return d.mapValues { sendable($0) }
    default: return Optional<String>.none
    }
  }

  static func frame(_ file: String) throws -> ByteBuffer {
    let bytes = try Data(contentsOf: directory.appendingPathComponent(file))
    var buffer = ByteBuffer(bytes: bytes)
    let frame = try #require(try KafkaFrameDecoder.nextFrame(from: &buffer, maximumFrameSize: 1 << 20))
    #expect(buffer.readableBytes == 0, "\(file): bytes after the frame")
    return frame
  }

  @Test func manifestIsComplete() {
    #expect(Self.fixtures.count >= 40)
    let clients = Set(Self.fixtures.map { $0.file.split(separator: "-").first.map(String.init) ?? "" })
    #expect(clients == ["kcat", "confluent", "kafkapython", "aiokafka"])
  }

  @Test(arguments: fixtures)
  func decodesAndReencodesByteExact(_ fixture: Fixture) throws {
    let frame = try Self.frame(fixture.file)
    let request = try KafkaRequest.decode(frame: frame)
    #expect(Int(request.apiKey.rawValue) == fixture.entry["apiKey"] as? Int)
    #expect(Int(request.apiVersion) == fixture.entry["apiVersion"] as? Int)
    #expect(Int(request.header.correlationId) == fixture.entry["correlationId"] as? Int)
    #expect(request.header.clientId == fixture.entry["clientId"] as? String)
    // Only librdkafka 2.16's all-topics Metadata request carries bytes after the body.
    let expectTrailing = fixture.file == "confluent-Metadata-v12-all.bin"
    #expect(request.trailingBytes.readableBytes == (expectTrailing ? 3 : 0), "\(fixture.file)")
    if !expectTrailing { _ = try KafkaRequest.decode(frame: frame, strict: true) }
    var again = ByteBuffer()
    try request.encodeFrame(into: &again)
    again.moveReaderIndex(forwardBy: 4)
    #expect(again == frame, "\(fixture.file): re-encoded frame differs")
  }

  static var produceFixtures: [Fixture] { fixtures.filter { $0.entry["produce"] != nil } }

  /// The records inside captured Produce requests — every codec, from every client,
  /// snappy raw (librdkafka) and xerial-framed (Java-style clients) — decode to exactly what
  /// the clients were asked to send.
  @Test(arguments: produceFixtures)
  func produceRecordsMatchWhatWasSent(_ fixture: Fixture) throws {
    let produce = try #require(fixture.entry["produce"] as? [String: any Sendable])
    let expected = try #require(produce["records"] as? [any Sendable])
    let request = try KafkaRequest.decode(frame: try Self.frame(fixture.file))
    guard case .produce(let body) = request.body else {
      Issue.record("\(fixture.file) is not a Produce request")
      return
    }
    let records = try #require(body.topicData.first?.partitionData.first?.records)
    var splitter = RecordBatchSplitter(records)
    var decoded: [Record] = []
    while let batch = try splitter.next() {
      try batch.validate()
      #expect(batch.compression?.name == produce["compression"] as? String, "\(fixture.file)")
      decoded += try batch.records(maxDecompressedSize: 1 << 20)
    }
    #expect(splitter.partialTail == nil)
    #expect(decoded.count == expected.count, "\(fixture.file)")
    for (record, want) in zip(decoded, expected) {
      let want = try #require(want as? [String: any Sendable])
      #expect(record.key.map { String(buffer: $0) } == want["key"] as? String, "\(fixture.file) key")
      #expect(record.value.map { String(buffer: $0) } == want["value"] as? String, "\(fixture.file) value")
      let headers = (want["headers"] as? [any Sendable] ?? []).compactMap { $0 as? [any Sendable] }
      #expect(record.headers.count == headers.count, "\(fixture.file) headers")
      for (header, pair) in zip(record.headers, headers) {
        #expect(header.key == pair.first as? String)
        #expect(header.value.map { String(buffer: $0) } == pair.last as? String)
      }
    }
  }
}
