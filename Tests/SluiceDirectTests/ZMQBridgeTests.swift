import KafkaProtocol
import Logging
import NIOCore
import NIOPosix
import SluiceBroker
import SluiceTestSupport
import Testing

@testable import SluiceDirect
@testable import SluiceServer

/// The bridges of `sluice serve` against an in-process broker (kcat and pyzmq through a real
/// `sluice serve` are in compat/test_direct.py).
@Suite struct ZMQBridgeTests {
  func eventually(_ condition: () async -> Bool, within: Duration = .seconds(15)) async -> Bool {
    let deadline = ContinuousClock.now + within
    while !(await condition()) {
      if ContinuousClock.now > deadline { return false }
      try? await Task.sleep(for: .milliseconds(10))
    }
    return true
  }

  func records(_ broker: Broker, _ topic: String, _ partition: Int32) async throws -> [Record] {
    let result = await broker.read(
      [PartitionRead(topic: topic, partition: partition, offset: 0, maxBytes: 1 << 20)],
      options: ReadOptions(maxBytes: 1 << 20, minBytes: 0, maxWaitMs: 0))
    var records: [Record] = []
    _ = try RecordWalk.walk(try result[0].records.load(), from: 0, maxDecompressedSize: 1 << 20) {
      records.append($0)
      return true
    }
    return records
  }

  @Test func pushedMessagesAreAppendedAndAppendedRecordsArePublished() async throws {
    let (broker, _) = try Broker.makeForTest()
    let pullPort = try LoopbackSocket.freePort()
    let pubPort = try LoopbackSocket.freePort()
    try await broker.createTopic(
      name: "events", partitions: 2,
      configs: [
        "sluice.zmq.pull": "tcp://127.0.0.1:\(pullPort)", "sluice.zmq.pub": "tcp://127.0.0.1:\(pubPort)",
      ])
    let bridges = ZMQBridges(
      broker: broker, group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
    bridges.reconcile()
    let sub = ZMQSocket(.sub)
    sub.subscribe("events")
    try sub.connect("tcp://127.0.0.1:\(pubPort)")
    let pubBridge = bridges.running.items.first { $0.kind == "pub" }!
    #expect(
      await eventually {
        guard let socket = pubBridge.socket.withLock({ $0 }) else { return false }
        return await socket.waitForPeers(1, subscribed: true, timeout: .milliseconds(50))
      })

    let push = ZMQSocket(.push)
    try push.connect("tcp://127.0.0.1:\(pullPort)")
    try await push.send("unkeyed")
    try await push.send("user-7", "keyed")
    try await push.send("a", "b", "c")  // three frames: refused, counted
    let pullBridge = bridges.running.items.first { $0.kind == "pull" }!
    #expect(await eventually { pullBridge.records.load(ordering: .relaxed) == 2 })
    #expect(await eventually { pullBridge.malformed.load(ordering: .relaxed) == 1 })

    // The keyed record is where a Kafka producer would put it.
    let keyedPartition = kafkaKeyPartition(ByteBuffer(string: "user-7"), count: 2)
    let keyed = try await records(broker, "events", keyedPartition)
    #expect(
      keyed.contains { $0.key == ByteBuffer(string: "user-7") && $0.value == ByteBuffer(string: "keyed") })
    let all = try await records(broker, "events", 0) + records(broker, "events", 1)
    #expect(all.count == 2)
    #expect(all.contains { $0.key == nil && $0.value == ByteBuffer(string: "unkeyed") })

    // Both appended records come back out of the PUB bridge as [topic, key, value].
    var received: [[String]] = []
    for _ in 0..<2 { received.append(try await sub.receive().strings) }
    #expect(Set(received) == [["events", "", "unkeyed"], ["events", "user-7", "keyed"]])

    // Removing the config stops the bridge and frees the port.
    try await broker.topics.setConfigs(
      "events", ["sluice.zmq.pub": "tcp://127.0.0.1:\(pubPort)"], validateOnly: false)
    bridges.reconcile()
    #expect(await eventually { bridges.running.items.count == 1 })
    let reuse = ZMQSocket(.pull)
    #expect(
      await eventually {
        (try? await reuse.bind("tcp://127.0.0.1:\(pullPort)")) != nil
      })
    for socket in [sub, push, reuse] { await socket.close(linger: .zero) }
    await bridges.stopAll()
    await broker.shutdown()
  }

  @Test func aBridgeWhoseAddressIsTakenRetriesWithoutFailingTheBroker() async throws {
    let (broker, _) = try Broker.makeForTest()
    let squatter = ZMQSocket(.pull)
    let port = try await squatter.bind("tcp://127.0.0.1:*").port
    try await broker.createTopic(
      name: "late", partitions: 1, configs: ["sluice.zmq.pull": "tcp://127.0.0.1:\(port)"])
    let bridges = ZMQBridges(
      broker: broker, group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
    bridges.reconcile()
    let bridge = bridges.running.items.first!
    #expect(await eventually { bridge.lastError.withLock { $0 }?.contains("cannot bind") == true })
    await squatter.close()
    // Retried every 5 s: bound once the address is free.
    #expect(await eventually({ bridge.socket.withLock { $0 } != nil }, within: .seconds(20)))
    let push = ZMQSocket(.push)
    try push.connect("tcp://127.0.0.1:\(port)")
    try await push.send("finally")
    #expect(await eventually { bridge.records.load(ordering: .relaxed) == 1 })
    await push.close()
    await bridges.stopAll()
    await broker.shutdown()
  }
}
