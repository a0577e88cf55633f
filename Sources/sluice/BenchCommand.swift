import ArgumentParser
import KafkaClient
import KafkaProtocol
import NIOCore

#if canImport(Glibc)
  import Glibc
#endif

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
    let seconds = elapsed.inSeconds
    print(
      "\(records) records, \(bytes) bytes in \(fixed(seconds, 3)) s: "
        + "\(fixed(Double(records) / seconds, 0)) records/s, \(fixed(Double(bytes) / seconds / 1_000_000, 2)) MB/s"
    )
  }

  /// The wall clock in nanoseconds (CLOCK_REALTIME, as Python's `time.time_ns()`): send
  /// times that another process compares with its own clock.
  static func wallClockNanos() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
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
    @Option(
      help: """
        Send at this many records per second (send mode), each record's first 8 bytes its \
        send time (wall clock, ns) for `bench consume --latency-out`.
        """)
    var rate: Int?
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
        guard rate == nil || (rate! > 0 && mode == "send" && recordSize >= 8) else {
          throw ValidationError("--rate needs a positive rate, --mode send and --record-size ≥ 8")
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
          let pace = rate.map { 1.0 / Double($0) }
          for i in 0..<records {
            if let pace {
              // Paced: sleep until this record is due, then stamp it with the time.
              let due = start + .seconds(Double(i) * pace)
              if due > ContinuousClock.now { try await Task.sleep(until: due) }
              value.setInteger(BenchCommand.wallClockNanos(), at: 0)
            } else if numbered {
              value.setInteger(UInt64(i), at: 0)
            }
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
    @Flag(help: "Start at the end of the partitions (print \"ready\" once there), not at the beginning.")
    var fromEnd = false
    @Option(
      help: """
        Take each record's first 8 bytes as its send time (`bench produce --rate`) and write \
        now minus it, in ns, per record to this file (native 64-bit integers); print percentiles.
        """)
    var latencyOut: String?

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
        let topicPartitions = partitions.map {
          KafkaTopicPartition(topic: topic, partition: KafkaPartition(rawValue: Int($0)))
        }
        var starts = Dictionary(uniqueKeysWithValues: topicPartitions.map { ($0, KafkaOffset.beginning) })
        if fromEnd {
          // Resolved now, so that records produced once "ready" is printed are all read.
          let admin = try KafkaAdmin(configuration: adminConfiguration, logger: logger)
          starts = try await admin.offsets(forTimestamp: 4_102_444_800_000, partitions: topicPartitions)
          await admin.close()
        }
        var configuration = KafkaConsumerConfiguration(
          consumptionStrategy: .partitions(starts), bootstrapAddresses: try options.addresses())
        configuration.connection = try options.connection()
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        if fromEnd {
          print("ready")
          fflush(nil)  // stdout is a pipe: "ready" must go out now
        }
        let start = ContinuousClock.now
        var count = 0
        var bytes = 0
        var latencies: [Int64] = []
        if latencyOut != nil { latencies.reserveCapacity(records) }
        reading: while let batch = try await consumer.nextBatch() {
          let now = BenchCommand.wallClockNanos()
          for message in batch {
            count += 1
            bytes += message.value.readableBytes
            if latencyOut != nil,
              let sent = message.value.getInteger(at: message.value.readerIndex, as: Int64.self)
            {
              latencies.append(now - sent)
            }
            if count >= records { break reading }
          }
        }
        BenchCommand.report(count, bytes: bytes, since: start)
        await consumer.close()
        if let latencyOut {
          let data = latencies.withUnsafeBytes { Data($0) }
          try data.write(to: URL(fileURLWithPath: latencyOut))
          let sorted = latencies.sorted()
          func at(_ q: Double) -> String {
            sorted.isEmpty
              ? "-" : fixed(Double(sorted[min(sorted.count - 1, Int(q * Double(sorted.count)))]) / 1e6, 3)
          }
          print("latency ms: p50 \(at(0.5))  p99 \(at(0.99))  p99.9 \(at(0.999))  max \(at(1))")
        }
      }
    }
  }
}
