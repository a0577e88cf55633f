import Foundation
import KafkaProtocol
import NIOCore
import SluiceStorage
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Waits (polling, bounded) until `condition` holds.
/// The timeout only catches a hang: every suite runs in parallel on two cores.
func eventually(timeout: Duration = .seconds(60), _ condition: () -> Bool) async -> Bool {
  let clock = ContinuousClock()
  let deadline = clock.now + timeout
  while clock.now < deadline {
    if condition() { return true }
    try? await Task.sleep(for: .milliseconds(5))
  }
  return condition()
}

/// Appends `count` one-record batches from each of `appenders` concurrent tasks; returns
/// each append's outcome, by appender.
func appendConcurrently(_ log: FileLog, appenders: Int, count: Int) async -> [[Result<
  AppendResult, StorageError
>]] {
  await withTaskGroup(of: (Int, [Result<AppendResult, StorageError>]).self) { group in
    for appender in 0..<appenders {
      group.addTask {
        var outcomes: [Result<AppendResult, StorageError>] = []
        for index in 0..<count {
          do throws(StorageError) {
            outcomes.append(.success(try await log.append(makeBatch(["w\(appender)-\(index)"]), now: 0)))
          } catch {
            outcomes.append(.failure(error))
          }
        }
        return (appender, outcomes)
      }
    }
    var all = [[Result<AppendResult, StorageError>]](repeating: [], count: appenders)
    for await (appender, outcomes) in group { all[appender] = outcomes }
    return all
  }
}

@Suite struct FileLogDurabilityTests {
  @Test func flushMessagesOneReturnsOnlyAfterFsync() async throws {
    try await withTemporaryDirectory { dir in
      let log = try FileLog(directory: dir, config: config { $0.flushMessages = 1 }, threadPool: pool, now: 0)
      for index in 0..<20 {
        let result = try await log.append(makeBatch(values("f\(index)", 2)), now: 0)
        #expect(log.durableEndOffset > result.lastOffset, "append \(index)")
      }
      #expect(log.durableEndOffset == 40)
      #expect(log.flushCount >= 1 && log.flushCount <= 20)
      try log.close()
    }
  }

  @Test func pageCacheModeIsDurableAfterFlushOrFlushMs() async throws {
    try await withTemporaryDirectory { dir in
      let log = try FileLog(directory: dir, config: config { $0.flushMs = 1000 }, threadPool: pool, now: 0)
      for index in 0..<5 { _ = try await log.append(makeBatch(["p\(index)"]), now: 100) }
      #expect(log.durableEndOffset == 0)
      log.flushIfDue(now: 1099)  // unflushed for 999 ms: not yet
      try await Task.sleep(for: .milliseconds(50))
      #expect(log.durableEndOffset == 0 && log.flushCount == 0)
      log.flushIfDue(now: 1100)
      #expect(await eventually { log.durableEndOffset == 5 })
      #expect(log.flushCount == 1)
      #expect(storedNumber(dir + "/recovery-point") == 5)
      _ = try await log.append(makeBatch(["q"]), now: 2000)
      #expect(log.durableEndOffset == 5)
      try await log.flush()
      #expect(log.durableEndOffset == 6)
      try log.close()
    }
  }

  /// Eight appenders waiting for fsync: every append completes with its own offsets, and
  /// far fewer fsyncs run than appends (one covers everything that arrived meanwhile).
  @Test func groupCommitWithConcurrentAppenders() async throws {
    try await withTemporaryDirectory { dir in
      let log = try FileLog(directory: dir, config: config { $0.flushMessages = 1 }, threadPool: pool, now: 0)
      let outcomes = await appendConcurrently(log, appenders: 8, count: 40)
      var offsets: [Int64] = []
      for (appender, results) in outcomes.enumerated() {
        #expect(results.count == 40)
        for case .failure(let error) in results { Issue.record("appender \(appender): \(error)") }
        let mine = results.compactMap { try? $0.get().firstOffset }
        #expect(mine == mine.sorted(), "appender \(appender)'s appends kept their order")
        offsets += mine
      }
      #expect(offsets.sorted() == Array(0..<320))
      #expect(log.durableEndOffset == 320)
      let fsyncs = log.flushCount
      #expect(fsyncs < 320, "group commit: \(fsyncs) fsync rounds for 320 appends")
      print("group commit: \(fsyncs) fsync rounds for 320 appends from 8 appenders")
      let stored = try readAll(log)
      #expect(stored.map(\.offset) == Array(0..<320))
      for appender in 0..<8 {
        #expect(
          stored.filter { $0.value.hasPrefix("w\(appender)-") }.map(\.value)
            == (0..<40).map { "w\(appender)-\($0)" })
      }
      try log.close()
    }
  }

  /// close() while appenders wait for fsync: nobody hangs; every append either succeeded
  /// (and is found after reopening) or was refused as closed.
  @Test func closeWhileAppendersWait() async throws {
    try await withTemporaryDirectory { dir in
      let settings = config { $0.flushMessages = 1 }
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      async let outcomes = appendConcurrently(log, appenders: 8, count: 50)
      #expect(await eventually { log.logEndOffset >= 40 })
      try log.close()
      var succeeded: [Int64] = []
      for results in await outcomes {
        for result in results {
          switch result {
          case .success(let appended): succeeded.append(appended.firstOffset)
          case .failure(let error): #expect(error.code == .closed, "\(error)")
          }
        }
      }
      #expect(succeeded.count >= 40)
      #expect(succeeded.sorted() == Array(0..<Int64(succeeded.count)))
      let reopened = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(reopened.logEndOffset == Int64(succeeded.count))
      #expect(try readAll(reopened).map(\.offset) == succeeded.sorted())
      try reopened.close()
    }
  }

  /// fsync fails (injected EIO): the log goes offline; waiting appends fail; later appends,
  /// flushes and reads fail; the durable offset never moves past what was really synced.
  @Test(arguments: [true, false])
  func fsyncFailureTakesTheLogOffline(fsyncEveryAppend: Bool) async throws {
    try await withTemporaryDirectory { dir in
      let settings = config { if fsyncEveryAppend { $0.flushMessages = 1 } }
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      let before = [values("ok", 3)]
      _ = try await log.append(makeBatch(before[0]), now: 0)
      try await log.flush()
      #expect(log.durableEndOffset == 3)
      SyncFaultInjection.fail(under: dir, errno: EIO)
      defer { SyncFaultInjection.clear(under: dir) }
      if fsyncEveryAppend {
        let outcomes = await appendConcurrently(log, appenders: 8, count: 3)
        for (appender, results) in outcomes.enumerated() {
          // Each appender's first append waits for the failing fsync; the rest are refused.
          #expect(results.count == 3)
          for result in results {
            switch result {
            case .success(let appended):
              Issue.record("appender \(appender): append \(appended) reported durable")
            case .failure(let error):
              #expect(error.code == .offline, "\(error)")
            }
          }
        }
      } else {
        for index in 0..<4 { _ = try await log.append(makeBatch(["pc\(index)"]), now: 0) }
        await expectStorageErrorAsync(.offline) { try await log.flush() }
      }
      let offline = log.offlineError
      #expect(offline?.code == .offline)
      #expect(offline?.errno == EIO, "\(String(describing: offline))")
      #expect(log.durableEndOffset == 3)
      await expectStorageErrorAsync(.offline) { try await log.append(makeBatch(["later"]), now: 0) }
      await expectStorageErrorAsync(.offline) { try await log.flush() }
      expectStorageError(.offline) { try log.read(from: 0, maxBytes: 100, upTo: nil, minOneBatch: true) }
      expectStorageError(.offline) { try log.deleteRecords(before: 1) }
      expectStorageError(.offline) { try log.close() }
      #expect(log.durableEndOffset == 3)
      #expect(!FileManager.default.fileExists(atPath: dir + "/.clean-shutdown"))

      // An operator restart: what was durable is there; the rest is whole batches at most.
      SyncFaultInjection.clear(under: dir)
      let reopened = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(reopened.offlineError == nil)
      let stored = try readAll(reopened)
      #expect(Array(stored.prefix(3)) == expected(before))
      #expect(stored.map(\.offset) == Array(0..<reopened.logEndOffset))
      try reopened.close()
    }
  }

  /// The same with a real failing fdatasync: a child process (this test binary, running only
  /// `fsyncEIOChildProcess`) under `fiu-run`, which makes every fdatasync fail with EIO.
  @Test(.enabled(if: ProcessInfo.processInfo.environment["SLUICE_FIU_CHILD_DIR"] == nil))
  func fsyncEIOUnderFiu() async throws {
    guard let fiuRun = findExecutable("fiu-run") else {
      Issue.record("fiu-run not found: install fiu-utils (scripts/install-test-deps.sh)")
      return
    }
    try await withTemporaryDirectory { dir in
      let settings = config { $0.flushMessages = 1 }
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      _ = try await log.append(makeBatch(values("ok", 3)), now: 0)
      try log.close()

      let me = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
      let (status, output) = try await run(
        fiuRun,
        [
          "-x", "-f", "", "-c", "enable name=posix/io/sync/fdatasync,failinfo=\(EIO)",
          me, "--testing-library", "swift-testing", "--filter", "fsyncEIOChildProcess",
        ],
        environment: ["SLUICE_FIU_CHILD_DIR": dir])
      let report = String(decoding: fileBytes(dir + "/child-report") ?? [], as: UTF8.self)
      #expect(status == 0, "child failed:\n\(output)")
      #expect(
        report
          == """
          opened end=3 durable=3
          appends failed=8 succeeded=0 offline=8 errno=\(EIO)
          offline durable=3
          later append offline
          close offline

          """, "child report:\n\(report)\nchild output:\n\(output)")

      let reopened = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(reopened.offlineError == nil)
      #expect(Array(try readAll(reopened).prefix(3)) == expected([values("ok", 3)]))
      try reopened.close()
    }
  }

  /// The child half of `fsyncEIOUnderFiu` (runs only in the child process).
  @Test(.enabled(if: ProcessInfo.processInfo.environment["SLUICE_FIU_CHILD_DIR"] != nil))
  func fsyncEIOChildProcess() async throws {
    let dir = ProcessInfo.processInfo.environment["SLUICE_FIU_CHILD_DIR"]!
    var report = ""
    let log = try FileLog(directory: dir, config: config { $0.flushMessages = 1 }, threadPool: pool, now: 0)
    report += "opened end=\(log.logEndOffset) durable=\(log.durableEndOffset)\n"
    let outcomes = await appendConcurrently(log, appenders: 8, count: 1).flatMap { $0 }
    let failures = outcomes.compactMap { if case .failure(let error) = $0 { error } else { nil } }
    let errnos = Set(failures.map(\.errno)).sorted().map(String.init).joined(separator: ",")
    report += "appends failed=\(failures.count) succeeded=\(outcomes.count - failures.count) "
    report += "offline=\(failures.filter { $0.code == .offline }.count) errno=\(errnos)\n"
    report +=
      log.offlineError?.code == .offline ? "offline durable=\(log.durableEndOffset)\n" : "not offline\n"
    do throws(StorageError) {
      _ = try await log.append(makeBatch(["later"]), now: 0)
      report += "later append succeeded\n"
    } catch {
      report += "later append \(error.code)\n"
    }
    do throws(StorageError) {
      try log.close()
      report += "close succeeded\n"
    } catch {
      report += "close \(error.code)\n"
    }
    writeFile(dir + "/child-report", Array(report.utf8))
  }
}
