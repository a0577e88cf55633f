import Foundation
import NIOCore
import SluiceStorage
import Testing

@Suite struct JournalTests {
  static func directory() -> String {
    NSTemporaryDirectory() + "sluice-journal-\(UUID().uuidString)"
  }

  static func strings(_ records: [ByteBuffer]) -> [String] { records.map { String(buffer: $0) } }

  @Test func appendedRecordsComeBackInOrder() throws {
    let path = Self.directory()
    let journal = try Journal(directory: path, name: "j")
    #expect(try journal.recover().isEmpty)
    try journal.append([ByteBuffer(string: "a"), ByteBuffer(string: "b")])
    try journal.append([ByteBuffer(string: "c")])
    #expect(journal.logSize == 3 * 9)
    let reopened = try Journal(directory: path, name: "j")
    #expect(Self.strings(try reopened.recover()) == ["a", "b", "c"])
  }

  @Test func tornTailIsCutOffAndAppendsContinueAfterTheLastGoodRecord() throws {
    let path = Self.directory()
    let journal = try Journal(directory: path, name: "j")
    _ = try journal.recover()
    try journal.append([ByteBuffer(string: "kept")])
    try journal.append([ByteBuffer(string: "damaged")])
    // Flip a byte of the last record's payload (checksum mismatch), then add a short frame.
    let handle = try #require(FileHandle(forUpdatingAtPath: journal.logPath))
    try handle.seek(toOffset: UInt64(journal.logSize - 1))
    handle.write(Data([0x00]))
    try handle.seekToEnd()
    handle.write(Data([0, 0, 0, 9, 1]))
    try handle.close()

    let reopened = try Journal(directory: path, name: "j")
    #expect(Self.strings(try reopened.recover()) == ["kept"])
    #expect(reopened.logSize == 12)
    try reopened.append([ByteBuffer(string: "next")])
    #expect(Self.strings(try Journal(directory: path, name: "j").recover()) == ["kept", "next"])
  }

  @Test func compactionReplacesEverythingWithASnapshot() throws {
    let path = Self.directory()
    let journal = try Journal(directory: path, name: "j")
    _ = try journal.recover()
    try journal.append([ByteBuffer(string: "1"), ByteBuffer(string: "2"), ByteBuffer(string: "3")])
    try journal.replace(with: [ByteBuffer(string: "state")])
    #expect(journal.logSize == 0)
    try journal.append([ByteBuffer(string: "after")])
    #expect(Self.strings(try Journal(directory: path, name: "j").recover()) == ["state", "after"])
  }

  @Test func crashBetweenSnapshotAndTruncationReplaysTheOldLog() throws {
    // The snapshot is in place but the log was not emptied: its records are replayed after
    // the snapshot's (the owner's records are idempotent, so the state is the same).
    let path = Self.directory()
    let journal = try Journal(directory: path, name: "j")
    _ = try journal.recover()
    try journal.append([ByteBuffer(string: "x=1")])
    let log = try Data(contentsOf: URL(fileURLWithPath: journal.logPath))
    try journal.replace(with: [ByteBuffer(string: "x=1")])
    try log.write(to: URL(fileURLWithPath: journal.logPath))
    #expect(Self.strings(try Journal(directory: path, name: "j").recover()) == ["x=1", "x=1"])
  }

  @Test func damagedSnapshotIsAnError() throws {
    let path = Self.directory()
    let journal = try Journal(directory: path, name: "j")
    _ = try journal.recover()
    try journal.replace(with: [ByteBuffer(string: "state")])
    let handle = try #require(FileHandle(forUpdatingAtPath: journal.snapshotPath))
    try handle.seek(toOffset: 10)
    handle.write(Data([0xEE]))
    try handle.close()
    #expect(throws: StorageError.self) { try Journal(directory: path, name: "j").recover() }
  }
}
