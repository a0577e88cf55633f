import Foundation
import KafkaProtocol
import NIOCore
import SluiceStorage
import Testing

@Suite struct FileLogTimeAndRetentionTests {
  /// offset(forTimestamp:) returns the first record in offset order whose timestamp is ≥ the
  /// target, also inside a batch whose timestamps are out of order; nil past the newest;
  /// maxTimestamp() names the exact record, not the end of its batch.
  @Test(arguments: [false, true])
  func offsetForTimestampAndMaxTimestamp(segmentPerBatch: Bool) async throws {
    try await withTemporaryDirectory { dir in
      let settings = config {
        if segmentPerBatch {
          $0.segmentBytes = 100
          $0.indexIntervalBytes = 1
        }
      }
      var log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(try log.offset(forTimestamp: 0) == nil)
      #expect(try log.maxTimestamp() == nil)
      _ = try await log.append(makeBatch(values("a", 3), timestamps: [1000, 1001, 1002]), now: 0)  // 0...2
      _ = try await log.append(makeBatch(values("b", 3), timestamps: [2000, 3500, 2500]), now: 0)  // 3...5
      _ = try await log.append(makeBatch(values("c", 1), timestamps: [3000]), now: 0)  // 6
      _ = try await log.append(makeBatch(values("d", 3), timestamps: [4000, 5000, 4500]), now: 0)  // 7...9
      let cases: [(Int64, Int64, Int64)?] = [
        (0, 0, 1000), (1000, 0, 1000), (1001, 1, 1001), (1003, 3, 2000), (2001, 4, 3500), (2600, 4, 3500),
        (3500, 4, 3500), (3501, 7, 4000), (4001, 8, 5000), (4600, 8, 5000), (5000, 8, 5000),
      ]
      func check(_ log: FileLog) throws {
        for case (let target, let offset, let timestamp)? in cases {
          let found = try log.offset(forTimestamp: target)
          #expect(
            found?.offset == offset && found?.timestamp == timestamp,
            "target \(target): \(String(describing: found))")
        }
        #expect(try log.offset(forTimestamp: 5001) == nil)  // in the future
        #expect(try log.offset(forTimestamp: Int64.max) == nil)
        let max = try log.maxTimestamp()
        #expect(max?.offset == 8 && max?.timestamp == 5000, "\(String(describing: max))")
      }
      try check(log)
      if segmentPerBatch { #expect(listLogFiles(dir).count == 4) }
      try log.close()
      log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      try check(log)
      // And after an unclean stop (indexes rebuilt from the log).
      let crashed = dir + "-crashed"
      try copyDirectory(dir, crashed)
      defer { try? FileManager.default.removeItem(atPath: crashed) }
      let recovered = try FileLog(directory: crashed, config: settings, threadPool: pool, now: 0)
      try check(recovered)
      try log.close()
    }
  }

  /// Many batches, several segments, a dense time index: every target agrees with a brute
  /// force answer.
  @Test func offsetForTimestampAgreesWithBruteForce() async throws {
    try await withTemporaryDirectory { dir in
      let settings = config {
        $0.segmentBytes = 8 * 1024
        $0.indexIntervalBytes = 200
      }
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      var all: [(offset: Int64, timestamp: Int64)] = []
      for index in 0..<500 {
        let base = Int64(10_000 + 10 * index)
        let timestamps = [base, base + 2, base + 1]
        let result = try await log.append(makeBatch(values("t\(index)", 3), timestamps: timestamps), now: 0)
        for (delta, timestamp) in timestamps.enumerated() {
          all.append((result.firstOffset + Int64(delta), timestamp))
        }
      }
      #expect(listLogFiles(dir).count > 3)
      for target in stride(from: Int64(9_990), through: 15_010, by: 3) {
        let want = all.first { $0.timestamp >= target }
        let got = try log.offset(forTimestamp: target)
        #expect(got?.offset == want?.offset && got?.timestamp == want?.timestamp, "target \(target)")
      }
      let max = try log.maxTimestamp()
      #expect(max?.offset == 1498 && max?.timestamp == 10_000 + 10 * 499 + 2)
      try log.close()
    }
  }

  @Test func logAppendTimeStampsBatches() async throws {
    try await withTemporaryDirectory { dir in
      let settings = config { $0.logAppendTime = true }
      var log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      let r1 = try await log.append(makeBatch(values("a", 3), timestamps: [1000, 1001, 1002]), now: 50_000)
      let r2 = try await log.append(makeBatch(values("b", 2), timestamps: [1000, 1000]), now: 60_000)
      #expect(r1.logAppendTime == 50_000 && r2.logAppendTime == 60_000)
      func check(_ log: FileLog) throws {
        let read = try log.read(from: 0, maxBytes: 1 << 20, upTo: nil, minOneBatch: true)
        let found = try batches(in: try read.loadBytes())  // CRCs checked there
        #expect(found.map(\.timestampType) == [.logAppendTime, .logAppendTime])
        #expect(found.map(\.maxTimestamp) == [50_000, 60_000])
        let stamps = try found.flatMap { try $0.records(maxDecompressedSize: 1 << 20).map(\.timestamp) }
        #expect(stamps == [50_000, 50_000, 50_000, 60_000, 60_000])
        #expect(try log.offset(forTimestamp: 1000).map { [$0.offset, $0.timestamp] } == [0, 50_000])
        #expect(try log.offset(forTimestamp: 50_000).map { [$0.offset, $0.timestamp] } == [0, 50_000])
        #expect(try log.offset(forTimestamp: 50_001).map { [$0.offset, $0.timestamp] } == [3, 60_000])
        #expect(try log.offset(forTimestamp: 60_001) == nil)
        #expect(try log.maxTimestamp().map { [$0.offset, $0.timestamp] } == [3, 60_000])
      }
      try check(log)
      try log.close()
      log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      try check(log)
      try log.close()
    }
  }

  @Test func rollsBySegmentBytes() async throws {
    try await withTemporaryDirectory { dir in
      let batch = makeBatch(prefix: "x", count: 2, valueSize: 30)
      let settings = config { $0.segmentBytes = 3 * batch.readableBytes }
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      var appended: [[String]] = []
      for index in 0..<10 {
        appended.append(
          ["y\(index)-0", "y\(index)-1"].map { $0 + String(repeating: ".", count: 30 - $0.count) })
        _ = try await log.append(makeBatch(appended.last!, timestamps: [1000, 1000]), now: 0)
      }
      // Exactly three batches fit in segment.bytes: segments start every 6 offsets.
      #expect(listLogFiles(dir) == [0, 6, 12, 18].map { segmentName($0) })
      for base: Int64 in [0, 6, 12] {
        #expect(fileSize(dir + "/" + segmentName(base)) == 3 * batch.readableBytes)
      }
      #expect(fileSize(dir + "/" + segmentName(18)) == batch.readableBytes)
      #expect(try readAll(log) == expected(appended))
      // A batch larger than segment.bytes still goes in (alone in its segment).
      let big = makeBatch(prefix: "big", count: 20, valueSize: 30)
      #expect(try await log.append(big, now: 0).firstOffset == 20)
      #expect(listLogFiles(dir).last == segmentName(20))
      try log.close()
    }
  }

  @Test func rollsBySegmentMs() async throws {
    try await withTemporaryDirectory { dir in
      let settings = config { $0.segmentMs = 1000 }
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      // The clock starts with the first append to a segment, not its creation.
      for now: Int64 in [5000, 5500, 5999, 6000, 6999, 7000, 7001] {
        _ = try await log.append(makeBatch(["at-\(now)"], timestamps: [now]), now: now)
      }
      #expect(listLogFiles(dir) == [0, 3, 5].map { segmentName($0) })
      #expect(
        try readAll(log).map(\.value)
          == ["5000", "5500", "5999", "6000", "6999", "7000", "7001"].map { "at-\($0)" })
      try log.close()
    }
  }

  @Test func retentionByTime() async throws {
    try await withTemporaryDirectory { dir in
      let one = makeBatch(["r-0000"], timestamps: [0]).readableBytes
      let settings = config {
        $0.segmentBytes = 2 * one
        $0.retentionMs = 1000
      }
      var log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      let stamps: [Int64] = [100, 200, 300, 400, 1500, 1600, 1700]
      for stamp in stamps {
        _ = try await log.append(
          makeBatch(["r-\(String(format: "%04d", stamp))"], timestamps: [stamp]), now: 0)
      }
      #expect(listLogFiles(dir) == [0, 2, 4, 6].map { segmentName($0) })
      #expect(try log.enforceRetention(now: 1000) == 0)  // nothing older than 0
      // Cutoff 450: the first two segments (newest 200, 400) go; the third (newest 1600) stays.
      #expect(try log.enforceRetention(now: 1450) == 4 * one)
      #expect(listLogFiles(dir) == [4, 6].map { segmentName($0) })
      #expect(log.logStartOffset == 4)
      #expect(try readAll(log).map(\.value) == ["r-1500", "r-1600", "r-1700"])
      // Cutoff 1650: the sealed segment goes, the active one (1700) is not expired and stays.
      #expect(try log.enforceRetention(now: 2650) == 2 * one)
      #expect(listLogFiles(dir) == [segmentName(6)])
      #expect(log.logStartOffset == 6)
      #expect(try readAll(log).map(\.value) == ["r-1700"])
      // Everything expired: the active segment goes too, the log is empty at its old end.
      #expect(try log.enforceRetention(now: 5000) == one)
      #expect(listLogFiles(dir) == [segmentName(7)])
      #expect(log.logStartOffset == 7 && log.logEndOffset == 7)
      #expect(try readAll(log).isEmpty)
      #expect(try log.read(from: 7, maxBytes: 100, upTo: nil, minOneBatch: true).chunks.isEmpty)
      #expect(try log.offset(forTimestamp: 0) == nil)
      #expect(try await log.append(makeBatch(["after"], timestamps: [5000]), now: 5000).firstOffset == 7)
      try log.close()
      log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 5000)
      #expect(log.logStartOffset == 7 && log.logEndOffset == 8)
      #expect(try readAll(log) == [Stored(offset: 7, value: "after")])
      try log.close()
    }
  }

  /// Retention counts from the newer of a segment's record timestamps and its last append:
  /// records a producer stamped 0, -1 (none) or long ago stay `retention.ms` after they were
  /// written, and go at the first check after that.
  @Test func retentionNeverDeletesBeforeRetentionAfterTheAppend() async throws {
    try await withTemporaryDirectory { dir in
      let one = makeBatch(["x-0"], timestamps: [0]).readableBytes
      let settings = config {
        $0.segmentBytes = 2 * one
        $0.retentionMs = 1000
      }
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 10_000)
      _ = try await log.append(makeBatch(["x-0"], timestamps: [0]), now: 10_000)
      _ = try await log.append(makeBatch(["x-1"], timestamps: [-1]), now: 10_000)
      _ = try await log.append(makeBatch(["x-2"], timestamps: [5_000]), now: 10_500)
      _ = try await log.append(makeBatch(["x-3"], timestamps: [-1]), now: 10_500)
      _ = try await log.append(makeBatch(["x-4"], timestamps: [10_600]), now: 10_600)
      #expect(listLogFiles(dir) == [0, 2, 4].map { segmentName($0) })
      // Kafka would delete the first two segments at once (their timestamps are 0, -1 and
      // 5000); here they are 10000 and 10500 old.
      #expect(try log.enforceRetention(now: 10_999) == 0)
      #expect(try log.enforceRetention(now: 11_000) == 0)  // exactly retention.ms: kept (Kafka's >)
      #expect(try log.enforceRetention(now: 11_001) == 2 * one)
      #expect(log.logStartOffset == 2)
      #expect(try log.enforceRetention(now: 11_500) == 0)
      #expect(try log.enforceRetention(now: 11_501) == 2 * one)
      #expect(try readAll(log).map(\.value) == ["x-4"])
      #expect(try log.enforceRetention(now: 11_600) == 0)
      #expect(try log.enforceRetention(now: 11_601) == one)
      #expect(log.logStartOffset == 5 && log.logEndOffset == 5)
      try log.close()
    }
  }

  /// A future timestamp keeps its segment until it too is `retention.ms` old (Kafka's rule;
  /// the broker bounds how far ahead a producer may stamp: message.timestamp.after.max.ms).
  @Test func aFutureTimestampCountsAsTheSegmentsAge() async throws {
    try await withTemporaryDirectory { dir in
      let log = try FileLog(
        directory: dir, config: config { $0.retentionMs = 1000 }, threadPool: pool, now: 0)
      _ = try await log.append(makeBatch(["later"], timestamps: [50_000]), now: 10_000)
      #expect(try log.enforceRetention(now: 50_900) == 0)
      #expect(try log.enforceRetention(now: 51_001) > 0)
      try log.close()
    }
  }

  /// After a restart the last append is the segment file's modification time: old-stamped
  /// records written just before the restart are not deleted by the first check after it.
  @Test func afterARestartTheFileTimeIsTheLastAppend() async throws {
    try await withTemporaryDirectory { dir in
      let settings = config { $0.retentionMs = 60_000 }
      var log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      _ = try await log.append(makeBatch(["old"], timestamps: [0]), now: 0)
      _ = try await log.append(makeBatch(["none"], timestamps: [-1]), now: 0)
      try log.close()
      let wallClock = Int64(Date().timeIntervalSince1970 * 1000)
      for clean in [true, false] {
        if !clean { try? FileManager.default.removeItem(atPath: dir + "/.clean-shutdown") }
        log = try FileLog(directory: dir, config: settings, threadPool: pool, now: wallClock)
        #expect(try log.enforceRetention(now: wallClock + 30_000) == 0)
        #expect(try readAll(log).map(\.value) == ["old", "none"])
        try log.close()
      }
      log = try FileLog(directory: dir, config: settings, threadPool: pool, now: wallClock)
      #expect(try log.enforceRetention(now: wallClock + 120_000) > 0)
      #expect(try readAll(log).isEmpty)
      try log.close()
    }
  }

  /// `cleanup.policy` without "delete": neither time nor size retention applies.
  @Test func retentionDoesNotApplyWithoutTheDeletePolicy() async throws {
    try await withTemporaryDirectory { dir in
      let one = makeBatch(["k-0"], timestamps: [0]).readableBytes
      let settings = config {
        $0.segmentBytes = one
        $0.retentionMs = 1
        $0.retentionBytes = 0
        $0.retentionApplies = false
      }
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      for index in 0..<3 { _ = try await log.append(makeBatch(["k-\(index)"], timestamps: [0]), now: 0) }
      #expect(try log.enforceRetention(now: 1_000_000) == 0)
      #expect(try readAll(log).count == 3)
      try log.close()
    }
  }

  @Test func retentionBySize() async throws {
    try await withTemporaryDirectory { dir in
      let one = makeBatch(["s-0"]).readableBytes
      var settings = config {
        $0.segmentBytes = 2 * one
        $0.retentionBytes = Int64(4 * one)
      }
      var log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      for index in 0..<7 { _ = try await log.append(makeBatch(["s-\(index)"]), now: 0) }
      #expect(listLogFiles(dir) == [0, 2, 4, 6].map { segmentName($0) })
      // 7 batches, limit 4: without the first segment 5 remain (≥ 4), so it goes; without the
      // second too only 3 would, so it stays (Kafka's rule).
      #expect(try log.enforceRetention(now: 0) == 2 * one)
      #expect(listLogFiles(dir) == [2, 4, 6].map { segmentName($0) })
      #expect(log.logStartOffset == 2)
      // Limit 0: every sealed segment goes, never the active one.
      settings.retentionBytes = 0
      log.updateConfig(settings)
      #expect(try log.enforceRetention(now: 0) == 4 * one)
      #expect(listLogFiles(dir) == [segmentName(6)])
      #expect(log.logStartOffset == 6)
      #expect(try readAll(log) == [Stored(offset: 6, value: "s-6")])
      try log.close()
      log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(log.logStartOffset == 6 && log.logEndOffset == 7)
      try log.close()
    }
  }

  @Test(arguments: [true, false])
  func deleteRecordsPersistsTheStartOffset(cleanClose: Bool) async throws {
    try await withTemporaryDirectory { dir in
      let one = makeBatch(values("d0", 2)).readableBytes
      let settings = config { $0.segmentBytes = 2 * one }
      var log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      var appended: [[String]] = []
      for index in 0..<9 {
        appended.append(values("d\(index)", 2))
        _ = try await log.append(
          makeBatch(appended.last!, timestamps: [Int64(100 * index), Int64(100 * index + 50)]), now: 0)
      }
      #expect(listLogFiles(dir) == [0, 4, 8, 12, 16].map { segmentName($0) })
      #expect(try log.deleteRecords(before: 5) == 5)
      #expect(log.logStartOffset == 5)
      #expect(listLogFiles(dir) == [4, 8, 12, 16].map { segmentName($0) })  // only whole segments below go
      #expect(try log.deleteRecords(before: 3) == 5)  // never backwards
      expectStorageError(.offsetOutOfRange) {
        try log.read(from: 4, maxBytes: 100, upTo: nil, minOneBatch: true)
      }
      let want = Array(expected(appended).dropFirst(5))
      func check(_ log: FileLog) throws {
        #expect(log.logStartOffset == 5 && log.logEndOffset == 18)
        #expect(try readAll(log) == want)
        #expect(try log.offset(forTimestamp: 0).map { [$0.offset, $0.timestamp] } == [5, 250])
      }
      try check(log)
      if cleanClose {
        try log.close()
      }
      log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      try check(log)
      // Up to the end: everything but the active segment goes; the start survives a reopen.
      #expect(try log.deleteRecords(before: 18) == 18)
      #expect(listLogFiles(dir) == [segmentName(16)])
      #expect(try readAll(log).isEmpty)
      log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(log.logStartOffset == 18 && log.logEndOffset == 18)
      #expect(try await log.append(makeBatch(["next"]), now: 0).firstOffset == 18)
      try log.close()
    }
  }
}
