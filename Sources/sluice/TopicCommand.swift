import ArgumentParser
import KafkaClient
import KafkaProtocol

/// `sluice topic create|list|describe|alter|delete`.
struct TopicCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "topic", abstract: "Create, list, describe, alter and delete topics.",
    subcommands: [Create.self, List.self, Describe.self, Alter.self, Delete.self])

  static func admin(_ options: ClientOptions) throws -> KafkaAdmin {
    var configuration = KafkaAdminConfiguration(bootstrapAddresses: try options.addresses())
    configuration.connection = try options.connection()
    return try KafkaAdmin(configuration: configuration, logger: try options.logger())
  }

  static func parseConfigs(_ settings: [String]) throws -> [String: String] {
    var configs: [String: String] = [:]
    for setting in settings {
      guard let equals = setting.firstIndex(of: "="), equals != setting.startIndex else {
        throw ValidationError("--config expects KEY=VALUE, got \"\(setting)\"")
      }
      configs[String(setting[..<equals])] = String(setting[setting.index(after: equals)...])
    }
    return configs
  }

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a topic.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Topic name.") var name: String
    @Option(help: "Number of partitions (default: the broker's).") var partitions: Int32?
    @Option(help: "Replication factor (default: the broker's).") var replicationFactor: Int16?
    @Option(name: .customLong("config"), help: "Topic config KEY=VALUE; repeatable.") var configs: [String] =
      []
    @Flag(help: "Succeed if the topic already exists.") var ifNotExists = false

    func run() async throws {
      try await runClientCommand {
        let admin = try TopicCommand.admin(options)
        do {
          try await admin.createTopic(
            name, partitions: partitions ?? -1, replicationFactor: replicationFactor ?? -1,
            configs: try TopicCommand.parseConfigs(configs))
        } catch let error as KafkaError where ifNotExists && error.brokerErrorCode == .topicAlreadyExists {}
        await admin.close()
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List topic names, one per line.")
    @OptionGroup var options: ClientOptions
    @Flag(name: .customLong("internal"), help: "Include internal topics.") var includeInternal = false

    func run() async throws {
      try await runClientCommand {
        let admin = try TopicCommand.admin(options)
        let names = try await admin.listTopics(includeInternal: includeInternal)
        await admin.close()
        for name in names { print(name) }
      }
    }
  }

  struct Describe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Describe topics: partitions, leaders, offsets and configs.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Topic names (default: all).") var names: [String] = []
    @Flag(help: "Show every config, defaults included.") var allConfigs = false

    func run() async throws {
      try await runClientCommand {
        let admin = try TopicCommand.admin(options)
        let topics = try await admin.describeTopics(names.isEmpty ? nil : names)
        for topic in topics {
          print("Topic: \(topic.name)\tId: \(topic.topicId)\tPartitions: \(topic.partitions.count)")
          let configs = try await admin.describeConfigs(.topic, name: topic.name)
          // Sluice lists read-only `sluice.stats.*` figures (docs/overflow.md) among the configs.
          let statistics = configs.filter { $0.name.hasPrefix("sluice.stats.") }
          let shown = configs.filter { (allConfigs || !$0.isDefault) && !$0.name.hasPrefix("sluice.stats.") }
          if !shown.isEmpty {
            print(
              "\tConfigs: "
                + shown.map { "\($0.name)=\($0.isSensitive ? "(sensitive)" : $0.value ?? "null")" }
                .joined(separator: ","))
          }
          if !statistics.isEmpty {
            print(
              "\tStats: "
                + statistics.map { "\($0.name.dropFirst("sluice.stats.".count))=\($0.value ?? "null")" }
                .joined(separator: ","))
          }
          for partition in topic.partitions {
            let error = partition.error == .none ? "" : "\tError: \(partition.error.name)"
            print(
              "\tPartition: \(partition.partition)\tLeader: \(partition.leader)\tReplicas: "
                + partition.replicas.map(String.init).joined(separator: ",") + "\tIsr: "
                + partition.isr.map(String.init).joined(separator: ",") + error)
          }
        }
        await admin.close()
      }
    }
  }

  struct Alter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Add partitions or change configs of a topic.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Topic name.") var name: String
    @Option(help: "New total number of partitions.") var partitions: Int32?
    @Option(name: .customLong("config"), help: "Set a config KEY=VALUE; repeatable.") var configs: [String] =
      []
    @Option(name: .customLong("delete-config"), help: "Reset a config to its default; repeatable.")
    var deleted: [String] = []

    func validate() throws {
      if partitions == nil && configs.isEmpty && deleted.isEmpty {
        throw ValidationError("nothing to alter: give --partitions, --config or --delete-config")
      }
    }

    func run() async throws {
      try await runClientCommand {
        let admin = try TopicCommand.admin(options)
        let changes =
          try TopicCommand.parseConfigs(configs).sorted { $0.key < $1.key }.map {
            KafkaAdmin.ConfigChange.set($0.key, $0.value)
          }
          + deleted.map { KafkaAdmin.ConfigChange.delete($0) }
        if !changes.isEmpty { try await admin.alterConfigs(.topic, name: name, changes) }
        if let partitions { try await admin.createPartitions(topic: name, totalCount: partitions) }
        await admin.close()
      }
    }
  }

  struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete topics.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Topic names.") var names: [String]

    func run() async throws {
      try await runClientCommand {
        let admin = try TopicCommand.admin(options)
        try await admin.deleteTopics(names)
        await admin.close()
      }
    }
  }
}
