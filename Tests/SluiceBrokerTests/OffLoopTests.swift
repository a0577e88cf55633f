import Foundation
import KafkaProtocol
import NIOCore
import NIOPosix
import SluiceBroker
import SluiceKafka
import SluiceTestSupport
import Testing

/// Every operation that writes the metadata file, fsyncs, or deletes files — topic creation,
/// growth, reconfiguration and deletion, dynamic broker configs, quotas, producer ids,
/// DeleteRecords, drop-oldest trims, retention, flush.messages=1 appends, closing — called
/// from an event loop thread, as `sluice serve`'s connection tasks call them. Storage traps
/// in debug builds when an fsync or an atomic file write runs on an event loop
/// (`BlockingCalls`), so reaching the end of this test is the assertion that each of them
/// handed its file work to a thread pool.
@Suite struct OffLoopTests {
  @Test func adminAndDurableWritesFromAnEventLoopNeverBlockIt() async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let loop = group.next()
    let (broker, _) = try Broker.makeForTest { $0.retentionCheckIntervalMs = 1 }
    let door = KafkaFrontDoor(broker: broker)
    let steps = Task(executorPreference: EventLoopTaskExecutor(loop)) { () async throws -> [String] in
      var done: [String] = []
      // On the loop's thread, where the storage check (`currentEventLoop != nil`) would trap.
      #expect(loop.inEventLoop && MultiThreadedEventLoopGroup.currentEventLoop != nil)
      try await broker.createTopic(
        name: "t", partitions: 1, configs: ["flush.messages": "1", "retention.ms": "1"])
      try await broker.createTopic(
        name: "d", partitions: 1,
        configs: [
          "sluice.overflow.policy": "drop-oldest", "sluice.overflow.max.bytes": "1", "segment.bytes": "100",
        ])
      done.append("created")
      try await broker.topics.createPartitions("t", count: 2, validateOnly: false)
      try await broker.topics.setConfigs(
        "t", ["flush.messages": "1", "retention.bytes": "1"], validateOnly: false)
      try await broker.topics.alterBrokerConfigs(
        [.set("log.retention.ms", "3600000")], node: true, validateOnly: false)
      done.append("configured")
      for topic in ["t", "d"] {
        for value in ["a", "b", "c"] {
          let produced = await broker.produce(
            [PartitionRecords(topic: topic, partition: 0, records: TestBatches.batch([value]))],
            options: ProduceOptions(acks: .all), context: CallContext(eventLoop: loop))
          guard case .appended = produced.results.first else {
            Issue.record("\(topic): \(String(describing: produced.results.first))")
            return done
          }
        }
      }
      done.append("produced")
      #expect(try await broker.deleteRecords(topic: "t", partition: 0, before: 1) == 1)
      _ = try await broker.nextProducerId()
      let quota = AlterClientQuotasRequest(
        entries: [
          .init(
            entity: [.init(entityType: "client-id", entityName: "c")],
            ops: [.init(key: "producer_byte_rate", value: 1e6)])
        ])
      guard
        case .alterClientQuotas(let altered)? = await door.handle(
          KafkaRequest(correlationId: 1, clientId: "t", apiVersion: 1, body: .alterClientQuotas(quota)))
      else { return done }
      #expect(altered.entries.first?.errorCode == 0)
      await broker.housekeeping()
      done.append("housekept")
      #expect(try await broker.deleteTopic("t"))
      await broker.shutdown()
      done.append("stopped")
      return done
    }
    #expect(try await steps.value == ["created", "configured", "produced", "housekept", "stopped"])
    try await group.shutdownGracefully()
  }
}
