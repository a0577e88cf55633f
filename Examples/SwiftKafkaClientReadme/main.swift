// swift-kafka-client's README examples (its main branch, August 2026), run against
// `KafkaClient`. Each example's code is as in that README except:
//   - `import KafkaClient` instead of `import Kafka`;
//   - the bootstrap address comes from the command line (`bootstrap`) instead of
//     "localhost:9092", and `logger` is made here;
//   - fragments that use a `consumer` or `config` (subscription, pause/resume, security
//     settings, error events) are wrapped in functions given one;
//   - a `print` where the README has only a comment, so that a test sees the progress.
// compat/test_swift_client.py runs every example against `sluice serve` and against
// Tansu, stopping each with SIGTERM as its ServiceGroup expects.
//
//   swift-kafka-client-readme EXAMPLE HOST:PORT
//   EXAMPLE: producer | producer-events | consumer | at-least-once | manual-commit
//            | dynamic | errors

import Foundation
import KafkaClient
import Logging
import ServiceLifecycle

let arguments = CommandLine.arguments
guard arguments.count == 3 else {
  FileHandle.standardError.write(Data("usage: swift-kafka-client-readme EXAMPLE HOST:PORT\n".utf8))
  exit(2)
}
let example = arguments[1]
let bootstrap = arguments[2]
let logger = Logger(label: "readme")

func producerExample() async throws {
  var config = KafkaProducerConfig()
  config.bootstrapServers = [bootstrap]

  let producer = try KafkaProducer(config: config, logger: logger)

  let serviceGroup = ServiceGroup(
    services: [producer],
    gracefulShutdownSignals: [.sigterm],
    logger: logger
  )

  await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await serviceGroup.run() }

    group.addTask {
      let message = KafkaProducerMessage(topic: "topic-name", value: "Hello, World!")
      let report = try await producer.sendAndAwait(message)
      switch report.status {
      case .acknowledged(let ack):
        print("Delivered to partition \(ack.partition) at offset \(ack.offset)")
      case .failure(let error):
        print("Delivery failed: \(error)")
      }
    }
  }
}

func producerEventsExample() async throws {
  var config = KafkaProducerConfig()
  config.bootstrapServers = [bootstrap]

  let (producer, events) = try KafkaProducer.makeProducerWithEvents(
    config: config,
    logger: logger
  )

  let serviceGroup = ServiceGroup(
    services: [producer],
    gracefulShutdownSignals: [.sigterm],
    logger: logger
  )

  await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await serviceGroup.run() }

    group.addTask {
      let message = KafkaProducerMessage(topic: "topic-name", value: "Hello, World!")
      try producer.send(message)

      for await event in events {
        switch event {
        case .deliveryReports(let reports):
          for report in reports {
            // Handle delivery acknowledgment
            print("Report \(report.id): \(report.status)")
          }
        default:
          break
        }
      }
    }
  }
}

func consumerExample() async throws {
  var config = KafkaConsumerConfig()
  config.bootstrapServers = [bootstrap]
  config.consumptionStrategy = .group(id: "example-group", topics: ["topic-name"])

  let consumer = try KafkaConsumer(config: config, logger: logger)

  let serviceGroup = ServiceGroup(
    services: [consumer],
    gracefulShutdownSignals: [.sigterm],
    logger: logger
  )

  await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await serviceGroup.run() }

    group.addTask {
      for try await message in consumer.messages {
        print("Received: \(message.topic)/\(message.partition) at offset \(message.offset)")
      }
    }
  }
}

func atLeastOnceExample() async throws {
  var config = KafkaConsumerConfig()
  config.bootstrapServers = [bootstrap]
  config.consumptionStrategy = .group(id: "example-group", topics: ["topic-name"])
  config.enableAutoOffsetStore = false

  let consumer = try KafkaConsumer(config: config, logger: logger)

  let serviceGroup = ServiceGroup(
    services: [consumer],
    gracefulShutdownSignals: [.sigterm],
    logger: logger
  )

  await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await serviceGroup.run() }

    group.addTask {
      for try await message in consumer.messages {
        // Process message...
        try consumer.storeOffset(message)
        // The background auto-commit timer commits the offset automatically.
        print("Stored: \(message.topic)/\(message.partition) at offset \(message.offset)")
      }
    }
  }
}

func manualCommitExample() async throws {
  var config = KafkaConsumerConfig()
  config.bootstrapServers = [bootstrap]
  config.consumptionStrategy = .group(id: "example-group", topics: ["topic-name"])
  config.enableAutoCommit = false

  let consumer = try KafkaConsumer(config: config, logger: logger)

  let serviceGroup = ServiceGroup(
    services: [consumer],
    gracefulShutdownSignals: [.sigterm],
    logger: logger
  )

  await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await serviceGroup.run() }

    group.addTask {
      for try await message in consumer.messages {
        // Process message...
        try await consumer.commit(message)
        print("Committed: \(message.topic)/\(message.partition) at offset \(message.offset)")
      }
    }
  }
}

func dynamicSubscription(_ consumer: KafkaConsumer) throws {
  // Subscribe to additional topics
  try consumer.subscribe(topics: ["topic-a", "topic-b"])

  // Query current subscription
  let topics = try consumer.subscribedTopics()
  print("Subscribed: \(topics)")

  // Unsubscribe from all topics
  try consumer.unsubscribe()
}

func pauseAndResume(_ consumer: KafkaConsumer) throws {
  let partition = KafkaTopicPartition(topic: "topic-name", partition: KafkaPartition(rawValue: 0))
  try consumer.pause(topicPartitions: [partition])
  // ... later
  try consumer.resume(topicPartitions: [partition])
}

func securitySettings() -> [KafkaProducerConfig] {
  var plaintext = KafkaProducerConfig()
  plaintext.bootstrapServers = [bootstrap]
  plaintext.securityProtocol = .plaintext

  var tls = KafkaProducerConfig()
  tls.bootstrapServers = [bootstrap]
  tls.securityProtocol = .ssl

  var saslPlaintext = KafkaProducerConfig()
  saslPlaintext.bootstrapServers = [bootstrap]
  saslPlaintext.securityProtocol = .sasl_plaintext
  saslPlaintext.saslMechanisms = "PLAIN"
  saslPlaintext.saslUsername = "user"
  saslPlaintext.saslPassword = "password"

  var saslTLS = KafkaProducerConfig()
  saslTLS.bootstrapServers = [bootstrap]
  saslTLS.securityProtocol = .sasl_ssl
  saslTLS.saslMechanisms = "SCRAM-SHA-256"
  saslTLS.saslUsername = "user"
  saslTLS.saslPassword = "password"
  return [plaintext, tls, saslPlaintext, saslTLS]
}

func errorHandling(_ config: KafkaConsumerConfig) async throws {
  let (consumer, events) = try KafkaConsumer.makeConsumerWithEvents(config: config, logger: logger)
  _ = consumer

  for await event in events {
    switch event {
    case .error(let error):
      if error.isFatal {
        // The client is irrecoverable — initiate shutdown.
      } else if error.isRetriable {
        // Transient error — likely resolves on its own.
      }
      print("Error: \(error)")
    default:
      break
    }
  }
}

/// The fragments, on one consumer: subscribe and unsubscribe, pause and resume, and the
/// security settings (each must be accepted).
func dynamicExample() async throws {
  var config = KafkaConsumerConfig()
  config.bootstrapServers = [bootstrap]
  config.groupId = "example-dynamic"
  let consumer = try KafkaConsumer(config: config, logger: logger)
  try dynamicSubscription(consumer)
  try consumer.subscribe(topics: ["topic-name"])
  try pauseAndResume(consumer)
  print("Paused and resumed: \(try consumer.subscribedTopics())")
  for settings in securitySettings() {
    _ = try settings.configuration()
  }
  print("Security settings accepted")
  await consumer.close()
}

do {
  switch example {
  case "producer": try await producerExample()
  case "producer-events": try await producerEventsExample()
  case "consumer": try await consumerExample()
  case "at-least-once": try await atLeastOnceExample()
  case "manual-commit": try await manualCommitExample()
  case "dynamic": try await dynamicExample()
  case "errors":
    var config = KafkaConsumerConfig()
    config.bootstrapServers = [bootstrap]
    config.consumptionStrategy = .group(id: "example-group", topics: ["topic-name"])
    try await errorHandling(config)
  default:
    FileHandle.standardError.write(Data("unknown example \(example)\n".utf8))
    exit(2)
  }
  print("Example \(example) finished")
} catch {
  print("Example \(example) failed: \(error)")
  exit(1)
}
