import Foundation
import SluiceStorage
import Testing

#if canImport(Glibc)
  import Glibc
#endif

@Suite struct DataDirectoryLockTests {
  static let childDirectoryVariable = "SLUICE_LOCK_CHILD_DIR"

  func lockFileText(_ directory: String) -> String {
    String(decoding: fileBytes(directory + "/.lock") ?? [], as: UTF8.self)
  }

  @Test func aSecondLockFailsNamingTheDirectoryAndTheHolderUntilTheFirstIsReleased() async throws {
    try await withTemporaryDirectory { dir in
      let data = dir + "/data"
      let first = try DataDirectoryLock(directory: data)
      #expect(lockFileText(data) == "\(getpid())\n")
      let error = expectStorageError(.locked) { try DataDirectoryLock(directory: data) }
      let message = error?.message ?? ""
      #expect(message.contains(data) && message.contains("pid \(getpid())"), "\(message)")
      first.release()
      first.release()  // idempotent
      #expect(lockFileText(data).isEmpty, "a released lock names nobody")
      let second = try DataDirectoryLock(directory: data)
      #expect(lockFileText(data) == "\(getpid())\n")
      withExtendedLifetime(second) {}
    }
  }

  @Test func aLockIsReleasedWhenItsOwnerGoes() async throws {
    try await withTemporaryDirectory { dir in
      do { _ = try DataDirectoryLock(directory: dir) }
      let again = try DataDirectoryLock(directory: dir)
      withExtendedLifetime(again) {}
    }
  }

  /// A lock file left behind with the PID of a process long gone does not block: only a
  /// living holder's flock does.
  @Test func aLeftoverLockFileWithAStalePidDoesNotBlock() async throws {
    try await withTemporaryDirectory { dir in
      writeFile(dir + "/.lock", Array("999999\n".utf8))
      let lock = try DataDirectoryLock(directory: dir)
      #expect(lockFileText(dir) == "\(getpid())\n")
      withExtendedLifetime(lock) {}
    }
  }

  /// Another process holds the lock: this one is refused, naming that process; once it is
  /// killed (SIGKILL: no chance to clean up), the kernel has dropped its lock and this one
  /// takes it. The other process is this test binary running `lockHolderChildProcess`.
  @Test(.enabled(if: ProcessInfo.processInfo.environment[Self.childDirectoryVariable] == nil))
  func aKilledHolderDoesNotBlockARestart() async throws {
    try await withTemporaryDirectory { dir in
      let child = Process()
      child.executableURL = URL(
        fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
      child.arguments = ["--testing-library", "swift-testing", "--filter", "lockHolderChildProcess"]
      child.environment = ProcessInfo.processInfo.environment.merging([Self.childDirectoryVariable: dir]) {
        $1
      }
      child.standardOutput = FileHandle.nullDevice
      child.standardError = FileHandle.nullDevice
      try child.run()
      let pid = child.processIdentifier
      defer { if child.isRunning { kill(pid, SIGKILL) } }
      #expect(
        await eventually(timeout: .seconds(60)) { lockFileText(dir) == "\(pid)\n" }, "child never locked")

      let error = expectStorageError(.locked) { try DataDirectoryLock(directory: dir) }
      #expect(error?.message.contains("pid \(pid)") == true, "\(String(describing: error))")

      kill(pid, SIGKILL)
      #expect(await eventually { !child.isRunning }, "child did not die")
      #expect(lockFileText(dir) == "\(pid)\n", "the dead holder's PID is still in the file")
      let lock = try DataDirectoryLock(directory: dir)
      #expect(lockFileText(dir) == "\(getpid())\n")
      withExtendedLifetime(lock) {}
    }
  }

  /// The child half of `aKilledHolderDoesNotBlockARestart` (runs only in the child
  /// process): takes the lock and waits to be killed.
  @Test(.enabled(if: ProcessInfo.processInfo.environment[Self.childDirectoryVariable] != nil))
  func lockHolderChildProcess() async throws {
    let lock = try DataDirectoryLock(
      directory: ProcessInfo.processInfo.environment[Self.childDirectoryVariable]!)
    try await Task.sleep(for: .seconds(120))
    withExtendedLifetime(lock) {}
  }
}
