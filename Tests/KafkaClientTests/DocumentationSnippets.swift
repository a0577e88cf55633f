import Foundation
import KafkaClient
import KafkaProtocol
import Logging
import NIOCore
import ServiceLifecycle
import SluiceEmbedded
import Testing

// Every ```swift block of README.md, the KafkaClient DocC catalog and docs/queues.md, one per
// function (its imports at the top of this file), so that the build compiles them.
// `DocumentationSnippetTests` checks that each block appears here line for line. They are
// compiled, not run: they expect a broker on 127.0.0.1:9092 or write to ./data.
enum DocumentationSnippets {
  static func handle(_ message: KafkaConsumerMessage) async throws {}
  static func handle(_ message: KafkaShareMessage) -> Bool { true }

  static func readmeClient() async throws {

    let logger = Logger(label: "orders")
    var config = KafkaProducerConfig()
    config.bootstrapServers = ["127.0.0.1:9092"]
    let producer = try KafkaProducer(config: config, logger: logger)
    let report = try await producer.sendAndAwait(KafkaProducerMessage(topic: "orders", key: "k", value: "v"))
    if case .acknowledged(let ack) = report.status { print(ack.partition, ack.offset) }

    var consumerConfig = KafkaConsumerConfig()
    consumerConfig.bootstrapServers = ["127.0.0.1:9092"]
    consumerConfig.consumptionStrategy = .group(id: "billing", topics: ["orders"])
    consumerConfig.autoOffsetReset = .earliest  // the default, latest, reads only new records
    let consumer = try KafkaConsumer(config: consumerConfig, logger: logger)
    for try await message in consumer.messages { print(message.partition, message.offset) }

    let admin = try KafkaAdmin(
      configuration: .init(bootstrapAddresses: [.init(host: "127.0.0.1", port: 9092)]))
    try await admin.createTopic("orders", partitions: 3)
  }

  static func readmeEmbedded() async throws {

    let broker = try await EmbeddedBroker.start(.init(dataDirectory: "./data", listener: nil))
    let producer = try KafkaProducer(configuration: broker.producerConfiguration())
    try await producer.sendAndAwait(KafkaProducerMessage(topic: "jobs", value: "job 1")).get()
    var config = broker.consumerConfiguration(.group(id: "workers", topics: ["jobs"]))
    config.autoOffsetReset = .beginning  // the default, .end, would skip "job 1"
    let consumer = try KafkaConsumer(configuration: config)
    // …
    try await producer.close()
    await consumer.close()
    try await broker.stop()
  }

  static func readmeProtocol() throws {

    let request = KafkaRequest(
      correlationId: 1, clientId: "me", apiVersion: 12,
      body: .metadata(MetadataRequest(topics: [.init(name: "orders")])))
    var wire = ByteBuffer()
    try request.encodeFrame(into: &wire)

    // On the receiving side: frame (size limit enforced first), then header + body.
    if let frame = try KafkaFrameDecoder.nextFrame(from: &wire, maximumFrameSize: 1 << 20) {
      let decoded = try KafkaRequest.decode(frame: frame)
      if case .metadata(let metadata) = decoded.body { print(metadata.topics ?? []) }
    }
  }

  static func gettingStartedBrokers() -> [KafkaConfiguration.BrokerAddress] {

    let brokers = [KafkaConfiguration.BrokerAddress(host: "127.0.0.1", port: 9092)]
    return brokers
  }

  static func gettingStartedProduce(brokers: [KafkaConfiguration.BrokerAddress]) async throws {
    var config = KafkaProducerConfiguration(bootstrapAddresses: brokers)
    config.compression = .lz4
    config.linger = .milliseconds(5)
    let producer = try KafkaProducer(configuration: config)

    let ack = try await producer.sendAndAwait(
      KafkaProducerMessage(topic: "orders", key: "customer-42", value: "{\"total\": 10}")
    ).get()
    print("stored at \(ack.topic)-\(ack.partition) offset \(ack.offset)")

    for i in 0..<10_000 {
      try await producer.enqueue(KafkaProducerMessage(topic: "events", value: "event \(i)"))
    }
    try await producer.flush()
    try await producer.close()
  }

  static func gettingStartedAssignment(brokers: [KafkaConfiguration.BrokerAddress]) async throws {
    let partition = KafkaTopicPartition(topic: "orders", partition: KafkaPartition(rawValue: 0))
    let config = KafkaConsumerConfiguration(
      consumptionStrategy: .partitions([partition: .beginning]), bootstrapAddresses: brokers)
    let consumer = try KafkaConsumer(configuration: config)
    for try await message in consumer.messages {
      print(message.offset, String(buffer: message.value))
    }
  }

  static func gettingStartedGroup(brokers: [KafkaConfiguration.BrokerAddress]) async throws {
    var config = KafkaConsumerConfiguration(
      consumptionStrategy: .group(id: "billing", topics: ["orders"]), bootstrapAddresses: brokers)
    config.autoOffsetReset = .beginning
    config.partitionAssignors = [.roundRobin]  // default: [.range, .roundRobin]
    config.groupInstanceId = "billing-1"  // optional static membership
    let (consumer, events) = try KafkaConsumer.makeConsumerWithEvents(configuration: config)

    Task {
      for await event in events {
        switch event {
        case .rebalance(let change): print(change.kind, change.partitions)
        case .error(let error): print("error", error)
        default: break
        }
      }
    }

    for try await message in consumer.messages {
      try await handle(message)
      try await consumer.commit()  // or rely on auto-commit; scheduleCommit() does not wait
    }
  }

  static func gettingStartedAdmin(
    brokers: [KafkaConfiguration.BrokerAddress], partition: KafkaTopicPartition
  ) async throws {
    let admin = try KafkaAdmin(configuration: .init(bootstrapAddresses: brokers))
    try await admin.createTopic("orders", partitions: 6, configs: ["retention.ms": "86400000"])
    let topics = try await admin.describeTopics(["orders"])
    try await admin.createPartitions(topic: "orders", totalCount: 12)

    let groups = try await admin.listGroups()
    let billing = try await admin.describeGroups(["billing"])
    let committed = try await admin.committedOffsets(group: "billing")
    try await admin.resetOffsets(group: "billing", to: [partition: .beginning])  // group must be idle
    try await admin.deleteGroups(["old-group"])
    print(topics, groups, billing, committed)
    await admin.close()
  }

  static func gettingStartedServices(producer: KafkaProducer, consumer: KafkaConsumer, logger: Logger)
    async throws
  {

    let group = ServiceGroup(
      configuration: .init(
        services: [.init(service: producer), .init(service: consumer)],
        gracefulShutdownSignals: [.sigterm], logger: logger))
    try await group.run()
  }

  static func gettingStartedEmbedded() async throws {

    let broker = try await EmbeddedBroker.start(
      .init(dataDirectory: "/var/lib/myapp/sluice", listener: nil))  // in-process only

    let producer = try KafkaProducer(configuration: broker.producerConfiguration())
    try await producer.sendAndAwait(KafkaProducerMessage(topic: "jobs", value: "resize image 7")).get()

    var config = broker.consumerConfiguration(.group(id: "workers", topics: ["jobs"]))
    config.autoOffsetReset = .beginning
    let consumer = try KafkaConsumer(configuration: config)

    // …
    try await producer.close()
    await consumer.close()
    try await broker.stop()
  }

  static func queuesShareConsumer() async throws {
    var config = KafkaShareConsumerConfiguration(
      groupId: "workers", topics: ["jobs"], bootstrapAddresses: [.init(host: "127.0.0.1", port: 9092)])
    config.acknowledgementMode = .explicit
    let consumer = try KafkaShareConsumer(configuration: config)
    for message in try await consumer.poll() {
      try await consumer.acknowledge(message, handle(message) ? .accept : .release)
    }
    try await consumer.commit()
    await consumer.close()
  }
}

@Suite struct DocumentationSnippetTests {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  static func swiftBlocks(_ path: String) throws -> [String] {
    let text = try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    var blocks: [String] = []
    var current: [String]?
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
      if current == nil, line == "```swift" {
        current = []
      } else if current != nil, line == "```" {
        blocks.append(current!.joined(separator: "\n"))
        current = nil
      } else {
        current?.append(String(line))
      }
    }
    return blocks
  }

  static func trimmed(_ line: Substring) -> String {
    String(line.drop { $0 == " " })
  }

  /// Every block (but Package.swift fragments) is in this file line for line, and its
  /// imports are among this file's.
  @Test(arguments: [
    "README.md", "Sources/KafkaClient/Documentation.docc/GettingStarted.md", "docs/queues.md",
  ])
  func everySnippetIsCompiledHere(_ document: String) throws {
    let source = try String(
      contentsOf: Self.root.appendingPathComponent("Tests/KafkaClientTests/DocumentationSnippets.swift"),
      encoding: .utf8)
    let lines = source.split(separator: "\n", omittingEmptySubsequences: false).map(Self.trimmed)
    let imports = Set(lines.filter { $0.hasPrefix("import ") })
    let blocks = try Self.swiftBlocks(document)
    #expect(!blocks.isEmpty)
    for block in blocks where !block.contains(".package(") {
      let blockLines = block.split(separator: "\n", omittingEmptySubsequences: false)
      let code = blockLines.filter { !$0.hasPrefix("import ") }.map(Self.trimmed)
      for line in blockLines where line.hasPrefix("import ") {
        #expect(imports.contains(String(line)), "\(document): \(line) is not imported by the snippets file")
      }
      let found = (0...max(0, lines.count - code.count)).contains { start in
        Array(lines[start..<min(lines.count, start + code.count)]) == code
      }
      #expect(found, "\(document): a snippet is not compiled by DocumentationSnippets.swift:\n\(block)")
    }
  }
}
