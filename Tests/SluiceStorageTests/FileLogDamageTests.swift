import Foundation
import KafkaProtocol
import NIOCore
import SluiceStorage
import Testing

/// Damage below the recovery point (the disk lost data that had been acknowledged): the log
/// serves what comes before it read-only.
@Suite struct FileLogDamageTests {
  /// Seven batches of three records in segments of three batches (bases 0, 9, 18), each
  /// batch's records stamped 1000 + its index; all of it flushed, then a crash (no close, so
  /// the next open verifies every batch).
  static func makeFlushedLog(_ directory: String) async throws -> (settings: LogConfig, batches: [[String]]) {
    let values = (0..<7).map { index in (0..<3).map { "b\(index)-\($0)" } }
    let size = makeBatch(values[0]).readableBytes
    let settings = config { $0.segmentBytes = 3 * size }
    let log = try FileLog(directory: directory, config: settings, threadPool: pool, now: 0)
    for (index, batch) in values.enumerated() {
      _ = try await log.append(
        makeBatch(batch, timestamps: Array(repeating: Int64(1000 + index), count: 3)), now: 0)
    }
    try await log.flush()
    #expect(storedNumber(directory + "/recovery-point") == 21)
    #expect(listLogFiles(directory) == [segmentName(0), segmentName(9), segmentName(18)])
    return (settings, values)
  }

  /// Sizes of every file in a directory, to check that nothing was changed.
  static func sizes(_ directory: String) -> [String: Int] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return Dictionary(uniqueKeysWithValues: names.map { ($0, fileSize(directory + "/" + $0) ?? -1) })
  }

  @Test func damageBelowTheRecoveryPointServesTheIntactPrefixReadOnly() async throws {
    try await withTemporaryDirectory { dir in
      let (settings, batches) = try await Self.makeFlushedLog(dir)
      // A bit flipped in the record data of the second batch of segment 9 (offsets 12-14).
      let damaged = dir + "/" + segmentName(9)
      let layout = batchPositions(damaged)
      flipBit(damaged, at: layout[1].position + layout[1].size - 5, bit: 3)
      let before = Self.sizes(dir).filter { $0.key.hasSuffix(".log") }

      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      let failure = try #require(log.failure)
      #expect(failure.code == .offline)
      #expect(
        failure.message.contains(segmentName(9)) && failure.message.contains("position \(layout[1].position)")
      )
      #expect(log.readOnlyEnd == 12 && log.logEndOffset == 12 && log.logStartOffset == 0)

      // Reads below the damage work, across the segment boundary.
      #expect(try readAll(log) == expected(Array(batches.prefix(4))))
      let last = try records(
        in: try log.read(from: 11, maxBytes: 1 << 20, upTo: nil, minOneBatch: true).loadBytes())
      #expect(last.map(\.offset) == [9, 10, 11])
      // At and past it, they fail with a clear error.
      for offset: Int64 in [12, 14, 20] {
        let error = expectStorageError(.offline) {
          try log.read(from: offset, maxBytes: 1 << 20, upTo: nil, minOneBatch: true)
        }
        #expect(error?.message.contains("not readable") == true, "\(String(describing: error))")
        #expect(error?.message.contains(segmentName(9)) == true, "\(String(describing: error))")
      }
      // Timestamps and sizes answer from the intact records.
      #expect(try log.offset(forTimestamp: 1002).map { [$0.offset, $0.timestamp] } == [6, 1002])
      #expect(try log.offset(forTimestamp: 1004) == nil)
      #expect(try log.maxTimestamp().map { [$0.offset, $0.timestamp] } == [9, 1003])
      let intactBytes = Int64(fileSize(dir + "/" + segmentName(0))! + layout[0].size)
      #expect(log.retainedBytes(from: 0) == intactBytes)

      // Appends, and anything else that would change the log, are refused, naming the damage.
      let refused = await expectStorageErrorAsync(.offline) { try await log.append(makeBatch(["x"]), now: 0) }
      #expect(refused?.message.contains(segmentName(9)) == true)
      expectStorageError(.offline) { try log.appendBuffered(makeBatch(["x"]), now: 0) }
      expectStorageError(.offline) { try log.deleteRecords(before: 3) }
      expectStorageError(.offline) { try log.trim(toBytes: 10) }
      expectStorageError(.offline) { try log.enforceRetention(now: .max) }
      await expectStorageErrorAsync(.offline) { try await log.flush() }
      #expect(Self.sizes(dir).filter { $0.key.hasSuffix(".log") } == before, "nothing truncated")
      expectStorageError(.offline) { try log.close() }
      #expect(log.readOnlyEnd == nil)
      #expect(!FileManager.default.fileExists(atPath: dir + "/.clean-shutdown"))

      // It opens the same way again: nothing was lost to the first open.
      let again = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(again.readOnlyEnd == 12)
      #expect(try readAll(again) == expected(Array(batches.prefix(4))))
    }
  }

  /// A gap between segments below the recovery point (a lost segment tail) serves the
  /// segments before the gap.
  @Test func aGapBelowTheRecoveryPointServesWhatComesBeforeIt() async throws {
    try await withTemporaryDirectory { dir in
      let (settings, batches) = try await Self.makeFlushedLog(dir)
      let layout = batchPositions(dir + "/" + segmentName(9))
      truncateFile(dir + "/" + segmentName(9), to: layout[1].position)
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(log.failure?.message.contains(segmentName(18)) == true, "\(String(describing: log.failure))")
      #expect(log.readOnlyEnd == 12)
      #expect(try readAll(log) == expected(Array(batches.prefix(4))))
      await expectStorageErrorAsync(.offline) { try await log.append(makeBatch(["x"]), now: 0) }
    }
  }

  /// The first batch damaged: nothing to serve, every read fails.
  @Test func damageInTheFirstBatchLeavesNothingToRead() async throws {
    try await withTemporaryDirectory { dir in
      let (settings, _) = try await Self.makeFlushedLog(dir)
      flipBit(dir + "/" + segmentName(0), at: 30, bit: 0)
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(log.readOnlyEnd == 0 && log.logEndOffset == 0)
      expectStorageError(.offline) { try log.read(from: 0, maxBytes: 100, upTo: nil, minOneBatch: true) }
      #expect(try log.maxTimestamp() == nil)
    }
  }

  /// An fsync failure at run time takes the log offline altogether: it is not read-only.
  @Test func anFsyncFailureIsNotReadOnly() async throws {
    try await withTemporaryDirectory { dir in
      let log = try FileLog(directory: dir, config: config(), threadPool: pool, now: 0)
      _ = try await log.append(makeBatch(["a"]), now: 0)
      SyncFaultInjection.fail(under: dir, errno: EIO)
      defer { SyncFaultInjection.clear(under: dir) }
      await expectStorageErrorAsync(.offline) { try await log.flush() }
      #expect(log.readOnlyEnd == nil)
      expectStorageError(.offline) { try log.read(from: 0, maxBytes: 100, upTo: nil, minOneBatch: true) }
    }
  }

  // MARK: Verify and repair

  /// Every file's bytes, to check that verify changes nothing.
  static func contents(_ directory: String) -> [String: [UInt8]] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return Dictionary(uniqueKeysWithValues: names.map { ($0, fileBytes(directory + "/" + $0) ?? []) })
  }

  @Test func verifyFindsAFlippedBitBelowTheRecoveryPointAndChangesNothing() async throws {
    try await withTemporaryDirectory { dir in
      _ = try await Self.makeFlushedLog(dir)
      let healthy = try FileLog.verify(directory: dir)
      #expect(healthy.damage == nil && !healthy.isCorrupt)
      #expect(healthy.segments == 3 && healthy.batches == 7)
      #expect([healthy.startOffset, healthy.intactEnd, healthy.recoveryPoint] == [0, 21, 21])

      let damaged = dir + "/" + segmentName(9)
      let layout = batchPositions(damaged)
      flipBit(damaged, at: layout[1].position + layout[1].size - 5, bit: 3)
      let before = Self.contents(dir)
      let found = try FileLog.verify(directory: dir)
      #expect(Self.contents(dir) == before, "verify changed the directory")
      let damage = try #require(found.damage)
      #expect(damage.kind == .corruptBatch && damage.file == damaged && damage.position == layout[1].position)
      #expect(damage.offset == 12 && damage.belowRecoveryPoint && found.isCorrupt)
      #expect(damage.reason.contains("CRC"), "\(damage.reason)")
      #expect(found.segments == 2 && found.batches == 4)
      #expect(found.intactEnd == 12 && found.recoveryPoint == 21)
      // What verify reports is what an open finds.
      let log = try FileLog(directory: dir, config: LogConfig(), threadPool: pool, now: 0)
      #expect(log.readOnlyEnd == found.intactEnd)
    }
  }

  @Test func repairTruncatesAfterTheLastGoodBatchAndTheLogReopensHealthy() async throws {
    try await withTemporaryDirectory { dir in
      let (settings, batches) = try await Self.makeFlushedLog(dir)
      let damaged = dir + "/" + segmentName(9)
      let layout = batchPositions(damaged)
      flipBit(damaged, at: layout[1].position + 20, bit: 6)
      // Opened once (read-only) and dropped, as a broker that started on it would.
      #expect(try FileLog(directory: dir, config: settings, threadPool: pool, now: 0).readOnlyEnd == 12)

      let before = Self.contents(dir)
      let plan = try #require(try FileLog.planRepair(directory: dir))
      #expect(Self.contents(dir) == before, "planning changed the directory")
      #expect(plan.truncatedFile == damaged && plan.truncatedAt == layout[1].position && plan.newEnd == 12)
      // Segment 18 is the active one: its index files are first written at a close or a
      // roll (or after 512 entries), so there are none to remove.
      let removed = [segmentName(9, ".index"), segmentName(9, ".timeindex"), segmentName(18, ".log")]
      #expect(Set(plan.removedFiles) == Set(removed.map { dir + "/" + $0 }))
      let segment18 = fileSize(dir + "/" + segmentName(18))!
      #expect(plan.droppedBytes == layout[1].size + layout[2].size + segment18)

      #expect(try FileLog.repair(directory: dir) == plan)
      #expect(listLogFiles(dir) == [segmentName(0), segmentName(9)])
      #expect(fileSize(damaged) == layout[1].position)
      #expect(storedNumber(dir + "/recovery-point") == 12)
      #expect(try FileLog.verify(directory: dir).damage == nil)
      #expect(try FileLog.repair(directory: dir) == nil, "nothing left to repair")

      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(log.failure == nil && log.readOnlyEnd == nil)
      #expect(log.logEndOffset == 12 && log.durableEndOffset == 12)
      #expect(try readAll(log) == expected(Array(batches.prefix(4))))
      #expect(try await log.append(makeBatch(["after-repair"]), now: 0).firstOffset == 12)
      try log.close()
      let reopened = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(try readAll(reopened) == expected(Array(batches.prefix(4)) + [["after-repair"]]))
      try reopened.close()
    }
  }

  @Test func repairOfAGapRemovesTheSegmentsFromIt() async throws {
    try await withTemporaryDirectory { dir in
      let (settings, batches) = try await Self.makeFlushedLog(dir)
      truncateFile(dir + "/" + segmentName(9), to: batchPositions(dir + "/" + segmentName(9))[1].position)
      let found = try FileLog.verify(directory: dir)
      #expect(found.damage?.kind == .segmentGap && found.damage?.file == dir + "/" + segmentName(18))
      #expect(found.isCorrupt && found.intactEnd == 12)
      let plan = try #require(try FileLog.repair(directory: dir))
      #expect(plan.truncatedFile == nil && plan.newEnd == 12)
      #expect(listLogFiles(dir) == [segmentName(0), segmentName(9)])
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(log.failure == nil && log.logEndOffset == 12)
      #expect(try readAll(log) == expected(Array(batches.prefix(4))))
      try log.close()
    }
  }

  /// A torn tail past the recovery point (an unclean stop) is reported, but it is not
  /// corruption: the next open truncates it by itself.
  @Test func aTornTailPastTheRecoveryPointIsNotCorruption() async throws {
    try await withTemporaryDirectory { dir in
      let (settings, _) = try await Self.makeFlushedLog(dir)
      do {
        let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
        _ = try await log.append(makeBatch(["unflushed"]), now: 0)
      }
      let last = dir + "/" + segmentName(18)  // the unflushed batch is its second
      truncateFile(last, to: fileSize(last)! - 3)
      let found = try FileLog.verify(directory: dir)
      #expect(found.damage?.kind == .corruptBatch && found.damage?.belowRecoveryPoint == false)
      #expect(!found.isCorrupt && found.intactEnd == 21)
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(log.failure == nil && log.logEndOffset == 21)
    }
  }

  /// An unreadable recovery-point file stops an open; verify reports it and repair rewrites it.
  @Test func anUnreadableRecoveryPointIsReportedAndRepaired() async throws {
    try await withTemporaryDirectory { dir in
      let (settings, batches) = try await Self.makeFlushedLog(dir)
      writeFile(dir + "/recovery-point", Array("garbage".utf8))
      #expect(throws: StorageError.self) {
        try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      }
      let found = try FileLog.verify(directory: dir)
      #expect(found.damage?.kind == .metadata && found.damage?.file == dir + "/recovery-point")
      #expect(found.isCorrupt && found.intactEnd == 21)
      #expect(try FileLog.repair(directory: dir)?.newEnd == 21)
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(log.failure == nil && log.logEndOffset == 21)
      #expect(try readAll(log) == expected(batches))
      try log.close()
    }
  }

  @Test func partitionDirectoriesOfADataDirectory() async throws {
    try await withTemporaryDirectory { dir in
      for name in ["orders-0", "my-topic-12", "group-offsets", "trailing-", "x-1a", "notes", ".hidden-1"] {
        try FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: false)
      }
      writeFile(dir + "/meta.json", Array("{}".utf8))
      writeFile(dir + "/file-3", [])
      #expect(try FileLog.partitionDirectories(in: dir) == [dir + "/my-topic-12", dir + "/orders-0"])
    }
  }
}
