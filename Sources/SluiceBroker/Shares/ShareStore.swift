import KafkaProtocol
package import NIOCore
import NIOPosix
import SluiceStorage
import Synchronization

/// The durable half of share groups: each share partition's delivery state (start and end
/// offsets, runs of settled records and delivery counts) and each share group's configs, in
/// a ``Journal`` (`<data-dir>/share-groups/state.log|.snapshot`).
///
/// Every record is a whole value (a partition's full state, a group's full config map), so
/// replay is last-writer-wins per key. Changes are queued in the order the coordinator made
/// them (it enqueues under its own lock) and written by one thread-pool job at a time, all
/// queued changes with one write and one fdatasync (group commit); ``write(_:)`` returns once
/// its changes are durable, ``writeSoon(_:)`` does not wait (and alone is written without a
/// sync: it survives a process crash, and the machine's once a later write syncs).
package final class ShareStore: Sendable {
  package struct Key: Hashable, Sendable {
    var group: String
    var topic: String
    var partition: Int32
  }

  package struct Persisted: Equatable, Sendable {
    /// The topic's id when the state was made (a topic created anew under the same name
    /// does not inherit it).
    var topicId: KafkaUUID
    var startOffset: Int64
    var endOffset: Int64
    var runs: [SharePartitionState.Run]
  }

  package enum Change: Equatable, Sendable {
    case partition(Key, Persisted)
    case deletePartition(Key)
    case configs(group: String, [String: String])
    case deleteGroup(String)
  }

  struct Table: Sendable {
    var partitions: [Key: Persisted] = [:]
    var configs: [String: [String: String]] = [:]
  }

  struct State {
    var table = Table()
    var queue: [Change] = []
    var waiters: [Waiter] = []
    var writing = false
    var snapshotBytes = 0
    /// Records were written without a sync since the last one.
    var unsynced = false
  }

  let journal: Journal
  let state: Mutex<State>
  let threadPool: NIOThreadPool
  let compactionBytes: Int

  init(directory: String, threadPool: NIOThreadPool, compactionBytes: Int = 4 << 20) throws(StorageError) {
    journal = try Journal(directory: directory, name: "state")
    self.threadPool = threadPool
    self.compactionBytes = compactionBytes
    var table = Table()
    for var record in try journal.recover() {
      guard let change = Self.decode(&record) else {
        throw StorageError(.corruptMetadata, "\(journal.logPath): unreadable share-group record")
      }
      Self.apply(change, to: &table)
    }
    state = Mutex(State(table: table))
  }

  /// What was durable at open (the coordinator rebuilds its state from it).
  var recovered: Table { state.withLock { $0.table } }

  struct Waiter {
    var continuation: CheckedContinuation<StorageError?, Never>
    var sync: Bool
  }

  /// Queues `changes` and waits until they (and everything queued before) are written, and
  /// with `sync` (the default) fdatasynced. Without it they survive the process, not the
  /// machine, until a later sync (``syncIfNeeded()``, every housekeeping round).
  func write(_ changes: [Change], sync: Bool = true) async -> StorageError? {
    await withCheckedContinuation { continuation in
      enqueue(changes, waiter: Waiter(continuation: continuation, sync: sync))
    }
  }

  /// Syncs what was written without a sync, if anything was.
  func syncIfNeeded() async {
    guard state.withLock({ $0.unsynced }) else { return }
    _ = await write([])
  }

  /// Queues `changes` without waiting (delivery counts of acquisitions: losing the last
  /// few in a crash delivers a record once more than counted).
  func writeSoon(_ changes: [Change]) {
    guard !changes.isEmpty else { return }
    enqueue(changes, waiter: nil)
  }

  private func enqueue(_ changes: [Change], waiter: Waiter?) {
    let start = state.withLock { state -> Bool in
      state.queue += changes
      if let waiter { state.waiters.append(waiter) }
      if state.writing { return false }
      state.writing = true
      return true
    }
    if start { threadPool.submit { _ in self.drain() } }
  }

  /// Waits until nothing is queued or being written (tests, shutdown).
  func waitUntilIdle() async {
    while state.withLock({ $0.writing }) { try? await Task.sleep(for: .milliseconds(1)) }
  }

  private func drain() {
    while true {
      let taken = state.withLock { state -> ([Change], [Waiter])? in
        if state.queue.isEmpty && state.waiters.isEmpty {
          state.writing = false
          return nil
        }
        defer {
          state.queue.removeAll()
          state.waiters.removeAll()
        }
        return (state.queue, state.waiters)
      }
      guard let (changes, waiters) = taken else { return }
      var failure: StorageError?
      // Only a waiter that asks for it needs the sync; the rest (acquisitions, and
      // acknowledgements on topics that are not fsynced either) is written to the page
      // cache, which a process crash keeps, and synced with the next write that syncs.
      let sync = waiters.contains { $0.sync }
      if !changes.isEmpty || (sync && state.withLock({ $0.unsynced })) {
        do {
          try journal.append(changes.map(Self.encode), sync: sync)
          state.withLock { state in
            for change in changes { Self.apply(change, to: &state.table) }
            state.unsynced = !sync
          }
        } catch {
          failure = error
        }
      }
      if let failure {
        // The changes go back to the front of the queue (a waiter that queued its changes
        // earlier and waits now, as the acknowledgement path does, must not be told they
        // are written until they are), and everyone waiting now hears of the failure; the
        // next enqueue tries again.
        let later = state.withLock { state -> [Waiter] in
          state.queue = changes + state.queue
          state.writing = false
          defer { state.waiters.removeAll() }
          return state.waiters
        }
        for waiter in waiters + later { waiter.continuation.resume(returning: failure) }
        return
      }
      for waiter in waiters { waiter.continuation.resume(returning: nil) }
      compactIfDue()
    }
  }

  private func compactIfDue() {
    let (due, table) = state.withLock { state -> (Bool, Table) in
      let due = journal.logSize > max(compactionBytes, state.snapshotBytes)
      return (due, due ? state.table : Table())
    }
    guard due else { return }
    var records: [ByteBuffer] = []
    for (key, persisted) in table.partitions { records.append(Self.encode(.partition(key, persisted))) }
    for (group, configs) in table.configs { records.append(Self.encode(.configs(group: group, configs))) }
    let bytes = records.reduce(0) { $0 + $1.readableBytes + 8 }
    if (try? journal.replace(with: records)) != nil {
      state.withLock { $0.snapshotBytes = bytes }
    }
  }

  func close() { journal.close() }

  // MARK: Records

  static func apply(_ change: Change, to table: inout Table) {
    switch change {
    case .partition(let key, let persisted): table.partitions[key] = persisted
    case .deletePartition(let key): table.partitions[key] = nil
    case .configs(let group, let configs): table.configs[group] = configs.isEmpty ? nil : configs
    case .deleteGroup(let group):
      table.configs[group] = nil
      table.partitions = table.partitions.filter { $0.key.group != group }
    }
  }

  enum RecordType: UInt8 {
    case partition = 1
    case deletePartition = 2
    case configs = 3
    case deleteGroup = 4
  }

  package static func encode(_ change: Change) -> ByteBuffer {
    var buffer = ByteBuffer()
    func string(_ text: String) {
      let utf8 = Array(text.utf8)
      buffer.writeInteger(UInt32(utf8.count))
      buffer.writeBytes(utf8)
    }
    func key(_ key: Key) {
      string(key.group)
      string(key.topic)
      buffer.writeInteger(key.partition)
    }
    switch change {
    case .partition(let k, let persisted):
      buffer.writeInteger(RecordType.partition.rawValue)
      key(k)
      buffer.writeInteger(persisted.topicId.high)
      buffer.writeInteger(persisted.topicId.low)
      buffer.writeInteger(persisted.startOffset)
      buffer.writeInteger(persisted.endOffset)
      buffer.writeInteger(UInt32(persisted.runs.count))
      for run in persisted.runs {
        buffer.writeInteger(run.first)
        buffer.writeInteger(run.last)
        buffer.writeInteger(run.state.rawValue)
        buffer.writeInteger(run.deliveryCount)
      }
    case .deletePartition(let k):
      buffer.writeInteger(RecordType.deletePartition.rawValue)
      key(k)
    case .configs(let group, let configs):
      buffer.writeInteger(RecordType.configs.rawValue)
      string(group)
      buffer.writeInteger(UInt32(configs.count))
      for (name, value) in configs.sorted(by: { $0.key < $1.key }) {
        string(name)
        string(value)
      }
    case .deleteGroup(let group):
      buffer.writeInteger(RecordType.deleteGroup.rawValue)
      string(group)
    }
    return buffer
  }

  package static func decode(_ buffer: inout ByteBuffer) -> Change? {
    func string() -> String? {
      guard let length = buffer.readInteger(as: UInt32.self), Int(length) <= buffer.readableBytes else {
        return nil
      }
      return buffer.readString(length: Int(length))
    }
    func key() -> Key? {
      guard let group = string(), let topic = string(), let partition = buffer.readInteger(as: Int32.self)
      else {
        return nil
      }
      return Key(group: group, topic: topic, partition: partition)
    }
    guard let raw = buffer.readInteger(as: UInt8.self), let type = RecordType(rawValue: raw) else {
      return nil
    }
    switch type {
    case .partition:
      guard let k = key(), let high = buffer.readInteger(as: UInt64.self),
        let low = buffer.readInteger(as: UInt64.self),
        let start = buffer.readInteger(as: Int64.self),
        let end = buffer.readInteger(as: Int64.self), let count = buffer.readInteger(as: UInt32.self),
        Int(count) <= buffer.readableBytes / 19
      else { return nil }
      var runs: [SharePartitionState.Run] = []
      runs.reserveCapacity(Int(count))
      for _ in 0..<count {
        guard let first = buffer.readInteger(as: Int64.self), let last = buffer.readInteger(as: Int64.self),
          let rawState = buffer.readInteger(as: UInt8.self), let state = ShareRecordState(rawValue: rawState),
          let deliveries = buffer.readInteger(as: Int16.self)
        else { return nil }
        runs.append(.init(first: first, last: last, state: state, deliveryCount: deliveries))
      }
      return .partition(
        k, Persisted(topicId: KafkaUUID(high: high, low: low), startOffset: start, endOffset: end, runs: runs)
      )
    case .deletePartition:
      return key().map { .deletePartition($0) }
    case .configs:
      guard let group = string(), let count = buffer.readInteger(as: UInt32.self),
        Int(count) <= buffer.readableBytes / 8
      else { return nil }
      var configs: [String: String] = [:]
      for _ in 0..<count {
        guard let name = string(), let value = string() else { return nil }
        configs[name] = value
      }
      return .configs(group: group, configs)
    case .deleteGroup:
      return string().map { .deleteGroup($0) }
    }
  }
}
