import Foundation
import KafkaProtocol
import NIOCore
import SluiceStorage
import SluiceTestSupport
import Testing

/// Batch positions of a segment file, read straight from the bytes.
func batchPositions(_ path: String) -> [(position: Int, size: Int)] {
  let bytes = fileBytes(path) ?? []
  var result: [(Int, Int)] = []
  var position = 0
  while position + 12 <= bytes.count {
    let length = bytes[position + 8..<position + 12].reduce(0) { $0 << 8 | Int($1) }
    result.append((position, length + 12))
    position += length + 12
  }
  return result
}

/// Byte positions of a batch that a bit flip is always detectable in: everything but the
/// partition leader epoch (bytes 12..<16), which the v2 format leaves outside the CRC.
func detectablePositions(_ batch: (position: Int, size: Int)) -> [Int] {
  (0..<batch.size).filter { !(12..<16).contains($0) }.map { batch.position + $0 }
}

@Suite struct FileLogRecoveryTests {
  static let batchValueSize = 20

  func batchValues(_ index: Int) -> [String] {
    (0..<3).map { "v\(index)-\($0)" }.map {
      $0 + String(repeating: ".", count: Self.batchValueSize - $0.count)
    }
  }

  @Test func cleanCloseAndReopenFindsEverything() async throws {
    try await withTemporaryDirectory { dir in
      let settings = config { $0.segmentBytes = 1000 }
      var log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      var appended: [[String]] = []
      for index in 0..<40 {
        appended.append(batchValues(index))
        _ = try await log.append(
          makeBatch(appended.last!, timestamps: [Int64(index), Int64(index), Int64(index)]), now: 0)
      }
      try await log.flush()
      #expect(log.durableEndOffset == 120)
      try log.close()
      #expect(FileManager.default.fileExists(atPath: dir + "/.clean-shutdown"))
      log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      // An open log's marker says it is not closed (rewritten in place, not removed).
      #expect(fileBytes(dir + "/.clean-shutdown") == Array("dirty\n".utf8))
      #expect(log.logStartOffset == 0 && log.logEndOffset == 120 && log.durableEndOffset == 120)
      #expect(try readAll(log) == expected(appended))
      #expect(try log.maxTimestamp().map { [$0.offset, $0.timestamp] } == [117, 39])
      #expect(try await log.append(makeBatch(["after"]), now: 0).firstOffset == 120)
      try log.close()
    }
  }

  /// A process crash (the log dropped without close, or its files copied while open) loses
  /// nothing the kernel had: every appended batch is found.
  @Test(arguments: [false, true])
  func reopenWithoutCloseRecoversEverything(fsyncEveryAppend: Bool) async throws {
    try await withTemporaryDirectory { dir in
      let settings = config {
        $0.segmentBytes = 1000
        if fsyncEveryAppend { $0.flushMessages = 1 }
      }
      var appended: [[String]] = []
      let copy = dir + "/copy"
      let data = dir + "/data"
      do {
        let log = try FileLog(directory: data, config: settings, threadPool: pool, now: 0)
        for index in 0..<25 {
          appended.append(batchValues(index))
          _ = try await log.append(makeBatch(appended.last!), now: 0)
        }
        try copyDirectory(data, copy)  // a snapshot of the open log
        for index in 25..<30 {
          appended.append(batchValues(index))
          _ = try await log.append(makeBatch(appended.last!), now: 0)
        }
        if fsyncEveryAppend { #expect(log.durableEndOffset == 90) }
        // Dropped here without close().
      }
      #expect(!FileManager.default.fileExists(atPath: data + "/.clean-shutdown"))
      let log = try FileLog(directory: data, config: settings, threadPool: pool, now: 0)
      #expect(log.offlineError == nil)
      #expect(log.logEndOffset == 90)
      #expect(try readAll(log) == expected(appended))
      #expect(try await log.append(makeBatch(["next"]), now: 0).firstOffset == 90)
      try log.close()
      let snapshot = try FileLog(directory: copy, config: settings, threadPool: pool, now: 0)
      #expect(snapshot.logEndOffset == 75)
      #expect(try readAll(snapshot) == expected(Array(appended.prefix(25))))
      try snapshot.close()
    }
  }

  /// The last batch of the last segment cut at every byte: earlier batches all survive, the
  /// torn one is gone (the file ends where it began), appends continue at its offset. With
  /// the recovery point far behind, and with it exactly at the torn batch.
  @Test(arguments: [false, true])
  func tornTailAtEveryBytePosition(recoveryPointAtTornBatch: Bool) async throws {
    try await withTemporaryDirectory { dir in
      let size = makeBatch(batchValues(0)).readableBytes
      let settings = config { $0.segmentBytes = 3 * size }
      let original = dir + "/original"
      var appended: [[String]] = []
      do {
        let log = try FileLog(directory: original, config: settings, threadPool: pool, now: 0)
        for index in 0..<5 {
          appended.append(batchValues(index))
          _ = try await log.append(makeBatch(appended.last!), now: 0)
        }
        if recoveryPointAtTornBatch { try await log.flush() }
        appended.append(batchValues(5))
        _ = try await log.append(makeBatch(appended.last!), now: 0)
      }
      #expect(listLogFiles(original) == [segmentName(0), segmentName(9)])
      // A new log writes no recovery point until a flush moves it (a missing file means 0).
      #expect(storedNumber(original + "/recovery-point") == (recoveryPointAtTornBatch ? 15 : nil))
      let lastSegment = segmentName(9)
      #expect(fileSize(original + "/" + lastSegment) == 3 * size)
      let survivors = expected(Array(appended.prefix(5)))
      let work = dir + "/work"
      for cut in (2 * size)..<(3 * size) {
        await Task.yield()  // a long synchronous loop: let other suites' tasks run
        try copyDirectory(original, work)
        truncateFile(work + "/" + lastSegment, to: cut)
        let log = try FileLog(directory: work, config: settings, threadPool: pool, now: 0)
        #expect(log.offlineError == nil, "cut \(cut)")
        #expect(log.logEndOffset == 15, "cut \(cut)")
        #expect(fileSize(work + "/" + lastSegment) == 2 * size, "cut \(cut)")
        #expect(try readAll(log) == survivors, "cut \(cut)")
        let next = try await log.append(makeBatch(["after-\(cut)"]), now: 0)
        #expect(next.firstOffset == 15, "cut \(cut)")
        #expect(try readAll(log) == survivors + [Stored(offset: 15, value: "after-\(cut)")], "cut \(cut)")
        try log.close()
      }
    }
  }

  /// Random bit flips past the recovery point: the log is truncated just before the batch
  /// that holds the flip, whatever field it hits.
  @Test func bitFlipsInTheTailAreTruncated() async throws {
    try await withTemporaryDirectory { dir in
      let original = dir + "/original"
      var appended: [[String]] = []
      do {
        let log = try FileLog(directory: original, config: config(), threadPool: pool, now: 0)
        for index in 0..<8 {
          appended.append(batchValues(index))
          _ = try await log.append(makeBatch(appended.last!), now: 0)
        }
      }
      let segment = segmentName(0)
      let layout = batchPositions(original + "/" + segment)
      #expect(layout.count == 8)
      var rng = SplitMix64(seed: 42)
      var trials: [(batch: Int, position: Int, bit: Int)] = []
      // Every header field of the last batch, then random positions in random batches.
      for field in [0, 7, 8, 11, 16, 17, 20, 21, 23, 27, 35, 43, 51, 53, 57, 60, 61] {
        trials.append((7, layout[7].position + field, Int.random(in: 0..<8, using: &rng)))
      }
      for _ in 0..<40 {
        let batch = Int.random(in: 0..<8, using: &rng)
        trials.append(
          (
            batch, detectablePositions(layout[batch]).randomElement(using: &rng)!,
            Int.random(in: 0..<8, using: &rng)
          ))
      }
      let work = dir + "/work"
      for trial in trials {
        await Task.yield()  // a long synchronous loop: let other suites' tasks run
        try copyDirectory(original, work)
        flipBit(work + "/" + segment, at: trial.position, bit: trial.bit)
        let log = try FileLog(directory: work, config: config(), threadPool: pool, now: 0)
        let label = "flip at \(trial.position) bit \(trial.bit) (batch \(trial.batch))"
        #expect(log.offlineError == nil, "\(label)")
        #expect(log.logEndOffset == Int64(3 * trial.batch), "\(label)")
        #expect(fileSize(work + "/" + segment) == layout[trial.batch].position, "\(label)")
        #expect(try readAll(log) == expected(Array(appended.prefix(trial.batch))), "\(label)")
        #expect(
          try await log.append(makeBatch(["x"]), now: 0).firstOffset == Int64(3 * trial.batch), "\(label)")
        try log.close()
      }
    }
  }

  /// Random bit flips in a sealed segment below the recovery point: that data was durable,
  /// so the log opens offline naming the file, and nothing at all is truncated. The batches
  /// before the damaged one stay readable.
  @Test func bitFlipsBelowTheRecoveryPointTakeTheLogOffline() async throws {
    try await withTemporaryDirectory { dir in
      let size = makeBatch(batchValues(0)).readableBytes
      let settings = config { $0.segmentBytes = 3 * size }
      let original = dir + "/original"
      do {
        let log = try FileLog(directory: original, config: settings, threadPool: pool, now: 0)
        for index in 0..<4 { _ = try await log.append(makeBatch(batchValues(index)), now: 0) }
        try await log.flush()  // syncs the sealed segment and checkpoints the recovery point
        _ = try await log.append(makeBatch(batchValues(4)), now: 0)
      }
      #expect(storedNumber(original + "/recovery-point") == 12)
      let sealed = segmentName(0)
      let layout = batchPositions(original + "/" + sealed)
      #expect(layout.count == 3)
      var rng = SplitMix64(seed: 9)
      let work = dir + "/work"
      for _ in 0..<25 {
        await Task.yield()  // a long synchronous loop: let other suites' tasks run
        let batch = layout.randomElement(using: &rng)!
        let position = detectablePositions(batch).randomElement(using: &rng)!
        let bit = Int.random(in: 0..<8, using: &rng)
        try copyDirectory(original, work)
        flipBit(work + "/" + sealed, at: position, bit: bit)
        let names = try FileManager.default.contentsOfDirectory(atPath: work).filter { !$0.hasPrefix(".") }
        let sizes = Dictionary(
          uniqueKeysWithValues: names.filter { $0.hasSuffix(".log") }.map { ($0, fileSize(work + "/" + $0)) })
        let log = try FileLog(directory: work, config: settings, threadPool: pool, now: 0)
        let label = "flip at \(position) bit \(bit)"
        let error = log.offlineError
        #expect(error?.code == .offline, "\(label)")
        #expect(error?.message.contains(sealed) == true, "\(label): \(String(describing: error))")
        for (name, size) in sizes {
          #expect(fileSize(work + "/" + name) == size, "\(label): \(name) changed")
        }
        await expectStorageErrorAsync(.offline) { try await log.append(makeBatch(["x"]), now: 0) }
        // The intact batches before the damaged one are served read-only; nothing from it on.
        let damagedBatch = layout.firstIndex { $0.position == batch.position }!
        #expect(log.readOnlyEnd == Int64(3 * damagedBatch), "\(label)")
        if damagedBatch == 0 {
          expectStorageError(.offline) { try log.read(from: 0, maxBytes: 100, upTo: nil, minOneBatch: true) }
        } else {
          #expect(try readAll(log) == expected((0..<damagedBatch).map(batchValues)), "\(label)")
        }
        expectStorageError(.offline) { try log.close() }
        for (name, size) in sizes {
          #expect(fileSize(work + "/" + name) == size, "\(label): \(name) changed")
        }
      }
    }
  }

  /// Index files deleted or damaged, after a clean or an unclean stop: rebuilt byte for
  /// byte, and lookups give the same answers.
  @Test(arguments: ["delete", "oddSize", "randomTimeIndex", "zeroIndex", "deleteUnclean", "truncatedIndex"])
  func damagedIndexesAreRebuilt(damage: String) async throws {
    try await withTemporaryDirectory { dir in
      let settings = config {
        $0.segmentBytes = 4096
        $0.indexIntervalBytes = 128
      }
      let original = dir + "/original"
      let crashed = dir + "/crashed"
      var ranges: [(base: Int64, last: Int64)] = []
      do {
        let log = try FileLog(directory: original, config: settings, threadPool: pool, now: 0)
        for index in 0..<200 {
          let result = try await log.append(
            makeBatch(
              prefix: "i\(index)", count: 1 + index % 3, valueSize: index % 50, timestamp: Int64(1000 + index)
            ),
            now: 0)
          ranges.append((result.firstOffset, result.lastOffset))
        }
        try copyDirectory(original, crashed)  // as an unclean stop leaves it
        try log.close()
      }
      // The reference: the index files a clean close writes.
      let indexes = listLogFiles(original, suffix: ".index")
      #expect(indexes.count > 5)
      let pristine = Dictionary(uniqueKeysWithValues: indexes.map { ($0, fileBytes(original + "/" + $0)!) })
      for name in indexes { #expect(pristine[name]!.count > 0 && pristine[name]!.count % 8 == 0, "\(name)") }
      let work = dir + "/work"
      try copyDirectory(damage == "deleteUnclean" ? crashed : original, work)
      var rng = SplitMix64(seed: 3)
      for name in indexes {
        let index = work + "/" + name
        let time = work + "/" + name.replacingOccurrences(of: ".index", with: ".timeindex")
        switch damage {
        case "delete", "deleteUnclean":
          // After an unclean stop the active segment's index files may not exist yet: they
          // are created when first written (every 512 entries, at a roll or a close).
          for path in [index, time] where FileManager.default.fileExists(atPath: path) {
            try FileManager.default.removeItem(atPath: path)
          }
        case "oddSize":
          writeFile(index, (fileBytes(index) ?? []) + [1, 2, 3])
        case "randomTimeIndex":
          writeFile(time, (0..<(fileSize(time) ?? 0)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        case "zeroIndex":
          writeFile(index, [UInt8](repeating: 0, count: fileSize(index) ?? 0))
        case "truncatedIndex":
          truncateFile(index, to: max(0, (fileSize(index) ?? 0) - 16))
        default:
          Issue.record("unknown damage \(damage)")
        }
      }
      let log = try FileLog(directory: work, config: settings, threadPool: pool, now: 0)
      #expect(log.offlineError == nil)
      #expect(log.logEndOffset == ranges.last!.last + 1)
      for (batch, range) in ranges.enumerated() {
        for offset in range.base...range.last {
          let found = try batches(
            in: try log.read(from: offset, maxBytes: 1, upTo: nil, minOneBatch: true).loadBytes())
          #expect(found.map(\.baseOffset) == [range.base], "offset \(offset)")
        }
        let byTime = try log.offset(forTimestamp: Int64(1000 + batch))
        #expect(
          byTime?.offset == range.base && byTime?.timestamp == Int64(1000 + batch),
          "timestamp \(1000 + batch)")
      }
      #expect(try log.maxTimestamp().map { [$0.offset, $0.timestamp] } == [ranges.last!.base, 1199])
      for name in indexes {
        #expect(fileBytes(work + "/" + name) == pristine[name], "\(name) not rebuilt as it was")
        let time = fileSize(work + "/" + name.replacingOccurrences(of: ".index", with: ".timeindex")) ?? -1
        #expect(time > 0 && time % 12 == 0, "\(name): time index of \(time) bytes")
      }
      try log.close()
    }
  }

  /// A crash in the middle of a roll: the new segment file exists, empty, and the recovery
  /// point is older. Recovery keeps every batch and continues in the new segment; if the old
  /// segment's tail is torn (or short), the new segment goes and appends continue where the
  /// old one ends.
  @Test(arguments: ["intact", "tornTail", "shortTail"])
  func crashDuringRoll(tail: String) async throws {
    try await withTemporaryDirectory { dir in
      let settings = config()
      var appended: [[String]] = []
      do {
        let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
        for index in 0..<5 {
          appended.append(batchValues(index))
          _ = try await log.append(makeBatch(appended.last!), now: 0)
        }
      }
      // What the crashed roll left: `<log end>.log` without its indexes, an old recovery point.
      writeFile(dir + "/" + segmentName(15), [])
      writeFile(dir + "/recovery-point", Array("3\n".utf8))
      let layout = batchPositions(dir + "/" + segmentName(0))
      switch tail {
      case "tornTail": truncateFile(dir + "/" + segmentName(0), to: layout[4].position + 30)
      case "shortTail": truncateFile(dir + "/" + segmentName(0), to: layout[4].position)
      default: break
      }
      let log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(log.offlineError == nil)
      if tail == "intact" {
        #expect(log.logEndOffset == 15)
        #expect(try readAll(log) == expected(appended))
        #expect(try await log.append(makeBatch(["next"]), now: 0).firstOffset == 15)
        #expect(listLogFiles(dir) == [segmentName(0), segmentName(15)])
        #expect(fileSize(dir + "/" + segmentName(15)) ?? 0 > 0)
      } else {
        #expect(log.logEndOffset == 12)
        #expect(try readAll(log) == expected(Array(appended.prefix(4))))
        #expect(listLogFiles(dir) == [segmentName(0)])
        #expect(try await log.append(makeBatch(["next"]), now: 0).firstOffset == 12)
        #expect(try readAll(log) == expected(Array(appended.prefix(4))) + [Stored(offset: 12, value: "next")])
      }
      try log.close()
    }
  }
}
