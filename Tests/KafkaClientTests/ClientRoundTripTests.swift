import KafkaClient
import KafkaProtocol
import NIOCore
import SluiceTestSupport
import Testing

private func producerConfig(_ broker: InProcessBroker) -> KafkaProducerConfiguration {
  KafkaProducerConfiguration(bootstrapAddresses: [broker.address])
}

private func consume(
  _ broker: InProcessBroker, _ topic: String, partitions: [Int] = [0], count: Int,
  from offset: KafkaOffset = .beginning
) async throws -> [KafkaConsumerMessage] {
  var assignment: [KafkaTopicPartition: KafkaOffset] = [:]
  for partition in partitions {
    assignment[KafkaTopicPartition(topic: topic, partition: KafkaPartition(rawValue: partition))] = offset
  }
  let consumer = try KafkaConsumer(
    configuration: KafkaConsumerConfiguration(
      consumptionStrategy: .partitions(assignment), bootstrapAddresses: [broker.address]))
  var out: [KafkaConsumerMessage] = []
  for try await message in consumer.messages {
    out.append(message)
    if out.count == count { break }
  }
  await consumer.close()
  return out
}

@Suite(.serialized) struct ClientRoundTripTests {
  @Test func sendAndConsumeWithKeysHeadersAndTombstones() async throws {
    try await InProcessBroker.with { broker in
      let admin = try KafkaAdmin(configuration: .init(bootstrapAddresses: [broker.address]))
      try await admin.createTopic("rt", partitions: 1)
      let producer = try KafkaProducer(configuration: producerConfig(broker))
      let first = try await producer.sendAcked(
        KafkaProducerMessage(
          topic: "rt", headers: [KafkaHeader(key: "h", value: ByteBuffer(string: "v"))], key: "k1",
          value: "one"))
      #expect(first.offset == KafkaOffset(rawValue: 0))
      let second = try await producer.sendAcked(
        KafkaProducerMessage<String, String>(topic: "rt", key: "k2", value: nil))
      #expect(second.offset == KafkaOffset(rawValue: 1))
      for i in 0..<100 { try await producer.enqueue(KafkaProducerMessage(topic: "rt", value: "v\(i)")) }
      try await producer.close()
      let messages = try await consume(broker, "rt", count: 102)
      #expect(messages.count == 102)
      #expect(String(buffer: messages[0].value) == "one")
      #expect(messages[0].key.map { String(buffer: $0) } == "k1")
      #expect(messages[0].headers == [KafkaHeader(key: "h", value: ByteBuffer(string: "v"))])
      #expect(messages[1].isTombstone)
      #expect(messages.map(\.offset.rawValue) == Array(0..<102))
      #expect(String(buffer: messages[101].value) == "v99")
      await admin.close()
    }
  }

  @Test(arguments: CompressionCodec.allCases)
  func eachCodec(codec: CompressionCodec) async throws {
    try await InProcessBroker.with { broker in
      var config = producerConfig(broker)
      config.compression = codec
      let producer = try KafkaProducer(configuration: config)
      let values = (0..<500).map { "record-\($0)-" + String(repeating: "abc", count: $0 % 50) }
      for value in values {
        try await producer.enqueue(
          KafkaProducerMessage(topic: "codec", partition: KafkaPartition(rawValue: 0), value: value))
      }
      try await producer.close()
      let messages = try await consume(broker, "codec", count: values.count)
      #expect(messages.map { String(buffer: $0.value) } == values)
    }
  }

  @Test(arguments: [KafkaConfiguration.Acks.none, .leader, .all])
  func acks(acks: KafkaConfiguration.Acks) async throws {
    try await InProcessBroker.with { broker in
      var config = producerConfig(broker)
      config.acks = acks
      let producer = try KafkaProducer(configuration: config)
      let ack = try await producer.sendAcked(KafkaProducerMessage(topic: "acks", value: "x"))
      #expect(ack.offset == (acks == .none ? KafkaOffset(rawValue: -1) : KafkaOffset(rawValue: 0)))
      try await producer.close()
      #expect(try await consume(broker, "acks", count: 1).map { String(buffer: $0.value) } == ["x"])
    }
  }

  @Test func keyedRecordsFollowMurmur2AndNullKeysStick() async throws {
    try await InProcessBroker.with { broker in
      let admin = try KafkaAdmin(configuration: .init(bootstrapAddresses: [broker.address]))
      try await admin.createTopic("keyed", partitions: 6)
      let producer = try KafkaProducer(configuration: producerConfig(broker))
      for i in 0..<50 {
        let ack = try await producer.sendAcked(
          KafkaProducerMessage(topic: "keyed", key: "key-\(i)", value: "v"))
        #expect(ack.partition == kafkaPartition(forKey: "key-\(i)", partitionCount: 6))
      }
      // Without a key, records buffered together share one (sticky) partition.
      for _ in 0..<20 { try await producer.enqueue(KafkaProducerMessage(topic: "keyed", value: "sticky")) }
      try await producer.flush()
      try await producer.close()
      let messages = try await consume(broker, "keyed", partitions: Array(0..<6), count: 70)
      let sticky = Set(messages.filter { $0.key == nil }.map(\.partition))
      #expect(sticky.count == 1)
      await admin.close()
    }
  }

  @Test func idempotentRetryWritesOnce() async throws {
    try await InProcessBroker.with { broker in
      var config = producerConfig(broker)
      config.duplicateEveryProduceRequest = true  // as if every response were lost and the batch retried
      let producer = try KafkaProducer(configuration: config)
      for i in 0..<300 { try await producer.enqueue(KafkaProducerMessage(topic: "idem", value: "r\(i)")) }
      let last = try await producer.sendAcked(KafkaProducerMessage(topic: "idem", value: "last"))
      try await producer.close()
      #expect(last.offset == KafkaOffset(rawValue: 300))
      let consumer = try KafkaConsumer(
        configuration: .init(
          consumptionStrategy: .partition(KafkaPartition(rawValue: 0), topic: "idem", offset: .beginning),
          bootstrapAddresses: [broker.address]))
      let (_, high) = try await consumer.watermarks(
        KafkaTopicPartition(topic: "idem", partition: KafkaPartition(rawValue: 0)))
      #expect(high == KafkaOffset(rawValue: 301))
      await consumer.close()
      let messages = try await consume(broker, "idem", count: 301)
      #expect(messages.map { String(buffer: $0.value) } == (0..<300).map { "r\($0)" } + ["last"])
    }
  }

  @Test func seekToEndAndTimestamp() async throws {
    try await InProcessBroker.with { broker in
      let producer = try KafkaProducer(configuration: producerConfig(broker))
      for i in 0..<10 {
        try await producer.sendAcked(
          KafkaProducerMessage(topic: "seek", value: "v\(i)", timestamp: 1_000_000 + Int64(i) * 1000))
      }
      let topicPartition = KafkaTopicPartition(topic: "seek", partition: KafkaPartition(rawValue: 0))
      let consumer = try KafkaConsumer(
        configuration: .init(
          consumptionStrategy: .partition(topicPartition.partition, topic: "seek", offset: .end),
          bootstrapAddresses: [broker.address]))
      #expect(try await consumer.position(topicPartition) == KafkaOffset(rawValue: 10))
      await consumer.seek(topicPartition, toTimestamp: 1_004_500)
      #expect(try await consumer.position(topicPartition) == KafkaOffset(rawValue: 5))
      await consumer.seek(topicPartition, to: KafkaOffset(rawValue: 8))
      var iterator = consumer.messages.makeAsyncIterator()
      #expect(try await iterator.next().map { String(buffer: $0.value) } == "v8")
      await consumer.seek(topicPartition, to: .beginning)
      #expect(try await consumer.position(topicPartition) == KafkaOffset(rawValue: 0))
      await consumer.close()
      try await producer.close()
    }
  }

  @Test func adminOperations() async throws {
    try await InProcessBroker.with { broker in
      let admin = try KafkaAdmin(configuration: .init(bootstrapAddresses: [broker.address]))
      try await admin.createTopic("adm", partitions: 2, configs: ["retention.ms": "3600000"])
      await #expect(throws: KafkaError.self) { try await admin.createTopic("adm", partitions: 2) }
      #expect(try await admin.listTopics().contains("adm"))
      #expect(try await admin.describeTopics(["adm"]).first?.partitions.count == 2)
      try await admin.createPartitions(topic: "adm", totalCount: 4)
      #expect(try await admin.describeTopics(["adm"]).first?.partitions.count == 4)
      #expect(
        try await admin.describeConfigs(.topic, name: "adm").first { $0.name == "retention.ms" }?.value
          == "3600000")
      try await admin.alterConfigs(.topic, name: "adm", [.set("retention.ms", "7200000")])
      #expect(
        try await admin.describeConfigs(.topic, name: "adm").first { $0.name == "retention.ms" }?.value
          == "7200000")
      let cluster = try await admin.describeCluster()
      #expect(cluster.brokers.map(\.address) == [broker.address])
      try await admin.deleteTopics(["adm"])
      #expect(try await !admin.listTopics().contains("adm"))
      do {
        try await admin.deleteTopics(["adm"])
        Issue.record("deleting a missing topic succeeded")
      } catch let error as KafkaError {
        #expect(error.brokerErrorCode == .unknownTopicOrPartition)
        #expect(error.isRetriable)  // UNKNOWN_TOPIC_OR_PARTITION is retriable in Kafka's table
      }
      await admin.close()
    }
  }

  @Test func unreachableBootstrapFailsWithConnectionError() async throws {
    var config = KafkaAdminConfiguration(bootstrapAddresses: [
      .init(host: "127.0.0.1", port: try LoopbackSocket.freePort())
    ])
    config.connection.connectTimeout = .milliseconds(300)
    let admin = try KafkaAdmin(configuration: config)
    do {
      _ = try await admin.listTopics()
      Issue.record("expected a connection failure")
    } catch let error as KafkaError {
      #expect(error.code == .connectionFailed)
    }
    await admin.close()
  }
}
