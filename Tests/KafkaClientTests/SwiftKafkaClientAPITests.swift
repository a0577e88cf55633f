import KafkaClient
import Logging
import ServiceLifecycle
import SluiceTestSupport
import Synchronization
import Testing

/// A value shared with child tasks.
final class Shared<Value: Sendable>: Sendable {
  private let value: Mutex<Value>
  init(_ value: Value) { self.value = Mutex(value) }
  func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { value.withLock { body(&$0) } }
}

/// swift-kafka-client's README examples, written against `KafkaClient` with the same calls
/// (only the import differs), run against a broker on a TCP listener; and the consumer's
/// shutdown, rebalance and timeout semantics.
@Suite(.serialized) struct SwiftKafkaClientAPITests {
  static let logger = Logger(label: "readme")

  static func topic(_ broker: InProcessBroker, _ name: String, partitions: Int = 1) async throws {
    _ = try await broker.broker.createTopic(name: name, partitions: Int32(partitions), configs: [:])
  }

  static func produce(_ broker: InProcessBroker, _ topic: String, count: Int) async throws {
    var config = KafkaProducerConfig()
    config.bootstrapServers = ["127.0.0.1:\(broker.port)"]
    let (producer, events) = try KafkaProducer.makeProducerWithEvents(config: config, logger: logger)
    for i in 0..<count {
      try producer.send(
        KafkaProducerMessage(topic: topic, partition: KafkaPartition(rawValue: 0), value: "r\(i)"))
    }
    var acknowledged = 0
    for await event in events {
      guard case .deliveryReports(let reports) = event else { continue }
      for report in reports { _ = try report.get() }
      acknowledged += reports.count
      if acknowledged == count { break }
    }
    try await producer.close()
  }

  /// The committed offset of partition 0 of `topic` for `group`.
  static func committed(_ broker: InProcessBroker, _ group: String, _ topic: String) async throws -> Int? {
    let admin = try KafkaAdmin(configuration: .init(bootstrapAddresses: [broker.address]))
    let partition = KafkaTopicPartition(topic: topic, partition: KafkaPartition(rawValue: 0))
    let offsets = try await admin.committedOffsets(group: group, partitions: [partition])
    await admin.close()
    return offsets[partition]?.rawValue
  }

  @Test func producerExamples() async throws {
    try await InProcessBroker.with { broker in
      try await Self.topic(broker, "topic-name")
      let logger = Self.logger
      // README: producer with sendAndAwait, in a ServiceGroup.
      var config = KafkaProducerConfig()
      config.bootstrapServers = ["127.0.0.1:\(broker.port)"]
      let producer = try KafkaProducer(config: config, logger: logger)
      let serviceGroup = ServiceGroup(
        services: [producer], gracefulShutdownSignals: [.sigterm], logger: logger)
      let delivered = Shared<KafkaOffset?>(nil)
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await serviceGroup.run() }
        group.addTask {
          let message = KafkaProducerMessage(topic: "topic-name", value: "Hello, World!")
          let report = try await producer.sendAndAwait(message)
          switch report.status {
          case .acknowledged(let ack):
            print("Delivered to partition \(ack.partition) at offset \(ack.offset)")
            delivered.withLock { $0 = ack.offset }
          case .failure(let error):
            print("Delivery failed: \(error)")
          }
          await serviceGroup.triggerGracefulShutdown()
        }
        try await group.waitForAll()
      }
      #expect(delivered.withLock { $0 } == KafkaOffset(rawValue: 0))

      // README: fire-and-forget send with delivery reports as events.
      let (producer2, events) = try KafkaProducer.makeProducerWithEvents(config: config, logger: logger)
      let serviceGroup2 = ServiceGroup(
        services: [producer2], gracefulShutdownSignals: [.sigterm], logger: logger)
      let reports = Shared<[KafkaDeliveryReport]>([])
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await serviceGroup2.run() }
        group.addTask {
          var ids: [KafkaProducerMessageID] = []
          for i in 0..<50 {
            let message = KafkaProducerMessage(topic: "topic-name", key: "k\(i)", value: "Hello, World!")
            ids.append(try producer2.send(message))
          }
          #expect(Set(ids).count == 50 && ids == ids.sorted())
          for await event in events {
            switch event {
            case .deliveryReports(let batch):
              let count = reports.withLock {
                $0 += batch
                return $0.count
              }
              if count == 50 { await serviceGroup2.triggerGracefulShutdown() }
            default:
              break
            }
          }
        }
        try await group.waitForAll()
      }
      let all = reports.withLock { $0 }
      #expect(all.count == 50)
      #expect(Set(all.map(\.id)).count == 50)
      let offsets = try all.map { try $0.get().offset.rawValue }.sorted()
      #expect(offsets == Array(1...50))
      #expect(try all.allSatisfy { try $0.get().key.map { String(buffer: $0) }?.hasPrefix("k") == true })
    }
  }

  @Test func consumerExamples() async throws {
    try await InProcessBroker.with { broker in
      try await Self.topic(broker, "topic-name")
      try await Self.produce(broker, "topic-name", count: 100)
      let logger = Self.logger
      // README: group consumer; the default offset reset is `latest`, so this example sets
      // `earliest` to read what was produced before it joined.
      var config = KafkaConsumerConfig()
      config.bootstrapServers = ["127.0.0.1:\(broker.port)"]
      config.consumptionStrategy = .group(id: "example-group", topics: ["topic-name"])
      config.autoOffsetReset = .earliest
      let consumer = try KafkaConsumer(config: config, logger: logger)
      let serviceGroup = ServiceGroup(
        services: [consumer], gracefulShutdownSignals: [.sigterm], logger: logger)
      let received = Shared(0)
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await serviceGroup.run() }
        group.addTask {
          for try await message in consumer.messages {
            print("Received: \(message.topic)/\(message.partition) at offset \(message.offset)")
            try await Task.sleep(for: .milliseconds(5))  // the work
            if received.withLock({
              $0 += 1
              return $0
            }) == 60 {
              await serviceGroup.triggerGracefulShutdown()
            }
          }
        }
        try await group.waitForAll()
      }
      // The sequence ended once the shutdown reached the consumer (ServiceGroup delivers it
      // asynchronously), not after the rest of the fetched batch; the commit covers
      // exactly what was handed out.
      let handedOut = received.withLock { $0 }
      #expect(handedOut >= 60 && handedOut < 100)
      #expect(try await Self.committed(broker, "example-group", "topic-name") == handedOut)

      // README: at-least-once with storeOffset (only what was stored is committed).
      var atLeastOnce = config
      atLeastOnce.consumptionStrategy = .group(id: "store-group", topics: ["topic-name"])
      atLeastOnce.enableAutoOffsetStore = false
      let storing = try KafkaConsumer(config: atLeastOnce, logger: logger)
      var seen = 0
      for try await message in storing.messages {
        seen += 1
        if message.offset.rawValue < 30 { try storing.storeOffset(message) }
        if seen == 50 { break }
      }
      await storing.close()
      #expect(try await Self.committed(broker, "store-group", "topic-name") == 30)
      // storeOffset needs enableAutoOffsetStore = false.
      let autoStore = try KafkaConsumer(config: config, logger: logger)
      #expect(throws: KafkaError.self) {
        try autoStore.storeOffset(
          KafkaConsumerMessage(
            topic: "topic-name", partition: KafkaPartition(rawValue: 0), value: .init(),
            offset: .init(rawValue: 0)))
      }
      await autoStore.close()

      // README: manual commits.
      var manual = config
      manual.consumptionStrategy = .group(id: "manual-group", topics: ["topic-name"])
      manual.enableAutoCommit = false
      let committing = try KafkaConsumer(config: manual, logger: logger)
      for try await message in committing.messages {
        if message.offset.rawValue == 9 {
          try await committing.commit(message)
          break
        }
      }
      await committing.close()
      #expect(try await Self.committed(broker, "manual-group", "topic-name") == 10)

      // README: dynamic subscription, pause and resume.
      var dynamic = KafkaConsumerConfig()
      dynamic.bootstrapServers = ["127.0.0.1:\(broker.port)"]
      dynamic.groupId = "dynamic-group"
      dynamic.autoOffsetReset = .earliest
      dynamic.heartbeatIntervalMs = 100
      let subscriber = try KafkaConsumer(config: dynamic, logger: logger)
      #expect(try subscriber.subscribedTopics() == [])
      try subscriber.subscribe(topics: ["topic-name"])
      #expect(try subscriber.subscribedTopics() == ["topic-name"])
      let partition = KafkaTopicPartition(topic: "topic-name", partition: KafkaPartition(rawValue: 0))
      var iterator = subscriber.messages.makeAsyncIterator()
      let first = try await iterator.next()
      #expect(first?.offset == KafkaOffset(rawValue: 0))
      try subscriber.pause(topicPartitions: [partition])
      #expect(await subscriber.pausedPartitions() == [partition])
      try subscriber.resume(topicPartitions: [partition])
      // Paused and resumed: the records buffered when it paused are fetched again, in order.
      let second = try await iterator.next()
      #expect(second?.offset == KafkaOffset(rawValue: 1))
      try subscriber.unsubscribe()
      #expect(try subscriber.subscribedTopics() == [])
      await subscriber.close()
      #expect(throws: KafkaError.self) { try subscriber.subscribe(topics: ["topic-name"]) }
    }
  }

  /// README "Error handling": compiled, and its classification checked on two errors.
  static func handle(_ events: KafkaConsumerEvents) async -> [String] {
    var seen: [String] = []
    for await event in events {
      switch event {
      case .error(let error):
        if error.isFatal {
          seen.append("fatal")
        } else if error.isRetriable {
          seen.append("retriable")
        }
        print("Error: \(error)")
      default:
        break
      }
    }
    return seen
  }

  @Test func errorsClassify() {
    #expect(KafkaError(.timedOut, "x").isRetriable)
    #expect(KafkaError(.closed, "x").isFatal)
    #expect(KafkaError(.queueFull, "x").isRetriable)
  }

  /// 1,000 records, 2 ms of work each, shutdown at record 500: the loop gets 500 and the
  /// commit on close covers 500.
  @Test func shutdownEndsTheSequenceAtOnceAndCommitsWhatWasHandedOut() async throws {
    try await InProcessBroker.with { broker in
      try await Self.topic(broker, "exact")
      try await Self.produce(broker, "exact", count: 1000)
      var config = KafkaConsumerConfig()
      config.bootstrapServers = ["127.0.0.1:\(broker.port)"]
      config.consumptionStrategy = .group(id: "exact-group", topics: ["exact"])
      config.autoOffsetReset = .earliest
      config.maxPollRecords = 1000
      let consumer = try KafkaConsumer(config: config, logger: Self.logger)
      var got = 0
      for try await _ in consumer.messages {
        got += 1
        try await Task.sleep(for: .milliseconds(2))
        if got == 500 { consumer.triggerGracefulShutdown() }
      }
      #expect(got == 500)
      try await Task.sleep(for: .milliseconds(200))
      await consumer.close()
      #expect(try await Self.committed(broker, "exact-group", "exact") == 500)
    }
  }

  /// A member that joins while another works through a big fetch gets its partition after
  /// at most `maxPollRecords` of the other's records, not after all of them.
  @Test func aJoiningMemberIsNotHeldUpByABigFetch() async throws {
    try await InProcessBroker.with { broker in
      try await Self.topic(broker, "big", partitions: 2)
      var producerConfig = KafkaProducerConfig()
      producerConfig.bootstrapServers = ["127.0.0.1:\(broker.port)"]
      let producer = try KafkaProducer(config: producerConfig, logger: Self.logger)
      for i in 0..<3000 {
        try producer.send(
          KafkaProducerMessage(topic: "big", partition: KafkaPartition(rawValue: i % 2), value: "v"))
      }
      try await producer.close()
      var config = KafkaConsumerConfig()
      config.bootstrapServers = ["127.0.0.1:\(broker.port)"]
      config.consumptionStrategy = .group(id: "big-group", topics: ["big"])
      config.autoOffsetReset = .earliest
      config.heartbeatIntervalMs = 100
      config.maxPollRecords = 50
      let first = try KafkaConsumer(config: config, logger: Self.logger)
      let processed = Shared(0)
      let working = Task {
        for try await _ in first.messages {
          try await Task.sleep(for: .milliseconds(3))  // 3,000 records: about 9 s alone
          if processed.withLock({
            $0 += 1
            return $0
          }) == 3000 {
            break
          }
        }
      }
      try await Task.sleep(for: .seconds(1))
      let (second, events) = try KafkaConsumer.makeConsumerWithEvents(config: config, logger: Self.logger)
      let joined = ContinuousClock.now
      let reading = Task {
        for try await _ in second.messages {}
      }
      var assignedAfter: Duration?
      var processedThen = 0
      for await event in events {
        if case .rebalance(let change) = event, change.kind == .assign, !change.partitions.isEmpty {
          assignedAfter = ContinuousClock.now - joined
          processedThen = processed.withLock { $0 }
          break
        }
      }
      working.cancel()
      reading.cancel()
      await first.close()
      await second.close()
      print(
        "second member assigned after \(assignedAfter.map { "\($0)" } ?? "never"), first had processed \(processedThen)"
      )
      #expect(assignedAfter != nil)
      #expect(processedThen < 2500)
    }
  }

  /// `deliveryTimeout` bounds a send with no reachable broker, though connecting would be
  /// given longer.
  @Test func deliveryTimeoutBoundsASendWithNoBroker() async throws {
    var config = KafkaProducerConfig()
    config.bootstrapServers = ["127.0.0.1:1"]
    config.messageTimeoutMs = 1000
    config.socketConnectionSetupTimeoutMs = 10_000
    let (producer, events) = try KafkaProducer.makeProducerWithEvents(config: config, logger: Self.logger)
    let started = ContinuousClock.now
    let report = try await producer.sendAndAwait(KafkaProducerMessage(topic: "nowhere", value: "x"))
    let awaited = ContinuousClock.now - started
    guard case .failure(let error) = report.status else {
      Issue.record("delivered to nowhere")
      return
    }
    #expect(error.code == .timedOut)
    #expect(awaited < .seconds(4), "sendAndAwait took \(awaited)")
    let sent = ContinuousClock.now
    let id = try producer.send(KafkaProducerMessage(topic: "nowhere", value: "y"))
    for await event in events {
      guard case .deliveryReports(let reports) = event, let mine = reports.first(where: { $0.id == id })
      else {
        continue
      }
      guard case .failure = mine.status else {
        Issue.record("delivered to nowhere")
        break
      }
      #expect(ContinuousClock.now - sent < .seconds(4))
      break
    }
    try? await producer.close()
  }

  @Test func sendThrowsQueueFullInsteadOfWaiting() async throws {
    try await InProcessBroker.with { broker in
      try await Self.topic(broker, "full")
      var config = KafkaProducerConfig()
      config.bootstrapServers = ["127.0.0.1:\(broker.port)"]
      config.queueBufferingMaxKbytes = 1
      config.lingerMs = 10_000
      config.batchSize = 1024
      let producer = try KafkaProducer(config: config, logger: Self.logger)
      var refused: KafkaError?
      for _ in 0..<100 {
        do {
          try producer.send(KafkaProducerMessage(topic: "full", value: String(repeating: "x", count: 100)))
        } catch let error as KafkaError {
          refused = error
          break
        }
      }
      #expect(refused?.code == .queueFull)
      try await producer.close()
    }
  }
}
