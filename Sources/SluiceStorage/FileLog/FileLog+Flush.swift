import CoreMetrics
import KafkaProtocol

/// Flushing, the I/O half: ``FlushStateMachine`` (in the log's state, under its lock)
/// decides which rounds run and whom they release; this file performs its actions outside
/// the lock — fsyncs on the thread pool, never on the caller's thread — and reports back.
extension FileLog {
  typealias Waiter = CheckedContinuation<Result<Void, StorageError>, Never>
  typealias Flush = FlushStateMachine<SegmentFile, Waiter>

  /// Runs what the state machine decided. Call without holding the lock.
  func perform(_ action: Flush.Action) {
    switch action {
    case .none:
      break
    case .startFlush:
      submitFlush()
    case .resume(let waiters, let result):
      for waiter in waiters { waiter.resume(returning: result) }
    case .resumeAndStartFlush(let waiters, _):
      for waiter in waiters { waiter.resume(returning: .success(())) }
      submitFlush()
    }
  }

  /// Runs the prepared round on a pool thread. The job is taken when the thread starts, not
  /// when the round was prepared, so that it covers everything written meanwhile.
  func submitFlush() {
    threadPool.submit { [self] _ in
      let job = state.withLock { $0.flush.flushPickedUp() }
      let error = runFlush(job)
      perform(state.withLock { $0.flush.flushCompleted(error) })
    }
  }

  /// On a pool thread: one round's fsyncs and file writes. Returns the error that takes the
  /// log offline if any of them failed.
  func runFlush(_ job: Flush.Job) -> StorageError? {
    let started = ContinuousClock.now
    defer {
      Self.flushDuration.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
    }
    do throws(StorageError) {
      for file in job.files { try file.sync() }
      if job.syncDirectory { try FileSystem.syncDirectory(directory) }
      if job.checkpoint { try Self.writeNumber(directory + "/" + Self.recoveryPointFile, job.target) }
      if let start = job.logStart { try persistLogStart(start) }
      return nil
    } catch {
      return StorageError(
        .offline, "\(directory): fsync failed (\(error.message)); the log is offline", errno: error.errno)
    }
  }

  /// Flush rounds' durations (`sluice_log_flush_duration_seconds`): made on first use, from
  /// the `MetricsSystem` the process bootstrapped before opening its logs.
  static let flushDuration = Timer(label: "sluice_log_flush_duration_seconds")

  /// Writes the log-start file, unless a value at least as high was written already.
  func persistLogStart(_ value: Int64) throws(StorageError) {
    try logStartWritten.withLock { (written: inout Int64) throws(StorageError) in
      guard value > written else { return }
      try Self.writeNumber(directory + "/" + Self.logStartFile, value)
      written = value
    }
  }

  /// Waits until every offset ≤ `offset` is durable.
  func waitDurable(_ offset: Int64) async throws(StorageError) {
    let result = await withCheckedContinuation { (waiter: Waiter) in
      perform(state.withLock { $0.flush.durabilityRequested(through: offset, by: waiter) })
    }
    try result.get()
  }

  public func flush() async throws(StorageError) {
    let result = await withCheckedContinuation { (waiter: Waiter) in
      perform(state.withLock { $0.flush.flushRequested(by: waiter) })
    }
    try result.get()
  }

  public func flushIfDue(now: Int64) {
    perform(
      state.withLock { state in
        let flushMs = state.config.flushMs
        return state.flush.flushDue(now: now, flushMs: flushMs)
      })
  }
}
