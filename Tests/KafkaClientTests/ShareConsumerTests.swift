import KafkaClient
import KafkaProtocol
import NIOCore
import SluiceTestSupport
import Testing

/// `KafkaShareConsumer` against the in-process broker: a work queue shared by two members,
/// explicit acknowledgement, redelivery with delivery counts, and close accepting the last
/// batch in implicit mode.
@Suite struct ShareConsumerTests {
  static func fill(_ broker: InProcessBroker, topic: String, count: Int) async throws {
    _ = try await broker.broker.createTopic(name: topic, partitions: 1, configs: [:])
    try await broker.broker.shares.setConfigs(
      "g", ["share.auto.offset.reset": "earliest"], validateOnly: false)
    let producer = try KafkaProducer(configuration: .init(bootstrapAddresses: [broker.address]))
    // One batch per record: a share fetch hands out whole batches (past maxPollRecords).
    for i in 0..<count {
      _ = try await producer.sendAcked(KafkaProducerMessage(topic: topic, key: "k\(i)", value: "v\(i)"))
    }
    try await producer.close()
  }

  static func consumer(_ broker: InProcessBroker, _ mode: KafkaShareConsumerConfiguration.AcknowledgementMode)
    throws -> KafkaShareConsumer
  {
    var config = KafkaShareConsumerConfiguration(
      groupId: "g", topics: ["jobs"], bootstrapAddresses: [broker.address])
    config.acknowledgementMode = mode
    config.fetchMaxWait = .milliseconds(100)
    config.maxPollRecords = 10
    return try KafkaShareConsumer(configuration: config)
  }

  @Test func releasedRecordsComeBackAndAcceptedOnesDoNot() async throws {
    try await InProcessBroker.with { broker in
      try await Self.fill(broker, topic: "jobs", count: 20)
      let first = try Self.consumer(broker, .explicit)
      let batch = try await first.poll()
      #expect(batch.map(\.offset.rawValue) == Array(0..<10))
      #expect(batch.allSatisfy { $0.deliveryCount == 1 })
      #expect(String(buffer: batch[3].value) == "v3")
      // Asking for more before settling the batch is refused.
      await #expect(throws: KafkaError.self) { try await first.poll() }
      for message in batch {
        try await first.acknowledge(message, message.offset.rawValue < 5 ? .accept : .release)
      }
      try await first.commit()
      await first.close()

      let second = try Self.consumer(broker, .implicit)
      var seen: [Int: Int16] = [:]
      for _ in 0..<10 where seen.count < 15 {
        for message in try await second.poll() { seen[message.offset.rawValue] = message.deliveryCount }
      }
      // 5...9 were released (second delivery); 10...19 are new; 0...4 were accepted.
      #expect(seen.keys.sorted() == Array(5..<20))
      #expect((5..<10).allSatisfy { seen[$0] == 2 })
      await second.close()  // implicit: accepts the last batch

      let third = try Self.consumer(broker, .implicit)
      #expect(try await third.poll().isEmpty)
      await third.close()
    }
  }

  @Test func closingMidBatchAcceptsOnlyWhatTheIteratorHandedOut() async throws {
    try await InProcessBroker.with { broker in
      try await Self.fill(broker, topic: "jobs", count: 10)
      let first = try Self.consumer(broker, .implicit)
      var got: [Int] = []
      for try await message in first.messages {
        got.append(message.offset.rawValue)
        if got.count == 4 { break }
      }
      await first.close()
      #expect(got == [0, 1, 2, 3])
      // 4...9 were fetched with 0...3 but never handed out: released, not accepted.
      let second = try Self.consumer(broker, .implicit)
      let rest = try await second.poll()
      #expect(rest.map(\.offset.rawValue) == Array(4..<10))
      #expect(rest.allSatisfy { $0.deliveryCount == 2 })
      await second.close()
    }
  }
}
