import Foundation
import NIOCore
import SluiceStorage
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Descriptors of log files bounded by ``OpenFileCache`` whatever the number of logs, and
/// the batched open and close that make thousands of partitions cheap.
@Suite struct OpenFileCacheTests {
  /// A value bigger than a read's 16 KiB scan window, so reads hand out file regions
  /// (`LogChunk.file`) rather than bytes already in memory.
  static func big(_ tag: String) -> String { tag + String(repeating: ".", count: 20_000) }

  /// Whether a read result is a region of a file (what these tests are about).
  static func isFileRegion(_ read: LogReadResult) -> Bool {
    if case .file? = read.chunks.first { true } else { false }
  }

  /// Descriptors this process holds on files under `directory` (from /proc/self/fd).
  func openDescriptors(under directory: String) -> Int {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return names.filter { name in
      var target = [CChar](repeating: 0, count: 4096)
      let count = readlink("/proc/self/fd/" + name, &target, target.count - 1)
      guard count > 0 else { return false }
      return String(decoding: target.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        .hasPrefix(directory + "/")
    }.count
  }

  /// 300 logs, each written and read, with at most 16 descriptors open among them; then
  /// closed together (``FileLog/closeAll(_:fileSystemOf:)``) and reopened clean, intact.
  @Test func manyLogsStayUnderTheCap() async throws {
    try await withTemporaryDirectory { dir in
      let cache = OpenFileCache(capacity: 16)
      let settings = config { $0.segmentBytes = 200 }
      var logs: [FileLog] = []
      for index in 0..<300 {
        logs.append(
          try FileLog(
            directory: "\(dir)/p-\(index)", config: settings, threadPool: pool, now: 0, fileCache: cache))
      }
      #expect(openDescriptors(under: dir) <= 16)
      for round in 0..<3 {
        for (index, log) in logs.enumerated() {
          _ = try log.appendBuffered(makeBatch(["\(index)-\(round)-a", "\(index)-\(round)-b"]), now: 0)
        }
        #expect(openDescriptors(under: dir) <= 16, "round \(round)")
      }
      for (index, log) in logs.enumerated() {
        let want = (0..<3).flatMap { ["\(index)-\($0)-a", "\(index)-\($0)-b"] }
        #expect(try readAll(log).map(\.value) == want, "log \(index)")
      }
      let statistics = cache.statistics
      #expect(statistics.open <= 16 && statistics.evictions > 500, "\(statistics)")
      #expect(openDescriptors(under: dir) <= 16)

      let results = FileLog.closeAll(logs, fileSystemOf: dir)
      #expect(results.allSatisfy { $0 == nil })
      logs.removeAll()
      #expect(openDescriptors(under: dir) == 0)
      for index in 0..<300 {
        let path = "\(dir)/p-\(index)"
        #expect(fileBytes(path + "/.clean-shutdown") == Array("clean\n".utf8), "\(path)")
        #expect(storedNumber(path + "/recovery-point") == 6)
        #expect(
          !((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).contains {
            $0.hasSuffix(".tmp")
          })
      }
      let reopenedCache = OpenFileCache(capacity: 8)
      for index in stride(from: 0, to: 300, by: 37) {
        let log = try FileLog(
          directory: "\(dir)/p-\(index)", config: settings, threadPool: pool, now: 0,
          syncMarkerRemoval: false,
          fileCache: reopenedCache)
        #expect(log.logEndOffset == 6 && log.offlineError == nil)
        let want = (0..<3).flatMap { ["\(index)-\($0)-a", "\(index)-\($0)-b"] }
        #expect(try readAll(log).map(\.value) == want)
        #expect(fileBytes("\(dir)/p-\(index)/.clean-shutdown") == Array("dirty\n".utf8))
      }
    }
  }

  /// Readers and writers on many logs at once through a tiny cache: no call ever sees its
  /// descriptor closed under it (that would surface as EBADF or as another file's bytes).
  @Test func concurrentUseThroughATinyCache() async throws {
    try await withTemporaryDirectory { dir in
      let cache = OpenFileCache(capacity: 3)
      let logs = try (0..<24).map { index in
        try FileLog(
          directory: "\(dir)/p-\(index)", config: config(), threadPool: pool, now: 0, fileCache: cache)
      }
      try await withThrowingTaskGroup(of: Void.self) { group in
        for worker in 0..<6 {
          group.addTask {
            for step in 0..<200 {
              let index = (worker * 7 + step * 5) % logs.count
              _ = try logs[index].appendBuffered(makeBatch(["\(index)"]), now: 0)
              let read = try logs[(index + 3) % logs.count].read(
                from: 0, maxBytes: 1 << 16, upTo: nil, minOneBatch: true)
              for record in try records(in: try read.loadBytes()) {
                #expect(record.value == "\((index + 3) % logs.count)")
              }
            }
          }
        }
        try await group.waitForAll()
      }
      #expect(logs.reduce(0) { $0 + $1.logEndOffset } == 6 * 200)
      #expect(cache.statistics.evictions > 0)
    }
  }

  /// A read that holds a segment keeps it readable after retention deletes it, even when
  /// the cache had closed its descriptor meanwhile.
  @Test func deletedSegmentStaysReadableToAHolder() async throws {
    try await withTemporaryDirectory { dir in
      let cache = OpenFileCache(capacity: 1)
      let one = makeBatch([Self.big("first")]).readableBytes
      let log = try FileLog(
        directory: dir + "/log",
        config: config {
          $0.segmentBytes = one
          $0.retentionBytes = Int64(one)
        },
        threadPool: pool, now: 0, fileCache: cache)
      _ = try await log.append(makeBatch([Self.big("first")]), now: 0)
      _ = try await log.append(makeBatch([Self.big("second")]), now: 0)
      let held = try log.read(from: 0, maxBytes: 1 << 16, upTo: nil, minOneBatch: true)
      #expect(Self.isFileRegion(held))
      let other = try FileLog(
        directory: dir + "/other", config: config(), threadPool: pool, now: 0, fileCache: cache)
      _ = try await other.append(makeBatch(["evicts"]), now: 0)  // the one slot goes to another file
      #expect(try log.enforceRetention(now: 0) > 0)
      #expect(!FileManager.default.fileExists(atPath: dir + "/log/" + segmentName(0)))
      #expect(try records(in: try held.loadBytes()).map(\.value) == [Self.big("first")])
    }
  }

  /// A log whose descriptor the cache closed, then deleted and replaced by another of the
  /// same name (a topic deleted and created again; the new file may even get the old inode
  /// number): a holder's read fails instead of returning the new file's bytes.
  @Test func replacedFileIsNotReadThroughAnOldHandle() async throws {
    try await withTemporaryDirectory { dir in
      let cache = OpenFileCache(capacity: 1)
      let log = try FileLog(
        directory: dir + "/log", config: config(), threadPool: pool, now: 0, fileCache: cache)
      _ = try await log.append(makeBatch([Self.big("old")]), now: 0)
      let held = try log.read(from: 0, maxBytes: 1 << 16, upTo: nil, minOneBatch: true)
      #expect(Self.isFileRegion(held))
      let other = try FileLog(
        directory: dir + "/other", config: config(), threadPool: pool, now: 0, fileCache: cache)
      _ = try await other.append(makeBatch(["evicts"]), now: 0)
      try log.delete()
      let replacement = try FileLog(directory: dir + "/log", config: config(), threadPool: pool, now: 0)
      _ = try await replacement.append(makeBatch(["new"]), now: 0)
      let refused = expectStorageError(.openFailed) { try held.loadBytes() }
      #expect(refused?.message.contains("deleted") == true, "\(String(describing: refused))")
      #expect(try readAll(replacement).map(\.value) == ["new"])
      // A file replaced behind the log's back under another inode number is refused too.
      let cache2 = OpenFileCache(capacity: 1)
      let second = try FileLog(
        directory: dir + "/second", config: config(), threadPool: pool, now: 0, fileCache: cache2)
      _ = try await second.append(makeBatch([Self.big("second")]), now: 0)
      let heldSecond = try second.read(from: 0, maxBytes: 1 << 16, upTo: nil, minOneBatch: true)
      #expect(Self.isFileRegion(heldSecond))
      let keep = dir + "/second/" + segmentName(0) + ".kept"
      // Moved, not removed: the old inode stays in use, so the new file gets another.
      try FileManager.default.moveItem(atPath: dir + "/second/" + segmentName(0), toPath: keep)
      _ = FileManager.default.createFile(
        atPath: dir + "/second/" + segmentName(0), contents: Data([1, 2, 3]))
      let evict = try FileLog(
        directory: dir + "/evict", config: config(), threadPool: pool, now: 0, fileCache: cache2)
      _ = try await evict.append(makeBatch(["evicts"]), now: 0)
      expectStorageError(.openFailed) { try heldSecond.loadBytes() }
    }
  }

  /// The marker's content decides: `clean` or empty is trusted (the indexes are reused and
  /// batches not re-verified); `dirty` or anything else means a full recovery, which finds
  /// a flipped bit that a trusted open would not look at.
  @Test(arguments: ["clean\n", "", "dirty\n", "\0\0\0\0\0\0", "cle"])
  func markerContentDecidesRecovery(marker: String) async throws {
    try await withTemporaryDirectory { dir in
      let settings = config { $0.indexIntervalBytes = 1 }
      do {
        let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
        for index in 0..<4 { _ = try await log.append(makeBatch(["value-\(index)"]), now: 0) }
        try log.close()
      }
      #expect(storedNumber(dir + "/recovery-point") == 4)
      #expect(fileBytes(dir + "/recovery-point")?.count == 21)  // 20 digits and a newline
      let segment = dir + "/" + segmentName(0)
      let layout = batchPositions(segment)
      flipBit(segment, at: layout[1].position + layout[1].size - 2, bit: 3)  // a record's bytes
      writeFile(dir + "/.clean-shutdown", Array(marker.utf8))
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      let trusted = marker == "clean\n" || marker.isEmpty
      #expect((log.offlineError == nil) == trusted, "\(String(describing: log.offlineError))")
    }
  }

  /// An append whose segment cannot be reopened (no descriptors left) fails without writing
  /// anything, and the log stays online: the next append, once a descriptor is free, works.
  @Test func appendThatCannotOpenItsSegmentLeavesTheLogOnline() async throws {
    try await withTemporaryDirectory { dir in
      let cache = OpenFileCache(capacity: 1)
      let log = try FileLog(
        directory: dir + "/log", config: config(), threadPool: pool, now: 0, fileCache: cache)
      _ = try await log.append(makeBatch(["one"]), now: 0)
      try await log.flush()
      let other = try FileLog(
        directory: dir + "/other", config: config(), threadPool: pool, now: 0, fileCache: cache)
      _ = try await other.append(makeBatch(["evicts"]), now: 0)
      OpenFaultInjection.fail(pathsStartingWith: dir + "/log/", after: 0, errno: EMFILE)
      await expectStorageErrorAsync(.openFailed) { try await log.append(makeBatch(["refused"]), now: 0) }
      OpenFaultInjection.clear(pathsStartingWith: dir + "/log/")
      #expect(log.failure == nil && log.logEndOffset == 1)
      #expect(try await log.append(makeBatch(["two"]), now: 0).firstOffset == 1)
      #expect(try readAll(log).map(\.value) == ["one", "two"])
    }
  }

  /// Opening a file fails with EMFILE even after the cache gave back what it holds: the
  /// error says which limit and which setting.
  @Test func exhaustedDescriptorsNameTheLimit() async throws {
    try await withTemporaryDirectory { dir in
      // The segment files (named by offset), not the directory.
      OpenFaultInjection.fail(pathsStartingWith: dir + "/log/0", after: 0, errno: EMFILE)
      defer { OpenFaultInjection.clear(pathsStartingWith: dir + "/log/0") }
      let error = expectStorageError(.openFailed) {
        try FileLog(directory: dir + "/log", config: config(), threadPool: pool, now: 0)
      }
      let message = error?.message ?? ""
      #expect(
        message.contains("RLIMIT_NOFILE") && message.contains("sluice.log.max.open.files"), "\(message)")
    }
  }
}
