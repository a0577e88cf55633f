import Foundation
import KafkaProtocol
import NIOCore
import SluiceBroker
import SluiceKafka
import SluiceStorage
import SluiceTestSupport
import Synchronization
import Testing

/// Consumer groups and committed offsets through the in-process broker (no sockets).
@Suite struct GroupCoordinatorTests {
  /// A broker on a manual clock unless told otherwise: session timeouts and rebalance
  /// delays pass only when a test moves the clock, however slowly the machine runs.
  static func makeBroker(
    directory: String? = nil, clock: (any BrokerClock)? = ManualClock(wallMs: 1_000_000),
    _ configure: (inout BrokerConfig) -> Void = { _ in }
  ) throws -> (Broker, String) {
    let directory = directory ?? NSTemporaryDirectory() + "sluice-groups-\(UUID().uuidString)"
    var config = BrokerConfig()
    config.dataDirectory = directory
    config.groupInitialRebalanceDelayMs = 0
    configure(&config)
    let broker = try clock.map { try Broker(config: config, clock: $0) } ?? Broker(config: config)
    return (broker, directory)
  }

  static func send(
    _ broker: Broker, _ body: KafkaRequestBody, version: Int16, clientId: String = "test-client",
    host: String = "10.1.2.3"
  ) async -> KafkaResponseBody? {
    await broker.handle(
      KafkaRequest(correlationId: 1, clientId: clientId, apiVersion: version, body: body),
      context: RequestContext(clientHost: host))
  }

  /// OffsetCommit; partition → error code.
  static func commit(
    _ broker: Broker, group: String, topic: String, _ offsets: [Int32: Int64], generation: Int32 = -1,
    member: String = "", metadata: String? = "meta", version: Int16 = 9
  ) async -> [Int32: Int16] {
    let request = OffsetCommitRequest(
      groupId: group, generationIdOrMemberEpoch: generation, memberId: member,
      topics: [
        .init(
          name: topic,
          partitions: offsets.sorted { $0.key < $1.key }.map {
            .init(partitionIndex: $0.key, committedOffset: $0.value, committedMetadata: metadata)
          })
      ])
    guard case .offsetCommit(let response) = await send(broker, .offsetCommit(request), version: version)
    else {
      return [:]
    }
    var codes: [Int32: Int16] = [:]
    for partition in response.topics.flatMap(\.partitions) {
      codes[partition.partitionIndex] = partition.errorCode
    }
    return codes
  }

  /// OffsetFetch v9 (multi-group form); partition → (offset, metadata). nil partitions: all.
  static func fetch(_ broker: Broker, group: String, topic: String, partitions: [Int32]?) async -> [Int32: (
    Int64, String?
  )] {
    let request = OffsetFetchRequest(
      groups: [.init(groupId: group, topics: partitions.map { [.init(name: topic, partitionIndexes: $0)] })])
    guard case .offsetFetch(let response) = await send(broker, .offsetFetch(request), version: 9) else {
      return [:]
    }
    var result: [Int32: (Int64, String?)] = [:]
    for fetched in response.groups.flatMap(\.topics) where fetched.name == topic {
      for partition in fetched.partitions {
        result[partition.partitionIndex] = (partition.committedOffset, partition.metadata)
      }
    }
    return result
  }

  static func subscription(_ topics: [String]) throws -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeInteger(Int16(1))
    var body = try ConsumerProtocolSubscription(topics: topics).encoded(version: 1)
    buffer.writeBuffer(&body)
    return buffer
  }

  /// JoinGroup (KIP-394 round trip included) then SyncGroup as the only member.
  static func joinAlone(
    _ broker: Broker, group: String, metadata: ByteBuffer = ByteBuffer(string: "m"), assignment: ByteBuffer
  ) async -> (memberId: String, generation: Int32)? {
    var join = JoinGroupRequest(
      groupId: group, sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000, memberId: "",
      protocolType: "consumer",
      protocols: [.init(name: "range", metadata: metadata)])
    guard case .joinGroup(let first) = await send(broker, .joinGroup(join), version: 5),
      first.errorCode == ErrorCode.memberIdRequired.rawValue
    else { return nil }
    join.memberId = first.memberId
    guard case .joinGroup(let joined) = await send(broker, .joinGroup(join), version: 5),
      joined.errorCode == 0
    else {
      return nil
    }
    let sync = SyncGroupRequest(
      groupId: group, generationId: joined.generationId, memberId: joined.memberId,
      assignments: [.init(memberId: joined.memberId, assignment: assignment)])
    guard case .syncGroup(let synced) = await send(broker, .syncGroup(sync), version: 5),
      synced.errorCode == 0
    else {
      return nil
    }
    return (joined.memberId, joined.generationId)
  }

  // MARK: Offsets

  @Test func commitAndFetchOffsets() async throws {
    let (broker, _) = try Self.makeBroker()
    try await broker.createTopic(name: "t", partitions: 3, configs: [:])
    // A group used only for offsets (kcat): generation -1, no member id.
    #expect(await Self.commit(broker, group: "g", topic: "t", [0: 5, 1: 7]) == [0: 0, 1: 0])
    let all = await Self.fetch(broker, group: "g", topic: "t", partitions: nil)
    #expect(all.mapValues(\.0) == [0: 5, 1: 7] && all[0]?.1 == "meta")
    let listed = await Self.fetch(broker, group: "g", topic: "t", partitions: [0, 2])
    #expect(listed[0]?.0 == 5 && listed[2]?.0 == -1 && listed[2]?.1 == "")  // never committed: -1, ""

    // Older forms: v1 (explicit list) and v7 (null = all).
    let v1 = OffsetFetchRequest(groupId: "g", topics: [.init(name: "t", partitionIndexes: [1, 2])])
    guard case .offsetFetch(let r1) = await Self.send(broker, .offsetFetch(v1), version: 1) else {
      throw Failure()
    }
    #expect(r1.topics.first?.partitions.map(\.committedOffset) == [7, -1])
    let v7 = OffsetFetchRequest(groupId: "g", topics: nil)
    guard case .offsetFetch(let r7) = await Self.send(broker, .offsetFetch(v7), version: 7) else {
      throw Failure()
    }
    #expect(r7.topics.first?.partitions.map(\.partitionIndex) == [0, 1] && r7.errorCode == 0)

    // Per-partition checks.
    let long = String(repeating: "x", count: 4097)
    #expect(await Self.commit(broker, group: "g", topic: "t", [0: 9], metadata: long) == [0: 12])
    #expect(await Self.commit(broker, group: "g", topic: "t", [9: 1]) == [9: 3])
    #expect(await Self.commit(broker, group: "g", topic: "nope", [0: 1]) == [0: 3])
    // A generation for a group that has no members: ILLEGAL_GENERATION.
    #expect(await Self.commit(broker, group: "g", topic: "t", [0: 9], generation: 4, member: "m") == [0: 22])
    #expect(await Self.fetch(broker, group: "g", topic: "t", partitions: [0])[0]?.0 == 5)
    await broker.shutdown()
  }

  @Test func offsetsSurviveACrashCompactionAndATornTail() async throws {
    let (broker, directory) = try Self.makeBroker { $0.offsetsLogCompactionBytes = 600 }
    try await broker.createTopic(name: "t", partitions: 4, configs: ["sluice.storage": "memory"])
    // Concurrent commits share fsyncs; many of them force compactions along the way.
    await withTaskGroup(of: Void.self) { tasks in
      for round in 0..<10 {
        tasks.addTask {
          for step in 0..<5 {
            let offset = Int64(round * 100 + step)
            _ = await Self.commit(broker, group: "g\(round % 3)", topic: "t", [Int32(round % 4): offset])
          }
        }
      }
    }
    for round in 0..<3 {
      _ = await Self.commit(broker, group: "g\(round)", topic: "t", [3: 1000 + Int64(round)])
    }
    var before: [String: [Int32: Int64]] = [:]
    for group in ["g0", "g1", "g2"] {
      before[group] = await Self.fetch(broker, group: group, topic: "t", partitions: nil).mapValues(\.0)
    }
    #expect(before["g0"]?[3] == 1000 && before["g2"]?[3] == 1002)
    #expect(FileManager.default.fileExists(atPath: directory + "/group-offsets/offsets.snapshot"))
    // No shutdown: a crash. (Once the writer is idle: the first broker lives on in this
    // process, and a compaction it finished later would race the reopened one.) Then a
    // torn append at the tail of the log.
    await broker.groups.offsets.waitUntilIdle()
    let log = directory + "/group-offsets/offsets.log"
    let handle = try #require(FileHandle(forWritingAtPath: log))
    handle.seekToEndOfFile()
    handle.write(Data([0, 0, 0, 40, 1, 2, 3]))
    try handle.close()
    broker.dataDirectoryLock.release()  // as the kernel does for a crashed process

    let (reopened, _) = try Self.makeBroker(directory: directory)
    for group in ["g0", "g1", "g2"] {
      #expect(
        await Self.fetch(reopened, group: group, topic: "t", partitions: nil).mapValues(\.0) == before[group])
    }
    // The torn record is gone and appends continue after the last good one.
    #expect(await Self.commit(reopened, group: "g0", topic: "t", [0: 77]) == [0: 0])
    await reopened.shutdown()
    let (third, _) = try Self.makeBroker(directory: directory)
    #expect(
      await Self.fetch(third, group: "g0", topic: "t", partitions: [0, 3]).mapValues(\.0) == [0: 77, 3: 1000])
    #expect(third.groups.offsets.groupIds == ["g0", "g1", "g2"])
    await third.shutdown()
    await broker.shutdown()
  }

  @Test func offsetsOfAnEmptyGroupExpireAfterRetention() async throws {
    let clock = ManualClock(wallMs: 1_000_000)
    let (broker, _) = try Self.makeBroker(clock: clock) { $0.offsetsRetentionMinutes = 10 }
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    #expect(await Self.commit(broker, group: "idle", topic: "t", [0: 3]) == [0: 0])
    guard let active = await Self.joinAlone(broker, group: "busy", assignment: ByteBuffer()) else {
      throw Failure()
    }
    #expect(
      await Self.commit(
        broker, group: "busy", topic: "t", [0: 4], generation: active.generation, member: active.memberId)
        == [0: 0])
    let retention: Int64 = 10 * 60_000
    await broker.groups.expireOffsets(now: clock.now() + retention - 1)
    #expect(await Self.fetch(broker, group: "idle", topic: "t", partitions: [0])[0]?.0 == 3)
    clock.advance(ms: retention)
    // The idle group is gone; the group with a member keeps its offsets.
    _ = broker.groups.heartbeat(
      groupId: "busy", memberId: active.memberId, groupInstanceId: nil, generationId: active.generation)
    await broker.groups.expireOffsets(now: clock.now())
    #expect(await Self.fetch(broker, group: "idle", topic: "t", partitions: [0])[0]?.0 == -1)
    #expect(await Self.fetch(broker, group: "busy", topic: "t", partitions: [0])[0]?.0 == 4)
    await broker.shutdown()
  }

  // MARK: Membership through the broker

  @Test func groupLifecycleListDescribeDelete() async throws {
    let (broker, _) = try Self.makeBroker(clock: SystemClock()) { $0.groupInitialRebalanceDelayMs = 50 }
    try await broker.createTopic(name: "t", partitions: 2, configs: [:])
    let started = ContinuousClock.now
    let assignment = ByteBuffer(bytes: [0, 1, 0, 0, 0, 1, 0, 1, 0x74])
    guard let member = await Self.joinAlone(broker, group: "g", assignment: assignment) else {
      Issue.record("join failed")
      return
    }
    #expect(ContinuousClock.now - started >= .milliseconds(50))  // the initial delay
    #expect(member.memberId.hasPrefix("test-client-") && member.generation == 1)
    let beat = HeartbeatRequest(groupId: "g", generationId: 1, memberId: member.memberId)
    guard case .heartbeat(let hb) = await Self.send(broker, .heartbeat(beat), version: 4) else {
      throw Failure()
    }
    #expect(hb.errorCode == 0)
    #expect(
      await Self.commit(broker, group: "g", topic: "t", [0: 10], generation: 1, member: member.memberId) == [
        0: 0
      ])
    #expect(
      await Self.commit(broker, group: "g", topic: "t", [0: 11], generation: 0, member: member.memberId) == [
        0: 22
      ])
    // kcat-style (generation -1, no member id), but the group has a member.
    #expect(await Self.commit(broker, group: "g", topic: "t", [0: 11]) == [0: 25])

    let describe = DescribeGroupsRequest(groups: ["g", "unknown"], includeAuthorizedOperations: true)
    guard case .describeGroups(let described) = await Self.send(broker, .describeGroups(describe), version: 5)
    else {
      throw Failure()
    }
    let g = try #require(described.groups.first)
    #expect(
      g.errorCode == 0 && g.groupState == "Stable" && g.protocolType == "consumer"
        && g.protocolData == "range")
    #expect(g.members.map(\.memberId) == [member.memberId])
    #expect(g.members.first?.clientId == "test-client" && g.members.first?.clientHost == "/10.1.2.3")
    #expect(
      g.members.first?.memberAssignment == assignment
        && g.members.first?.memberMetadata == ByteBuffer(string: "m"))
    #expect(described.groups.last?.groupState == "Dead" && described.groups.last?.errorCode == 0)

    func listed(_ states: [String]) async -> [String] {
      let request = ListGroupsRequest(statesFilter: states)
      guard case .listGroups(let response) = await Self.send(broker, .listGroups(request), version: 5) else {
        return []
      }
      return response.groups.map { "\($0.groupId):\($0.groupState):\($0.groupType)" }
    }
    #expect(await listed([]) == ["g:Stable:classic"])
    #expect(await listed(["stable"]) == ["g:Stable:classic"])
    #expect(await listed(["Empty"]) == [])

    func delete(_ group: String) async -> Int16? {
      guard
        case .deleteGroups(let response) = await Self.send(
          broker, .deleteGroups(.init(groupsNames: [group])), version: 2)
      else { return nil }
      return response.results.first?.errorCode
    }
    #expect(await delete("g") == ErrorCode.nonEmptyGroup.rawValue)

    let leave = LeaveGroupRequest(
      groupId: "g", members: [.init(memberId: member.memberId), .init(memberId: "ghost")])
    guard case .leaveGroup(let left) = await Self.send(broker, .leaveGroup(leave), version: 5) else {
      throw Failure()
    }
    #expect(left.errorCode == 0 && left.members.map(\.errorCode) == [0, 25])
    #expect(await listed(["Empty"]) == ["g:Empty:classic"])
    #expect(await delete("g") == 0)
    #expect(await listed([]) == [])
    #expect(await Self.fetch(broker, group: "g", topic: "t", partitions: [0])[0]?.0 == -1)
    #expect(await delete("g") == ErrorCode.groupIdNotFound.rawValue)
    await broker.shutdown()
  }

  @Test func twoMembersRebalanceThroughTheBroker() async throws {
    let (broker, _) = try Self.makeBroker()
    guard let first = await Self.joinAlone(broker, group: "g", assignment: ByteBuffer(string: "all")) else {
      throw Failure()
    }
    // A second member (JoinGroup v3: no KIP-394) parks until the first rejoins.
    let second = JoinGroupRequest(
      groupId: "g", sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000, memberId: "",
      protocolType: "consumer",
      protocols: [.init(name: "range", metadata: ByteBuffer(string: "m2"))])
    async let parked = Self.send(broker, .joinGroup(second), version: 3, clientId: "other")
    // Until the second member's join has arrived (it parks the group in a rebalance).
    for _ in 0..<6000 where broker.groups.describe("g")?.state != .preparingRebalance {
      try await Task.sleep(for: .milliseconds(10))
    }
    let beat = HeartbeatRequest(groupId: "g", generationId: first.generation, memberId: first.memberId)
    guard case .heartbeat(let hb) = await Self.send(broker, .heartbeat(beat), version: 3) else {
      throw Failure()
    }
    #expect(hb.errorCode == ErrorCode.rebalanceInProgress.rawValue)
    let rejoin = JoinGroupRequest(
      groupId: "g", sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000, memberId: first.memberId,
      protocolType: "consumer", protocols: [.init(name: "range", metadata: ByteBuffer(string: "m"))])
    guard case .joinGroup(let leader) = await Self.send(broker, .joinGroup(rejoin), version: 5),
      case .joinGroup(let follower) = await parked
    else { throw Failure() }
    #expect(leader.generationId == 2 && leader.members.count == 2 && follower.members.isEmpty)
    #expect(follower.leader == first.memberId && follower.memberId.hasPrefix("other-"))

    let followerSync = SyncGroupRequest(groupId: "g", generationId: 2, memberId: follower.memberId)
    async let followerAssignment = Self.send(broker, .syncGroup(followerSync), version: 3)
    try await Task.sleep(for: .milliseconds(50))
    let leaderSync = SyncGroupRequest(
      groupId: "g", generationId: 2, memberId: first.memberId,
      assignments: [.init(memberId: follower.memberId, assignment: ByteBuffer(string: "half"))])
    guard case .syncGroup(let mine) = await Self.send(broker, .syncGroup(leaderSync), version: 3),
      case .syncGroup(let theirs) = await followerAssignment
    else { throw Failure() }
    #expect(mine.errorCode == 0 && mine.assignment.readableBytes == 0)  // empty, not null
    #expect(theirs.errorCode == 0 && theirs.assignment == ByteBuffer(string: "half"))
    await broker.shutdown()
  }

  @Test func parkedJoinIsAnsweredWhenTheBrokerStops() async throws {
    let (broker, _) = try Self.makeBroker { $0.groupInitialRebalanceDelayMs = 60_000 }
    let join = JoinGroupRequest(
      groupId: "g", sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 120_000, memberId: "",
      protocolType: "consumer",
      protocols: [.init(name: "range", metadata: ByteBuffer())])
    async let parked = Self.send(broker, .joinGroup(join), version: 3)
    try await Task.sleep(for: .milliseconds(100))
    broker.beginShutdown()
    guard case .joinGroup(let answer) = await parked else { throw Failure() }
    #expect(answer.errorCode == ErrorCode.notCoordinator.rawValue)
    await broker.shutdown()
  }

  @Test func cancelledParkedJoinReturns() async throws {
    let (broker, _) = try Self.makeBroker { $0.groupInitialRebalanceDelayMs = 60_000 }
    let join = JoinGroupRequest(
      groupId: "g", sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 120_000, memberId: "",
      protocolType: "consumer",
      protocols: [.init(name: "range", metadata: ByteBuffer())])
    let parked = Task { await Self.send(broker, .joinGroup(join), version: 3) }
    try await Task.sleep(for: .milliseconds(100))
    parked.cancel()
    guard case .joinGroup(let answer) = await parked.value else { throw Failure() }
    #expect(answer.errorCode == ErrorCode.notCoordinator.rawValue)
    // The group itself carries on: the member is still there, waiting for the join phase.
    #expect(broker.groups.describe("g")?.state == .preparingRebalance)
    await broker.shutdown()
  }

  @Test func groupCountIsBounded() async throws {
    let (broker, _) = try Self.makeBroker { $0.maxGroups = 1 }
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    #expect(await Self.commit(broker, group: "a", topic: "t", [0: 1]) == [0: 0])
    #expect(await Self.commit(broker, group: "a", topic: "t", [0: 2]) == [0: 0])
    #expect(
      await Self.commit(broker, group: "b", topic: "t", [0: 1]) == [0: ErrorCode.groupMaxSizeReached.rawValue]
    )
    let join = JoinGroupRequest(
      groupId: "c", sessionTimeoutMs: 10_000, memberId: "", protocolType: "consumer",
      protocols: [.init(name: "range", metadata: ByteBuffer())])
    guard case .joinGroup(let refused) = await Self.send(broker, .joinGroup(join), version: 5) else {
      throw Failure()
    }
    #expect(refused.errorCode == ErrorCode.groupMaxSizeReached.rawValue)
    await broker.shutdown()
  }

  @Test func offsetDeleteRespectsSubscriptions() async throws {
    let (broker, _) = try Self.makeBroker()
    try await broker.createTopic(name: "t", partitions: 2, configs: [:])
    try await broker.createTopic(name: "u", partitions: 1, configs: [:])
    guard
      let member = await Self.joinAlone(
        broker, group: "g", metadata: try Self.subscription(["t"]), assignment: ByteBuffer())
    else { throw Failure() }
    #expect(
      await Self.commit(
        broker, group: "g", topic: "t", [0: 5], generation: member.generation, member: member.memberId) == [
          0: 0
        ])
    #expect(
      await Self.commit(
        broker, group: "g", topic: "u", [0: 6], generation: member.generation, member: member.memberId) == [
          0: 0
        ])
    let request = OffsetDeleteRequest(
      groupId: "g",
      topics: [
        .init(name: "t", partitions: [.init(partitionIndex: 0)]),
        .init(name: "u", partitions: [.init(partitionIndex: 0)]),
      ])
    guard case .offsetDelete(let response) = await Self.send(broker, .offsetDelete(request), version: 0)
    else { throw Failure() }
    #expect(response.errorCode == 0)
    #expect(
      response.topics.map { $0.partitions.map(\.errorCode) } == [
        [ErrorCode.groupSubscribedToTopic.rawValue], [0],
      ])
    #expect(await Self.fetch(broker, group: "g", topic: "u", partitions: [0])[0]?.0 == -1)
    #expect(await Self.fetch(broker, group: "g", topic: "t", partitions: [0])[0]?.0 == 5)
    let unknown = OffsetDeleteRequest(groupId: "nobody", topics: request.topics)
    guard case .offsetDelete(let missing) = await Self.send(broker, .offsetDelete(unknown), version: 0) else {
      throw Failure()
    }
    #expect(missing.errorCode == ErrorCode.groupIdNotFound.rawValue)
    await broker.shutdown()
  }

  @Test func findCoordinatorForGroupsInEveryForm() async throws {
    let (broker, _) = try Self.makeBroker { $0.advertisedPort = 9999 }
    let batched = FindCoordinatorRequest(keyType: 0, coordinatorKeys: ["g1", "g2"])
    guard case .findCoordinator(let response) = await Self.send(broker, .findCoordinator(batched), version: 4)
    else {
      throw Failure()
    }
    #expect(response.coordinators.map(\.key) == ["g1", "g2"])
    #expect(response.coordinators.allSatisfy { $0.errorCode == 0 && $0.nodeId == 0 && $0.port == 9999 })
    for version: Int16 in 0...3 {
      let single = FindCoordinatorRequest(key: "g1")
      guard
        case .findCoordinator(let one) = await Self.send(broker, .findCoordinator(single), version: version)
      else {
        throw Failure()
      }
      #expect(one.errorCode == 0 && one.nodeId == 0 && one.port == 9999)
    }
    await broker.shutdown()
  }

  /// Each advertised version of each group API, with real content, encodes its response.
  @Test func everyGroupApiVersionRoundTrips() async throws {
    let (broker, _) = try Self.makeBroker()
    try await broker.createTopic(name: "t", partitions: 1, configs: [:])
    func roundTrip(_ body: KafkaRequestBody, _ version: Int16) async throws -> KafkaResponseBody {
      var encoded = ByteBuffer()
      try body.encode(to: &encoded, version: version)
      let decoded = try KafkaRequestBody.decode(apiKey: body.apiKey, version: version, from: &encoded)
      let reply = try #require(await Self.send(broker, decoded, version: version))
      var out = ByteBuffer()
      try KafkaResponse(correlationId: 1, body: reply).encodeFrame(into: &out, apiVersion: version)
      return reply
    }
    for version in KafkaFrontDoor.supportedVersions(.joinGroup)! {
      let group = "v\(version)"
      var join = JoinGroupRequest(
        groupId: group, sessionTimeoutMs: 10_000, rebalanceTimeoutMs: version >= 1 ? 10_000 : -1,
        memberId: "",
        groupInstanceId: version >= 5 ? "instance" : nil, protocolType: "consumer",
        protocols: [.init(name: "range", metadata: ByteBuffer(string: "m"))])
      guard case .joinGroup(var joined) = try await roundTrip(.joinGroup(join), version) else {
        throw Failure()
      }
      if version >= 4 && version < 5 {
        #expect(joined.errorCode == ErrorCode.memberIdRequired.rawValue, "JoinGroup v\(version)")
        join.memberId = joined.memberId
        guard case .joinGroup(let again) = try await roundTrip(.joinGroup(join), version) else {
          throw Failure()
        }
        joined = again
      }
      #expect(joined.errorCode == 0, "JoinGroup v\(version)")
      join.memberId = joined.memberId
      let syncVersion = min(version, 5)
      var sync = SyncGroupRequest(
        groupId: group, generationId: joined.generationId, memberId: joined.memberId,
        assignments: [.init(memberId: joined.memberId, assignment: ByteBuffer(string: "a"))])
      if syncVersion >= 3 { sync.groupInstanceId = join.groupInstanceId }
      if syncVersion >= 5 {
        sync.protocolType = "consumer"
        sync.protocolName = "range"
      }
      guard case .syncGroup(let synced) = try await roundTrip(.syncGroup(sync), syncVersion) else {
        throw Failure()
      }
      #expect(
        synced.errorCode == 0 && synced.assignment == ByteBuffer(string: "a"), "SyncGroup v\(syncVersion)")
      let heartbeatVersion = min(version, 4)
      var beat = HeartbeatRequest(
        groupId: group, generationId: joined.generationId, memberId: joined.memberId)
      if heartbeatVersion >= 3 { beat.groupInstanceId = join.groupInstanceId }
      guard case .heartbeat(let hb) = try await roundTrip(.heartbeat(beat), heartbeatVersion) else {
        throw Failure()
      }
      #expect(hb.errorCode == 0, "Heartbeat v\(heartbeatVersion)")
      let commitVersion = max(2, version)
      var commit = OffsetCommitRequest(
        groupId: group, generationIdOrMemberEpoch: joined.generationId, memberId: joined.memberId,
        topics: [
          .init(
            name: "t",
            partitions: [.init(partitionIndex: 0, committedOffset: Int64(version), committedMetadata: nil)])
        ])
      if commitVersion >= 7 { commit.groupInstanceId = join.groupInstanceId }
      guard case .offsetCommit(let committed) = try await roundTrip(.offsetCommit(commit), commitVersion)
      else { throw Failure() }
      #expect(committed.topics.first?.partitions.first?.errorCode == 0, "OffsetCommit v\(commitVersion)")
      let fetchVersion = max(1, version)
      let fetch =
        fetchVersion >= 8
        ? OffsetFetchRequest(groups: [
          .init(groupId: group, topics: [.init(name: "t", partitionIndexes: [0])])
        ])
        : OffsetFetchRequest(groupId: group, topics: [.init(name: "t", partitionIndexes: [0])])
      guard case .offsetFetch(let fetched) = try await roundTrip(.offsetFetch(fetch), fetchVersion) else {
        throw Failure()
      }
      let offset =
        fetchVersion >= 8
        ? fetched.groups.first?.topics.first?.partitions.first?.committedOffset
        : fetched.topics.first?.partitions.first?.committedOffset
      #expect(offset == Int64(version), "OffsetFetch v\(fetchVersion)")
      let describeVersion = min(version, 5)
      guard
        case .describeGroups(let described) = try await roundTrip(
          .describeGroups(.init(groups: [group])), describeVersion)
      else { throw Failure() }
      #expect(described.groups.first?.members.count == 1, "DescribeGroups v\(describeVersion)")
      let listVersion = min(version, 5)
      guard case .listGroups(let listed) = try await roundTrip(.listGroups(.init()), listVersion) else {
        throw Failure()
      }
      #expect(listed.groups.contains { $0.groupId == group }, "ListGroups v\(listVersion)")
      let leaveVersion = min(version, 5)
      let leave =
        leaveVersion >= 3
        ? LeaveGroupRequest(
          groupId: group, members: [.init(memberId: joined.memberId, groupInstanceId: join.groupInstanceId)])
        : LeaveGroupRequest(groupId: group, memberId: joined.memberId)
      guard case .leaveGroup(let left) = try await roundTrip(.leaveGroup(leave), leaveVersion) else {
        throw Failure()
      }
      #expect(
        left.errorCode == 0 && left.members.allSatisfy { $0.errorCode == 0 }, "LeaveGroup v\(leaveVersion)")
      let deleteVersion = min(version, 2)
      guard
        case .deleteGroups(let deleted) = try await roundTrip(
          .deleteGroups(.init(groupsNames: [group])), deleteVersion)
      else { throw Failure() }
      #expect(deleted.results.first?.errorCode == 0, "DeleteGroups v\(deleteVersion)")
    }
    await broker.shutdown()
  }
}

struct Failure: Error {}
