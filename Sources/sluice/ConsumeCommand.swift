import ArgumentParser
import Dispatch
import KafkaClient
import KafkaProtocol
import Logging
import NIOCore

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif
#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// `sluice consume TOPIC`.
struct ConsumeCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "consume",
    abstract: "Print records of a topic, one per line.",
    discussion: """
      Stops after --count records, or (without --count and --follow) at the end of the partitions as \
      they were at start. --follow waits for new records.

      --group G joins consumer group G instead: the group's members share the topic's partitions, \
      reading starts at the group's committed offsets (else at --from beginning|end) and positions are \
      committed as records are printed. It stops after --count records, or on SIGINT/SIGTERM, when \
      it commits and leaves the group.

      --share-group G consumes as a member of share group G (a work queue, KIP-932): any number \
      of members read the same partitions, each record goes to one of them, and each printed record \
      is acknowledged with --ack (accept, release: deliver again, reject: never again). It stops \
      after --count records, on SIGINT/SIGTERM, or (without --follow) when a fetch brings nothing. \
      Where a new share group starts is its share.auto.offset.reset config (latest by default).

      --format tokens: %s value, %k key, %t topic, %p partition, %o offset, %T timestamp (ms), \
      %h headers (k=v,…), %S value size, %K key size, %% a percent sign; \\n \\t \\\\ escapes. \
      Default "%s\\n". --json prints one object per record: topic, partition, offset, timestamp, \
      key, value, headers (strings; key_encoding/value_encoding "base64" when not UTF-8).
      """)

  @OptionGroup var options: ClientOptions
  @Argument(help: "Topic name.") var topic: String
  @Option(name: .customLong("partition"), help: "Partition to read; repeatable (default: all).")
  var partitions: [Int] = []
  @Option(help: "beginning, end, an OFFSET, or @TIMESTAMP (ms since the epoch).") var from: String =
    "beginning"
  @Option(help: "Stop after this many records.") var count: Int?
  @Flag(help: "Keep waiting for new records at the end of the partitions.") var follow = false
  @Option(help: "Output template (see below).") var format: String?
  @Flag(help: "One JSON object per record.") var json = false
  @Option(help: "Consume as a member of this consumer group (see below).") var group: String?
  @Option(help: "With --group: static membership (group.instance.id).") var instanceId: String?
  @Option(help: "With --group: range or roundrobin (default: both, range preferred).") var assignor: String?
  @Option(help: "With --group: session timeout in milliseconds.") var sessionTimeoutMs: Int = 45_000
  @Option(help: "With --group: rebalance timeout in milliseconds.") var rebalanceTimeoutMs: Int = 60_000
  @Option(help: "Consume as a member of this share group (see below).") var shareGroup: String?
  @Option(help: "With --share-group: accept, release or reject each printed record.") var ack: String =
    "accept"

  enum Start {
    case offset(KafkaOffset)
    case timestamp(Int64)
  }

  func parseFrom() throws -> Start {
    switch from.lowercased() {
    case "beginning", "earliest", "start": return .offset(.beginning)
    case "end", "latest": return .offset(.end)
    default:
      if from.hasPrefix("@"), let timestamp = Int64(from.dropFirst()) { return .timestamp(timestamp) }
      if let offset = Int(from), offset >= 0 { return .offset(KafkaOffset(rawValue: offset)) }
      throw ValidationError("--from must be beginning, end, an offset or @TIMESTAMP, not \"\(from)\"")
    }
  }

  func run() async throws {
    try await runClientCommand {
      if let count, count < 0 { throw ValidationError("--count must be ≥ 0") }
      if json && format != nil { throw ValidationError("--json and --format exclude each other") }
      let start = try parseFrom()
      let template = try FormatTemplate(format ?? "%s\\n")
      let addresses = try options.addresses()
      let connection = try options.connection()
      let logger = try options.logger()
      if let shareGroup {
        guard group == nil, partitions.isEmpty, instanceId == nil, assignor == nil else {
          throw ValidationError("--share-group excludes --group, --partition, --instance-id and --assignor")
        }
        try await consumeAsShareGroupMember(
          shareGroup, template: template, addresses: addresses, connection: connection, logger: logger)
        return
      }
      if let group {
        try await consumeAsGroupMember(
          group, start: start, template: template, addresses: addresses, connection: connection,
          logger: logger)
        return
      }
      if instanceId != nil || assignor != nil {
        throw ValidationError("--instance-id and --assignor need --group")
      }

      var adminConfiguration = KafkaAdminConfiguration(bootstrapAddresses: addresses)
      adminConfiguration.connection = connection
      let admin = try KafkaAdmin(configuration: adminConfiguration, logger: logger)
      let description: KafkaAdmin.TopicDescription
      do {
        guard let found = try await admin.describeTopics([topic]).first else {
          throw KafkaError.broker(.unknownTopicOrPartition, "topic \(topic)")
        }
        description = found
      } catch {
        await admin.close()
        throw error
      }
      await admin.close()
      let all = description.partitions.map { Int($0.partition) }
      for partition in partitions where !all.contains(partition) {
        throw KafkaError.broker(.unknownTopicOrPartition, "topic \(topic) has no partition \(partition)")
      }
      let chosen = partitions.isEmpty ? all : partitions
      var assignment: [KafkaTopicPartition: KafkaOffset] = [:]
      for partition in chosen {
        let offset: KafkaOffset = if case .offset(let offset) = start { offset } else { .end }
        assignment[KafkaTopicPartition(topic: topic, partition: KafkaPartition(rawValue: partition))] = offset
      }
      var configuration = KafkaConsumerConfiguration(
        consumptionStrategy: .partitions(assignment), bootstrapAddresses: addresses)
      configuration.connection = connection
      configuration.autoOffsetReset = .beginning
      let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
      do {
        if case .timestamp(let timestamp) = start {
          for topicPartition in assignment.keys {
            await consumer.seek(topicPartition, toTimestamp: timestamp)
          }
        }
        // Without --follow or --count: stop at the end offsets as of now.
        var remainingEnds: [KafkaTopicPartition: Int] = [:]
        if !follow && count == nil {
          for topicPartition in assignment.keys {
            let position = try await consumer.position(topicPartition).rawValue
            let end = try await consumer.watermarks(topicPartition).high.rawValue
            if end > position { remainingEnds[topicPartition] = end }
          }
          if remainingEnds.isEmpty {
            await consumer.close()
            return
          }
        }
        var out = OutputBuffer()
        var printed = 0
        if count == 0 {
          await consumer.close()
          return
        }
        reading: while let batch = try await consumer.nextBatch() {
          for message in batch {
            if !follow && count == nil {
              guard let end = remainingEnds[message.topicPartition], message.offset.rawValue < end else {
                continue
              }
              if message.offset.rawValue + 1 >= end { remainingEnds[message.topicPartition] = nil }
            }
            if json { out.append(jsonLine(message)) } else { template.render(message, into: &out) }
            printed += 1
            out.flushIfLarge()
            if let count, printed >= count { break reading }
            if !follow && count == nil && remainingEnds.isEmpty { break reading }
          }
          out.flush()
          if out.broken { break }  // the reader is gone (`| head`): stop, as SIGPIPE would
          if !follow && count == nil && remainingEnds.isEmpty { break }
        }
        out.flush()
        await consumer.close()
      } catch {
        await consumer.close()
        throw error
      }
    }
  }
}

extension ConsumeCommand {
  /// `--group`: a group member that prints what it is given until --count or a signal.
  func consumeAsGroupMember(
    _ group: String, start: Start, template: FormatTemplate, addresses: [KafkaConfiguration.BrokerAddress],
    connection: KafkaConfiguration.Connection, logger: Logger
  ) async throws {
    guard partitions.isEmpty else { throw ValidationError("--partition and --group exclude each other") }
    guard case .offset(let offset) = start, offset == .beginning || offset == .end else {
      throw ValidationError("with --group, --from must be beginning or end")
    }
    var configuration = KafkaConsumerConfiguration(
      consumptionStrategy: .group(id: group, topics: [topic]), bootstrapAddresses: addresses)
    configuration.connection = connection
    configuration.autoOffsetReset = offset
    configuration.groupInstanceId = instanceId
    configuration.autoCommitInterval = .seconds(1)
    guard sessionTimeoutMs > 0, rebalanceTimeoutMs > 0 else {
      throw ValidationError("--session-timeout-ms and --rebalance-timeout-ms must be positive")
    }
    configuration.sessionTimeout = .milliseconds(sessionTimeoutMs)
    configuration.rebalanceTimeout = .milliseconds(rebalanceTimeoutMs)
    configuration.heartbeatInterval = .milliseconds(max(100, min(3000, sessionTimeoutMs / 3)))
    if let assignor {
      switch assignor.lowercased() {
      case "range": configuration.partitionAssignors = [.range]
      case "roundrobin", "round-robin": configuration.partitionAssignors = [.roundRobin]
      default: throw ValidationError("--assignor must be range or roundrobin")
      }
    }
    let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
    let signals = [SIGINT, SIGTERM].map { number in
      signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number)
      source.setEventHandler { consumer.triggerGracefulShutdown() }
      source.resume()
      return source
    }
    defer { for source in signals { source.cancel() } }
    var out = OutputBuffer()
    var printed = 0
    do {
      if count == 0 {
        await consumer.close()
        return
      }
      reading: while let batch = try await consumer.nextBatch() {
        for (index, message) in batch.enumerated() {
          if json { out.append(jsonLine(message)) } else { template.render(message, into: &out) }
          printed += 1
          out.flushIfLarge()
          if let count, printed >= count {
            // Only what was printed counts as delivered (and is committed on close).
            consumer.markDelivered(batch, count: index + 1)
            break reading
          }
        }
        out.flush()
      }
      out.flush()
      await consumer.close()
    } catch {
      out.flush()
      await consumer.close()
      throw error
    }
  }
}

extension ConsumeCommand {
  /// `--share-group`: a share-group member that prints and acknowledges what it is handed.
  func consumeAsShareGroupMember(
    _ group: String, template: FormatTemplate, addresses: [KafkaConfiguration.BrokerAddress],
    connection: KafkaConfiguration.Connection, logger: Logger
  ) async throws {
    let type: KafkaAcknowledgeType
    switch ack.lowercased() {
    case "accept": type = .accept
    case "release": type = .release
    case "reject": type = .reject
    default: throw ValidationError("--ack must be accept, release or reject")
    }
    var configuration = KafkaShareConsumerConfiguration(
      groupId: group, topics: [topic], bootstrapAddresses: addresses)
    configuration.connection = connection
    configuration.acknowledgementMode = .explicit
    if let count, count > 0 { configuration.maxPollRecords = Int32(clamping: min(count, 500)) }
    let consumer = try KafkaShareConsumer(configuration: configuration, logger: logger)
    let signals = [SIGINT, SIGTERM].map { number in
      signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number)
      source.setEventHandler { Task { await consumer.close() } }
      source.resume()
      return source
    }
    defer { for source in signals { source.cancel() } }
    var out = OutputBuffer()
    var printed = 0
    do {
      reading: while count != 0 {
        let batch: [KafkaShareMessage]
        do {
          batch = try await consumer.poll()
        } catch let error as KafkaError where error.code == .closed {
          break
        }
        if batch.isEmpty && !follow { break }
        for (index, message) in batch.enumerated() {
          if json {
            out.append(jsonLine(message.message))
          } else {
            template.render(message.message, into: &out)
          }
          try await consumer.acknowledge(message, type)
          printed += 1
          out.flushIfLarge()
          if let count, printed >= count {
            // The rest of the batch was not printed: it goes back to the group.
            for rest in batch[(index + 1)...] { try await consumer.acknowledge(rest, .release) }
            break reading
          }
        }
        out.flush()
        if out.broken { break }
      }
      out.flush()
      await consumer.close()
    } catch {
      out.flush()
      await consumer.close()
      throw error
    }
  }
}

/// A parsed `--format` template.
struct FormatTemplate {
  enum Part {
    case literal([UInt8])
    case value, key, topic, partition, offset, timestamp, headers, valueSize, keySize
  }
  var parts: [Part] = []

  init(_ text: String) throws {
    var literal: [UInt8] = []
    var iterator = Array(text.utf8).makeIterator()
    func flush() {
      if !literal.isEmpty { parts.append(.literal(literal)) }
      literal = []
    }
    while let byte = iterator.next() {
      switch byte {
      case UInt8(ascii: "\\"):
        switch iterator.next() {
        case UInt8(ascii: "n"): literal.append(10)
        case UInt8(ascii: "t"): literal.append(9)
        case UInt8(ascii: "r"): literal.append(13)
        case UInt8(ascii: "0"): literal.append(0)
        case UInt8(ascii: "\\"): literal.append(UInt8(ascii: "\\"))
        case let other?: literal += [UInt8(ascii: "\\"), other]
        case nil: literal.append(UInt8(ascii: "\\"))
        }
      case UInt8(ascii: "%"):
        let next = iterator.next()
        let part: Part?
        switch next {
        case UInt8(ascii: "s"): part = .value
        case UInt8(ascii: "k"): part = .key
        case UInt8(ascii: "t"): part = .topic
        case UInt8(ascii: "p"): part = .partition
        case UInt8(ascii: "o"): part = .offset
        case UInt8(ascii: "T"): part = .timestamp
        case UInt8(ascii: "h"): part = .headers
        case UInt8(ascii: "S"): part = .valueSize
        case UInt8(ascii: "K"): part = .keySize
        case UInt8(ascii: "%"):
          literal.append(UInt8(ascii: "%"))
          continue
        default:
          throw ValidationError("--format: unknown token %\(next.map { String(UnicodeScalar($0)) } ?? "")")
        }
        flush()
        parts.append(part!)
      default:
        literal.append(byte)
      }
    }
    flush()
  }

  func render(_ message: KafkaConsumerMessage, into out: inout OutputBuffer) {
    for part in parts {
      switch part {
      case .literal(let bytes): out.append(bytes)
      case .value: out.append(message.value.readableBytesView)
      case .key: if let key = message.key { out.append(key.readableBytesView) }
      case .topic: out.append(message.topic)
      case .partition: out.append(String(message.partition.rawValue))
      case .offset: out.append(String(message.offset.rawValue))
      case .timestamp: out.append(String(message.timestamp))
      case .headers:
        out.append(
          message.headers.map { "\($0.key)=\($0.value.map { String(buffer: $0) } ?? "")" }.joined(
            separator: ","))
      case .valueSize: out.append(String(message.isTombstone ? -1 : message.value.readableBytes))
      case .keySize: out.append(String(message.key?.readableBytes ?? -1))
      }
    }
  }
}

func jsonString(_ text: String) -> String {
  var out = "\""
  for scalar in text.unicodeScalars {
    switch scalar {
    case "\"": out += "\\\""
    case "\\": out += "\\\\"
    case "\n": out += "\\n"
    case "\r": out += "\\r"
    case "\t": out += "\\t"
    case _ where scalar.value < 0x20:
      out +=
        "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
        + String(scalar.value, radix: 16)
    default: out.unicodeScalars.append(scalar)
    }
  }
  return out + "\""
}

/// `"name":value` for bytes: a JSON string when UTF-8, else base64 plus `name_encoding`.
func jsonBytes(_ name: String, _ bytes: ByteBuffer?) -> String {
  guard let bytes else { return "\"\(name)\":null" }
  if let text = String(validating: bytes.readableBytesView, as: UTF8.self) {
    return "\"\(name)\":" + jsonString(text)
  }
  return
    "\"\(name)\":\"\(Data(bytes.readableBytesView).base64EncodedString())\",\"\(name)_encoding\":\"base64\""
}

func jsonLine(_ message: KafkaConsumerMessage) -> String {
  var fields = [
    "\"topic\":" + jsonString(message.topic), "\"partition\":\(message.partition.rawValue)",
    "\"offset\":\(message.offset.rawValue)", "\"timestamp\":\(message.timestamp)",
    "\"timestamp_type\":\"\(message.timestampType.rawValue)\"",
    jsonBytes("key", message.key), jsonBytes("value", message.isTombstone ? nil : message.value),
  ]
  fields.append(
    "\"headers\":["
      + message.headers.map { "{\"key\":" + jsonString($0.key) + "," + jsonBytes("value", $0.value) + "}" }
      .joined(separator: ",") + "]")
  return "{" + fields.joined(separator: ",") + "}\n"
}
