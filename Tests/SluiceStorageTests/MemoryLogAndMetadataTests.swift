import Foundation
import KafkaProtocol
import NIOCore
import SluiceStorage
import Testing

@Suite struct MemoryLogTests {
  @Test func appendReadAndLookups() async throws {
    let log = MemoryLog(config: config())
    #expect(try log.maxTimestamp() == nil)
    let r1 = try await log.append(makeBatch(values("a", 3), timestamps: [1000, 1001, 1002]), now: 0)
    let r2 = try await log.append(makeBatch(values("b", 3), timestamps: [2000, 3500, 2500]), now: 0)
    let r3 = try await log.append(makeBatch(values("c", 1), timestamps: [3000]), now: 0)
    #expect(
      [r1.firstOffset, r1.lastOffset, r2.firstOffset, r2.lastOffset, r3.firstOffset] == [0, 2, 3, 5, 6])
    #expect(log.logEndOffset == 7 && log.durableEndOffset == 7 && log.logStartOffset == 0)
    #expect(try readAll(log) == expected([values("a", 3), values("b", 3), values("c", 1)]))
    let size = makeBatch(values("a", 3), timestamps: [1000, 1001, 1002]).readableBytes
    let sizeB = makeBatch(values("b", 3), timestamps: [2000, 3500, 2500]).readableBytes
    func bases(_ from: Int64, _ maxBytes: Int, upTo: Int64? = nil, minOne: Bool = true) throws -> [Int64] {
      try batches(
        in: try log.read(from: from, maxBytes: maxBytes, upTo: upTo, minOneBatch: minOne).loadBytes()
      )
      .map(\.baseOffset)
    }
    #expect(try bases(4, 1 << 20) == [3, 6])
    #expect(try bases(0, 1) == [0])
    #expect(try bases(0, 1, minOne: false) == [])
    #expect(try bases(0, size + sizeB) == [0, 3])
    #expect(try bases(0, size + sizeB - 1) == [0])
    #expect(try bases(0, 1 << 20, upTo: 6) == [0, 3])
    #expect(try bases(7, 1 << 20) == [])
    expectStorageError(.offsetOutOfRange) { try log.read(from: 8, maxBytes: 1, upTo: nil, minOneBatch: true) }
    expectStorageError(.offsetOutOfRange) {
      try log.read(from: -1, maxBytes: 1, upTo: nil, minOneBatch: true)
    }
    #expect(try log.offset(forTimestamp: 1001).map { [$0.offset, $0.timestamp] } == [1, 1001])
    #expect(try log.offset(forTimestamp: 2001).map { [$0.offset, $0.timestamp] } == [4, 3500])
    #expect(try log.offset(forTimestamp: 3501) == nil)
    #expect(try log.maxTimestamp().map { [$0.offset, $0.timestamp] } == [4, 3500])
    #expect(try log.deleteRecords(before: 4) == 4)
    expectStorageError(.offsetOutOfRange) { try log.read(from: 3, maxBytes: 1, upTo: nil, minOneBatch: true) }
    #expect(
      try readAll(log) == Array(expected([values("a", 3), values("b", 3), values("c", 1)]).dropFirst(4)))
    await expectStorageErrorAsync(.invalidBatch) { try await log.append(ByteBuffer(bytes: [0, 1]), now: 0) }
    try log.close()
    await expectStorageErrorAsync(.closed) { try await log.append(makeBatch(["x"]), now: 0) }
  }

  @Test func logAppendTime() async throws {
    let log = MemoryLog(config: config { $0.logAppendTime = true })
    let result = try await log.append(makeBatch(values("t", 2), timestamps: [5, 6]), now: 9000)
    #expect(result.logAppendTime == 9000)
    let found = try batches(
      in: try log.read(from: 0, maxBytes: 1 << 20, upTo: nil, minOneBatch: true).loadBytes())
    #expect(found.map(\.timestampType) == [.logAppendTime])
    #expect(found.map(\.maxTimestamp) == [9000])
    #expect(try log.offset(forTimestamp: 10).map { [$0.offset, $0.timestamp] } == [0, 9000])
    #expect(try log.maxTimestamp().map { [$0.offset, $0.timestamp] } == [0, 9000])
  }

  @Test func boundedByRetentionBytesAndTime() async throws {
    let size = makeBatch(["m-0"]).readableBytes
    let log = MemoryLog(config: config { $0.retentionBytes = Int64(3 * size) })
    for index in 0..<10 {
      _ = try await log.append(makeBatch(["m-\(index)"], timestamps: [Int64(index * 100)]), now: 0)
    }
    #expect(log.logStartOffset == 7 && log.logEndOffset == 10)
    #expect(try readAll(log).map(\.value) == ["m-7", "m-8", "m-9"])
    expectStorageError(.offsetOutOfRange) { try log.read(from: 6, maxBytes: 1, upTo: nil, minOneBatch: true) }
    // Without retention.bytes the memory default bounds it.
    let bounded = MemoryLog(config: config { $0.memoryDefaultMaxBytes = Int64(2 * size) })
    for index in 0..<5 { _ = try await bounded.append(makeBatch(["m-\(index)"]), now: 0) }
    #expect(try readAll(bounded).map(\.value) == ["m-3", "m-4"])
    // Time: batches whose newest record is older than retention.ms go, all of them if need be.
    log.updateConfig(config { $0.retentionMs = 100 })
    #expect(try log.enforceRetention(now: 950) == 2 * size)  // cutoff 850: 700 and 800 go
    #expect(try readAll(log).map(\.value) == ["m-9"])
    #expect(try log.enforceRetention(now: 5000) == size)
    #expect(log.logStartOffset == 10 && log.logEndOffset == 10)
    #expect(try await log.append(makeBatch(["m-10"]), now: 0).firstOffset == 10)
  }

  /// As for disk logs: a batch goes no earlier than `retention.ms` after its append,
  /// whatever timestamps its producer wrote; a compact-only topic keeps it.
  @Test func retentionCountsFromTheAppend() async throws {
    let log = MemoryLog(config: config { $0.retentionMs = 1000 })
    _ = try await log.append(makeBatch(["zero"], timestamps: [0]), now: 10_000)
    _ = try await log.append(makeBatch(["none"], timestamps: [-1]), now: 10_500)
    #expect(try log.enforceRetention(now: 11_000) == 0)
    #expect(try log.enforceRetention(now: 11_001) > 0)
    #expect(try readAll(log).map(\.value) == ["none"])
    log.updateConfig(
      config {
        $0.retentionMs = 1000
        $0.retentionApplies = false
      })
    #expect(try log.enforceRetention(now: 100_000) == 0)
    #expect(try readAll(log).map(\.value) == ["none"])
  }

  @Test func dataIsGoneAfterRestart() async throws {
    var log = MemoryLog(config: config())
    _ = try await log.append(makeBatch(values("gone", 5)), now: 0)
    try await log.flush()
    try log.close()
    log = MemoryLog(config: config())
    #expect(log.logEndOffset == 0 && log.logStartOffset == 0)
    #expect(try readAll(log).isEmpty)
    #expect(try log.read(from: 0, maxBytes: 100, upTo: nil, minOneBatch: true).chunks.isEmpty)
  }
}

@Suite struct MetadataStoreTests {
  @Test func updatesPersistAcrossReopen() async throws {
    try await withTemporaryDirectory { dir in
      let store = try MetadataStore(directory: dir + "/meta")
      let clusterId = store.snapshot.clusterId
      #expect(!clusterId.isEmpty)
      let id = KafkaUUID.random()
      try store.update { document in
        document.topics["orders"] = TopicRecord(
          name: "orders", id: id, partitions: 3, configs: ["retention.ms": "1000"])
        document.sections["offsets"] = ["g/orders/0": "42"]
      }
      let reopened = try MetadataStore(directory: dir + "/meta")
      #expect(reopened.snapshot == store.snapshot)
      #expect(reopened.snapshot.clusterId == clusterId)
      #expect(reopened.snapshot.topics["orders"]?.topicId == id)
      #expect(reopened.snapshot.topics["orders"]?.partitions == 3)
      #expect(reopened.snapshot.sections["offsets"] == ["g/orders/0": "42"])
      // A failed change leaves memory and disk as they were.
      #expect(throws: StorageError.self) {
        try reopened.update { (document: inout MetadataStore.Document) throws(StorageError) in
          document.topics.removeAll()
          throw StorageError(.io, "refused")
        }
      }
      #expect(reopened.snapshot.topics.count == 1)
      #expect(try MetadataStore(directory: dir + "/meta").snapshot.topics.count == 1)
    }
  }

  /// A crash during a write leaves `meta.json.tmp` (complete or not): it is never read, and
  /// the next write replaces it.
  @Test(arguments: [false, true])
  func leftoverTemporaryFileIsIgnored(tmpIsValidJSON: Bool) async throws {
    try await withTemporaryDirectory { dir in
      let store = try MetadataStore(directory: dir)
      try store.update { $0.sections["a"] = ["k": "committed"] }
      let before = store.snapshot
      if tmpIsValidJSON {
        var newer = before
        newer.sections["a"] = ["k": "never committed"]
        writeFile(dir + "/meta.json.tmp", Array(try JSONEncoder().encode(newer)))
      } else {
        writeFile(dir + "/meta.json.tmp", Array("{\"version\": 1, \"clus".utf8))
      }
      let reopened = try MetadataStore(directory: dir)
      #expect(reopened.snapshot == before)
      try reopened.update { $0.sections["a"] = ["k": "second"] }
      #expect(!FileManager.default.fileExists(atPath: dir + "/meta.json.tmp"))
      #expect(try MetadataStore(directory: dir).snapshot.sections["a"] == ["k": "second"])
    }
  }

  @Test func corruptDocumentIsReported() async throws {
    try await withTemporaryDirectory { dir in
      writeFile(dir + "/meta.json", Array("not json".utf8))
      expectStorageError(.corruptMetadata) { try MetadataStore(directory: dir) }
    }
  }
}
