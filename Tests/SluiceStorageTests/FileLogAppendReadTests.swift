import Foundation
import KafkaProtocol
import NIOCore
import SluiceStorage
import SluiceTestSupport
import Testing

@Suite struct FileLogAppendReadTests {
  @Test func appendAssignsOffsetsAndReadReturnsWholeBatches() async throws {
    try await withTemporaryDirectory { dir in
      let log = try FileLog(directory: dir, config: config(), threadPool: pool, now: 0)
      let a = values("a", 1)
      let b = values("b", 3)
      let c = values("c", 2)
      let r1 = try await log.append(makeBatch(a), now: 10)
      let r2 = try await log.append(makeBatch(b), now: 10)
      // Two batches in one append: each gets its own base offset.
      var two = makeBatch(c)
      var d = makeBatch(values("d", 2))
      two.writeBuffer(&d)
      let r3 = try await log.append(two, now: 10)
      #expect(fields(r1) == [0, 0, -1, 0])
      #expect(fields(r2) == [1, 3, -1, 0])
      #expect(fields(r3) == [4, 7, -1, 0])
      #expect(log.logStartOffset == 0)
      #expect(log.logEndOffset == 8)
      #expect(try readAll(log) == expected([a, b, c, values("d", 2)]))

      // A read from inside a batch starts with that whole batch.
      let read = try log.read(from: 2, maxBytes: 1 << 20, upTo: nil, minOneBatch: true)
      let found = try batches(in: try read.loadBytes())
      #expect(found.map(\.baseOffset) == [1, 4, 6])
      #expect(found.map(\.lastOffset) == [3, 5, 7])
      #expect(read.logStartOffset == 0 && read.logEndOffset == 8)

      // Malformed input is refused and changes nothing.
      await expectStorageErrorAsync(.invalidBatch) {
        try await log.append(ByteBuffer(bytes: [1, 2, 3]), now: 10)
      }
      var partial = makeBatch(values("x", 1))
      partial.moveWriterIndex(to: partial.writerIndex - 1)
      await expectStorageErrorAsync(.invalidBatch) { try await log.append(partial, now: 10) }
      #expect(log.logEndOffset == 8)
      #expect(try readAll(log) == expected([a, b, c, values("d", 2)]))
      try log.close()
    }
  }

  @Test func maxBytesFollowsKIP74AndUpToBoundsTheRead() async throws {
    try await withTemporaryDirectory { dir in
      let log = try FileLog(directory: dir, config: config(), threadPool: pool, now: 0)
      var sizes: [Int] = []
      for index in 0..<6 {
        let batch = makeBatch(prefix: "b\(index)", count: 2, valueSize: 40)
        sizes.append(batch.readableBytes)
        _ = try await log.append(batch, now: 0)
      }
      let size = sizes[0]
      #expect(Set(sizes).count == 1)
      func bases(_ from: Int64, _ maxBytes: Int, upTo: Int64? = nil, minOne: Bool = true) throws -> [Int64] {
        let read = try log.read(from: from, maxBytes: maxBytes, upTo: upTo, minOneBatch: minOne)
        let found = try batches(in: try read.loadBytes())
        #expect(read.byteCount == found.count * size)
        return found.map(\.baseOffset)
      }
      #expect(try bases(0, 3 * size) == [0, 2, 4])
      #expect(try bases(0, 3 * size - 1) == [0, 2])
      #expect(try bases(0, 2 * size + size / 2) == [0, 2])
      #expect(try bases(3, 2 * size) == [2, 4])
      // KIP-74: the first batch is returned even when larger than maxBytes...
      #expect(try bases(0, size - 1) == [0])
      #expect(try bases(5, 1) == [4])
      #expect(try bases(0, 0) == [0])
      // ...unless the caller does not want it.
      #expect(try bases(0, size - 1, minOne: false) == [])
      #expect(try bases(0, size, minOne: false) == [0])
      // upTo: never a batch at or beyond it.
      #expect(try bases(0, 1 << 20, upTo: 6) == [0, 2, 4])
      #expect(try bases(0, 1 << 20, upTo: 5) == [0, 2, 4])  // the batch holding 4 and 5 starts below 5
      #expect(try bases(0, 1 << 20, upTo: 4) == [0, 2])
      #expect(try bases(4, 1 << 20, upTo: 4) == [])
      #expect(try bases(0, 1 << 20, upTo: 100) == [0, 2, 4, 6, 8, 10])
      #expect(try bases(0, 1 << 20, upTo: 0) == [])
      try log.close()
    }
  }

  @Test func readsAcrossARoll() async throws {
    try await withTemporaryDirectory { dir in
      let batchSize = makeBatch(prefix: "x", count: 3, valueSize: 20).readableBytes
      let log = try FileLog(
        directory: dir, config: config { $0.segmentBytes = 3 * batchSize + 10 }, threadPool: pool, now: 0)
      var appended: [[String]] = []
      for index in 0..<10 {
        let names = (0..<3).map {
          "s\(index)-\($0)" + String(repeating: ".", count: 20 - "s\(index)-\($0)".count)
        }
        appended.append(names)
        _ = try await log.append(makeBatch(names, timestamps: [1000, 1000, 1000]), now: 0)
      }
      #expect(listLogFiles(dir) == [0, 9, 18, 27].map { segmentName($0) })
      #expect(try readAll(log) == expected(appended))
      // A read starting in one segment ends at that segment's end (like Kafka); the next
      // read continues in the next segment.
      let first = try batches(
        in: try log.read(from: 7, maxBytes: 1 << 20, upTo: nil, minOneBatch: true).loadBytes())
      #expect(first.map(\.baseOffset) == [6])
      let next = try batches(
        in: try log.read(from: 9, maxBytes: 1 << 20, upTo: nil, minOneBatch: true).loadBytes())
      #expect(next.map(\.baseOffset) == [9, 12, 15])
      let last = try batches(
        in: try log.read(from: 29, maxBytes: 1 << 20, upTo: nil, minOneBatch: true).loadBytes())
      #expect(last.map(\.baseOffset) == [27])
      try log.close()
    }
  }

  @Test func outOfRangeReads() async throws {
    try await withTemporaryDirectory { dir in
      let log = try FileLog(directory: dir, config: config(), threadPool: pool, now: 0)
      // Empty log: offset 0 is the end, so reading there is fine and empty.
      #expect(try log.read(from: 0, maxBytes: 100, upTo: nil, minOneBatch: true).chunks.isEmpty)
      expectStorageError(.offsetOutOfRange) {
        try log.read(from: 1, maxBytes: 100, upTo: nil, minOneBatch: true)
      }
      for index in 0..<4 { _ = try await log.append(makeBatch(values("r\(index)", 2)), now: 0) }
      expectStorageError(.offsetOutOfRange) {
        try log.read(from: -1, maxBytes: 100, upTo: nil, minOneBatch: true)
      }
      expectStorageError(.offsetOutOfRange) {
        try log.read(from: 9, maxBytes: 100, upTo: nil, minOneBatch: true)
      }
      let atEnd = try log.read(from: 8, maxBytes: 100, upTo: nil, minOneBatch: true)
      #expect(atEnd.chunks.isEmpty && atEnd.logEndOffset == 8)
      #expect(try log.deleteRecords(before: 3) == 3)
      expectStorageError(.offsetOutOfRange) {
        try log.read(from: 2, maxBytes: 100, upTo: nil, minOneBatch: true)
      }
      let atStart = try batches(
        in: try log.read(from: 3, maxBytes: 100, upTo: nil, minOneBatch: true).loadBytes())
      #expect(atStart.first?.baseOffset == 2)
      expectStorageError(.offsetOutOfRange) { try log.deleteRecords(before: 9) }
      try log.close()
      expectStorageError(.closed) { try log.read(from: 3, maxBytes: 100, upTo: nil, minOneBatch: true) }
      await expectStorageErrorAsync(.closed) { try await log.append(makeBatch(["late"]), now: 0) }
    }
  }

  /// Thousands of batches of varying sizes with a small index interval: every offset is
  /// found (the read starts with exactly the batch holding it), live and after reopening.
  @Test func indexLookupsAfterManyAppends() async throws {
    try await withTemporaryDirectory { dir in
      let settings = config {
        $0.indexIntervalBytes = 300
        $0.segmentBytes = 64 * 1024
      }
      var log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      var ranges: [(base: Int64, last: Int64)] = []
      var rng = SplitMix64(seed: 7)
      for index in 0..<2000 {
        let count = Int.random(in: 1...5, using: &rng)
        let size = Int.random(in: 0...120, using: &rng)
        let result = try await log.append(
          makeBatch(prefix: "m\(index)", count: count, valueSize: size, timestamp: Int64(10_000 + index)),
          now: 0)
        ranges.append((result.firstOffset, result.lastOffset))
      }
      let end = log.logEndOffset
      func check(_ log: FileLog) throws {
        var batchIndex = 0
        for offset in 0..<end {
          if ranges[batchIndex].last < offset { batchIndex += 1 }
          let read = try log.read(from: offset, maxBytes: 1, upTo: nil, minOneBatch: true)
          let found = try batches(in: try read.loadBytes())
          #expect(found.count == 1)
          #expect(found.first?.baseOffset == ranges[batchIndex].base, "offset \(offset)")
          #expect(found.first?.lastOffset == ranges[batchIndex].last, "offset \(offset)")
        }
      }
      try check(log)
      let segments = listLogFiles(dir)
      #expect(segments.count > 3)
      try log.close()
      for name in listLogFiles(dir, suffix: ".index") {
        let size = fileSize(dir + "/" + name) ?? -1
        #expect(size > 0 && size % 8 == 0, "\(name): \(size) bytes")
      }
      log = try FileLog(directory: dir, config: settings, threadPool: pool, now: 0)
      #expect(log.logEndOffset == end)
      try check(log)
      try log.close()
    }
  }

  @Test func deleteRemovesTheDirectory() async throws {
    try await withTemporaryDirectory { dir in
      let path = dir + "/topic-0"
      let log = try FileLog(directory: path, config: config(), threadPool: pool, now: 0)
      _ = try await log.append(makeBatch(["x"]), now: 0)
      try log.delete()
      #expect(!FileManager.default.fileExists(atPath: path))
      await expectStorageErrorAsync(.closed) { try await log.append(makeBatch(["y"]), now: 0) }
    }
  }
}
