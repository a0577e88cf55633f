import KafkaProtocol
import NIOCore
package import NIOPosix
package import SluiceStorage
import Synchronization

/// Committed offsets of every group: a table in memory for reads, made durable through a
/// ``Journal`` (`<data-dir>/group-offsets/offsets.log|.snapshot`) before a change is
/// acknowledged or becomes visible.
///
/// Group commit: changes queue up while a write is in progress; one thread-pool job
/// writes everything queued with one write and one fdatasync, applies it to the table
/// and answers all its callers, then looks at the queue again. When the log outgrows both
/// `compactionBytes` and the last snapshot, the table is written as a new snapshot and the
/// log emptied. Records are idempotent under replay (last writer per partition wins).
package final class OffsetStore: Sendable {
  package struct Key: Hashable, Sendable, Comparable {
    package var topic: String
    package var partition: Int32
    package init(topic: String, partition: Int32) {
      self.topic = topic
      self.partition = partition
    }
    package static func < (a: Key, b: Key) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
  }

  package struct Committed: Hashable, Sendable {
    package var offset: Int64
    package var leaderEpoch: Int32
    package var metadata: String?
    /// When it was committed (broker clock, ms): offsets of an Empty group expire counting
    /// from the later of this and the moment the group became Empty.
    package var commitTimestamp: Int64
    package init(offset: Int64, leaderEpoch: Int32 = -1, metadata: String? = "", commitTimestamp: Int64) {
      self.offset = offset
      self.leaderEpoch = leaderEpoch
      self.metadata = metadata
      self.commitTimestamp = commitTimestamp
    }
  }

  package enum Change: Hashable, Sendable {
    case commit(group: String, Key, Committed)
    case delete(group: String, Key)
    case deleteGroup(String)
  }

  struct Queued {
    var changes: [Change]
    var done: CheckedContinuation<StorageError?, Never>
  }

  struct State {
    var table: [String: [Key: Committed]] = [:]
    var queue: [Queued] = []
    var writing = false
    var snapshotBytes = 0
  }

  let journal: Journal
  let state: Mutex<State>
  let threadPool: NIOThreadPool
  let compactionBytes: Int

  /// Opens the journal in `directory` and rebuilds the table from it.
  package init(directory: String, threadPool: NIOThreadPool, compactionBytes: Int = 4 << 20)
    throws(StorageError)
  {
    journal = try Journal(directory: directory, name: "offsets")
    self.threadPool = threadPool
    self.compactionBytes = compactionBytes
    var table: [String: [Key: Committed]] = [:]
    for var record in try journal.recover() {
      guard let change = Self.decode(&record) else {
        throw StorageError(.corruptMetadata, "\(journal.logPath): unreadable offset record")
      }
      Self.apply(change, to: &table)
    }
    state = Mutex(State(table: table))
  }

  // MARK: Reads

  package func offsets(_ group: String) -> [Key: Committed] {
    state.withLock { $0.table[group] ?? [:] }
  }

  package func committed(_ group: String, _ key: Key) -> Committed? {
    state.withLock { $0.table[group]?[key] }
  }

  package var groupIds: Set<String> { state.withLock { Set($0.table.keys) } }

  package var groupCount: Int { state.withLock { $0.table.count } }

  package func hasOffsets(_ group: String) -> Bool { state.withLock { $0.table[group] != nil } }

  /// Every group's committed offset for one partition.
  package func commits(for key: Key) -> [(group: String, committed: Committed)] {
    state.withLock { state in
      state.table.compactMap { group, offsets in offsets[key].map { (group, $0) } }
    }
  }

  /// Waits until the writer has finished everything queued, including the compaction that
  /// may follow a write (tests simulating a crash with nothing in flight).
  package func waitUntilIdle() async {
    while state.withLock({ $0.writing }) { try? await Task.sleep(for: .milliseconds(1)) }
  }

  // MARK: Writes

  /// Makes `changes` durable, then visible. Returns nil on success.
  package func apply(_ changes: [Change]) async -> StorageError? {
    guard !changes.isEmpty else { return nil }
    return await withCheckedContinuation { continuation in
      let startWriter = state.withLock { state -> Bool in
        state.queue.append(Queued(changes: changes, done: continuation))
        if state.writing { return false }
        state.writing = true
        return true
      }
      if startWriter {
        // If the pool is already stopped the job runs right here: still correct, only blocking.
        threadPool.submit { _ in self.drain() }
      }
    }
  }

  /// The writer: empties the queue in batches, one write + fdatasync per batch.
  private func drain() {
    while true {
      let batch = state.withLock { state -> [Queued]? in
        if state.queue.isEmpty {
          state.writing = false
          return nil
        }
        defer { state.queue.removeAll() }
        return state.queue
      }
      guard let batch else { return }
      var records: [ByteBuffer] = []
      for queued in batch { records += queued.changes.map(Self.encode) }
      var failure: StorageError?
      do {
        try journal.append(records)
        state.withLock { state in
          for queued in batch {
            for change in queued.changes { Self.apply(change, to: &state.table) }
          }
        }
      } catch {
        failure = error
      }
      for queued in batch { queued.done.resume(returning: failure) }
      if failure == nil { compactIfDue() }
    }
  }

  private func compactIfDue() {
    let (due, table) = state.withLock { state -> (Bool, [String: [Key: Committed]]) in
      let due = journal.logSize > max(compactionBytes, state.snapshotBytes)
      return (due, due ? state.table : [:])
    }
    guard due else { return }
    var records: [ByteBuffer] = []
    var bytes = 0
    for (group, offsets) in table {
      for (key, committed) in offsets {
        let record = Self.encode(.commit(group: group, key, committed))
        bytes += record.readableBytes + 8
        records.append(record)
      }
    }
    // On failure the log simply keeps growing; the next batch tries again.
    if (try? journal.replace(with: records)) != nil {
      state.withLock { $0.snapshotBytes = bytes }
    }
  }

  /// Offsets that have outlived `retentionMs`: those of groups `emptySince` reports as
  /// Empty (with the time they became so; nil = the group is active), counted from the
  /// later of that time and the commit.
  package func expired(now: Int64, retentionMs: Int64, emptySince: (String) -> Int64?) -> [Change] {
    let table = state.withLock { $0.table }
    var changes: [Change] = []
    for (group, offsets) in table {
      guard let since = emptySince(group) else { continue }
      for (key, committed) in offsets where now - max(since, committed.commitTimestamp) >= retentionMs {
        changes.append(.delete(group: group, key))
      }
    }
    return changes
  }

  /// Closes the journal; call once the thread pool has finished the queued writes.
  package func close() {
    journal.close()
  }

  // MARK: Records

  static func apply(_ change: Change, to table: inout [String: [Key: Committed]]) {
    switch change {
    case .commit(let group, let key, let committed):
      table[group, default: [:]][key] = committed
    case .delete(let group, let key):
      table[group]?[key] = nil
      if table[group]?.isEmpty == true { table[group] = nil }
    case .deleteGroup(let group):
      table[group] = nil
    }
  }

  enum RecordType: UInt8 {
    case commit = 1
    case delete = 2
    case deleteGroup = 3
  }

  static func encode(_ change: Change) -> ByteBuffer {
    var buffer = ByteBuffer()
    func string(_ text: String) {
      let utf8 = Array(text.utf8)
      buffer.writeInteger(UInt32(utf8.count))
      buffer.writeBytes(utf8)
    }
    switch change {
    case .commit(let group, let key, let committed):
      buffer.writeInteger(RecordType.commit.rawValue)
      string(group)
      string(key.topic)
      buffer.writeInteger(key.partition)
      buffer.writeInteger(committed.offset)
      buffer.writeInteger(committed.leaderEpoch)
      buffer.writeInteger(committed.commitTimestamp)
      if let metadata = committed.metadata {
        buffer.writeInteger(UInt8(1))
        string(metadata)
      } else {
        buffer.writeInteger(UInt8(0))
      }
    case .delete(let group, let key):
      buffer.writeInteger(RecordType.delete.rawValue)
      string(group)
      string(key.topic)
      buffer.writeInteger(key.partition)
    case .deleteGroup(let group):
      buffer.writeInteger(RecordType.deleteGroup.rawValue)
      string(group)
    }
    return buffer
  }

  static func decode(_ buffer: inout ByteBuffer) -> Change? {
    func string() -> String? {
      guard let length = buffer.readInteger(as: UInt32.self), Int(length) <= buffer.readableBytes else {
        return nil
      }
      return buffer.readString(length: Int(length))
    }
    guard let raw = buffer.readInteger(as: UInt8.self), let type = RecordType(rawValue: raw),
      let group = string()
    else { return nil }
    switch type {
    case .commit:
      guard let topic = string(), let partition = buffer.readInteger(as: Int32.self),
        let offset = buffer.readInteger(as: Int64.self), let epoch = buffer.readInteger(as: Int32.self),
        let timestamp = buffer.readInteger(as: Int64.self),
        let hasMetadata = buffer.readInteger(as: UInt8.self)
      else { return nil }
      var metadata: String?
      if hasMetadata == 1 {
        guard let text = string() else { return nil }
        metadata = text
      }
      return .commit(
        group: group, Key(topic: topic, partition: partition),
        Committed(offset: offset, leaderEpoch: epoch, metadata: metadata, commitTimestamp: timestamp))
    case .delete:
      guard let topic = string(), let partition = buffer.readInteger(as: Int32.self) else { return nil }
      return .delete(group: group, Key(topic: topic, partition: partition))
    case .deleteGroup:
      return .deleteGroup(group)
    }
  }
}
