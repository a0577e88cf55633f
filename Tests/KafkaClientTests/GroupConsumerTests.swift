import Foundation
import KafkaClient
import KafkaProtocol
import NIOCore
import SluiceTestSupport
import Synchronization
import Testing

/// Group consumers against the in-process broker: partitions shared between members,
/// rebalances on leave, committed offsets across restarts, static membership.

private func groupConfig(
  _ broker: InProcessBroker, group: String, topics: [String], instance: String? = nil
) -> KafkaConsumerConfiguration {
  var config = KafkaConsumerConfiguration(
    consumptionStrategy: .group(id: group, topics: topics), bootstrapAddresses: [broker.address])
  config.autoOffsetReset = .beginning
  config.heartbeatInterval = .milliseconds(100)
  config.sessionTimeout = .seconds(6)
  config.fetchMaxWait = .milliseconds(100)
  config.autoCommitInterval = .milliseconds(200)
  config.groupInstanceId = instance
  return config
}

private func produce(_ broker: InProcessBroker, topic: String, count: Int, prefix: String = "r") async throws
{
  let producer = try KafkaProducer(configuration: .init(bootstrapAddresses: [broker.address]))
  for i in 0..<count {
    try await producer.enqueue(
      KafkaProducerMessage(topic: topic, key: "\(prefix)\(i)", value: "\(prefix)\(i)"))
  }
  try await producer.close()
}

/// What the members of a test group received, keyed by (partition, offset).
private final class Received: Sendable {
  struct Entry: Hashable {
    var member: String
    var partition: Int
    var offset: Int
    var value: String
  }
  let entries = Mutex<[Entry]>([])
  func add(_ member: String, _ message: KafkaConsumerMessage) {
    entries.withLock {
      $0.append(
        Entry(
          member: member, partition: message.partition.rawValue, offset: message.offset.rawValue,
          value: String(buffer: message.value)))
    }
  }
  var count: Int { entries.withLock { $0.count } }
  var all: [Entry] { entries.withLock { $0 } }
}

/// Collects events of one consumer.
private final class EventLog: Sendable {
  let events = Mutex<[KafkaConsumerEvent]>([])
  var all: [KafkaConsumerEvent] { events.withLock { $0 } }
  var lastAssignment: [KafkaTopicPartition]? {
    for event in all.reversed() {
      if case .rebalance(let change) = event, change.kind == .assign { return change.partitions }
    }
    return nil
  }
}

/// Iterates `consumer` into `received` in a task until the consumer closes.
private func startReading(_ consumer: KafkaConsumer, as member: String, into received: Received) -> Task<
  Void, any Error
> {
  Task {
    for try await message in consumer.messages { received.add(member, message) }
  }
}

private func startLogging(_ events: KafkaConsumerEvents, into log: EventLog) -> Task<Void, Never> {
  Task {
    for await event in events { log.events.withLock { $0.append(event) } }
  }
}

/// Polls `condition` every 50 ms for up to `seconds`.
private func waitUntil(
  _ what: String, seconds: Double = 20, _ condition: () async throws -> Bool
) async throws {
  let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
  while ContinuousClock.now < deadline {
    if try await condition() { return }
    try await Task.sleep(for: .milliseconds(50))
  }
  Issue.record("timed out waiting for \(what)")
  throw CancellationError()
}

@Suite(.serialized) struct GroupConsumerTests {
  @Test func twoMembersSplitPartitionsAndTogetherSeeEveryRecordOnce() async throws {
    try await InProcessBroker.with { broker in
      let admin = try KafkaAdmin(configuration: .init(bootstrapAddresses: [broker.address]))
      try await admin.createTopic("split", partitions: 4)
      try await produce(broker, topic: "split", count: 400)
      let received = Received()
      let (a, aEvents) = try KafkaConsumer.makeConsumerWithEvents(
        configuration: groupConfig(broker, group: "g-split", topics: ["split"]))
      let (b, bEvents) = try KafkaConsumer.makeConsumerWithEvents(
        configuration: groupConfig(broker, group: "g-split", topics: ["split"]))
      let aLog = EventLog()
      let bLog = EventLog()
      let logging = [startLogging(aEvents, into: aLog), startLogging(bEvents, into: bLog)]
      let readers = [startReading(a, as: "a", into: received), startReading(b, as: "b", into: received)]
      try await waitUntil("400 records and two assignments") {
        received.count >= 400 && (aLog.lastAssignment?.count ?? 0) == 2
          && (bLog.lastAssignment?.count ?? 0) == 2
      }
      let aParts = Set(try await a.assignment())
      let bParts = Set(try await b.assignment())
      #expect(aParts.count == 2 && bParts.count == 2)
      #expect(aParts.isDisjoint(with: bParts))
      #expect(aParts.union(bParts).map(\.partition.rawValue).sorted() == [0, 1, 2, 3])
      await a.close()
      await b.close()
      for reader in readers { try await reader.value }
      for task in logging { await task.value }

      let entries = received.all
      #expect(entries.count == 400)
      let keys = entries.map { "\($0.partition)/\($0.offset)" }
      #expect(Set(keys).count == entries.count, "a record was delivered twice")
      #expect(Set(entries.map(\.value)) == Set((0..<400).map { "r\($0)" }))
      // Per partition, each member saw offsets in increasing order.
      for member in ["a", "b"] {
        for partition in 0..<4 {
          let offsets = entries.filter { $0.member == member && $0.partition == partition }.map(\.offset)
          #expect(offsets == offsets.sorted())
        }
      }
      let committed = try await admin.committedOffsets(group: "g-split")
      let ends = try await admin.describeTopics(["split"]).first!.partitions.count
      #expect(committed.count == ends)
      #expect(committed.values.map(\.rawValue).reduce(0, +) == 400)
      await admin.close()
    }
  }

  @Test func memberLeavingHandsItsPartitionsToTheOther() async throws {
    try await InProcessBroker.with { broker in
      let admin = try KafkaAdmin(configuration: .init(bootstrapAddresses: [broker.address]))
      try await admin.createTopic("leave", partitions: 2)
      let received = Received()
      let (a, aEvents) = try KafkaConsumer.makeConsumerWithEvents(
        configuration: groupConfig(broker, group: "g-leave", topics: ["leave"]))
      let (b, bEvents) = try KafkaConsumer.makeConsumerWithEvents(
        configuration: groupConfig(broker, group: "g-leave", topics: ["leave"]))
      let aLog = EventLog()
      let bLog = EventLog()
      let logging = [startLogging(aEvents, into: aLog), startLogging(bEvents, into: bLog)]
      let readers = [startReading(a, as: "a", into: received), startReading(b, as: "b", into: received)]
      try await waitUntil("both members assigned") {
        aLog.lastAssignment?.count == 1 && bLog.lastAssignment?.count == 1
      }
      try await produce(broker, topic: "leave", count: 100, prefix: "first")
      try await waitUntil("the first 100 records") { received.count >= 100 }
      #expect(Set(received.all.map(\.member)) == ["a", "b"])

      await a.close()
      try await readers[0].value
      try await waitUntil("b to own both partitions") { bLog.lastAssignment?.count == 2 }
      #expect(
        bLog.all.contains { if case .rebalance(let change) = $0 { change.kind == .revoke } else { false } })
      try await produce(broker, topic: "leave", count: 100, prefix: "second")
      try await waitUntil("the second 100 records") { received.count >= 200 }
      await b.close()
      try await readers[1].value
      for task in logging { await task.value }

      let entries = received.all
      #expect(entries.count == 200)
      #expect(
        Set(entries.map { "\($0.partition)/\($0.offset)" }).count == 200, "a record was delivered twice")
      let second = entries.filter { $0.value.hasPrefix("second") }
      #expect(second.count == 100)
      #expect(Set(second.map(\.member)) == ["b"])
      #expect(Set(second.map(\.partition)) == [0, 1])
      await admin.close()
    }
  }

  @Test func committedOffsetsResumeAfterRestart() async throws {
    try await InProcessBroker.with { broker in
      try await produce(broker, topic: "resume", count: 100)
      let partition = KafkaTopicPartition(topic: "resume", partition: KafkaPartition(rawValue: 0))

      // Manual commit after 40 records, no auto-commit.
      var manual = groupConfig(broker, group: "g-resume", topics: ["resume"])
      manual.autoCommitInterval = nil
      let first = try KafkaConsumer(configuration: manual)
      var seen: [Int] = []
      for try await message in first.messages {
        seen.append(message.offset.rawValue)
        if seen.count == 40 { break }
      }
      try await first.commit()
      #expect(try await first.committed([partition]) == [partition: KafkaOffset(rawValue: 40)])
      await first.close()
      #expect(seen == Array(0..<40))

      // The next member resumes at 40; auto-commit on close records what it read.
      let second = try KafkaConsumer(
        configuration: groupConfig(broker, group: "g-resume", topics: ["resume"]))
      var rest: [Int] = []
      for try await message in second.messages {
        rest.append(message.offset.rawValue)
        if rest.count == 60 { break }
      }
      await second.close()
      #expect(rest == Array(40..<100))

      let admin = try KafkaAdmin(configuration: .init(bootstrapAddresses: [broker.address]))
      #expect(try await admin.committedOffsets(group: "g-resume") == [partition: KafkaOffset(rawValue: 100)])

      // commit(message) and a group that starts at the end.
      let third = try KafkaConsumer(configuration: manual)
      try await third.commit(
        KafkaConsumerMessage(
          topic: "resume", partition: partition.partition, headers: [], key: nil, value: ByteBuffer(),
          isTombstone: false, offset: KafkaOffset(rawValue: 9), timestamp: 0, timestampType: .createTime))
      await third.close()
      #expect(try await admin.committedOffsets(group: "g-resume") == [partition: KafkaOffset(rawValue: 10)])

      var latest = groupConfig(broker, group: "g-fresh", topics: ["resume"])
      latest.autoOffsetReset = .end
      let fresh = try KafkaConsumer(configuration: latest)
      let received = Received()
      let reader = startReading(fresh, as: "fresh", into: received)
      try await waitUntil("an assignment") { try await fresh.assignment() == [partition] }
      try await waitUntil("position at the end") {
        try await fresh.position(partition) == KafkaOffset(rawValue: 100)
      }
      try await produce(broker, topic: "resume", count: 1, prefix: "new")
      try await waitUntil("the new record") { received.count == 1 }
      #expect(received.all.map(\.value) == ["new0"])
      await fresh.close()
      try await reader.value
      await admin.close()
    }
  }

  @Test func staticMemberRejoinsWithItsPartitionsAndNoRebalance() async throws {
    try await InProcessBroker.with { broker in
      let admin = try KafkaAdmin(configuration: .init(bootstrapAddresses: [broker.address]))
      try await admin.createTopic("static", partitions: 4)
      let received = Received()
      let (a, aEvents) = try KafkaConsumer.makeConsumerWithEvents(
        configuration: groupConfig(broker, group: "g-static", topics: ["static"], instance: "member-a"))
      let (b, bEvents) = try KafkaConsumer.makeConsumerWithEvents(
        configuration: groupConfig(broker, group: "g-static", topics: ["static"], instance: "member-b"))
      let aLog = EventLog()
      let bLog = EventLog()
      var tasks = [startLogging(aEvents, into: aLog), startLogging(bEvents, into: bLog)]
      var readers = [startReading(a, as: "a", into: received), startReading(b, as: "b", into: received)]
      try await waitUntil("both members assigned") {
        aLog.lastAssignment?.count == 2 && bLog.lastAssignment?.count == 2
      }
      let aAssignment = try #require(aLog.lastAssignment)
      let bEventsBefore = bLog.all.count
      // Range orders members by group.instance.id: member-a gets partitions 0 and 1.
      #expect(aAssignment.map(\.partition.rawValue) == [0, 1])

      await a.close()  // a static member does not leave the group
      try await readers[0].value
      let described = try await admin.describeGroups(["g-static"])
      #expect(described.first?.members.count == 2)

      let started = ContinuousClock.now
      let (a2, a2Events) = try KafkaConsumer.makeConsumerWithEvents(
        configuration: groupConfig(broker, group: "g-static", topics: ["static"], instance: "member-a"))
      let a2Log = EventLog()
      tasks.append(startLogging(a2Events, into: a2Log))
      readers.append(startReading(a2, as: "a2", into: received))
      try await waitUntil("the restarted member assigned") { a2Log.lastAssignment != nil }
      #expect(a2Log.lastAssignment == aAssignment)
      // Well within the session timeout, and no rebalance for the other member.
      #expect(ContinuousClock.now - started < .seconds(5))
      try await Task.sleep(for: .milliseconds(500))
      #expect(bLog.all.count == bEventsBefore, "the other member saw \(bLog.all)")

      try await produce(broker, topic: "static", count: 40)
      try await waitUntil("40 records") { received.count >= 40 }
      #expect(Set(received.all.filter { $0.member == "a2" }.map(\.partition)) == [0, 1])
      #expect(Set(received.all.filter { $0.member == "b" }.map(\.partition)) == [2, 3])

      await a2.close()
      await b.close()
      for reader in readers { try await reader.value }
      for task in tasks { await task.value }
      await admin.close()
    }
  }

  @Test func roundRobinGroupAndAdminGroupOperations() async throws {
    try await InProcessBroker.with { broker in
      let admin = try KafkaAdmin(configuration: .init(bootstrapAddresses: [broker.address]))
      try await admin.createTopic("rr1", partitions: 3)
      try await admin.createTopic("rr2", partitions: 3)
      try await produce(broker, topic: "rr1", count: 30)
      var config = groupConfig(broker, group: "g-rr", topics: ["rr1", "rr2"])
      config.partitionAssignors = [.roundRobin]
      let (consumer, events) = try KafkaConsumer.makeConsumerWithEvents(configuration: config)
      let log = EventLog()
      let logging = startLogging(events, into: log)
      let received = Received()
      let reader = startReading(consumer, as: "c", into: received)
      try await waitUntil("30 records") { received.count >= 30 }
      #expect(log.lastAssignment?.count == 6)

      let listed = try await admin.listGroups()
      #expect(listed.contains { $0.groupId == "g-rr" && $0.protocolType == "consumer" })
      let description = try #require(try await admin.describeGroups(["g-rr"]).first)
      #expect(description.state == "Stable")
      #expect(description.protocolName == "roundrobin")
      #expect(description.members.count == 1)
      #expect(description.members.first?.assignment.count == 6)
      // Neither resetting offsets nor deleting works while the group has a member.
      await #expect(throws: KafkaError.self) { try await admin.deleteGroups(["g-rr"]) }

      await consumer.close()
      try await reader.value
      await logging.value
      let tp = KafkaTopicPartition(topic: "rr1", partition: KafkaPartition(rawValue: 0))
      try await admin.resetOffsets(group: "g-rr", to: [tp: .beginning])
      #expect(
        try await admin.committedOffsets(group: "g-rr", partitions: [tp]) == [tp: KafkaOffset(rawValue: 0)])
      try await admin.deleteGroups(["g-rr"])
      #expect(try await !admin.listGroups().contains { $0.groupId == "g-rr" })
      await admin.close()
    }
  }

  @Test func pauseAndResume() async throws {
    try await InProcessBroker.with { broker in
      let admin = try KafkaAdmin(configuration: .init(bootstrapAddresses: [broker.address]))
      try await admin.createTopic("pause", partitions: 2)
      let p0 = KafkaTopicPartition(topic: "pause", partition: KafkaPartition(rawValue: 0))
      let p1 = KafkaTopicPartition(topic: "pause", partition: KafkaPartition(rawValue: 1))
      let producer = try KafkaProducer(configuration: .init(bootstrapAddresses: [broker.address]))
      for i in 0..<10 {
        try await producer.sendAcked(
          KafkaProducerMessage(topic: "pause", partition: p0.partition, value: "zero\(i)"))
        try await producer.sendAcked(
          KafkaProducerMessage(topic: "pause", partition: p1.partition, value: "one\(i)"))
      }
      try await producer.close()
      var config = KafkaConsumerConfiguration(
        consumptionStrategy: .partitions([p0: .beginning, p1: .beginning]),
        bootstrapAddresses: [broker.address])
      config.fetchMaxWait = .milliseconds(50)
      let consumer = try KafkaConsumer(configuration: config)
      await consumer.pause([p0])
      #expect(await consumer.pausedPartitions() == [p0])
      var iterator = consumer.messages.makeAsyncIterator()
      var firstTen: [KafkaConsumerMessage] = []
      while firstTen.count < 10, let message = try await iterator.next() { firstTen.append(message) }
      #expect(firstTen.allSatisfy { $0.partition == p1.partition })
      await consumer.resume([p0])
      var rest: [KafkaConsumerMessage] = []
      while rest.count < 10, let message = try await iterator.next() { rest.append(message) }
      #expect(rest.map { String(buffer: $0.value) } == (0..<10).map { "zero\($0)" })
      await consumer.close()
      await admin.close()
    }
  }

  @Test func invalidGroupConfigurationIsRejected() throws {
    let address = KafkaConfiguration.BrokerAddress(host: "127.0.0.1", port: 9)
    #expect(throws: KafkaError.self) {
      try KafkaConsumer(
        configuration: .init(
          consumptionStrategy: .group(id: "", topics: ["t"]), bootstrapAddresses: [address]))
    }
    #expect(throws: KafkaError.self) {
      try KafkaConsumer(
        configuration: .init(
          consumptionStrategy: .group(id: "g", topics: []), bootstrapAddresses: [address]))
    }
    let manual = try KafkaConsumer(
      configuration: .init(
        consumptionStrategy: .partition(KafkaPartition(rawValue: 0), topic: "t"),
        bootstrapAddresses: [address]))
    #expect(throws: KafkaError.self) { try manual.scheduleCommit() }
  }
}
