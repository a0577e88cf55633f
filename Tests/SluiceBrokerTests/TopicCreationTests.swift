import Foundation
import KafkaProtocol
import NIOCore
import SluiceBroker
import SluiceStorage
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// CreateTopics and CreatePartitions are all or nothing on disk: a failure part-way (a full
/// disk, no descriptors left) leaves the data directory as it was, and a crash part-way is
/// completed at the next start.
@Suite struct TopicCreationTests {
  /// Every path under `directory` with each regular file's bytes, for before/after
  /// comparisons (the data-directory lock's file included: it holds this process's id).
  static func snapshot(_ directory: String) -> [String: [UInt8]] {
    var result: [String: [UInt8]] = [:]
    let enumerator = FileManager.default.enumerator(atPath: directory)
    while let path = enumerator?.nextObject() as? String {
      var isDirectory: ObjCBool = false
      _ = FileManager.default.fileExists(atPath: directory + "/" + path, isDirectory: &isDirectory)
      result[path] =
        isDirectory.boolValue
        ? [] : Array(FileManager.default.contents(atPath: directory + "/" + path) ?? Data())
    }
    return result
  }

  @Test(arguments: [ENOSPC, EMFILE])
  func failedCreateLeavesTheDataDirectoryAsItWas(errno injected: Int32) async throws {
    let (broker, directory) = try BrokerTests.makeBroker()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try await broker.createTopic(name: "kept", partitions: 3, configs: [:])
    _ = await BrokerTests.produce(broker, topic: "kept", records: try BrokerTests.batch(["a"]))
    let before = Self.snapshot(directory)

    // The 120th file or directory made under the data directory fails.
    OpenFaultInjection.fail(pathsStartingWith: directory + "/big-", after: 120, errno: injected)
    await #expect(throws: TopicError.self) {
      try await broker.createTopic(name: "big", partitions: 100, configs: [:])
    }
    OpenFaultInjection.clear(pathsStartingWith: directory + "/big-")
    #expect(broker.topic("big") == nil)
    #expect(Self.snapshot(directory) == before)

    // Growing a topic: the same.
    OpenFaultInjection.fail(pathsStartingWith: directory + "/kept-", after: 30, errno: injected)
    await #expect(throws: TopicError.self) {
      try await broker.topics.createPartitions("kept", count: 60, validateOnly: false)
    }
    OpenFaultInjection.clear(pathsStartingWith: directory + "/kept-")
    #expect(broker.topic("kept")?.partitions.count == 3)
    #expect(Self.snapshot(directory) == before)

    // Both succeed once the disk is back, and a restart finds them.
    try await broker.createTopic(name: "big", partitions: 100, configs: [:])
    try await broker.topics.createPartitions("kept", count: 60, validateOnly: false)
    await broker.shutdown()
    var config = BrokerConfig()
    config.dataDirectory = directory
    let reopened = try Broker(config: config)
    #expect(reopened.topic("big")?.partitions.count == 100)
    #expect(reopened.topic("kept")?.partitions.count == 60)
    #expect(reopened.topic("kept")?.partition(0)?.log.logEndOffset == 1)
    await reopened.shutdown()
  }

  /// What a crash after the metadata lists a new topic, before all its partition
  /// directories exist, leaves (made here by removing directories after a clean stop): the
  /// next start creates the missing, empty ones.
  @Test func missingPartitionDirectoriesAreCreatedAtStart() async throws {
    let (broker, directory) = try BrokerTests.makeBroker()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try await broker.createTopic(name: "t", partitions: 20, configs: [:])
    await broker.shutdown()
    for index in 10..<20 { try FileManager.default.removeItem(atPath: "\(directory)/t-\(index)") }
    var config = BrokerConfig()
    config.dataDirectory = directory
    let reopened = try Broker(config: config)
    #expect(reopened.topic("t")?.partitions.count == 20)
    for index in 0..<20 { #expect(FileManager.default.fileExists(atPath: "\(directory)/t-\(index)")) }
    let reply = await BrokerTests.produce(
      reopened, topic: "t", partition: 19, records: try BrokerTests.batch(["x"]))
    #expect(reply?.errorCode == 0)
    await reopened.shutdown()
  }

  /// Deleting a topic moves its partition directories aside before removing them; what a
  /// crash during the removal leaves (hidden `.deleting-` directories) goes at the next start.
  @Test func deletionLeavesNothingAndACrashedOneIsSweptAtStart() async throws {
    let (broker, directory) = try BrokerTests.makeBroker()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try await broker.createTopic(name: "gone", partitions: 4, configs: [:])
    _ = await BrokerTests.produce(broker, topic: "gone", records: try BrokerTests.batch(["a"]))
    #expect(try await broker.deleteTopic("gone"))
    let left = try FileManager.default.contentsOfDirectory(atPath: directory)
    #expect(!left.contains { $0.hasPrefix("gone-") || $0.hasPrefix(".deleting-") }, "\(left)")
    await broker.shutdown()

    // As a crash half-way through removing a moved-aside partition leaves it.
    let crashed = directory + "/.deleting-old-0-1f2e3d"
    try FileManager.default.createDirectory(atPath: crashed, withIntermediateDirectories: true)
    _ = FileManager.default.createFile(
      atPath: crashed + "/00000000000000000000.log", contents: Data([1, 2, 3]))
    var config = BrokerConfig()
    config.dataDirectory = directory
    let reopened = try Broker(config: config)
    #expect(!FileManager.default.fileExists(atPath: crashed))
    await reopened.shutdown()
  }
}
