import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Bounds the descriptors that logs keep open, whatever the number of partitions: a
/// process-wide LRU of open ``SegmentFile`` descriptors with a cap, as Kafka's and
/// RocksDB's file caches do. A file is opened on first use and closed again when the cache
/// is full and it is the least recently used one that no call is using right now.
///
/// Every I/O call on a ``SegmentFile`` pins its descriptor (under the cache's lock, which
/// also moves it to the front) and unpins it afterwards (an atomic decrement); eviction
/// closes only unpinned descriptors, so no call ever sees its descriptor closed or reused
/// under it. When every open descriptor is pinned the cache goes over its cap rather than
/// fail.
///
/// Durability: files written since their last fsync are evicted last. Linux (4.16+) reports
/// a writeback error no descriptor has seen to the next `fsync` through any descriptor
/// opened later — as long as the kernel keeps the inode, which it may reclaim under memory
/// pressure once no descriptor is open. So when more files are written within one flush
/// interval than the cap holds, such an error can go unreported (docs/storage.md).
public final class OpenFileCache: Sendable {
  struct Slot {
    /// Unretained: a file removes itself (``forget(_:)``, from its deinit, under the lock)
    /// before its memory goes, and the cache must never retain one, or a last release under
    /// the lock would run that deinit there.
    var file: Unmanaged<SegmentFile>?
    var descriptor: CInt = -1
    var previous = -1
    var next = -1
  }

  struct State {
    var slots: [Slot] = []
    var free: [Int] = []
    /// Most and least recently used slots.
    var head = -1
    var tail = -1
    var openCount = 0
    var capacity: Int
    var opens = 0
    var evictions = 0
  }

  let state: Mutex<State>

  public init(capacity: Int) {
    state = Mutex(State(capacity: max(1, capacity)))
  }

  /// The cache every log uses.
  public static let shared = OpenFileCache(capacity: defaultCapacity())

  /// A quarter of the process's descriptor limit (RLIMIT_NOFILE, soft), at least 64: the
  /// rest is left to connections, zero-copy reads and everything else.
  public static func defaultCapacity() -> Int {
    guard let soft = softDescriptorLimit() else { return 1024 }
    return max(64, (soft == rlim_t.max ? 1 << 20 : Int(clamping: soft)) / 4)
  }

  /// The process's descriptor limit (RLIMIT_NOFILE, soft; `rlim_t.max` when unlimited).
  static func softDescriptorLimit() -> rlim_t? {
    var limit = rlimit()
    return getrlimit(CInt(RLIMIT_NOFILE.rawValue), &limit) == 0 ? limit.rlim_cur : nil
  }

  /// ``softDescriptorLimit()`` for error messages.
  static func descriptorLimit() -> String {
    guard let soft = softDescriptorLimit() else { return "unknown" }
    return soft == rlim_t.max ? "unlimited" : String(soft)
  }

  public var capacity: Int {
    get { state.withLock { $0.capacity } }
    set {
      let evicted = state.withLock { state -> [CInt] in
        state.capacity = max(1, newValue)
        var evicted: [CInt] = []
        while state.openCount > state.capacity, let descriptor = Self.evictOne(&state) {
          evicted.append(descriptor)
        }
        return evicted
      }
      for descriptor in evicted { close(descriptor) }
    }
  }

  /// Descriptors open now (pinned or not), and how many opens and evictions there were.
  public var statistics: (open: Int, opens: Int, evictions: Int) {
    state.withLock { ($0.openCount, $0.opens, $0.evictions) }
  }

  /// The descriptor of `file`, opened if needed, pinned until the caller decrements
  /// ``SegmentFile/pins``. Descriptors evicted to make room are closed after the lock is
  /// released (closing the last descriptor of a deleted file frees its blocks, which can
  /// take long); opening happens under it.
  func pin(_ file: SegmentFile, extraFlags: CInt = 0) throws(StorageError) -> CInt {
    var toClose: [CInt] = []
    defer { for descriptor in toClose { close(descriptor) } }
    return try state.withLock { (state: inout State) throws(StorageError) -> CInt in
      let index = file.slot.load(ordering: .relaxed)
      if index >= 0 {
        Self.moveToFront(index, &state)
        file.pins.add(1, ordering: .relaxed)
        return state.slots[index].descriptor
      }
      while state.openCount >= state.capacity, let evicted = Self.evictOne(&state) { toClose.append(evicted) }
      var descriptor = try file.openDescriptor(extraFlags: extraFlags)
      if descriptor < 0 && (errno == EMFILE || errno == ENFILE) {
        // Other parts of the process hold the rest: give back half of what this cache holds
        // (closed now, so that the retry can use them).
        let target = state.openCount / 2
        while state.openCount > target, let evicted = Self.evictOne(&state) { close(evicted) }
        for evicted in toClose { close(evicted) }
        toClose.removeAll()
        descriptor = try file.openDescriptor(extraFlags: extraFlags)
      }
      guard descriptor >= 0 else {
        let err = errno
        let limit =
          err == EMFILE
          ? "the process's limit, RLIMIT_NOFILE, is \(Self.descriptorLimit())"
          : "the system-wide table is full (fs.file-max)"
        if err == EMFILE || err == ENFILE {
          throw StorageError(
            .openFailed,
            "open \(file.path): too many open files (\(limit); log files hold at most \(state.capacity) of "
              + "them, sluice.log.max.open.files)", errno: err)
        }
        throw StorageError(
          .openFailed, StorageError.system("open", path: file.path, errno: err).message, errno: err)
      }
      let slot: Int
      if let reused = state.free.popLast() {
        slot = reused
        state.slots[slot] = Slot(file: .passUnretained(file), descriptor: descriptor)
      } else {
        slot = state.slots.count
        state.slots.append(Slot(file: .passUnretained(file), descriptor: descriptor))
      }
      Self.insertFront(slot, &state)
      state.openCount += 1
      state.opens += 1
      file.slot.store(slot, ordering: .relaxed)
      file.pins.add(1, ordering: .relaxed)
      return descriptor
    }
  }

  /// Takes `file`'s descriptor out of the cache: it stays open, uncounted, until the file
  /// object goes (a deleted segment that a read may still hold). Returns it.
  func detach(_ file: SegmentFile) throws(StorageError) -> CInt {
    let descriptor = try pin(file)
    state.withLock { state in _ = Self.removeSlot(file.slot.load(ordering: .relaxed), &state) }
    file.pins.subtract(1, ordering: .relaxed)
    return descriptor
  }

  /// Called by a file going away: closes its descriptor if the cache holds one.
  func forget(_ file: SegmentFile) {
    let descriptor = state.withLock { state -> CInt in
      let index = file.slot.load(ordering: .relaxed)
      return index >= 0 ? Self.removeSlot(index, &state) : -1
    }
    if descriptor >= 0 { close(descriptor) }
  }

  /// Takes the least recently used unpinned descriptor out of the cache and returns it for
  /// the caller to close; nil if every one is pinned. Files with writes not yet fsynced are
  /// taken only when there is no other: Linux keeps a writeback error in the inode, which it
  /// may reclaim once no descriptor is open (the next fsync through a new descriptor would
  /// then not see the error).
  static func evictOne(_ state: inout State) -> CInt? {
    for takeUnsynced in [false, true] {
      var index = state.tail
      while index >= 0 {
        let slot = state.slots[index]
        // Never retained (see `Slot.file`); a file in its deinit waits for the lock in
        // `forget`, so its memory is still there.
        if let file = slot.file,
          file._withUnsafeGuaranteedRef({
            $0.pins.load(ordering: .acquiring) == 0 && (takeUnsynced || !$0.unsynced.load(ordering: .relaxed))
          })
        {
          state.evictions += 1
          return removeSlot(index, &state)
        }
        index = slot.previous
      }
    }
    return nil
  }

  /// Takes a slot out of the list and frees it, telling its file it has no descriptor any
  /// more; returns the descriptor, which the caller closes (or keeps: `detach`).
  static func removeSlot(_ index: Int, _ state: inout State) -> CInt {
    let slot = state.slots[index]
    unlink(index, &state)
    state.slots[index] = Slot()
    state.free.append(index)
    state.openCount -= 1
    // Never retained (see `Slot.file`).
    slot.file?._withUnsafeGuaranteedRef { $0.slot.store(-1, ordering: .relaxed) }
    return slot.descriptor
  }

  static func unlink(_ index: Int, _ state: inout State) {
    let previous = state.slots[index].previous
    let next = state.slots[index].next
    if previous >= 0 { state.slots[previous].next = next } else { state.head = next }
    if next >= 0 { state.slots[next].previous = previous } else { state.tail = previous }
    state.slots[index].previous = -1
    state.slots[index].next = -1
  }

  static func insertFront(_ index: Int, _ state: inout State) {
    state.slots[index].previous = -1
    state.slots[index].next = state.head
    if state.head >= 0 { state.slots[state.head].previous = index }
    state.head = index
    if state.tail < 0 { state.tail = index }
  }

  static func moveToFront(_ index: Int, _ state: inout State) {
    guard state.head != index else { return }
    unlink(index, &state)
    insertFront(index, &state)
  }
}
