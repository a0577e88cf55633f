import ArgumentParser
import KafkaClient
import KafkaProtocol

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif

/// `sluice group list|describe|reset-offsets|delete`.
struct GroupCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "group", abstract: "List, describe, reset the offsets of, and delete consumer groups.",
    subcommands: [List.self, Describe.self, ResetOffsets.self, Delete.self])

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "List groups, one per line: id, protocol type, state (tab-separated).")
    @OptionGroup var options: ClientOptions

    func run() async throws {
      try await runClientCommand {
        let admin = try TopicCommand.admin(options)
        let groups: [KafkaAdmin.GroupListing]
        do { groups = try await admin.listGroups() } catch {
          await admin.close()
          throw error
        }
        await admin.close()
        var out = OutputBuffer()
        for group in groups {
          out.append(
            "\(group.groupId)\t\(group.protocolType.isEmpty ? "-" : group.protocolType)\t\(group.state)\n")
        }
        out.flush()
      }
    }
  }

  struct Describe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Show a group's state, members and, per partition, committed offset, end offset and lag.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Group id.") var group: String

    func run() async throws {
      try await runClientCommand {
        let admin = try TopicCommand.admin(options)
        do {
          try await describe(admin)
        } catch {
          await admin.close()
          throw error
        }
        await admin.close()
      }
    }

    private func describe(_ admin: KafkaAdmin) async throws {
      if let share = try await admin.describeShareGroup(group) {
        return try await describeShare(share, admin)
      }
      guard let description = try await admin.describeGroups([group]).first else {
        throw KafkaError.broker(.groupIdNotFound, "describe group \(group)")
      }
      let committed = try await admin.committedOffsets(group: group)
      if description.state == "Dead" && committed.isEmpty {
        throw KafkaError.broker(.groupIdNotFound, "describe group \(group)")
      }
      var owners: [KafkaTopicPartition: String] = [:]
      for member in description.members {
        for topicPartition in member.assignment { owners[topicPartition] = member.memberId }
      }
      var out = OutputBuffer()
      let protocolText =
        description.protocolType.isEmpty
        ? "-"
        : description.protocolType + (description.protocolName.isEmpty ? "" : "/\(description.protocolName)")
      out.append(
        "group \(description.groupId)  state \(description.state)  protocol \(protocolText)  members \(description.members.count)\n"
      )
      if !description.members.isEmpty {
        out.append("\nMEMBER\tINSTANCE\tCLIENT\tHOST\tPARTITIONS\n")
        for member in description.members {
          let partitions = member.assignment.map(\.description).joined(separator: ",")
          out.append(
            "\(member.memberId)\t\(member.groupInstanceId ?? "-")\t\(member.clientId)\t\(member.clientHost)\t\(partitions.isEmpty ? "-" : partitions)\n"
          )
        }
      }
      let partitions = Set(committed.keys).union(owners.keys).sorted {
        ($0.topic, $0.partition.rawValue) < ($1.topic, $1.partition.rawValue)
      }
      if !partitions.isEmpty {
        out.append("\nTOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tOWNER\n")
        var ends: [KafkaTopicPartition: Int] = [:]
        var configuration = KafkaConsumerConfiguration(
          consumptionStrategy: .partitions([:]), bootstrapAddresses: try options.addresses())
        configuration.connection = try options.connection()
        let consumer = try KafkaConsumer(configuration: configuration)
        for topicPartition in partitions {
          ends[topicPartition] = try? await consumer.watermarks(topicPartition).high.rawValue
        }
        await consumer.close()
        for topicPartition in partitions {
          let offset = committed[topicPartition]?.rawValue
          let end = ends[topicPartition]
          let lag = offset.flatMap { o in end.map { max(0, $0 - o) } }
          out.append(
            "\(topicPartition.topic)\t\(topicPartition.partition)\t\(offset.map(String.init) ?? "-")\t\(end.map(String.init) ?? "-")\t\(lag.map(String.init) ?? "-")\t\(owners[topicPartition] ?? "-")\n"
          )
        }
      }
      out.flush()
    }

    /// A share group: members, and per partition the share-partition start offset (below
    /// it everything is settled), the log end, records not yet settled, and of the
    /// in-flight window those acquired, acknowledged and archived (Sluice's statistics).
    private func describeShare(_ description: KafkaAdmin.ShareGroupDescription, _ admin: KafkaAdmin)
      async throws
    {
      var out = OutputBuffer()
      out.append(
        "share group \(description.groupId)  state \(description.state)  epoch \(description.groupEpoch)  members \(description.members.count)\n"
      )
      if !description.members.isEmpty {
        out.append("\nMEMBER\tCLIENT\tHOST\tPARTITIONS\n")
        for member in description.members {
          let partitions = member.assignment.map(\.description).joined(separator: ",")
          out.append(
            "\(member.memberId)\t\(member.clientId)\t\(member.clientHost)\t\(partitions.isEmpty ? "-" : partitions)\n"
          )
        }
      }
      let prefix = "sluice.stats.share."
      var stats: [KafkaTopicPartition: [String: Int]] = [:]
      for entry in (try? await admin.describeConfigs(.group, name: group)) ?? []
      where entry.name.hasPrefix(prefix) {
        // sluice.stats.share.<topic>.<partition>.<name>: the topic may contain dots.
        let parts = entry.name.dropFirst(prefix.count).split(separator: ".")
        let statLength = parts.last == "offset" ? 2 : 1
        guard parts.count >= statLength + 2, let partition = Int(parts[parts.count - 1 - statLength]),
          let value = Int(entry.value ?? "")
        else { continue }
        let stat = parts.suffix(statLength).joined(separator: ".")
        let topicParts = parts.dropLast(statLength + 1)
        let key = KafkaTopicPartition(
          topic: topicParts.joined(separator: "."), partition: KafkaPartition(rawValue: partition))
        stats[key, default: [:]][stat] = value
      }
      if !stats.isEmpty {
        out.append("\nTOPIC\tPARTITION\tSTART\tEND\tUNSETTLED\tACQUIRED\tACKNOWLEDGED\tARCHIVED\n")
        var configuration = KafkaConsumerConfiguration(
          consumptionStrategy: .partitions([:]), bootstrapAddresses: try options.addresses())
        configuration.connection = try options.connection()
        let consumer = try KafkaConsumer(configuration: configuration)
        for key in stats.keys.sorted(by: {
          ($0.topic, $0.partition.rawValue) < ($1.topic, $1.partition.rawValue)
        }) {
          let values = stats[key]!
          let start = values["start.offset"]
          let end = try? await consumer.watermarks(key).high.rawValue
          let unsettled = start.flatMap { s in end.map { max(0, $0 - s) } }
          func text(_ value: Int?) -> String { value.map(String.init) ?? "-" }
          out.append(
            "\(key.topic)\t\(key.partition)\t\(text(start))\t\(text(end))\t\(text(unsettled))\t\(text(values["acquired"]))\t\(text(values["acknowledged"]))\t\(text(values["archived"]))\n"
          )
        }
        await consumer.close()
      }
      out.flush()
    }
  }

  struct ResetOffsets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "reset-offsets",
      abstract: "Set a group's committed offsets for a topic (the group must have no active members).")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Group id.") var group: String
    @Option(help: "Topic whose offsets to reset.") var topic: String
    @Option(name: .customLong("partition"), help: "Partition; repeatable (default: all).") var partitions:
      [Int] =
        []
    @Option(
      help: "beginning, end, an OFFSET, or a time (@EPOCH_MS or ISO 8601): the first offset at or after it.")
    var to: String

    func run() async throws {
      try await runClientCommand {
        var target: KafkaOffset = .end
        var timestamp: Int64?
        switch to.lowercased() {
        case "beginning", "earliest": target = .beginning
        case "end", "latest": target = .end
        default:
          if let offset = Int(to), offset >= 0 {
            target = KafkaOffset(rawValue: offset)
          } else if to.hasPrefix("@"), let ms = Int64(to.dropFirst()), ms >= 0 {
            timestamp = ms
          } else if let date = try? Date(to, strategy: .iso8601) {
            timestamp = Int64(date.timeIntervalSince1970 * 1000)
          } else {
            throw ValidationError(
              "--to must be beginning, end, an offset, @EPOCH_MS or an ISO 8601 time, not \"\(to)\"")
          }
        }
        let admin = try TopicCommand.admin(options)
        do {
          guard let description = try await admin.describeTopics([topic]).first else {
            throw KafkaError.broker(.unknownTopicOrPartition, "topic \(topic)")
          }
          let all = description.partitions.map { Int($0.partition) }
          for partition in partitions where !all.contains(partition) {
            throw KafkaError.broker(.unknownTopicOrPartition, "topic \(topic) has no partition \(partition)")
          }
          var offsets: [KafkaTopicPartition: KafkaOffset] = [:]
          for partition in partitions.isEmpty ? all : partitions {
            offsets[KafkaTopicPartition(topic: topic, partition: KafkaPartition(rawValue: partition))] =
              target
          }
          if let timestamp {
            offsets = try await admin.offsets(forTimestamp: timestamp, partitions: Array(offsets.keys))
          }
          try await admin.resetOffsets(group: group, to: offsets)
          let now = try await admin.committedOffsets(group: group, partitions: Array(offsets.keys))
          var out = OutputBuffer()
          for (topicPartition, offset) in now.sorted(by: {
            $0.key.partition.rawValue < $1.key.partition.rawValue
          }) {
            out.append("\(topicPartition.topic)\t\(topicPartition.partition)\t\(offset.rawValue)\n")
          }
          out.flush()
        } catch {
          await admin.close()
          throw error
        }
        await admin.close()
      }
    }
  }

  struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Delete groups and their committed offsets (only groups without members).")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Group ids.") var groups: [String]

    func run() async throws {
      try await runClientCommand {
        guard !groups.isEmpty else { throw ValidationError("name at least one group") }
        let admin = try TopicCommand.admin(options)
        do { try await admin.deleteGroups(groups) } catch {
          await admin.close()
          throw error
        }
        await admin.close()
      }
    }
  }
}
