/// Flush scheduling and group commit for one log, as a value: which fsync rounds a
/// ``FileLog`` runs, when, covering what, and which waiting appends each round releases.
///
/// It does no I/O, reads no clock and starts no thread. `FileLog` holds it in its mutex,
/// feeds it events (with the broker's time as `now`), and performs the actions it returns
/// outside the lock: a round's fsyncs on the thread pool (never on the caller's thread),
/// then `flushCompleted`. `FlushStateMachineTests` drive it with plain event sequences.
///
/// Group commit: at most one round is in flight. While it runs, appends accumulate in
/// ``pending``; when it completes and anyone still waits, the next round covers all of
/// them. A round is prepared when an append or a waiter needs one, and widened when a pool
/// thread picks it up (late binding): by then the appenders the previous round woke have
/// usually appended again, and without widening, concurrent appenders split into two
/// cohorts that alternate rounds.
///
/// Failure: a failed round (or a write that could not be undone) takes the log offline for
/// good. Every waiting and later waiter fails, and ``durableOffset`` never moves past what a
/// successful round covered: after a failed fsync the kernel may have dropped the dirty
/// pages, so a retry could report lost data as durable.
package struct FlushStateMachine<File: AnyObject, Waiter> {
  /// What one round does, in this order: fsync `files`, fsync the directory (segments
  /// created or deleted), write `target` as the recovery point, write the log start.
  package struct Job {
    package var files: [File] = []
    /// The log end when the round was prepared or last widened: what becomes durable.
    package var target: Int64
    package var syncDirectory = false
    /// Write `target` to the recovery-point file once everything is synced.
    package var checkpoint = false
    /// A log start moved by a trim, to be written.
    package var logStart: Int64?
  }

  package enum Action {
    case none
    /// Submit a round to the thread pool. The pool thread calls ``flushPickedUp()`` for the
    /// round as it then stands, runs it, and reports ``flushCompleted(_:)``.
    case startFlush(Job)
    /// Resume these waiters with this result.
    case resume([Waiter], Result<Void, StorageError>)
    /// Resume these waiters with success, then start the next round.
    case resumeAndStartFlush([Waiter], Job)
  }

  package enum CloseAction {
    /// Closing or closed already: nothing to do.
    case none
    /// The log is offline: close fails with this error, and syncs and marks nothing.
    case fail(StorageError)
    /// Once no round is running (``isFlushRunning``), sync everything and mark the log
    /// clean, then report ``closeCompleted(_:)``.
    case syncEverything
  }

  package enum State {
    /// Takes appends; at most one round in flight.
    case open
    /// `close()` is syncing everything itself: no new round starts.
    case closing
    /// Closed: cleanly (nil), or with the error close failed with.
    case closed(StorageError?)
    /// Offline: a round failed, a write could not be undone, or recovery found data below
    /// the recovery point damaged. Nothing becomes durable any more.
    case failed(StorageError)
  }

  /// Written since a round last took its share: what the next round must cover.
  package struct Pending {
    package var files: [File] = []
    /// Records appended (`flush.messages` counts these).
    package var records: Int64 = 0
    /// When the oldest of them was appended (`flush.ms` counts from here).
    package var oldestMs: Int64?
    package var syncDirectory = false
    package var checkpoint = false
    package var logStart: Int64?

    package var hasWork: Bool { !files.isEmpty || syncDirectory || checkpoint || logStart != nil }
  }

  /// What a waiter waits for.
  package enum Condition {
    /// Every offset up to and including this one durable (an append's last offset).
    case durable(Int64)
    /// `completedRounds` reaching this: a round that started after the request (a flush).
    case round(Int)
  }

  /// The round prepared or running, if any.
  package struct Round {
    package var job: Job
    /// Whether a pool thread took it (and widened it): what comes later needs another round.
    package var pickedUp = false
  }

  package private(set) var state: State
  package private(set) var running: Round?
  package private(set) var pending = Pending()
  private(set) var waiters: [(condition: Condition, waiter: Waiter)] = []
  /// The log end as the appends reported it.
  package private(set) var writtenEnd: Int64
  /// Every offset below this is on stable storage.
  package private(set) var durableOffset: Int64
  /// What the recovery-point file says: below it, damage found at open is lost data, not a
  /// torn tail.
  package private(set) var recoveryPoint: Int64
  /// The first segment's directory entry is not yet synced (``directoryCreated()``).
  package private(set) var directoryUnsynced = false
  /// Rounds completed, successfully or not (tests observe group commit with it).
  package private(set) var completedRounds = 0

  package init(logEnd: Int64, durableOffset: Int64, recoveryPoint: Int64, failure: StorageError? = nil) {
    self.writtenEnd = logEnd
    self.durableOffset = durableOffset
    self.recoveryPoint = recoveryPoint
    self.state = failure.map { .failed($0) } ?? .open
  }

  /// Why the log refuses appends: it went offline, or close failed.
  package var failure: StorageError? {
    switch state {
    case .failed(let error): error
    case .closed(let error): error
    case .open, .closing: nil
    }
  }

  package var isClosed: Bool {
    switch state {
    case .closing, .closed: true
    case .open, .failed: false
    }
  }

  package var isFlushRunning: Bool { running != nil }

  /// How many waiters wait (appends for durability, flushes for a round).
  package var waitingCount: Int { waiters.count }

  // MARK: Events from writes

  /// Batches holding `records` records were written to `file` (page cache); the log now ends
  /// at `logEnd`. Returns whether the append must wait for a round (`flush.messages`
  /// reached) and the round to start now, if one can.
  package mutating func appendWritten(
    to file: File, records: Int64, logEnd: Int64, now: Int64, flushMessages: Int64
  ) -> (mustWait: Bool, action: Action) {
    writtenEnd = logEnd
    if directoryUnsynced {
      pending.syncDirectory = true
      directoryUnsynced = false
    }
    if !pending.files.contains(where: { $0 === file }) { pending.files.append(file) }
    pending.records += records
    if pending.oldestMs == nil { pending.oldestMs = now }
    guard pending.records >= flushMessages else { return (false, .none) }
    return (true, prepareRound())
  }

  /// The log's first segment was just created and its directory not synced: the first
  /// round that makes an append durable syncs the directory too (a log no one writes to
  /// costs no fsync; after a crash it is simply empty).
  package mutating func directoryCreated() {
    directoryUnsynced = true
  }

  /// A segment was sealed and a new one created: the directory and the recovery point
  /// (which moves past the sealed segment) need the next round.
  package mutating func segmentRolled() {
    pending.syncDirectory = true
    pending.checkpoint = true
  }

  /// Segments were deleted (retention): their files need no fsync any more, the directory does.
  package mutating func segmentsDeleted(_ files: [File]) {
    guard !files.isEmpty else { return }
    pending.files.removeAll { file in files.contains { $0 === file } }
    pending.syncDirectory = true
  }

  /// A trim moved the log start: the next round writes it (with a checkpoint).
  package mutating func logStartMoved(to offset: Int64) {
    pending.logStart = max(pending.logStart ?? offset, offset)
    pending.checkpoint = true
  }

  /// DeleteRecords wrote the log start itself: a pending older value need not be written.
  package mutating func logStartWritten(_ offset: Int64) {
    if let start = pending.logStart, start <= offset { pending.logStart = nil }
  }

  /// A write failed and could not be undone: the file's contents are unknown.
  package mutating func writeFailed(_ error: StorageError) -> Action {
    fail(error)
  }

  // MARK: Events from waiters and the clock

  /// An append waits until every offset up to `offset` is durable.
  package mutating func durabilityRequested(through offset: Int64, by waiter: Waiter) -> Action {
    if let failure { return .resume([waiter], .failure(failure)) }
    if offset < durableOffset { return .resume([waiter], .success(())) }
    if case .closed = state {
      return .resume([waiter], .failure(StorageError(.closed, "the log is closed")))
    }
    waiters.append((.durable(offset), waiter))
    return prepareRound()
  }

  /// `flush()`: waits until everything written so far — data, rolls, deletions, the log
  /// start — is durable, which takes a round that starts after this request.
  package mutating func flushRequested(by waiter: Waiter) -> Action {
    if let failure { return .resume([waiter], .failure(failure)) }
    switch state {
    case .closed:
      return .resume([waiter], .success(()))  // a clean close synced everything
    case .closing:
      waiters.append((.round(Int.max), waiter))  // close resumes it
      return .none
    case .failed, .open:
      break
    }
    if let running {
      // A round a pool thread has already widened may miss what was written since.
      waiters.append((.round(completedRounds + (running.pickedUp ? 2 : 1)), waiter))
      return .none
    }
    guard pending.hasWork || durableOffset < writtenEnd else { return .resume([waiter], .success(())) }
    waiters.append((.round(completedRounds + 1), waiter))
    return prepareRound()
  }

  /// The broker's housekeeping looks: a round starts if data has been unflushed for
  /// `flush.ms` (checkpointing), or if a roll or a trim left something to record.
  ///
  /// A log whose appends are each made durable at once (`flush.messages=1`) never has old
  /// unflushed data, so its recovery point would lag far behind what is durable; it is
  /// checkpointed once per `flush.ms` instead. Damage found after a crash below the recovery
  /// point is then reported (the log serves read-only) rather than cut off as a torn tail.
  package mutating func flushDue(now: Int64, flushMs: Int64) -> Action {
    if let oldest = pending.oldestMs, now - oldest >= flushMs {
      pending.checkpoint = true
      lastCheckpointMs = now
      return prepareRound()
    }
    if recoveryPoint < durableOffset, lastCheckpointMs.map({ now - $0 >= flushMs }) ?? true {
      pending.checkpoint = true
      lastCheckpointMs = now
      return prepareRound()
    }
    return pending.checkpoint || pending.logStart != nil ? prepareRound() : .none
  }

  /// When a checkpoint was last asked for by `flushDue`.
  private var lastCheckpointMs: Int64?

  // MARK: Events from the flush round

  /// A pool thread starts the round: it is widened to everything written since it was
  /// prepared, and this is what the thread runs.
  package mutating func flushPickedUp() -> Job {
    guard var round = running else { preconditionFailure("no flush round to pick up") }
    take(into: &round.job)
    round.pickedUp = true
    running = round
    return round.job
  }

  /// The round finished: `error` (already phrased as the log's offline error) if any part
  /// of it failed.
  package mutating func flushCompleted(_ error: StorageError?) -> Action {
    guard let round = running else { return .none }
    running = nil
    completedRounds += 1
    if let error { return fail(error) }
    durableOffset = max(durableOffset, round.job.target)
    if round.job.checkpoint { recoveryPoint = max(recoveryPoint, round.job.target) }
    let (durable, rounds) = (durableOffset, completedRounds)
    let done = takeWaiters { condition in
      switch condition {
      case .durable(let offset): offset < durable
      case .round(let round): round <= rounds
      }
    }
    guard case .open = state, !waiters.isEmpty else {
      return done.isEmpty ? .none : .resume(done, .success(()))
    }
    if case .startFlush(let next) = prepareRound() {
      return done.isEmpty ? .startFlush(next) : .resumeAndStartFlush(done, next)
    }
    // Nothing left to flush: whoever still waits for a round has everything durable.
    return .resume(done + takeWaiters { _ in true }, .success(()))
  }

  // MARK: Events from closing

  /// `close()` begins.
  package mutating func closeRequested() -> CloseAction {
    switch state {
    case .closing, .closed:
      return .none
    case .failed(let error):
      state = .closed(error)
      return .fail(error)
    case .open:
      state = .closing
      return .syncEverything
    }
  }

  /// `close()` synced everything (`error` nil) or failed to. Everyone still waiting learns
  /// the outcome: their appends are durable now, or never will be.
  package mutating func closeCompleted(_ error: StorageError?) -> Action {
    guard case .closing = state else { return .none }  // a failed round already resumed everyone
    state = .closed(error)
    if error == nil {
      durableOffset = writtenEnd
      recoveryPoint = writtenEnd
      pending = Pending()
    }
    let all = takeWaiters { _ in true }
    return all.isEmpty ? .none : .resume(all, error.map { .failure($0) } ?? .success(()))
  }

  /// The log's files are being removed (topic deletion): waiters are told it is closed.
  package mutating func deleted() -> Action {
    state = .closed(failure)
    let all = takeWaiters { _ in true }
    return all.isEmpty ? .none : .resume(all, .failure(StorageError(.closed, "the log was deleted")))
  }

  // MARK: Internals

  /// Prepares a round if none is in flight and something needs one.
  private mutating func prepareRound() -> Action {
    guard case .open = state, running == nil, pending.hasWork || durableOffset < writtenEnd else {
      return .none
    }
    var job = Job(target: writtenEnd)
    take(into: &job)
    running = Round(job: job)
    return .startFlush(job)
  }

  /// Moves the pending work into `job`, which then covers everything written so far.
  private mutating func take(into job: inout Job) {
    for file in pending.files where !job.files.contains(where: { $0 === file }) { job.files.append(file) }
    job.target = writtenEnd
    job.syncDirectory = job.syncDirectory || pending.syncDirectory
    job.checkpoint = job.checkpoint || pending.checkpoint
    if let start = pending.logStart { job.logStart = max(job.logStart ?? start, start) }
    pending = Pending()
  }

  /// Goes offline with `error` (keeping the first error if already offline or closed) and
  /// fails every waiter.
  private mutating func fail(_ error: StorageError) -> Action {
    switch state {
    case .failed, .closed:
      return .none
    case .closing:
      state = .closed(error)
    case .open:
      state = .failed(error)
    }
    let all = takeWaiters { _ in true }
    return all.isEmpty ? .none : .resume(all, .failure(error))
  }

  /// Removes and returns, in arrival order, the waiters whose condition holds.
  private mutating func takeWaiters(where satisfied: (Condition) -> Bool) -> [Waiter] {
    var taken: [Waiter] = []
    var kept: [(condition: Condition, waiter: Waiter)] = []
    for entry in waiters {
      if satisfied(entry.condition) { taken.append(entry.waiter) } else { kept.append(entry) }
    }
    waiters = kept
    return taken
  }
}

extension FlushStateMachine: Sendable where File: Sendable, Waiter: Sendable {}
extension FlushStateMachine.Job: Sendable where File: Sendable {}
extension FlushStateMachine.Action: Sendable where File: Sendable, Waiter: Sendable {}
extension FlushStateMachine.Pending: Sendable where File: Sendable {}
extension FlushStateMachine.Round: Sendable where File: Sendable {}
extension FlushStateMachine.State: Sendable {}
extension FlushStateMachine.CloseAction: Sendable {}
extension FlushStateMachine.Condition: Sendable {}
