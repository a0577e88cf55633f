import Foundation
import KafkaClient
import KafkaProtocol
import Logging
import NIOCore
import ServiceLifecycle
import SluiceEmbedded
import Testing

/// The embedded broker: start/stop, as a Service, with and without a TCP listener, and the
/// in-process client path.

private func temporaryDirectory() -> String {
  NSTemporaryDirectory() + "sluice-embedded-" + UUID().uuidString
}

private func quietLogger() -> Logger {
  var logger = Logger(label: "embedded-test")
  logger.logLevel = .warning
  return logger
}

@Suite(.serialized) struct EmbeddedBrokerTests {
  @Test func inProcessOnlyBrokerServesProducerConsumerAndAdminWithoutASocket() async throws {
    let directory = temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let broker = try await EmbeddedBroker.start(
      .init(dataDirectory: directory, listener: nil, logger: quietLogger()))
    #expect(broker.port == nil)
    #expect(broker.bootstrapAddress == nil)

    let admin = try KafkaAdmin(configuration: broker.adminConfiguration())
    try await admin.createTopic("local", partitions: 2)
    #expect(try await admin.listTopics() == ["local"])

    let producer = try KafkaProducer(configuration: broker.producerConfiguration())
    var acks: [KafkaAcknowledgedMessage] = []
    for i in 0..<50 {
      acks.append(
        try await producer.sendAcked(KafkaProducerMessage(topic: "local", key: "k\(i)", value: "v\(i)")))
    }
    for i in 50..<1000 {
      try await producer.enqueue(KafkaProducerMessage(topic: "local", key: "k\(i)", value: "v\(i)"))
    }
    try await producer.close()
    #expect(acks.allSatisfy { $0.offset.rawValue >= 0 })
    #expect(acks.map(\.partition) == (0..<50).map { kafkaPartition(forKey: "k\($0)", partitionCount: 2) })

    // A group consumer in-process too (coordinator, join, sync, commits).
    var config = broker.consumerConfiguration(.group(id: "local-group", topics: ["local"]))
    config.autoOffsetReset = .beginning
    config.sessionTimeout = .seconds(6)
    config.heartbeatInterval = .milliseconds(100)
    let consumer = try KafkaConsumer(configuration: config)
    var values: Set<String> = []
    for try await message in consumer.messages {
      values.insert(String(buffer: message.value))
      if values.count == 1000 { break }
    }
    await consumer.close()
    #expect(values == Set((0..<1000).map { "v\($0)" }))
    let committed = try await admin.committedOffsets(group: "local-group")
    #expect(committed.values.map(\.rawValue).reduce(0, +) == 1000)
    await admin.close()

    try await broker.stop()
    // After stop the in-process path reports a closed connection, not a hang.
    var lateConfiguration = broker.adminConfiguration()
    lateConfiguration.connection.connectTimeout = .milliseconds(300)
    let late = try KafkaAdmin(configuration: lateConfiguration)
    await #expect(throws: KafkaError.self) { try await late.listTopics() }
    await late.close()
  }

  @Test func listenerServesRemoteClientsAndDataSurvivesARestart() async throws {
    let directory = temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let first = try await EmbeddedBroker.start(.init(dataDirectory: directory, logger: quietLogger()))
    let address = try #require(first.bootstrapAddress)
    #expect(address.host == "127.0.0.1" && address.port == first.port)
    // Over TCP, as a remote client would.
    let producer = try KafkaProducer(configuration: .init(bootstrapAddresses: [address]))
    for i in 0..<100 { try await producer.enqueue(KafkaProducerMessage(topic: "kept", value: "r\(i)")) }
    try await producer.close()
    try await first.stop()

    let second = try await EmbeddedBroker.start(
      .init(dataDirectory: directory, listener: nil, logger: quietLogger()))
    let consumer = try KafkaConsumer(
      configuration: second.consumerConfiguration(
        .partition(KafkaPartition(rawValue: 0), topic: "kept", offset: .beginning)))
    var read: [String] = []
    for try await message in consumer.messages {
      read.append(String(buffer: message.value))
      if read.count == 100 { break }
    }
    await consumer.close()
    #expect(read == (0..<100).map { "r\($0)" })
    try await second.stop()
  }

  @Test func brokerProducerAndConsumerRunAsServices() async throws {
    let directory = temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let logger = quietLogger()
    let broker = try EmbeddedBroker(
      configuration: .init(dataDirectory: directory, listener: nil, logger: logger))
    let producer = try KafkaProducer(configuration: broker.producerConfiguration())
    let consumer = try KafkaConsumer(
      configuration: broker.consumerConfiguration(
        .partition(KafkaPartition(rawValue: 0), topic: "svc", offset: .beginning)))
    let group = ServiceGroup(
      configuration: .init(
        services: [.init(service: broker), .init(service: producer), .init(service: consumer)], logger: logger
      ))
    let running = Task { try await group.run() }

    try await producer.sendAcked(KafkaProducerMessage(topic: "svc", value: "one"))
    // Buffered, not yet acknowledged: graceful shutdown of the producer flushes it.
    try await producer.enqueue(KafkaProducerMessage(topic: "svc", value: "two"))
    var iterator = consumer.messages.makeAsyncIterator()
    #expect(try await iterator.next().map { String(buffer: $0.value) } == "one")
    #expect(try await iterator.next().map { String(buffer: $0.value) } == "two")

    await group.triggerGracefulShutdown()
    try await running.value
    // The consumer's iteration has ended with the shutdown.
    #expect(try await iterator.next() == nil)
  }

  @Test func inProcessTransportNeedsNoBootstrapButTcpDoes() throws {
    #expect(throws: KafkaError.self) { try KafkaAdmin(configuration: KafkaAdminConfiguration()) }
  }
}
