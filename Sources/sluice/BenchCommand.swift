import ArgumentParser
import KafkaClient
import KafkaProtocol
import NIOCore

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif

/// `sluice bench produce|consume`: a load generator.
struct BenchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench", abstract: "Measure produce or consume throughput.",
    subcommands: [Produce.self, Consume.self])

  static func report(_ records: Int, bytes: Int, since start: ContinuousClock.Instant) {
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print(
      "\(records) records, \(bytes) bytes in \(fixed(seconds, 3)) s: "
        + "\(fixed(Double(records) / seconds, 0)) records/s, \(fixed(Double(bytes) / seconds / 1_000_000, 2)) MB/s"
    )
  }

  struct Produce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Produce N records of S bytes as fast as possible.")
    @OptionGroup var options: ClientOptions
    @Option(help: "Topic (created by the broker on first use when it auto-creates).") var topic =
      "sluice-bench"
    @Option(help: "Number of records.") var records = 1_000_000
    @Option(help: "Value size in bytes.") var recordSize = 100
    @Option(help: "none, gzip, snappy, lz4 or zstd.") var compression = "none"
    @Option(help: "0, 1 or all.") var acks = "all"
    @Option(help: "Batch size in bytes.") var batchSize = 1_000_000
    @Option(help: "Linger in milliseconds.") var lingerMs = 5
    @Flag(help: "Disable the idempotent producer.") var noIdempotence = false
    @Option(
      help: """
        enqueue (buffer, failures from flush), send (fire-and-forget with delivery-report \
        events), or send-and-await (--concurrency tasks, each awaiting every record).
        """)
    var mode = "enqueue"
    @Option(help: "Tasks sending at once in send-and-await mode.") var concurrency = 64
    @Flag(help: "Also print how long the enqueue loop took (the rest is waiting for acknowledgements).")
    var verbose = false

    func run() async throws {
      try await runClientCommand {
        guard records > 0, recordSize >= 0 else {
          throw ValidationError("--records must be > 0, --record-size ≥ 0")
        }
        var configuration = KafkaProducerConfiguration(bootstrapAddresses: try options.addresses())
        configuration.connection = try options.connection()
        configuration.compression = try parseCompression(compression)
        configuration.acks = try parseAcks(acks)
        configuration.batchSize = batchSize
        configuration.bufferMemory = max(64 << 20, batchSize * 4)
        configuration.linger = .milliseconds(lingerMs)
        configuration.enableIdempotence = !noIdempotence
        guard ["enqueue", "send", "send-and-await"].contains(mode), concurrency > 0 else {
          throw ValidationError("--mode is enqueue, send or send-and-await; --concurrency > 0")
        }
        let (producer, events) = try KafkaProducer.makeProducerWithEvents(
          configuration: configuration, logger: try options.logger())
        var value = ByteBuffer(repeating: UInt8(ascii: "x"), count: recordSize)
        // Warm up: metadata, connection, producer id.
        try await producer.sendAndAwait(KafkaProducerMessage(topic: topic, value: value)).get()
        // Plain locals: reading an @Option inside the loop costs a generic-metadata lookup
        // per record (seen in perf as ~10% of the loop).
        let (topic, records, numbered) = (self.topic, self.records, self.recordSize >= 8)
        let start = ContinuousClock.now
        switch mode {
        case "send":
          // Reports are counted as they come; a full buffer makes the loop wait for some.
          let counting = Task {
            var delivered = 0
            for await event in events {
              guard case .deliveryReports(let reports) = event else { continue }
              for report in reports { try report.get() }
              delivered += reports.count
              if delivered == records { return }
            }
          }
          for i in 0..<records {
            if numbered { value.setInteger(UInt64(i), at: 0) }
            while true {
              do {
                try producer.send(KafkaProducerMessage(topic: topic, value: value))
                break
              } catch let error as KafkaError where error.code == .queueFull {
                try await Task.sleep(for: .milliseconds(1))
              }
            }
          }
          try await counting.value
        case "send-and-await":
          let perTask = records / concurrency
          let (topic, concurrency) = (topic, concurrency)
          try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<concurrency {
              let count = task < records % concurrency ? perTask + 1 : perTask
              group.addTask { [value] in
                for _ in 0..<count {
                  try await producer.sendAndAwait(KafkaProducerMessage(topic: topic, value: value)).get()
                }
              }
            }
            try await group.waitForAll()
          }
        default:
          for i in 0..<records {
            if numbered { value.setInteger(UInt64(i), at: 0) }
            try await producer.enqueue(KafkaProducerMessage(topic: topic, value: value))
          }
        }
        let enqueued = ContinuousClock.now - start
        try await producer.flush()
        BenchCommand.report(records, bytes: records * recordSize, since: start)
        if verbose { print("enqueue loop: \(enqueued)") }
        try await producer.close()
      }
    }
  }

  struct Consume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read N records from the beginning of a topic.")
    @OptionGroup var options: ClientOptions
    @Option(help: "Topic.") var topic = "sluice-bench"
    @Option(help: "Number of records to read.") var records = 1_000_000
    @Option(help: "Read as a member of this group (message by message), not by assignment.") var group:
      String?

    func run() async throws {
      try await runClientCommand {
        var adminConfiguration = KafkaAdminConfiguration(bootstrapAddresses: try options.addresses())
        adminConfiguration.connection = try options.connection()
        let logger = try options.logger()
        let admin = try KafkaAdmin(configuration: adminConfiguration, logger: logger)
        let partitions = try await admin.describeTopics([topic]).first?.partitions.map(\.partition) ?? []
        await admin.close()
        if let group {
          var configuration = KafkaConsumerConfiguration(
            consumptionStrategy: .group(id: group, topics: [topic]),
            bootstrapAddresses: try options.addresses())
          configuration.connection = try options.connection()
          configuration.autoOffsetReset = .beginning
          let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
          var start: ContinuousClock.Instant?
          var count = 0
          var bytes = 0
          for try await message in consumer.messages {
            if start == nil { start = .now }  // from the first record: the join is not counted
            count += 1
            bytes += message.value.readableBytes
            if count >= records { break }
          }
          BenchCommand.report(count, bytes: bytes, since: start ?? .now)
          await consumer.close()
          return
        }
        var configuration = KafkaConsumerConfiguration(
          consumptionStrategy: .partitions(
            Dictionary(
              uniqueKeysWithValues: partitions.map {
                (
                  KafkaTopicPartition(topic: topic, partition: KafkaPartition(rawValue: Int($0))),
                  KafkaOffset.beginning
                )
              })),
          bootstrapAddresses: try options.addresses())
        configuration.connection = try options.connection()
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        let start = ContinuousClock.now
        var count = 0
        var bytes = 0
        reading: while let batch = try await consumer.nextBatch() {
          for message in batch {
            count += 1
            bytes += message.value.readableBytes
            if count >= records { break reading }
          }
        }
        BenchCommand.report(count, bytes: bytes, since: start)
        await consumer.close()
      }
    }
  }
}
