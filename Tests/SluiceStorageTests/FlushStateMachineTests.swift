import SluiceStorage
import Testing

/// A stand-in for a segment file: the machine only compares files by identity.
final class FakeFile: CustomStringConvertible {
  let name: String
  init(_ name: String) { self.name = name }
  var description: String { name }
}

typealias FlushMachine = FlushStateMachine<FakeFile, String>

/// An action as text, so that each expectation reads like the step it checks.
func describe(_ action: FlushMachine.Action) -> String {
  switch action {
  case .none: "none"
  case .startFlush(let job): "flush " + describe(job)
  case .resume(let waiters, .success): "resume \(waiters) ok"
  case .resume(let waiters, .failure(let error)): "resume \(waiters) \(error.code)"
  case .resumeAndStartFlush(let waiters, let job): "resume \(waiters) ok, flush \(describe(job))"
  }
}

func describe(_ job: FlushMachine.Job) -> String {
  var text = "[\(job.files.map(\.name).joined(separator: ","))] to \(job.target)"
  if job.syncDirectory { text += " +dir" }
  if job.checkpoint { text += " +checkpoint" }
  if let start = job.logStart { text += " logStart \(start)" }
  return text
}

/// Flush scheduling and group commit, driven with plain event sequences: no files, no
/// threads, and the clock is the `now` each event carries.
@Suite struct FlushStateMachineTests {
  let a = FakeFile("a")
  let b = FakeFile("b")
  let fsyncError = StorageError(.offline, "fsync failed (EIO); the log is offline", errno: 5)

  /// A log that ended at `end`, all of it durable.
  func machine(end: Int64 = 0) -> FlushMachine {
    FlushMachine(logEnd: end, durableOffset: end, recoveryPoint: end)
  }

  @Test func appendsBelowFlushMessagesStartNoRound() {
    var flush = machine()
    for end in Int64(1)...5 {
      let (mustWait, action) = flush.appendWritten(
        to: a, records: 1, logEnd: end, now: 0, flushMessages: .max)
      #expect(!mustWait && describe(action) == "none")
    }
    #expect(flush.durableOffset == 0 && flush.pending.records == 5 && !flush.isFlushRunning)
  }

  @Test func flushMessagesReachedStartsARoundAndTheWaiterIsReleasedByIt() {
    var flush = machine()
    let (mustWait, action) = flush.appendWritten(to: a, records: 3, logEnd: 3, now: 0, flushMessages: 3)
    #expect(mustWait && describe(action) == "flush [a] to 3")
    #expect(describe(flush.durabilityRequested(through: 2, by: "w1")) == "none")
    #expect(describe(flush.flushPickedUp()) == "[a] to 3")
    #expect(describe(flush.flushCompleted(nil)) == "resume [\"w1\"] ok")
    #expect(flush.durableOffset == 3 && flush.completedRounds == 1 && !flush.isFlushRunning)
    // Already durable: answered at once, no round.
    #expect(describe(flush.durabilityRequested(through: 2, by: "w2")) == "resume [\"w2\"] ok")
  }

  /// Appends that arrive while a round runs queue; the next round covers all of them, and
  /// releases all their waiters together.
  @Test func groupCommitOfConcurrentWaiters() {
    var flush = machine()
    #expect(
      describe(flush.appendWritten(to: a, records: 1, logEnd: 1, now: 0, flushMessages: 1).action)
        == "flush [a] to 1")
    #expect(describe(flush.durabilityRequested(through: 0, by: "w1")) == "none")
    #expect(describe(flush.flushPickedUp()) == "[a] to 1")
    for end in Int64(2)...4 {
      let (mustWait, action) = flush.appendWritten(to: a, records: 1, logEnd: end, now: 0, flushMessages: 1)
      #expect(mustWait && describe(action) == "none", "a round is running: no second one")
      #expect(describe(flush.durabilityRequested(through: end - 1, by: "w\(end)")) == "none")
    }
    #expect(flush.waitingCount == 4)
    #expect(describe(flush.flushCompleted(nil)) == "resume [\"w1\"] ok, flush [a] to 4")
    #expect(describe(flush.flushPickedUp()) == "[a] to 4")
    #expect(describe(flush.flushCompleted(nil)) == "resume [\"w2\", \"w3\", \"w4\"] ok")
    #expect(flush.completedRounds == 2 && flush.durableOffset == 4 && flush.waitingCount == 0)
  }

  /// A round prepared but not yet picked up by a pool thread is widened when it is: it
  /// covers what was written meanwhile (another segment after a roll included).
  @Test func lateBindingWidensTheRoundWhenAPoolThreadTakesIt() {
    var flush = machine()
    #expect(
      describe(flush.appendWritten(to: a, records: 1, logEnd: 1, now: 0, flushMessages: 1).action)
        == "flush [a] to 1")
    #expect(describe(flush.durabilityRequested(through: 0, by: "w1")) == "none")
    flush.segmentRolled()
    _ = flush.appendWritten(to: b, records: 2, logEnd: 3, now: 0, flushMessages: 1)
    #expect(describe(flush.durabilityRequested(through: 2, by: "w2")) == "none")
    #expect(describe(flush.flushPickedUp()) == "[a,b] to 3 +dir +checkpoint")
    #expect(describe(flush.flushCompleted(nil)) == "resume [\"w1\", \"w2\"] ok")
    #expect(flush.completedRounds == 1 && flush.recoveryPoint == 3)
  }

  @Test func flushMsDueAndNotDue() {
    var flush = machine()
    _ = flush.appendWritten(to: a, records: 5, logEnd: 5, now: 100, flushMessages: .max)
    _ = flush.appendWritten(to: a, records: 1, logEnd: 6, now: 900, flushMessages: .max)
    // flush.ms counts from the oldest unflushed append (now 100).
    #expect(describe(flush.flushDue(now: 1099, flushMs: 1000)) == "none")
    #expect(describe(flush.flushDue(now: 1100, flushMs: 1000)) == "flush [a] to 6 +checkpoint")
    _ = flush.flushPickedUp()
    #expect(describe(flush.flushDue(now: 5000, flushMs: 1000)) == "none", "one round at a time")
    #expect(describe(flush.flushCompleted(nil)) == "none")
    #expect(flush.durableOffset == 6 && flush.recoveryPoint == 6)
    // Nothing unflushed: never due.
    #expect(describe(flush.flushDue(now: 100_000, flushMs: 1000)) == "none")
  }

  /// flush.messages=1: every append is durable at once, nothing ever ages, yet the recovery
  /// point follows the durable end once per flush.ms.
  @Test func aLogDurableAtEveryAppendIsCheckpointedOncePerFlushMs() {
    var flush = machine()
    for end in Int64(1)...3 {
      _ = flush.appendWritten(to: a, records: 1, logEnd: end, now: 10 * end, flushMessages: 1)
      _ = flush.durabilityRequested(through: end - 1, by: "w\(end)")
      _ = flush.flushPickedUp()
      _ = flush.flushCompleted(nil)
    }
    #expect(flush.durableOffset == 3 && flush.recoveryPoint == 0)
    #expect(describe(flush.flushDue(now: 40, flushMs: 1000)) == "flush [] to 3 +checkpoint")
    _ = flush.flushPickedUp()
    _ = flush.flushCompleted(nil)
    #expect(flush.recoveryPoint == 3)
    _ = flush.appendWritten(to: a, records: 1, logEnd: 4, now: 50, flushMessages: 1)
    _ = flush.durabilityRequested(through: 3, by: "w4")
    _ = flush.flushPickedUp()
    _ = flush.flushCompleted(nil)
    #expect(describe(flush.flushDue(now: 1039, flushMs: 1000)) == "none", "checkpointed 999 ms ago")
    #expect(describe(flush.flushDue(now: 1040, flushMs: 1000)) == "flush [] to 4 +checkpoint")
  }

  /// A roll or a trim is recorded by the next housekeeping look even before `flush.ms`.
  @Test func aRollOrATrimIsRecordedWithoutWaitingForFlushMs() {
    var flush = machine(end: 10)
    flush.segmentRolled()
    #expect(describe(flush.flushDue(now: 0, flushMs: 1000)) == "flush [] to 10 +dir +checkpoint")
    _ = flush.flushPickedUp()
    _ = flush.flushCompleted(nil)
    flush.logStartMoved(to: 4)
    flush.logStartMoved(to: 7)
    #expect(describe(flush.flushDue(now: 0, flushMs: 1000)) == "flush [] to 10 +checkpoint logStart 7")
    _ = flush.flushPickedUp()
    _ = flush.flushCompleted(nil)
    // DeleteRecords writes the log start itself: a pending older one is not written again.
    flush.logStartMoved(to: 8)
    flush.logStartWritten(9)
    #expect(describe(flush.flushDue(now: 0, flushMs: 1000)) == "flush [] to 10 +checkpoint")
  }

  @Test func deletedSegmentsAreNotSyncedButTheDirectoryIs() {
    var flush = machine()
    _ = flush.appendWritten(to: a, records: 1, logEnd: 1, now: 0, flushMessages: .max)
    flush.segmentRolled()
    _ = flush.appendWritten(to: b, records: 1, logEnd: 2, now: 0, flushMessages: .max)
    flush.segmentsDeleted([a])
    #expect(describe(flush.flushDue(now: 1000, flushMs: 1000)) == "flush [b] to 2 +dir +checkpoint")
  }

  /// A failed round takes the log offline: every waiter fails, later ones too, and the
  /// durable offset stays where the last successful round left it.
  @Test func aFailedRoundTakesTheLogOfflineForGood() {
    var flush = machine()
    _ = flush.appendWritten(to: a, records: 1, logEnd: 1, now: 0, flushMessages: 1)
    _ = flush.durabilityRequested(through: 0, by: "w1")
    _ = flush.flushPickedUp()
    #expect(describe(flush.flushCompleted(nil)) == "resume [\"w1\"] ok")
    #expect(flush.durableOffset == 1)

    _ = flush.appendWritten(to: a, records: 1, logEnd: 2, now: 0, flushMessages: 1)
    _ = flush.durabilityRequested(through: 1, by: "w2")
    _ = flush.flushPickedUp()
    _ = flush.appendWritten(to: a, records: 1, logEnd: 3, now: 0, flushMessages: 1)
    _ = flush.durabilityRequested(through: 2, by: "w3")
    _ = flush.flushRequested(by: "f")
    #expect(describe(flush.flushCompleted(fsyncError)) == "resume [\"w2\", \"w3\", \"f\"] offline")
    #expect(flush.failure == fsyncError && flush.durableOffset == 1 && flush.recoveryPoint == 0)
    #expect(describe(flush.durabilityRequested(through: 2, by: "late")) == "resume [\"late\"] offline")
    #expect(describe(flush.durabilityRequested(through: 0, by: "old")) == "resume [\"old\"] offline")
    #expect(describe(flush.flushRequested(by: "f2")) == "resume [\"f2\"] offline")
    #expect(describe(flush.flushDue(now: 10_000, flushMs: 1)) == "none")
    #expect(
      describe(flush.appendWritten(to: a, records: 1, logEnd: 4, now: 0, flushMessages: 1).action) == "none")
    #expect(flush.durableOffset == 1)
  }

  /// A write that could not be undone fails the waiters at once; a round already running
  /// still records what it really synced.
  @Test func aWriteThatCannotBeUndoneFailsTheWaitersAtOnce() {
    var flush = machine()
    _ = flush.appendWritten(to: a, records: 2, logEnd: 2, now: 0, flushMessages: 1)
    _ = flush.flushPickedUp()
    _ = flush.appendWritten(to: a, records: 1, logEnd: 3, now: 0, flushMessages: 1)
    _ = flush.durabilityRequested(through: 2, by: "w1")
    let undoFailed = StorageError(.offline, "write failed and could not be undone")
    #expect(describe(flush.writeFailed(undoFailed)) == "resume [\"w1\"] offline")
    #expect(describe(flush.flushCompleted(nil)) == "none")
    #expect(flush.durableOffset == 2 && flush.failure == undoFailed)
  }

  @Test func aFlushWaitsForARoundThatStartsAfterIt() {
    var flush = machine()
    // Nothing unflushed: answered at once.
    #expect(describe(flush.flushRequested(by: "f0")) == "resume [\"f0\"] ok")
    // Idle with unflushed data: starts a round, released by it.
    _ = flush.appendWritten(to: a, records: 1, logEnd: 1, now: 0, flushMessages: .max)
    #expect(describe(flush.flushRequested(by: "f1")) == "flush [a] to 1")
    // A round prepared but not taken yet will cover everything: it is enough.
    _ = flush.appendWritten(to: a, records: 1, logEnd: 2, now: 0, flushMessages: .max)
    #expect(describe(flush.flushRequested(by: "f2")) == "none")
    #expect(describe(flush.flushPickedUp()) == "[a] to 2")
    // A round already taken may miss what comes next: the flush waits for the one after.
    _ = flush.appendWritten(to: a, records: 1, logEnd: 3, now: 0, flushMessages: .max)
    #expect(describe(flush.flushRequested(by: "f3")) == "none")
    #expect(describe(flush.flushCompleted(nil)) == "resume [\"f1\", \"f2\"] ok, flush [a] to 3")
    _ = flush.flushPickedUp()
    #expect(describe(flush.flushCompleted(nil)) == "resume [\"f3\"] ok")
    // Taken, and nothing written after it: the next round has nothing to do, and the
    // flush is released without one.
    flush.segmentRolled()
    #expect(describe(flush.flushRequested(by: "f4")) == "flush [] to 3 +dir +checkpoint")
    _ = flush.flushPickedUp()
    #expect(describe(flush.flushRequested(by: "f5")) == "none")
    #expect(describe(flush.flushCompleted(nil)) == "resume [\"f4\", \"f5\"] ok")
    #expect(flush.completedRounds == 3)
  }

  /// close() while appends wait: the running round finishes, no new one starts, and the
  /// close's own sync releases everyone still waiting.
  @Test func closeResumesTheWaitersWithItsOutcome() {
    var flush = machine()
    _ = flush.appendWritten(to: a, records: 1, logEnd: 1, now: 0, flushMessages: 1)
    _ = flush.durabilityRequested(through: 0, by: "w1")
    _ = flush.flushPickedUp()
    _ = flush.appendWritten(to: a, records: 1, logEnd: 2, now: 0, flushMessages: 1)
    _ = flush.durabilityRequested(through: 1, by: "w2")
    guard case .syncEverything = flush.closeRequested() else {
      Issue.record("close should sync everything")
      return
    }
    #expect(flush.isClosed && flush.isFlushRunning)
    #expect(describe(flush.flushCompleted(nil)) == "resume [\"w1\"] ok", "no new round while closing")
    #expect(!flush.isFlushRunning)
    #expect(describe(flush.durabilityRequested(through: 1, by: "w3")) == "none")
    #expect(describe(flush.flushRequested(by: "f")) == "none")
    #expect(describe(flush.closeCompleted(nil)) == "resume [\"w2\", \"w3\", \"f\"] ok")
    #expect(flush.durableOffset == 2 && flush.recoveryPoint == 2 && flush.failure == nil)
    guard case .none = flush.closeRequested() else {
      Issue.record("a second close has nothing to do")
      return
    }
    #expect(describe(flush.durabilityRequested(through: 1, by: "after")) == "resume [\"after\"] ok")
    #expect(describe(flush.flushRequested(by: "f2")) == "resume [\"f2\"] ok")
  }

  @Test func aCloseThatFailsFailsTheWaiters() {
    var flush = machine()
    _ = flush.appendWritten(to: a, records: 1, logEnd: 1, now: 0, flushMessages: .max)
    _ = flush.flushRequested(by: "f")
    _ = flush.flushPickedUp()
    _ = flush.appendWritten(to: a, records: 1, logEnd: 2, now: 0, flushMessages: 1)
    _ = flush.durabilityRequested(through: 1, by: "w")
    _ = flush.closeRequested()
    #expect(describe(flush.flushCompleted(nil)) == "resume [\"f\"] ok")
    let closeError = StorageError(.offline, "close failed (EIO)")
    #expect(describe(flush.closeCompleted(closeError)) == "resume [\"w\"] offline")
    #expect(flush.failure == closeError && flush.durableOffset == 1)
  }

  @Test func closingAnOfflineLogFailsOnceAndSyncsNothing() {
    let damaged = StorageError(.offline, "corrupt data below the recovery point")
    var flush = FlushMachine(logEnd: 7, durableOffset: 7, recoveryPoint: 9, failure: damaged)
    #expect(describe(flush.durabilityRequested(through: 3, by: "w")) == "resume [\"w\"] offline")
    guard case .fail(let error) = flush.closeRequested() else {
      Issue.record("closing an offline log fails")
      return
    }
    #expect(error == damaged)
    guard case .none = flush.closeRequested() else {
      Issue.record("a second close has nothing to do")
      return
    }
    #expect(flush.failure == damaged)
  }

  @Test func aRoundFailingDuringCloseFailsTheClose() {
    var flush = machine()
    _ = flush.appendWritten(to: a, records: 1, logEnd: 1, now: 0, flushMessages: 1)
    _ = flush.durabilityRequested(through: 0, by: "w")
    _ = flush.flushPickedUp()
    _ = flush.closeRequested()
    #expect(describe(flush.flushCompleted(fsyncError)) == "resume [\"w\"] offline")
    #expect(flush.failure == fsyncError && flush.isClosed)
    #expect(describe(flush.closeCompleted(nil)) == "none")
    #expect(flush.durableOffset == 0)
  }

  @Test func deletingTheLogReleasesItsWaitersAsClosed() {
    var flush = machine()
    _ = flush.appendWritten(to: a, records: 1, logEnd: 1, now: 0, flushMessages: 1)
    _ = flush.durabilityRequested(through: 0, by: "w")
    _ = flush.flushPickedUp()
    #expect(describe(flush.deleted()) == "resume [\"w\"] closed")
    #expect(flush.isClosed && flush.failure == nil)
    #expect(describe(flush.flushCompleted(nil)) == "none")
  }
}
