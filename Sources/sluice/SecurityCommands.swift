import ArgumentParser
import KafkaClient
import KafkaProtocol
import NIOPosix
import SluiceBroker
import SluiceSASL
import SluiceStorage

/// `sluice user add|list|delete`: SCRAM users, through a running broker's admin API or,
/// with `--data-dir`, straight in a stopped broker's data directory (the first admin).
struct UserCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "user", abstract: "Add, list and delete SASL/SCRAM users (docs/security.md).",
    subcommands: [Add.self, List.self, Delete.self])

  /// Opens a stopped broker's metadata (the directory lock makes sure it is stopped) and
  /// runs `body` on a thread-pool thread (it writes and fsyncs files).
  static func offline(_ directory: String, _ body: @escaping @Sendable (SecurityStore) throws -> Void)
    async throws
  {
    try await NIOThreadPool.singleton.runIfActive {
      let lock: DataDirectoryLock
      do throws(StorageError) {
        lock = try DataDirectoryLock(directory: directory)
      } catch {
        throw UsageError("\(directory): \(error.message) (is the broker running? then leave out --data-dir)")
      }
      defer { lock.release() }
      do {
        let metadata = try MetadataStore(directory: directory)
        try body(try SecurityStore(metadata: metadata, superUsers: [], allowEveryoneIfNoAclFound: true))
      } catch let error as StorageError {
        throw UsageError("\(directory): \(error.message)")
      }
    }
  }

  static func mechanisms(_ text: String?) throws -> [SCRAMMechanism] {
    guard let text else { return SCRAMMechanism.allCases }
    guard let mechanism = SCRAMMechanism(rawValue: text.uppercased()) else {
      throw ValidationError("--mechanism: \"\(text)\" is not SCRAM-SHA-256 or SCRAM-SHA-512")
    }
    return [mechanism]
  }

  struct Add: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Create or replace a user's credentials; the password is read from stdin (one line).",
      discussion: "Without --mechanism, credentials for both SCRAM-SHA-256 and SCRAM-SHA-512 are stored; "
        + "PLAIN checks passwords against them too.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "User name (the principal is User:NAME).") var name: String
    @Option(help: "SCRAM-SHA-256 or SCRAM-SHA-512 (default: both).") var mechanism: String?
    @Option(help: "PBKDF2 iterations, 4096 to 16384.") var iterations: Int =
      SCRAMMechanism.defaultIterations
    @Option(help: "Write into this stopped broker's data directory instead of asking a running broker.")
    var dataDir: String?

    func run() async throws {
      try await runClientCommand {
        guard (SCRAMMechanism.minIterations...SCRAMMechanism.maxIterations).contains(iterations) else {
          throw ValidationError("--iterations must be 4096 to 16384")
        }
        guard !name.isEmpty else { throw ValidationError("the user name is empty") }
        let mechanisms = try UserCommand.mechanisms(mechanism)
        guard let password = readLine(strippingNewline: true), !password.isEmpty else {
          throw UsageError("no password on stdin")
        }
        if let dataDir {
          try await UserCommand.offline(dataDir) { store in
            let changes = mechanisms.map {
              SecurityStore.CredentialChange(
                user: name, mechanism: $0,
                credential: SCRAMCredential(mechanism: $0, password: password, iterations: iterations))
            }
            try syncAlter(store, changes)
          }
        } else {
          let admin = try TopicCommand.admin(options)
          for mechanism in mechanisms {
            try await admin.upsertScramCredential(
              user: name, password: password, mechanism: mechanism.rawValue, iterations: iterations)
          }
          await admin.close()
        }
        print("user \(name): \(mechanisms.map(\.rawValue).joined(separator: ", "))")
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "List users: name, then each mechanism with its iterations.")
    @OptionGroup var options: ClientOptions
    @Option(help: "Read this stopped broker's data directory instead of asking a running broker.")
    var dataDir: String?

    func run() async throws {
      try await runClientCommand {
        var lines: [String] = []
        if let dataDir {
          try await UserCommand.offline(dataDir) { store in
            for (user, credentials) in store.users.sorted(by: { $0.key < $1.key }) {
              print(
                "\(user)\t"
                  + credentials.map { "\($0.mechanism.rawValue):\($0.iterations)" }.joined(separator: " "))
            }
          }
        } else {
          let admin = try TopicCommand.admin(options)
          for user in try await admin.describeScramUsers().sorted(by: { $0.name < $1.name }) {
            lines.append(
              "\(user.name)\t"
                + user.mechanisms.map { "\($0.mechanism):\($0.iterations)" }.joined(separator: " "))
          }
          await admin.close()
        }
        for line in lines { print(line) }
      }
    }
  }

  struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a user's credentials.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "User name.") var name: String
    @Option(help: "Only this mechanism's credential (default: all of the user's).") var mechanism: String?
    @Option(help: "Write into this stopped broker's data directory instead of asking a running broker.")
    var dataDir: String?

    func run() async throws {
      try await runClientCommand {
        if let dataDir {
          try await UserCommand.offline(dataDir) { store in
            let held = (store.users[name] ?? []).map(\.mechanism)
            let wanted = try mechanism == nil ? held : UserCommand.mechanisms(mechanism)
            guard !held.isEmpty, wanted.allSatisfy(held.contains) else {
              throw UsageError("user \(name) has no such credential")
            }
            try syncAlter(store, wanted.map { .init(user: name, mechanism: $0, credential: nil) })
          }
        } else {
          let admin = try TopicCommand.admin(options)
          var held = mechanism.map { [$0.uppercased()] } ?? []
          if mechanism == nil {
            held = try await admin.describeScramUsers([name]).first?.mechanisms.map(\.mechanism) ?? []
          }
          for mechanism in held { try await admin.deleteScramCredential(user: name, mechanism: mechanism) }
          await admin.close()
        }
      }
    }
  }
}

/// Applies credential changes to an offline store, on the calling (thread-pool) thread.
func syncAlter(_ store: SecurityStore, _ changes: [SecurityStore.CredentialChange]) throws {
  do {
    try store.applyCredentials(changes)
  } catch {
    throw UsageError("cannot write credentials: \(error.message)")
  }
}

/// `sluice acl add|list|remove`: Kafka ACLs through a running broker's admin API.
struct AclCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "acl", abstract: "Add, list and remove ACLs (docs/security.md).",
    subcommands: [Add.self, List.self, Remove.self])

  /// The resource and who, as options shared by the three commands.
  struct Selection: ParsableArguments {
    @Option(help: "A topic (or with --prefixed, a name prefix; * for all topics).") var topic: String?
    @Option(help: "A consumer or share group (or prefix).") var group: String?
    @Option(help: "A transactional id (or prefix).") var transactionalId: String?
    @Flag(help: "The cluster resource (topic creation, ACLs, users, broker configs).") var cluster = false
    @Flag(help: "The name is a prefix (PREFIXED pattern).") var prefixed = false
    @Option(help: "Principal, e.g. User:alice (User:* for everyone).") var principal: String?
    @Option(help: "Client host (default *: any).") var host: String?
    @Option(
      help: ArgumentHelp(
        "Operation: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS, "
          + "IDEMPOTENT_WRITE, CLUSTER_ACTION or ALL; repeatable."))
    var operation: [String] = []
    @Flag(help: "DENY instead of ALLOW.") var deny = false

    func resource() throws -> (AclResourceType, String)? {
      let given: [(AclResourceType, String)] =
        [
          topic.map { (.topic, $0) }, group.map { (.group, $0) },
          transactionalId.map { (.transactionalId, $0) },
          cluster ? (.cluster, "kafka-cluster") : nil,
        ].compactMap { $0 }
      guard given.count <= 1 else {
        throw ValidationError("give at most one of --topic, --group, --transactional-id, --cluster")
      }
      return given.first
    }

    func operations() throws -> [AclOperation] {
      try operation.map {
        guard let parsed = AclOperation(name: $0), ![.unknown, .any].contains(parsed) else {
          throw ValidationError("--operation: unknown operation \"\($0)\"")
        }
        return parsed
      }
    }

    func filters() throws -> [AclFilter] {
      let resource = try resource()
      let operations = try self.operations()
      return (operations.isEmpty ? [AclOperation.any] : operations).map {
        AclFilter(
          resourceType: resource?.0 ?? .any, resourceName: resource?.1,
          patternType: resource == nil ? .any : (prefixed ? .prefixed : .literal), principal: principal,
          host: host, operation: $0, permission: deny ? .deny : .any)
      }
    }
  }

  static func line(_ binding: AclBinding) -> String {
    [
      binding.permission.name, binding.principal, binding.host, binding.operation.name,
      binding.resourceType.name,
      binding.patternType.name, binding.resourceName,
    ].joined(separator: "\t")
  }

  struct Add: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Allow (or with --deny, deny) a principal operations on a resource.")
    @OptionGroup var options: ClientOptions
    @OptionGroup var selection: Selection

    func run() async throws {
      try await runClientCommand {
        guard let (type, name) = try selection.resource() else {
          throw ValidationError("name a resource: --topic, --group, --transactional-id or --cluster")
        }
        guard let principal = selection.principal else { throw ValidationError("--principal is required") }
        let operations = try selection.operations()
        guard !operations.isEmpty else { throw ValidationError("give at least one --operation") }
        let bindings = operations.map {
          AclBinding(
            resourceType: type, resourceName: name, patternType: selection.prefixed ? .prefixed : .literal,
            principal: principal, host: selection.host ?? "*", operation: $0,
            permission: selection.deny ? .deny : .allow)
        }
        for binding in bindings {
          if let problem = binding.problem { throw ValidationError(problem) }
        }
        let admin = try TopicCommand.admin(options)
        try await admin.createAcls(bindings)
        await admin.close()
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "List ACLs (all, or those matching the options): permission, principal, host, operation, "
        + "resource type, pattern, name.")
    @OptionGroup var options: ClientOptions
    @OptionGroup var selection: Selection

    func run() async throws {
      try await runClientCommand {
        let admin = try TopicCommand.admin(options)
        var seen: Set<AclBinding> = []
        for filter in try selection.filters() {
          for binding in try await admin.describeAcls(filter) where seen.insert(binding).inserted {
            print(AclCommand.line(binding))
          }
        }
        await admin.close()
      }
    }
  }

  struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract:
        "Remove the ACLs matching the options (at least one option is required); prints those removed.")
    @OptionGroup var options: ClientOptions
    @OptionGroup var selection: Selection

    func run() async throws {
      try await runClientCommand {
        guard try selection.resource() != nil || selection.principal != nil || !selection.operation.isEmpty
        else {
          throw ValidationError("name what to remove (--topic, --group, --cluster, --principal, --operation)")
        }
        let admin = try TopicCommand.admin(options)
        for binding in try await admin.deleteAcls(try selection.filters()) { print(AclCommand.line(binding)) }
        await admin.close()
      }
    }
  }
}
