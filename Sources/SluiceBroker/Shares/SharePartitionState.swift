/// How a share consumer settles a record it was handed (KIP-932's acknowledge types, as
/// ShareFetch and ShareAcknowledge carry them).
public enum ShareAcknowledgeType: Int8, Sendable, CaseIterable {
  /// The offset holds no record (a gap in a compacted log): archived, never delivered.
  case gap = 0
  /// Processed: the record is done.
  case accept = 1
  /// Not processed: deliver it again (to any member), unless its delivery count is used up.
  case release = 2
  /// Unprocessable: never deliver it again (dead-lettered when a DLQ is configured).
  case reject = 3
}

/// One record's place in a share partition's delivery state machine (KIP-932). The raw
/// values are the ones Kafka persists.
public enum ShareRecordState: UInt8, Sendable {
  /// May be handed to a member (never delivered, released, or its lock expired).
  case available = 0
  /// Handed to one member, locked to it until its acquisition lock expires.
  case acquired = 1
  /// Accepted by the member that held it.
  case acknowledged = 2
  /// Rejected, or released / timed out once its delivery count reached the limit.
  case archived = 4
}

/// Why a record left the share partition without being accepted.
public enum ShareDeadLetterReason: String, Sendable {
  /// A member acknowledged it with REJECT.
  case rejected = "REJECTED"
  /// Its delivery count reached `group.share.delivery.count.limit` and it was released again
  /// or its acquisition lock expired.
  case deliveryCountExceeded = "DELIVERY_COUNT_EXCEEDED"
}

/// The delivery state of one partition in one share group: which records between the
/// share-partition start offset (SPSO) and end offset (SPEO) are available, acquired (by
/// whom, until when, how often delivered), acknowledged or archived. A value type, with
/// time passed in: ``SharePartitionStore`` holds it under a lock and persists it.
///
/// Every offset in `startOffset ..< endOffset` has an entry; below `startOffset`
/// everything is settled, from `endOffset` on nothing was delivered yet. The start advances
/// over settled records, so the entries are the in-flight window, at most
/// ``Limits/maxInFlight`` long.
public struct SharePartitionState: Sendable, Equatable {
  public struct Limits: Sendable, Equatable {
    /// `group.share.record.lock.duration.ms`: how long an acquired record stays locked to
    /// its member before it becomes available again.
    public var lockDurationMs: Int64
    /// `group.share.delivery.count.limit`: deliveries of one record at most.
    public var deliveryCountLimit: Int16
    /// `group.share.partition.max.record.locks`: the in-flight window (records between the
    /// start and end offsets) at most; acquisition stops there until the start moves.
    public var maxInFlight: Int

    public init(lockDurationMs: Int64 = 30_000, deliveryCountLimit: Int16 = 5, maxInFlight: Int = 2000) {
      self.lockDurationMs = lockDurationMs
      self.deliveryCountLimit = deliveryCountLimit
      self.maxInFlight = maxInFlight
    }
  }

  public struct Entry: Sendable, Equatable {
    public var state: ShareRecordState
    public var deliveryCount: Int16
    /// The member holding the lock, as an index into ``SharePartitionState/members`` (-1
    /// when not acquired): entries hold no reference, so the window moves as plain memory.
    public var owner: Int32
    /// When the lock expires (monotonic ms; meaningful while acquired).
    public var lockDeadline: Int64

    public init(state: ShareRecordState, deliveryCount: Int16, owner: Int32 = -1, lockDeadline: Int64 = 0) {
      self.state = state
      self.deliveryCount = deliveryCount
      self.owner = owner
      self.lockDeadline = lockDeadline
    }
  }

  /// A range of offsets handed to a member with one delivery count (ShareFetch's
  /// AcquiredRecords).
  public struct Acquired: Sendable, Equatable {
    public var first: Int64
    public var last: Int64
    public var deliveryCount: Int16

    public init(first: Int64, last: Int64, deliveryCount: Int16) {
      self.first = first
      self.last = last
      self.deliveryCount = deliveryCount
    }
  }

  /// A record that left without being accepted, for the dead-letter topic.
  public struct DeadLetter: Sendable, Equatable {
    public var offset: Int64
    public var deliveryCount: Int16
    public var reason: ShareDeadLetterReason

    public init(offset: Int64, deliveryCount: Int16, reason: ShareDeadLetterReason) {
      self.offset = offset
      self.deliveryCount = deliveryCount
      self.reason = reason
    }
  }

  /// Why an acknowledgement was refused; nothing of it was applied.
  public enum AcknowledgeError: Error, Sendable, Equatable {
    /// Some offset is not acquired by this member (never was, lock expired, already settled):
    /// INVALID_RECORD_STATE.
    case invalidRecordState(Int64)
    /// Malformed: last < first, or a type list whose length is neither 1 nor the range's.
    case invalidRequest(String)
  }

  /// A persisted run of equal entries (acquired records persist as available: after a
  /// restart they are delivered again).
  public struct Run: Sendable, Equatable {
    public var first: Int64
    public var last: Int64
    public var state: ShareRecordState
    public var deliveryCount: Int16

    public init(first: Int64, last: Int64, state: ShareRecordState, deliveryCount: Int16) {
      self.first = first
      self.last = last
      self.state = state
      self.deliveryCount = deliveryCount
    }
  }

  public private(set) var startOffset: Int64
  public private(set) var entries: [Entry] = []
  /// Members that have held records here (``Entry/owner`` indexes it). Bounded by the
  /// group's size: a member's slot is reused once it holds nothing.
  public private(set) var members: [String] = []
  public var limits: Limits

  public var endOffset: Int64 { startOffset + Int64(entries.count) }

  public init(startOffset: Int64, limits: Limits = Limits()) {
    self.startOffset = startOffset
    self.limits = limits
  }

  /// Rebuilds a partition from its persisted form. Runs must lie in order inside
  /// `startOffset ..< endOffset`; offsets no run covers are available, never delivered.
  public init(startOffset: Int64, endOffset: Int64, runs: [Run], limits: Limits = Limits()) {
    self.startOffset = startOffset
    self.limits = limits
    let count = Int(max(0, endOffset - startOffset))
    entries = Array(repeating: Entry(state: .available, deliveryCount: 0), count: count)
    for run in runs where run.first <= run.last {
      let first = max(run.first, startOffset)
      let last = min(run.last, endOffset - 1)
      guard first <= last else { continue }
      let state: ShareRecordState = run.state == .acquired ? .available : run.state
      for offset in first...last {
        entries[Int(offset - startOffset)] = Entry(state: state, deliveryCount: run.deliveryCount)
      }
    }
    advanceStart()
  }

  public func entry(at offset: Int64) -> Entry? {
    guard offset >= startOffset, offset < endOffset else { return nil }
    return entries[Int(offset - startOffset)]
  }

  /// Records currently locked to a member.
  public var acquiredCount: Int { entries.reduce(0) { $0 + ($1.state == .acquired ? 1 : 0) } }

  /// The lowest offset worth reading to hand out records: the first available entry, else
  /// the end offset (nil when the in-flight window is full and nothing in it is available).
  public var nextReadOffset: Int64? {
    if let index = entries.firstIndex(where: { $0.state == .available }) {
      return startOffset + Int64(index)
    }
    return entries.count < limits.maxInFlight ? endOffset : nil
  }

  /// The earliest lock deadline, for a timer.
  public var nextLockDeadline: Int64? {
    entries.lazy.filter { $0.state == .acquired }.map(\.lockDeadline).min()
  }

  /// Acquires for `member` the available records among `offsets` (the records a log read
  /// returned, below the high watermark), at most `maxRecords`, extending the window past
  /// the end offset as far as ``Limits/maxInFlight`` allows. Returns the acquired ranges in
  /// offset order, one per run of equal delivery counts.
  ///
  /// `batchEnds` (the last offsets of the record batches the read returned, ascending) lets
  /// acquisition go past `maxRecords` to the end of the batch it stopped in, as Kafka does
  /// ("exceeded for alignment of batch boundaries"): a batch is sent whole anyway, and a
  /// batch left half-acquired would be sent again for its other half. Unlike Kafka, by at
  /// most `maxRecords` more: one producer batch of thousands of records is shared out
  /// between members rather than handed to the first that asks.
  public mutating func acquire(
    member: String, offsets: ClosedRange<Int64>, maxRecords: Int, now: Int64, batchEnds: [Int64] = []
  ) -> [Acquired] {
    var acquired: [Acquired] = []
    var taken = 0
    let deadline = now + limits.lockDurationMs
    let owner = slot(for: member)
    var offset = max(offsets.lowerBound, startOffset)
    var alignedEnd: Int64?
    while offset <= offsets.upperBound {
      if taken >= maxRecords {
        if alignedEnd == nil {
          // At most maxRecords more: a huge batch is not handed to one member whole.
          let end = batchEnds.first { $0 >= offset - 1 } ?? offset - 1
          alignedEnd = end - (offset - 1) <= Int64(maxRecords) ? end : offset - 1
        }
        guard offset <= alignedEnd! else { break }
      }
      let index = Int(offset - startOffset)
      if index < entries.count {
        // A record whose deliveries are used up is not handed out again (it is archived by
        // ``archiveExhausted()``): after a restart, in-flight records come back available.
        guard entries[index].state == .available, entries[index].deliveryCount < limits.deliveryCountLimit
        else {
          offset += 1
          continue
        }
        entries[index].state = .acquired
        entries[index].deliveryCount += 1
      } else {
        guard offset == endOffset, entries.count < limits.maxInFlight else { break }
        entries.append(Entry(state: .acquired, deliveryCount: 1))
      }
      entries[index].owner = owner
      entries[index].lockDeadline = deadline
      let count = entries[index].deliveryCount
      if let last = acquired.last, last.last == offset - 1, last.deliveryCount == count {
        acquired[acquired.count - 1].last = offset
      } else {
        acquired.append(Acquired(first: offset, last: offset, deliveryCount: count))
      }
      taken += 1
      offset += 1
    }
    return acquired
  }

  /// Settles `first...last` for `member`: one type for the whole range, or one per offset.
  /// All or nothing: if any offset is not acquired by `member`, nothing changes. Returns
  /// the records that left unaccepted (rejected, or released past the delivery limit).
  public mutating func acknowledge(
    member: String, first: Int64, last: Int64, types: [ShareAcknowledgeType]
  ) -> Result<[DeadLetter], AcknowledgeError> {
    guard first <= last else { return .failure(.invalidRequest("LastOffset \(last) < FirstOffset \(first)")) }
    // Offsets come from the wire: the span may not fit in an Int64.
    let (span, overflow) = last.subtractingReportingOverflow(first)
    guard types.count == 1 || (!overflow && Int64(types.count) - 1 == span) else {
      return .failure(.invalidRequest("\(types.count) acknowledge types for offsets \(first)...\(last)"))
    }
    // Every offset must be locked to this member (gaps included: clients report them only
    // inside acquired ranges). The window bounds the loop: it stops at the first other.
    let owner = members.firstIndex(of: member).map(Int32.init) ?? -2
    for offset in first...last {
      guard let entry = entry(at: offset), entry.state == .acquired, entry.owner == owner else {
        return .failure(.invalidRecordState(offset))
      }
    }
    var dead: [DeadLetter] = []
    for offset in first...last {
      let type = types.count == 1 ? types[0] : types[Int(offset - first)]
      let index = Int(offset - startOffset)
      switch type {
      case .accept:
        settle(index, .acknowledged)
      case .gap:
        settle(index, .archived)
      case .reject:
        dead.append(
          DeadLetter(offset: offset, deliveryCount: entries[index].deliveryCount, reason: .rejected))
        settle(index, .archived)
      case .release:
        if let letter = release(index) { dead.append(letter) }
      }
    }
    advanceStart()
    return .success(dead)
  }

  /// Makes available again every record `member` holds (its session closed, it left the
  /// group or was fenced). Records at the delivery limit are archived instead.
  public mutating func releaseAll(member: String) -> [DeadLetter] {
    var dead: [DeadLetter] = []
    guard let slot = members.firstIndex(of: member).map(Int32.init) else { return [] }
    for index in entries.indices where entries[index].state == .acquired && entries[index].owner == slot {
      if let letter = release(index) { dead.append(letter) }
    }
    advanceStart()
    return dead
  }

  /// Ends the locks that have expired by `now`, as releases.
  public mutating func expireLocks(now: Int64) -> (expired: Int, dead: [DeadLetter]) {
    var dead: [DeadLetter] = []
    var expired = 0
    for index in entries.indices where entries[index].state == .acquired && entries[index].lockDeadline <= now
    {
      expired += 1
      if let letter = release(index) { dead.append(letter) }
    }
    if expired > 0 { advanceStart() }
    return (expired, dead)
  }

  /// Archives available records whose delivery count reached the limit (in flight at a
  /// restart on their last delivery, or the limit was lowered): they are dead letters.
  public mutating func archiveExhausted() -> [DeadLetter] {
    var dead: [DeadLetter] = []
    for index in entries.indices
    where entries[index].state == .available && entries[index].deliveryCount >= limits.deliveryCountLimit {
      dead.append(
        DeadLetter(
          offset: startOffset + Int64(index), deliveryCount: entries[index].deliveryCount,
          reason: .deliveryCountExceeded))
      settle(index, .archived)
    }
    if !dead.isEmpty { advanceStart() }
    return dead
  }

  /// Moves the start offset to `offset` (the log's start passed it, or an operator reset
  /// it): records before it are dropped unsettled; moving forward past the end starts an
  /// empty window there; moving backward starts an empty window (earlier deliveries are
  /// forgotten, as Kafka's AlterShareGroupOffsets on an empty group).
  public mutating func moveStart(to offset: Int64) {
    if offset >= startOffset && offset < endOffset {
      entries.removeFirst(Int(offset - startOffset))
    } else {
      entries.removeAll()
    }
    startOffset = offset
    advanceStart()
  }

  /// Drops the window from `offset` on (the log was cut back to end there): records handed
  /// out beyond are gone, and new records will reuse their offsets. Below the start, the
  /// window starts again at `offset`.
  public mutating func cutBack(to offset: Int64) {
    if offset <= startOffset {
      entries.removeAll()
      startOffset = offset
    } else if offset < endOffset {
      entries.removeLast(Int(endOffset - offset))
    }
  }

  /// The persisted form: runs of equal (state, delivery count), acquired written as
  /// available.
  public var runs: [Run] {
    var runs: [Run] = []
    for (index, entry) in entries.enumerated() {
      let offset = startOffset + Int64(index)
      let state: ShareRecordState = entry.state == .acquired ? .available : entry.state
      if let last = runs.last, last.last == offset - 1, last.state == state,
        last.deliveryCount == entry.deliveryCount
      {
        runs[runs.count - 1].last = offset
      } else {
        runs.append(Run(first: offset, last: offset, state: state, deliveryCount: entry.deliveryCount))
      }
    }
    return runs
  }

  // MARK: Internals

  /// The member's index in ``members``, taking a slot no entry refers to if it has none.
  private mutating func slot(for member: String) -> Int32 {
    if let index = members.firstIndex(of: member) { return Int32(index) }
    var used = Set<Int32>()
    for entry in entries where entry.state == .acquired { used.insert(entry.owner) }
    if let free = members.indices.first(where: { !used.contains(Int32($0)) }) {
      members[free] = member
      return Int32(free)
    }
    members.append(member)
    return Int32(members.count - 1)
  }

  /// The member holding `entry`'s lock, if any.
  public func owner(of entry: Entry) -> String? {
    entry.owner >= 0 && Int(entry.owner) < members.count ? members[Int(entry.owner)] : nil
  }

  private mutating func settle(_ index: Int, _ state: ShareRecordState) {
    entries[index].state = state
    entries[index].owner = -1
    entries[index].lockDeadline = 0
  }

  /// Back to available, or archived (a dead letter) when the delivery count is used up.
  private mutating func release(_ index: Int) -> DeadLetter? {
    if entries[index].deliveryCount >= limits.deliveryCountLimit {
      let letter = DeadLetter(
        offset: startOffset + Int64(index), deliveryCount: entries[index].deliveryCount,
        reason: .deliveryCountExceeded)
      settle(index, .archived)
      return letter
    }
    settle(index, .available)
    return nil
  }

  /// Drops the settled prefix: the start offset moves past acknowledged and archived records.
  private mutating func advanceStart() {
    var settled = 0
    while settled < entries.count
      && (entries[settled].state == .acknowledged || entries[settled].state == .archived)
    {
      settled += 1
    }
    guard settled > 0 else { return }
    entries.removeFirst(settled)
    startOffset += Int64(settled)
  }
}
