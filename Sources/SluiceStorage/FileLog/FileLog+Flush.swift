/// Flushing: fsyncs run on the thread pool as group commits — while one runs, later appends
/// queue, and the next covers all of them.
extension FileLog {
  struct FlushJob {
    var files: [SegmentFile]
    var target: Int64
    var syncDirectory: Bool
    var checkpoint: Bool
    var logStart: Int64? = nil
  }

  /// Writes the log-start file, unless a value at least as high was written already.
  func persistLogStart(_ value: Int64) throws(StorageError) {
    try logStartWritten.withLock { (written: inout Int64) throws(StorageError) in
      guard value > written else { return }
      try Self.writeNumber(directory + "/" + Self.logStartFile, value)
      written = value
    }
  }

  /// Under the lock: decides what the next flush covers, or nil if one is running or
  /// nothing needs it.
  func prepareFlush(_ state: inout State) -> FlushJob? {
    guard !state.flushing, state.failure == nil, !state.closed else { return nil }
    let files = state.segments.indices.filter { state.segments[$0].needsSync }
    guard
      !files.isEmpty || state.directoryNeedsSync || state.checkpointNeeded
        || state.durableOffset < state.logEndOffset || state.unwrittenLogStart != nil
    else { return nil }
    for index in files { state.segments[index].needsSync = false }
    let job = FlushJob(
      files: files.map { state.segments[$0].file }, target: state.logEndOffset,
      syncDirectory: state.directoryNeedsSync, checkpoint: state.checkpointNeeded,
      logStart: state.unwrittenLogStart)
    state.unwrittenLogStart = nil
    state.directoryNeedsSync = false
    state.checkpointNeeded = false
    state.flushing = true
    state.unflushedMessages = 0
    state.oldestUnflushedMs = nil
    return job
  }

  func startFlush(_ job: FlushJob) {
    threadPool.submit { [self] _ in
      // Late binding: by the time a pool thread runs this, more appends may have arrived
      // (typically those of the appenders the previous round just woke): cover them too.
      // Without it, concurrent appenders split into two cohorts that alternate rounds.
      let job = state.withLock { extend(job, &$0) }
      self.runFlush(job)
    }
  }

  /// Under the lock: widens a prepared flush to everything appended since.
  func extend(_ prepared: FlushJob, _ state: inout State) -> FlushJob {
    var job = prepared
    for index in state.segments.indices where state.segments[index].needsSync {
      state.segments[index].needsSync = false
      let file = state.segments[index].file
      if !job.files.contains(where: { $0 === file }) { job.files.append(file) }
    }
    job.target = state.logEndOffset
    job.syncDirectory = job.syncDirectory || state.directoryNeedsSync
    job.checkpoint = job.checkpoint || state.checkpointNeeded
    if let start = state.unwrittenLogStart { job.logStart = max(job.logStart ?? start, start) }
    state.unwrittenLogStart = nil
    state.directoryNeedsSync = false
    state.checkpointNeeded = false
    state.unflushedMessages = 0
    state.oldestUnflushedMs = nil
    return job
  }

  /// On a thread-pool thread: fsync, then publish the new durable point and wake waiters.
  func runFlush(_ job: FlushJob) {
    var error: StorageError?
    do throws(StorageError) {
      for file in job.files { try file.sync() }
      if job.syncDirectory { try FileSystem.syncDirectory(directory) }
      if job.checkpoint { try Self.writeNumber(directory + "/" + Self.recoveryPointFile, job.target) }
      if let start = job.logStart { try persistLogStart(start) }
    } catch let failure {
      error = failure
    }
    var resume: [(Waiter, Result<Void, StorageError>)] = []
    let next: FlushJob? = state.withLock { state in
      state.flushing = false
      state.flushCount += 1
      if let error {
        let offline = StorageError(
          .offline, "\(directory): fsync failed (\(error.message)); the log is offline", errno: error.errno)
        state.failure = offline
        resume = state.waiters.map { ($0, .failure(offline)) }
        state.waiters.removeAll()
        return nil
      }
      state.durableOffset = max(state.durableOffset, job.target)
      if job.checkpoint { state.recoveryPoint = max(state.recoveryPoint, job.target) }
      let durable = state.durableOffset
      let (done, waiting) = state.waiters.reduce(into: ([Waiter](), [Waiter]())) { split, waiter in
        if waiter.offset < durable { split.0.append(waiter) } else { split.1.append(waiter) }
      }
      resume = done.map { ($0, .success(())) }
      state.waiters = waiting
      return waiting.isEmpty ? nil : prepareFlush(&state)
    }
    for (waiter, result) in resume { waiter.continuation.resume(returning: result) }
    if let next { startFlush(next) }
  }

  /// Waits until every offset ≤ `offset` is durable.
  func waitDurable(_ offset: Int64) async throws(StorageError) {
    let result = await withCheckedContinuation {
      (continuation: CheckedContinuation<Result<Void, StorageError>, Never>) in
      let (immediate, job): (Result<Void, StorageError>?, FlushJob?) = state.withLock { state in
        if let failure = state.failure { return (.failure(failure), nil) }
        if offset < state.durableOffset { return (.success(()), nil) }
        state.waiters.append(Waiter(offset: offset, continuation: continuation))
        return (nil, prepareFlush(&state))
      }
      if let immediate { continuation.resume(returning: immediate) }
      if let job { startFlush(job) }
    }
    try result.get()
  }

  public func flush() async throws(StorageError) {
    let end = state.withLock { $0.logEndOffset }
    if end > 0 { try await waitDurable(end - 1) }
    // Also sync a freshly rolled empty segment and the directory.
    let job = state.withLock { prepareFlush(&$0) }
    if let job { runFlush(job) }
    if let failure = state.withLock({ $0.failure }) { throw failure }
  }

  public func flushIfDue(now: Int64) {
    let job: FlushJob? = state.withLock { state in
      guard let oldest = state.oldestUnflushedMs, now - oldest >= state.config.flushMs else {
        return state.checkpointNeeded || state.unwrittenLogStart != nil ? prepareFlush(&state) : nil
      }
      state.checkpointNeeded = true
      return prepareFlush(&state)
    }
    if let job { startFlush(job) }
  }
}
