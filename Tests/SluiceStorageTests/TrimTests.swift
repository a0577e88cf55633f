import KafkaProtocol
import NIOCore
import SluiceStorage
import Testing

/// `trim(toBytes:)` (the drop-oldest overflow policy) and `retainedBytes(from:)`.
@Suite struct TrimTests {
  /// 40 batches of 5 records × 200 bytes, in segments of ~4 KiB.
  static func filledLog(_ directory: String) async throws -> (FileLog, batchSize: Int) {
    var config = LogConfig()
    config.segmentBytes = 4096
    config.indexIntervalBytes = 1024
    let log = try FileLog(directory: directory, config: config, threadPool: pool, now: 0)
    let size = makeBatch(prefix: "b0", count: 5, valueSize: 200).readableBytes
    for index in 0..<40 {
      _ = try await log.append(makeBatch(prefix: "b\(index)", count: 5, valueSize: 200), now: 0)
    }
    return (log, size)
  }

  @Test func fileLogTrimKeepsAtMostTheBoundInWholeBatchesAndDeletesOldSegments() async throws {
    try await withTemporaryDirectory { directory in
      let (log, batchSize) = try await Self.filledLog(directory)
      let segmentsBefore = listLogFiles(directory).count
      #expect(log.retainedBytes(from: 0) == Int64(40 * batchSize))
      let bound = Int64(10 * batchSize + batchSize / 2)
      let trimmed = try log.trim(toBytes: bound)
      // 10 whole batches fit under the bound; 30 went, with their records and bytes.
      #expect(trimmed.records == 150)
      #expect(trimmed.bytes == Int64(30 * batchSize))
      #expect(log.logStartOffset == 150)
      #expect(log.retainedBytes(from: log.logStartOffset) <= bound + 1024)
      #expect(try readAll(log).map(\.offset) == Array(150..<200))
      #expect(listLogFiles(directory).count < segmentsBefore)
      // Under the bound already: nothing more.
      #expect(try log.trim(toBytes: bound) == TrimResult())
      // The new start survives a crash (no clean close) once a flush has run.
      try await log.flush()
      let reopened = try FileLog(directory: directory, config: log.config, threadPool: pool, now: 0)
      #expect(reopened.logStartOffset == 150)
      #expect(try readAll(reopened).map(\.offset) == Array(150..<200))
    }
  }

  @Test func fileLogTrimNeverDropsTheNewestBatch() async throws {
    try await withTemporaryDirectory { directory in
      let (log, batchSize) = try await Self.filledLog(directory)
      let trimmed = try log.trim(toBytes: 10)
      #expect(trimmed.records == 195)
      #expect(trimmed.bytes == Int64(39 * batchSize))
      #expect(log.logStartOffset == 195)
      #expect(
        try readAll(log).map(\.value)
          == (0..<5).map { "b39-\($0)" + String(repeating: ".", count: 200 - "b39-\($0)".count) })
      // Appends continue after it.
      let next = try await log.append(makeBatch(["after"]), now: 0)
      #expect(next.firstOffset == 200)
      try log.close()
      let reopened = try FileLog(directory: directory, config: log.config, threadPool: pool, now: 0)
      #expect(reopened.logStartOffset == 195)
      #expect(reopened.logEndOffset == 201)
    }
  }

  @Test func fileLogTrimCountsFromTheCurrentLogStart() async throws {
    try await withTemporaryDirectory { directory in
      let (log, batchSize) = try await Self.filledLog(directory)
      // DeleteRecords to the middle of batch 2: batch 2 still counts, from its start.
      _ = try log.deleteRecords(before: 12)
      #expect(log.retainedBytes(from: 12) == Int64(38 * batchSize))
      let trimmed = try log.trim(toBytes: Int64(37 * batchSize))
      #expect(log.logStartOffset == 15)
      #expect(trimmed.records == 3)
      #expect(trimmed.bytes == Int64(batchSize))
    }
  }

  @Test func aTrimmedStartSurvivesACleanCloseAndNeverGoesBackBehindDeleteRecords() async throws {
    try await withTemporaryDirectory { directory in
      let (log, batchSize) = try await Self.filledLog(directory)
      try log.trim(toBytes: Int64(30 * batchSize))  // start 50, not yet written
      #expect(log.logStartOffset == 50)
      _ = try log.deleteRecords(before: 120)  // written at once
      try await log.flush()  // a flush job must not write 50 over 120
      try log.close()
      var reopened = try FileLog(directory: directory, config: log.config, threadPool: pool, now: 0)
      #expect(reopened.logStartOffset == 120)
      // Trim alone, then a clean close: the new start is written by close.
      try reopened.trim(toBytes: Int64(10 * batchSize))
      #expect(reopened.logStartOffset == 150)
      try reopened.close()
      reopened = try FileLog(directory: directory, config: log.config, threadPool: pool, now: 0)
      #expect(reopened.logStartOffset == 150)
    }
  }

  @Test func trimNeverPassesTheDurableEndOfAnFsyncEveryAppendLog() async throws {
    try await withTemporaryDirectory { directory in
      var config = LogConfig()
      config.flushMessages = 1
      let log = try FileLog(directory: directory, config: config, threadPool: pool, now: 0)
      _ = try await log.append(makeBatch(prefix: "a", count: 5, valueSize: 100), now: 0)
      #expect(log.durableEndOffset == 5)
      // Appended but not yet fsynced: above the high watermark, so it cannot be the start.
      let pending = try log.appendBuffered(makeBatch(prefix: "b", count: 5, valueSize: 100), now: 0)
      let trimmed = try log.trim(toBytes: 0)
      #expect(log.logStartOffset <= log.durableEndOffset)
      #expect(trimmed.records <= 5)
      try await log.awaitDurable(pending)
      try log.trim(toBytes: 0)
      #expect(log.logStartOffset == 5)
    }
  }

  @Test func memoryLogTrim() async throws {
    let log = MemoryLog(config: LogConfig())
    let size = makeBatch(prefix: "m0", count: 2, valueSize: 100).readableBytes
    for index in 0..<10 {
      _ = try await log.append(makeBatch(prefix: "m\(index)", count: 2, valueSize: 100), now: 0)
    }
    #expect(log.retainedBytes(from: 0) == Int64(10 * size))
    #expect(log.retainedBytes(from: 15) == Int64(3 * size))
    let trimmed = try log.trim(toBytes: Int64(4 * size))
    #expect(trimmed == TrimResult(records: 12, bytes: Int64(6 * size)))
    #expect(log.logStartOffset == 12)
    #expect(try log.trim(toBytes: 0) == TrimResult(records: 6, bytes: Int64(3 * size)))
    #expect(log.logStartOffset == 18)
    #expect(try readAll(log).map(\.offset) == [18, 19])
  }
}
