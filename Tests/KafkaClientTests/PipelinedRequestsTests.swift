import Foundation
import KafkaProtocol
import NIOCore
import SluiceBroker
import SluiceServer
import SluiceTestSupport
import Testing

/// Requests pipelined on one connection, mixing the ones the listener answers without the
/// connection's task (Produce, Fetch) and the ones it hands to the task: answered one at a
/// time, in request order, a parked Fetch holding back those after it.
@Suite(.serialized) struct PipelinedRequestsTests {
  static func frame(_ id: Int32, _ version: Int16, _ body: KafkaRequestBody) throws -> [UInt8] {
    var buffer = ByteBuffer()
    try KafkaRequest(correlationId: id, clientId: "pipelined", apiVersion: version, body: body)
      .encodeFrame(into: &buffer)
    return Array(buffer.readableBytesView)
  }

  static func produce(_ topic: String, _ value: String) throws -> KafkaRequestBody {
    var builder = RecordBatchBuilder()
    builder.append(key: nil, value: ByteBuffer(string: value), timestamp: 1_700_000_000_000)
    return .produce(
      ProduceRequest(
        acks: 1, timeoutMs: 1000,
        topicData: [.init(name: topic, partitionData: [.init(index: 0, records: try builder.build().buffer)])]
      ))
  }

  static func fetch(_ topic: String, offset: Int64, maxWaitMs: Int32) -> KafkaRequestBody {
    .fetch(
      FetchRequest(
        maxWaitMs: maxWaitMs, minBytes: 1, maxBytes: 1 << 20,
        topics: [
          .init(
            topic: topic, partitions: [.init(partition: 0, fetchOffset: offset, partitionMaxBytes: 1 << 20)])
        ]))
  }

  /// Reads one response frame: its correlation id and the frame (size prefix removed).
  static func readFrame(_ fd: Int32) -> (id: Int32, frame: ByteBuffer)? {
    func readExactly(_ count: Int) -> [UInt8]? {
      var bytes = [UInt8](repeating: 0, count: count)
      var got = 0
      while got < count {
        let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
        guard n > 0 else { return nil }
        got += n
      }
      return bytes
    }
    guard let size = readExactly(4) else { return nil }
    let length = Int(size[0]) << 24 | Int(size[1]) << 16 | Int(size[2]) << 8 | Int(size[3])
    guard let body = readExactly(length) else { return nil }
    let frame = ByteBuffer(bytes: body)
    return (frame.getInteger(at: 0, as: Int32.self) ?? -1, frame)
  }

  @Test func pipelinedRequestsAreAnsweredInOrderAroundAParkedFetch() async throws {
    try await InProcessBroker.with { broker in
      try await broker.broker.createTopic(name: "pipe", partitions: 1, configs: [:])
      let port = broker.port
      let requests: [(Int32, Int16, KafkaRequestBody)] = [
        (1, 9, try Self.produce("pipe", "a")),
        (2, 12, .metadata(MetadataRequest(topics: [.init(name: "pipe")]))),
        (3, 12, Self.fetch("pipe", offset: 0, maxWaitMs: 0)),
        (4, 9, try Self.produce("pipe", "b")),
        // Parks: offset 2 is written by another connection below.
        (5, 12, Self.fetch("pipe", offset: 2, maxWaitMs: 5000)),
        (6, 12, .metadata(MetadataRequest(topics: [.init(name: "pipe")]))),
        (7, 9, try Self.produce("pipe", "d")),
      ]
      var bytes: [UInt8] = []
      for (id, version, body) in requests { bytes += try Self.frame(id, version, body) }
      let sent = bytes
      async let answered: [(Int32, ByteBuffer)] = IdleConnectionTests.onThread {
        guard let fd = LoopbackSocket.connect(port, timeout: 10) else { return [] }
        defer { close(fd) }
        guard sent.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == sent.count
        else { return [] }
        var answers: [(Int32, ByteBuffer)] = []
        while answers.count < requests.count, let answer = Self.readFrame(fd) { answers.append(answer) }
        return answers
      }
      // Written from elsewhere once Produce 4 is in (and, a moment later, Fetch 5 parked):
      // wakes the Fetch. (Had it not parked yet, it finds the record at once: the same answers.)
      let partition = broker.broker.topic("pipe")?.partition(0)
      for _ in 0..<1000 where (partition?.logEndOffset ?? 0) < 2 {
        try await Task.sleep(for: .milliseconds(10))
      }
      try await Task.sleep(for: .milliseconds(200))
      var builder = RecordBatchBuilder()
      builder.append(key: nil, value: ByteBuffer(string: "c"), timestamp: 1_700_000_000_000)
      let woke = await broker.broker.produce(
        [PartitionRecords(topic: "pipe", partition: 0, records: try builder.build().buffer)],
        options: ProduceOptions(acks: .leader))
      let answers = await answered
      #expect(answers.map(\.0) == [1, 2, 3, 4, 5, 6, 7])
      guard answers.count == 7, case .appended(let wokeAt, _, _)? = woke.results.first else { return }
      #expect(wokeAt == 2)
      func body(_ index: Int) throws -> KafkaResponseBody {
        let (_, version, request) = requests[index]
        return try KafkaResponse.decode(frame: answers[index].1, apiKey: request.apiKey, apiVersion: version)
          .body
      }
      guard case .produce(let first) = try body(0), case .produce(let second) = try body(3),
        case .fetch(let fetched) = try body(2), case .fetch(let parked) = try body(4),
        case .metadata = try body(5), case .produce(let last) = try body(6)
      else {
        Issue.record("unexpected response types")
        return
      }
      #expect(first.responses.first?.partitionResponses.first?.baseOffset == 0)
      #expect(second.responses.first?.partitionResponses.first?.baseOffset == 1)
      #expect(fetched.responses.first?.partitions.first?.highWatermark == 1)
      // The parked Fetch returned the record the other writer appended, and Produce 7,
      // behind it, was appended only after that.
      let woken = parked.responses.first?.partitions.first
      #expect(woken?.highWatermark == 3)
      #expect(try recordValues(woken?.records) == ["c"])
      #expect(last.responses.first?.partitionResponses.first?.baseOffset == 3)
    }
  }
}
