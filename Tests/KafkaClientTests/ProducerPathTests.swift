import KafkaClient
import KafkaProtocol
import NIOCore
import SluiceTestSupport
import Testing

/// The producer's append paths: the lock-only fast path, the slow path that fetches
/// metadata or waits for buffer space, and their errors.
@Suite(.serialized) struct ProducerPathTests {
  @Test func fullBufferMakesEnqueueWaitAndEveryRecordArrivesInOrder() async throws {
    try await InProcessBroker.with { broker in
      var config = KafkaProducerConfiguration(bootstrapAddresses: [broker.address])
      config.batchSize = 2000
      config.bufferMemory = 2000  // about 15 records: most enqueues wait for an acknowledgement
      config.linger = .milliseconds(1)
      let producer = try KafkaProducer(configuration: config)
      let values = (0..<3000).map { "value-\($0)-" + String(repeating: "x", count: $0 % 100) }
      for value in values {
        try await producer.enqueue(
          KafkaProducerMessage(topic: "full", partition: KafkaPartition(rawValue: 0), value: value))
      }
      let last = try await producer.sendAcked(KafkaProducerMessage(topic: "full", value: "last"))
      try await producer.close()
      #expect(last.offset == KafkaOffset(rawValue: 3000))
      let consumer = try KafkaConsumer(
        configuration: .init(
          consumptionStrategy: .partition(KafkaPartition(rawValue: 0), topic: "full", offset: .beginning),
          bootstrapAddresses: [broker.address]))
      var read: [String] = []
      for try await message in consumer.messages {
        read.append(String(buffer: message.value))
        if read.count == 3001 { break }
      }
      await consumer.close()
      #expect(read == values + ["last"])
    }
  }

  @Test func concurrentSendersEachGetTheirOwnOffsets() async throws {
    try await InProcessBroker.with { broker in
      let producer = try KafkaProducer(configuration: .init(bootstrapAddresses: [broker.address]))
      let acks = try await withThrowingTaskGroup(of: KafkaAcknowledgedMessage.self) { group in
        for i in 0..<200 {
          group.addTask { try await producer.sendAcked(KafkaProducerMessage(topic: "conc", value: "v\(i)")) }
        }
        var all: [KafkaAcknowledgedMessage] = []
        for try await ack in group { all.append(ack) }
        return all
      }
      try await producer.close()
      #expect(Set(acks.map(\.offset.rawValue)) == Set(0..<200))
    }
  }

  @Test func badPartitionAndClosedProducerFail() async throws {
    try await InProcessBroker.with { broker in
      let admin = try KafkaAdmin(configuration: .init(bootstrapAddresses: [broker.address]))
      try await admin.createTopic("two", partitions: 2)
      await admin.close()
      let producer = try KafkaProducer(configuration: .init(bootstrapAddresses: [broker.address]))
      // Slow path (no metadata yet), then fast path (metadata cached).
      for _ in 0..<2 {
        do {
          try await producer.sendAcked(
            KafkaProducerMessage(topic: "two", partition: KafkaPartition(rawValue: 2), value: "x"))
          Issue.record("a record to partition 2 of a 2-partition topic was accepted")
        } catch let error as KafkaError {
          #expect(error.brokerErrorCode == .unknownTopicOrPartition)
        }
      }
      try await producer.sendAcked(
        KafkaProducerMessage(topic: "two", partition: KafkaPartition(rawValue: 1), value: "ok"))
      try await producer.close()
      do {
        try await producer.enqueue(KafkaProducerMessage(topic: "two", value: "late"))
        Issue.record("enqueue after close succeeded")
      } catch let error as KafkaError {
        #expect(error.code == .closed)
      }
    }
  }
}
