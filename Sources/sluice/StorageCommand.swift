import ArgumentParser
import NIOPosix
import SluiceStorage

/// `sluice storage verify|repair`: checks of a broker's data directory on disk, and the
/// repair of a partition log whose acknowledged data the disk damaged.
struct StorageCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "storage", abstract: "Check the logs of a data directory; repair a damaged one.",
    subcommands: [Verify.self, Repair.self])

  struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Check every partition log of a data directory, changing nothing.",
      discussion: """
        Reads every batch of every partition log (header, CRC, offsets) as a broker start after a \
        crash would, and meta.json. One line per log: "ok", or "CORRUPT file:position reason" when \
        data below the recovery point (acknowledged) is damaged: the broker then serves the records \
        before it read-only and refuses appends until `sluice storage repair`. A torn tail past the \
        recovery point (what a crash leaves) is reported but is not corruption: the next start \
        truncates it. Safe while a broker runs (it may then report the tail being written as torn).

        Exit status: 0 when nothing is corrupt, 1 when something is, 2 when the directory cannot \
        be read.
        """)

    @Argument(help: "The broker's data directory (sluice serve --data-dir).") var dataDir: String

    func run() throws {
      let logs = try storageStep { () throws(StorageError) in try FileLog.partitionDirectories(in: dataDir) }
      var corrupt = false
      var unreadable = false
      do throws(StorageError) {
        if let document = try MetadataStore.read(directory: dataDir) {
          print("meta.json ok (\(document.topics.count) topics)")
        } else {
          print("meta.json MISSING: not a Sluice data directory, or its metadata is lost")
          corrupt = true
        }
      } catch {
        print("meta.json CORRUPT \(error.message)")
        corrupt = true
      }
      for directory in logs {
        let name = StorageCommand.lastComponent(directory)
        do throws(StorageError) {
          let verification = try FileLog.verify(directory: directory)
          print("\(name) \(StorageCommand.describe(verification))")
          corrupt = corrupt || verification.isCorrupt
        } catch {
          print("\(name) UNREADABLE \(error.message)")
          unreadable = true
        }
      }
      if unreadable { throw ExitCode(2) }
      if corrupt { throw ExitCode(1) }
    }
  }

  struct Repair: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Cut a damaged partition log after its last intact batch.",
      discussion: """
        Truncates the segment holding the first damaged batch there, removes every later segment \
        and the indexes that could point past the cut, and records the cut as the recovery point, \
        so that the next broker start finds a healthy log that takes appends from there. Every \
        record from the damage on is lost. The broker must be stopped: with --confirm the command \
        takes the data directory's lock, and fails if a broker holds it.

        Without --confirm it prints what it would do and exits with status 1, changing nothing. \
        Exit status 0: repaired, or nothing to repair; 2: an error.
        """)

    @Argument(help: "The broker's data directory (sluice serve --data-dir).") var dataDir: String
    @Option(help: "The topic of the log to repair.") var topic: String
    @Option(help: "The partition of the log to repair.") var partition: Int32
    @Flag(help: "Apply the repair (without it: print what it would do, change nothing).") var confirm = false

    func run() async throws {
      let name = "\(topic)-\(partition)"
      let directory = dataDir + "/" + name
      let logs = try storageStep { () throws(StorageError) in try FileLog.partitionDirectories(in: dataDir) }
      guard logs.contains(directory) else {
        printError("error: \(dataDir) has no log for partition \(partition) of topic \(topic) (no \(name)/)")
        throw ExitCode(2)
      }
      // Nothing else may use the directory while it changes: a running broker holds the lock.
      let lock =
        try confirm
        ? storageStep { () throws(StorageError) in try DataDirectoryLock(directory: dataDir) } : nil
      defer { lock?.release() }
      guard
        let plan = try storageStep({ () throws(StorageError) in try FileLog.planRepair(directory: directory) }
        )
      else {
        print("\(name) ok: nothing to repair")
        return
      }
      let damage = plan.damage
      print(
        "\(name) damaged at \(StorageCommand.lastComponent(damage.file)):\(damage.position) (\(damage.reason))"
      )
      guard confirm else {
        print("repair would:")
        for step in StorageCommand.steps(plan) { print("  " + step) }
        print("nothing changed: run again with --confirm to apply it (with the broker stopped)")
        throw ExitCode(1)
      }
      // The repair fsyncs what it changes: on a pool thread, as file work always runs (the
      // command's task runs on an event loop, NIO being the global executor).
      let repaired = try await NIOThreadPool.singleton.runIfActive {
        Result { () throws(StorageError) in try FileLog.repair(directory: directory) }
      }
      _ = try storageStep { () throws(StorageError) in try repaired.get() }
      print("repaired:")
      for step in StorageCommand.steps(plan) { print("  " + step) }
    }
  }

  /// A verified log's line: "ok …", "ok, torn tail …" or "CORRUPT file:position reason …".
  static func describe(_ verification: LogVerification) -> String {
    let range = "offsets [\(verification.startOffset), \(verification.intactEnd))"
    guard let damage = verification.damage else {
      return "ok \(verification.segments) segments, \(verification.batches) batches, \(range)"
    }
    return describe(damage, below: verification.isCorrupt)
  }

  static func describe(_ damage: LogDamage, below corrupt: Bool) -> String {
    let place = "\(lastComponent(damage.file)):\(damage.position) \(damage.reason)"
    guard corrupt else {
      return "ok, torn tail at \(place) past the recovery point: the next broker start truncates it"
    }
    guard damage.offset >= 0 else { return "CORRUPT \(place)" }
    return "CORRUPT \(place) (acknowledged records from offset \(damage.offset) on are damaged; the broker "
      + "serves those before it read-only and refuses appends until `sluice storage repair`)"
  }

  /// What a repair does, one step a line.
  static func steps(_ plan: LogRepair) -> [String] {
    var steps: [String] = []
    if let file = plan.truncatedFile {
      steps.append("truncate \(lastComponent(file)) to \(plan.truncatedAt) bytes")
    }
    for file in plan.removedFiles { steps.append("remove \(lastComponent(file))") }
    if plan.droppedBytes > 0 {
      steps.append(
        "(\(plan.droppedBytes) bytes of records dropped: every record from offset \(plan.newEnd) on)")
    }
    steps.append("set the recovery point to \(plan.newEnd): the log ends there and takes appends from there")
    return steps
  }

  static func lastComponent(_ path: String) -> String {
    path.split(separator: "/").last.map(String.init) ?? path
  }
}

/// Runs a storage call, turning its error into a message and exit status 2.
func storageStep<R>(_ body: () throws(StorageError) -> R) throws -> R {
  do {
    return try body()
  } catch {
    printError("error: \(error.message)")
    throw ExitCode(2)
  }
}
