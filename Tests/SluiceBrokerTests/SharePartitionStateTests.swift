import SluiceBroker
import Testing

/// The KIP-932 record-state machine, without I/O: time is a number passed in.
@Suite struct SharePartitionStateTests {
  typealias Acquired = SharePartitionState.Acquired

  func state(start: Int64 = 0, lockMs: Int64 = 1000, limit: Int16 = 3, window: Int = 100)
    -> SharePartitionState
  {
    SharePartitionState(
      startOffset: start,
      limits: .init(lockDurationMs: lockMs, deliveryCountLimit: limit, maxInFlight: window))
  }

  @Test func acquireHandsEachRecordToOneMember() {
    var share = state()
    #expect(
      share.acquire(member: "a", offsets: 0...4, maxRecords: 10, now: 0) == [
        Acquired(first: 0, last: 4, deliveryCount: 1)
      ])
    // The same offsets are locked to a: b gets only what is new.
    #expect(
      share.acquire(member: "b", offsets: 0...9, maxRecords: 10, now: 0) == [
        Acquired(first: 5, last: 9, deliveryCount: 1)
      ])
    #expect(share.endOffset == 10)
    #expect(share.acquiredCount == 10)
    #expect(share.nextReadOffset == 10)
  }

  @Test func maxRecordsAndWindowBoundAcquisition() throws {
    var share = state(window: 4)
    #expect(
      share.acquire(member: "a", offsets: 0...9, maxRecords: 3, now: 0) == [
        Acquired(first: 0, last: 2, deliveryCount: 1)
      ])
    #expect(
      share.acquire(member: "a", offsets: 3...9, maxRecords: 10, now: 0) == [
        Acquired(first: 3, last: 3, deliveryCount: 1)
      ])
    // The window is full and nothing in it is available.
    #expect(share.nextReadOffset == nil)
    #expect(share.acquire(member: "b", offsets: 4...9, maxRecords: 10, now: 0).isEmpty)
    // Accepting the head frees the window.
    #expect(try share.acknowledge(member: "a", first: 0, last: 1, types: [.accept]).get() == [])
    #expect(share.startOffset == 2)
    #expect(
      share.acquire(member: "b", offsets: 4...9, maxRecords: 10, now: 0) == [
        Acquired(first: 4, last: 5, deliveryCount: 1)
      ])
  }

  @Test func acquisitionRunsOnToTheEndOfTheBatchItStoppedIn() {
    var share = state(window: 100)
    // Batches 0...9, 10...19, 20...39: maxRecords 12 stops inside the second, which is
    // taken whole (it travels whole anyway).
    let acquired = share.acquire(
      member: "a", offsets: 0...39, maxRecords: 12, now: 0, batchEnds: [9, 19, 39])
    #expect(acquired == [Acquired(first: 0, last: 19, deliveryCount: 1)])
    // But not by more than maxRecords: a batch of 1000 is shared out.
    var big = state(window: 2000)
    #expect(
      big.acquire(member: "a", offsets: 0...999, maxRecords: 10, now: 0, batchEnds: [999]) == [
        Acquired(first: 0, last: 9, deliveryCount: 1)
      ])
    // The window still bounds it.
    var small = state(window: 15)
    #expect(
      small.acquire(member: "a", offsets: 0...39, maxRecords: 12, now: 0, batchEnds: [9, 19, 39]) == [
        Acquired(first: 0, last: 14, deliveryCount: 1)
      ])
  }

  @Test func acceptAdvancesTheStartOnlyOverASettledPrefix() throws {
    var share = state()
    _ = share.acquire(member: "a", offsets: 0...2, maxRecords: 10, now: 0)
    _ = share.acquire(member: "b", offsets: 3...5, maxRecords: 10, now: 0)
    #expect(try share.acknowledge(member: "b", first: 3, last: 5, types: [.accept]).get() == [])
    #expect(share.startOffset == 0)  // 0...2 still acquired by a
    #expect(try share.acknowledge(member: "a", first: 0, last: 2, types: [.accept]).get() == [])
    #expect(share.startOffset == 6)
    #expect(share.entries.isEmpty)
  }

  @Test func releaseRedeliversWithAHigherDeliveryCount() throws {
    var share = state()
    _ = share.acquire(member: "a", offsets: 0...1, maxRecords: 10, now: 0)
    #expect(try share.acknowledge(member: "a", first: 0, last: 1, types: [.release, .accept]).get() == [])
    #expect(share.entry(at: 0)?.state == .available)
    #expect(share.nextReadOffset == 0)
    #expect(
      share.acquire(member: "b", offsets: 0...1, maxRecords: 10, now: 0) == [
        Acquired(first: 0, last: 0, deliveryCount: 2)
      ])
  }

  @Test func rejectArchivesAndDeadLetters() throws {
    var share = state()
    _ = share.acquire(member: "a", offsets: 0...0, maxRecords: 10, now: 0)
    let dead = try share.acknowledge(member: "a", first: 0, last: 0, types: [.reject]).get()
    #expect(dead == [.init(offset: 0, deliveryCount: 1, reason: .rejected)])
    #expect(share.startOffset == 1)
    #expect(share.acquire(member: "a", offsets: 0...0, maxRecords: 10, now: 0).isEmpty)
  }

  @Test func deliveryCountLimitArchivesOnTheLastRelease() throws {
    var share = state(limit: 2)
    _ = share.acquire(member: "a", offsets: 0...0, maxRecords: 10, now: 0)
    #expect(try share.acknowledge(member: "a", first: 0, last: 0, types: [.release]).get() == [])
    #expect(
      share.acquire(member: "a", offsets: 0...0, maxRecords: 10, now: 0) == [
        Acquired(first: 0, last: 0, deliveryCount: 2)
      ])
    let dead = try share.acknowledge(member: "a", first: 0, last: 0, types: [.release]).get()
    #expect(dead == [.init(offset: 0, deliveryCount: 2, reason: .deliveryCountExceeded)])
    #expect(share.entries.isEmpty && share.startOffset == 1)
  }

  @Test func locksExpireOnTheInjectedClock() {
    var share = state(lockMs: 1000, limit: 2)
    _ = share.acquire(member: "a", offsets: 0...1, maxRecords: 10, now: 5000)
    #expect(share.nextLockDeadline == 6000)
    #expect(share.expireLocks(now: 5999).expired == 0)
    #expect(share.expireLocks(now: 6000).expired == 2)
    #expect(
      share.acquire(member: "b", offsets: 0...1, maxRecords: 10, now: 7000) == [
        Acquired(first: 0, last: 1, deliveryCount: 2)
      ])
    // a's late acknowledgement is refused: the records are b's now.
    #expect(
      share.acknowledge(member: "a", first: 0, last: 1, types: [.accept]) == .failure(.invalidRecordState(0)))
    // The second expiry uses up the delivery count.
    let (expired, dead) = share.expireLocks(now: 8000)
    #expect(expired == 2)
    #expect(dead.map(\.reason) == [.deliveryCountExceeded, .deliveryCountExceeded])
    #expect(share.startOffset == 2)
  }

  @Test func acknowledgementIsAllOrNothing() {
    var share = state()
    _ = share.acquire(member: "a", offsets: 0...1, maxRecords: 10, now: 0)
    // Offset 2 was never acquired: nothing of the range is applied.
    #expect(
      share.acknowledge(member: "a", first: 0, last: 2, types: [.accept]) == .failure(.invalidRecordState(2)))
    #expect(share.acquiredCount == 2)
    #expect(share.acknowledge(member: "a", first: 0, last: 1, types: [.accept, .accept, .accept]).isFailure)
    #expect(share.acknowledge(member: "a", first: 1, last: 0, types: [.accept]).isFailure)
    #expect(
      share.acknowledge(member: "b", first: 0, last: 1, types: [.accept]) == .failure(.invalidRecordState(0)))
  }

  @Test func releaseAllFreesOnlyThatMembersRecords() {
    var share = state()
    _ = share.acquire(member: "a", offsets: 0...1, maxRecords: 10, now: 0)
    _ = share.acquire(member: "b", offsets: 2...3, maxRecords: 10, now: 0)
    #expect(share.releaseAll(member: "a") == [])
    #expect(share.entry(at: 0)?.state == .available)
    #expect(share.entry(at: 2)?.state == .acquired)
  }

  @Test func persistedRunsRestoreAcquiredAsAvailable() throws {
    var share = state()
    _ = share.acquire(member: "a", offsets: 0...5, maxRecords: 10, now: 0)
    _ = try share.acknowledge(member: "a", first: 0, last: 0, types: [.accept]).get()
    _ = try share.acknowledge(member: "a", first: 2, last: 2, types: [.accept]).get()
    _ = try share.acknowledge(member: "a", first: 3, last: 3, types: [.release]).get()
    let runs = share.runs
    #expect(
      runs == [
        .init(first: 1, last: 1, state: .available, deliveryCount: 1),
        .init(first: 2, last: 2, state: .acknowledged, deliveryCount: 1),
        .init(first: 3, last: 5, state: .available, deliveryCount: 1),
      ])
    let restored = SharePartitionState(
      startOffset: share.startOffset, endOffset: share.endOffset, runs: runs, limits: share.limits)
    #expect(restored.startOffset == 1 && restored.endOffset == 6)
    #expect(restored.acquiredCount == 0)
    #expect(restored.entry(at: 2)?.state == .acknowledged)
    #expect(restored.nextReadOffset == 1)
  }

  @Test func aRecordInFlightOnItsLastDeliveryAtARestartIsArchivedNotDeliveredAgain() {
    var share = state(limit: 1)
    _ = share.acquire(member: "a", offsets: 0...1, maxRecords: 10, now: 0)
    var restored = SharePartitionState(
      startOffset: share.startOffset, endOffset: share.endOffset, runs: share.runs, limits: share.limits)
    #expect(restored.acquire(member: "b", offsets: 0...1, maxRecords: 10, now: 0).isEmpty)
    #expect(
      restored.archiveExhausted() == [
        .init(offset: 0, deliveryCount: 1, reason: .deliveryCountExceeded),
        .init(offset: 1, deliveryCount: 1, reason: .deliveryCountExceeded),
      ])
    #expect(restored.startOffset == 2 && restored.entries.isEmpty)
  }

  @Test func cutBackDropsTheWindowBeyondTheLogEnd() {
    var share = state()
    _ = share.acquire(member: "a", offsets: 0...9, maxRecords: 10, now: 0)
    share.cutBack(to: 6)
    #expect(share.startOffset == 0 && share.endOffset == 6)
    share.moveStart(to: 4)
    share.cutBack(to: 2)
    #expect(share.startOffset == 2 && share.entries.isEmpty)
  }

  @Test func moveStartDropsWhatTheLogNoLongerHolds() {
    var share = state()
    _ = share.acquire(member: "a", offsets: 0...5, maxRecords: 10, now: 0)
    share.moveStart(to: 3)
    #expect(share.startOffset == 3 && share.endOffset == 6)
    share.moveStart(to: 100)
    #expect(share.startOffset == 100 && share.entries.isEmpty)
  }
}

extension Result {
  var isFailure: Bool {
    if case .failure = self { return true }
    return false
  }
}
