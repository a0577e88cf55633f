import KafkaClient
import KafkaProtocol
import NIOCore
import SluiceTestSupport
import Testing

/// read_committed: the aborted-transaction walk, and a read_committed consumer against the
/// broker (which has no transactions, so everything below the high watermark is stable).
@Suite struct ReadCommittedTests {
  @Test func abortedRangesStartAtTheirFirstOffsetAndEndAtTheAbortMarker() {
    var aborted = AbortedTransactions([
      .init(producerId: 7, firstOffset: 10),
      .init(producerId: 9, firstOffset: 3),
    ])
    aborted.advance(to: 2)
    #expect(!aborted.isAborted(producerId: 9) && !aborted.isAborted(producerId: 7))
    aborted.advance(to: 5)  // a batch ending at 5 overlaps producer 9's aborted range
    #expect(aborted.isAborted(producerId: 9))
    #expect(!aborted.isAborted(producerId: 7))
    aborted.ended(producerId: 9)  // its abort marker
    #expect(!aborted.isAborted(producerId: 9))
    aborted.advance(to: 12)
    #expect(aborted.isAborted(producerId: 7))
    #expect(!aborted.isAborted(producerId: 8))
  }

  @Test func readCommittedConsumerReadsStableRecords() async throws {
    try await InProcessBroker.with { broker in
      let producer = try KafkaProducer(configuration: .init(bootstrapAddresses: [broker.address]))
      for i in 0..<20 { try await producer.enqueue(KafkaProducerMessage(topic: "rc", value: "v\(i)")) }
      try await producer.close()
      var config = KafkaConsumerConfiguration(
        consumptionStrategy: .partition(KafkaPartition(rawValue: 0), topic: "rc", offset: .beginning),
        bootstrapAddresses: [broker.address])
      config.isolationLevel = .readCommitted
      let consumer = try KafkaConsumer(configuration: config)
      var values: [String] = []
      for try await message in consumer.messages {
        values.append(String(buffer: message.value))
        if values.count == 20 { break }
      }
      #expect(values == (0..<20).map { "v\($0)" })
      await consumer.seek(KafkaTopicPartition(topic: "rc", partition: KafkaPartition(rawValue: 0)), to: .end)
      #expect(
        try await consumer.position(KafkaTopicPartition(topic: "rc", partition: KafkaPartition(rawValue: 0)))
          == KafkaOffset(rawValue: 20))
      await consumer.close()
    }
  }
}
