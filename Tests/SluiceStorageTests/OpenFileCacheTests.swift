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
        #expect(String(decoding: fileBytes(path + "/recovery-point") ?? [], as: UTF8.self) == "6\n")
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
      let one = makeBatch(["first"]).readableBytes
      let log = try FileLog(
        directory: dir + "/log",
        config: config {
          $0.segmentBytes = one
          $0.retentionBytes = Int64(one)
        },
        threadPool: pool, now: 0, fileCache: cache)
      _ = try await log.append(makeBatch(["first"]), now: 0)
      _ = try await log.append(makeBatch(["second"]), now: 0)
      let held = try log.read(from: 0, maxBytes: 1 << 16, upTo: nil, minOneBatch: true)
      let other = try FileLog(
        directory: dir + "/other", config: config(), threadPool: pool, now: 0, fileCache: cache)
      _ = try await other.append(makeBatch(["evicts"]), now: 0)  // the one slot goes to another file
      #expect(try log.enforceRetention(now: 0) > 0)
      #expect(!FileManager.default.fileExists(atPath: dir + "/log/" + segmentName(0)))
      #expect(try records(in: try held.loadBytes()).map(\.value) == ["first"])
    }
  }

  /// Opening a file fails with EMFILE even after the cache gave back what it holds: the
  /// error says which limit and which setting.
  @Test func exhaustedDescriptorsNameTheLimit() async throws {
    try await withTemporaryDirectory { dir in
      // The segment files (named by offset), not the directory.
      OpenFaultInjection.fail(pathsStartingWith: dir + "/log/0", after: 0, errno: EMFILE)
      defer { OpenFaultInjection.clear(pathsStartingWith: dir + "/log/0") }
      do {
        _ = try FileLog(directory: dir + "/log", config: config(), threadPool: pool, now: 0)
        Issue.record("opened")
      } catch let error as StorageError {
        #expect(
          error.message.contains("RLIMIT_NOFILE") && error.message.contains("sluice.log.max.open.files"))
      }
    }
  }
}
