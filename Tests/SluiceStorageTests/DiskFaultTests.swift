import Foundation
import KafkaProtocol
import NIOCore
import SluiceStorage
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Mounts a tmpfs of `size` at `path` for the duration of `body` (needs root on Linux).
func withTmpfs<R>(at path: String, size: String, _ body: () async throws -> R) async throws -> R? {
  #if os(Linux)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    guard mount("tmpfs", path, "tmpfs", 0, "size=\(size)") == 0 else {
      Issue.record("mount -t tmpfs -o size=\(size) tmpfs \(path) failed: \(String(cString: strerror(errno)))")
      return nil
    }
    defer { umount2(path, Int32(MNT_DETACH)) }
    return try await body()
  #else
    Issue.record("tmpfs fault injection needs Linux")
    return nil
  #endif
}

@Suite struct DiskFaultTests {
  /// A full disk: the append fails with `.noSpace` and leaves no partial batch; the log stays
  /// online and readable; once space is freed appends succeed again; a reopen finds it all.
  @Test(.enabled(if: isRootOnLinux, "mounts a 1 MiB tmpfs: needs root on Linux"))
  func diskFullOnTinyTmpfs() async throws {
    try await withTemporaryDirectory { dir in
      let mountPoint = dir + "/tmpfs"
      _ = try await withTmpfs(at: mountPoint, size: "1m") {
        // Ballast to free later.
        writeFile(mountPoint + "/ballast", [UInt8](repeating: 7, count: 256 * 1024))
        #expect(fileSize(mountPoint + "/ballast") == 256 * 1024)
        let logDir = mountPoint + "/topic-0"
        let batchValues = { (index: Int) in
          (0..<16).map { "n\(index)-\($0)" }.map { $0 + String(repeating: "=", count: 1000 - $0.count) }
        }
        let size = makeBatch(batchValues(0)).readableBytes
        var log = try FileLog(directory: logDir, config: config(), threadPool: pool, now: 0)
        var appended: [[String]] = []
        var failure: StorageError?
        for index in 0..<200 {
          do {
            _ = try await log.append(makeBatch(batchValues(index)), now: 0)
            appended.append(batchValues(index))
          } catch let error as StorageError {
            failure = error
            break
          }
        }
        #expect(failure?.code == .noSpace, "\(String(describing: failure))")
        #expect(failure?.errno == ENOSPC)
        #expect(appended.count > 10)
        #expect(log.offlineError == nil)
        let end = Int64(16 * appended.count)
        #expect(log.logEndOffset == end)
        // The partial write was taken back: the file holds whole batches only.
        #expect(fileSize(logDir + "/" + segmentName(0)) == appended.count * size)
        #expect(try readAll(log) == expected(appended))
        await expectStorageErrorAsync(.noSpace) { try await log.append(makeBatch(batchValues(999)), now: 0) }
        #expect(log.logEndOffset == end && log.offlineError == nil)

        try FileManager.default.removeItem(atPath: mountPoint + "/ballast")
        let again = try await log.append(makeBatch(batchValues(1000)), now: 0)
        #expect(again.firstOffset == end)
        appended.append(batchValues(1000))
        try await log.flush()
        // Crash and reopen.
        log = try FileLog(directory: logDir, config: config(), threadPool: pool, now: 0)
        #expect(log.offlineError == nil)
        #expect(log.logEndOffset == end + 16)
        #expect(try readAll(log) == expected(appended))
        try log.close()
      }
    }
  }
}
