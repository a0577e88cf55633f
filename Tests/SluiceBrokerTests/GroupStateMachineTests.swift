import KafkaProtocol
import NIOCore
import SluiceBroker
import Testing

/// The classic group protocol as plain sequences of events and expected answers: no
/// sockets, no clock (each event gets its time).
@Suite struct GroupStateMachineTests {
  typealias Machine = GroupStateMachine

  static func configuration(delay: Int64 = 0, maxMembers: Int = 100) -> Machine.Configuration {
    var configuration = Machine.Configuration()
    configuration.initialRebalanceDelayMs = delay
    configuration.maxMembers = maxMembers
    return configuration
  }

  static func request(
    _ memberId: String = "", newId: String = "", instance: String? = nil,
    protocols: [(String, String)] = [("range", "sub")], type: String = "consumer", session: Int32 = 10_000,
    rebalance: Int32 = 30_000, requireKnown: Bool = true
  ) -> Machine.JoinRequest {
    Machine.JoinRequest(
      memberId: memberId, groupInstanceId: instance, clientId: "client", clientHost: "/127.0.0.1",
      sessionTimeoutMs: session, rebalanceTimeoutMs: rebalance, protocolType: type,
      protocols: protocols.map { .init(name: $0.0, metadata: ByteBuffer(string: $0.1)) },
      requireKnownMemberId: requireKnown, newMemberId: newId)
  }

  /// A group that went through one rebalance with `ids` (all dynamic unless `instances`
  /// names them), Stable at generation 1; the leader (first id) assigned "a-<id>" to each.
  static func stableGroup(
    _ ids: [String], instances: [String: String] = [:], now: Int64 = 0, session: Int32 = 10_000
  ) -> Machine {
    // Joined during the initial delay, so that one join phase takes them all.
    var group = Machine(groupId: "g", configuration: configuration(delay: 100), now: now - 100)
    var ticket: Machine.Ticket = 100
    for id in ids {
      ticket += 1
      _ = group.join(
        request(newId: id, instance: instances[id], session: session, requireKnown: false), ticket: ticket,
        now: now - 100)
    }
    #expect(group.tick(now: now).count == ids.count)
    #expect(group.state == .completingRebalance && group.generationId == 1)
    group.configuration.initialRebalanceDelayMs = 0
    var assignments: [String: ByteBuffer] = [:]
    for id in ids { assignments[id] = ByteBuffer(string: "a-\(id)") }
    for id in ids.dropFirst() {
      ticket += 1
      #expect(
        group.sync(memberId: id, generationId: group.generationId, assignments: [:], ticket: ticket, now: now)
          .isEmpty)
    }
    ticket += 1
    let answers = group.sync(
      memberId: ids[0], generationId: group.generationId, assignments: assignments, ticket: ticket, now: now)
    #expect(answers.count == ids.count)
    #expect(group.state == .stable)
    return group
  }

  // MARK: Joining

  @Test func firstJoinWaitsForTheInitialDelayThenCompletes() {
    var group = Machine(groupId: "g", configuration: Self.configuration(delay: 300), now: 0)
    // KIP-394: no member id → one is handed out with MEMBER_ID_REQUIRED; nothing else changes.
    let first = group.join(Self.request(newId: "m1"), ticket: 1, now: 0)
    #expect(first == [.join(1, .failure(.memberIdRequired, memberId: "m1"))])
    #expect(group.state == .empty && group.memberCount == 0 && group.pendingMemberCount == 1)

    #expect(group.join(Self.request("m1"), ticket: 2, now: 10).isEmpty)  // parked
    #expect(group.state == .preparingRebalance)
    #expect(group.nextDeadline == 310)
    #expect(group.tick(now: 309).isEmpty)
    let completed = group.tick(now: 310)
    guard case .join(2, let result)? = completed.first, completed.count == 1 else {
      Issue.record("expected one join answer, got \(completed)")
      return
    }
    #expect(result.errorCode == .none && result.generationId == 1 && result.memberId == "m1")
    #expect(result.leaderId == "m1" && result.protocolName == "range" && result.protocolType == "consumer")
    #expect(
      result.members.map(\.memberId) == ["m1"] && result.members.first?.metadata == ByteBuffer(string: "sub"))
    #expect(group.state == .completingRebalance)

    let synced = group.sync(
      memberId: "m1", generationId: 1, assignments: ["m1": ByteBuffer(string: "p0,p1")], ticket: 3, now: 320)
    #expect(
      synced == [
        .sync(
          3,
          .init(
            errorCode: .none, protocolType: "consumer", protocolName: "range",
            assignment: ByteBuffer(string: "p0,p1")))
      ])
    #expect(group.state == .stable)
  }

  @Test func initialDelayBatchesMembersJoiningTogether() {
    var group = Machine(groupId: "g", configuration: Self.configuration(delay: 300), now: 0)
    #expect(group.join(Self.request(newId: "m1", requireKnown: false), ticket: 1, now: 0).isEmpty)
    #expect(group.join(Self.request(newId: "m2", requireKnown: false), ticket: 2, now: 200).isEmpty)
    #expect(group.nextDeadline == 500)  // stretched by the second new member
    #expect(group.tick(now: 300).isEmpty)
    let answers = group.tick(now: 500)
    #expect(answers.count == 2)
    #expect(group.generationId == 1 && group.memberCount == 2)
  }

  @Test func secondMemberJoinRebalancesAndLeaderGetsAllMetadata() {
    var group = Self.stableGroup(["m1"])
    let m2 = group.join(
      Self.request(newId: "m2", protocols: [("range", "sub2")], requireKnown: false), ticket: 1, now: 1000)
    #expect(m2.isEmpty)
    #expect(group.state == .preparingRebalance)
    // The existing member hears about it through its heartbeat, then rejoins.
    #expect(group.heartbeat(memberId: "m1", generationId: 1, now: 1100) == .rebalanceInProgress)
    let answers = group.join(Self.request("m1"), ticket: 2, now: 1200)
    #expect(answers.count == 2)  // all members rejoined: the join phase ends at once
    guard case .join(_, let leader)? = answers.first(where: { $0.ticket == 2 }),
      case .join(_, let follower)? = answers.first(where: { $0.ticket == 1 })
    else {
      Issue.record("missing answers: \(answers)")
      return
    }
    #expect(leader.generationId == 2 && leader.leaderId == "m1" && follower.leaderId == "m1")
    #expect(leader.members.map(\.memberId) == ["m1", "m2"])
    #expect(leader.members.map { String(buffer: $0.metadata) } == ["sub", "sub2"])
    #expect(follower.members.isEmpty && follower.memberId == "m2")

    // The follower's SyncGroup waits for the leader's; assignments are relayed as given,
    // and a member the leader left out gets empty bytes.
    #expect(group.sync(memberId: "m2", generationId: 2, assignments: [:], ticket: 3, now: 1300).isEmpty)
    let synced = group.sync(
      memberId: "m1", generationId: 2, assignments: ["m2": ByteBuffer(bytes: [0, 1, 2, 0xFF])], ticket: 4,
      now: 1300)
    #expect(Set(synced.map(\.ticket)) == [3, 4])
    for action in synced {
      guard case .sync(let ticket, let result) = action else { continue }
      #expect(result.assignment == (ticket == 3 ? ByteBuffer(bytes: [0, 1, 2, 0xFF]) : ByteBuffer()))
    }
    #expect(group.state == .stable)
  }

  @Test func protocolIsChosenByVote() {
    var group = Machine(groupId: "g", configuration: Self.configuration(), now: 0)
    _ = group.join(
      Self.request(
        newId: "m1", protocols: [("range", "r"), ("cooperative-sticky", "c")], requireKnown: false),
      ticket: 1, now: 0)
    #expect(group.state == .completingRebalance)
    _ = group.sync(memberId: "m1", generationId: 1, assignments: [:], ticket: 2, now: 0)
    _ = group.join(
      Self.request(
        newId: "m2", protocols: [("cooperative-sticky", "c"), ("range", "r")], requireKnown: false),
      ticket: 3, now: 0)
    _ = group.join(
      Self.request(
        newId: "m3", protocols: [("cooperative-sticky", "c"), ("roundrobin", "x"), ("range", "r")],
        requireKnown: false),
      ticket: 4, now: 0)
    let answers = group.join(
      Self.request("m1", protocols: [("range", "r"), ("cooperative-sticky", "c")]), ticket: 5, now: 0)
    #expect(answers.count == 3)
    #expect(group.protocolName == "cooperative-sticky")  // two votes against one; roundrobin not common
    // No protocol in common with the group: INCONSISTENT_GROUP_PROTOCOL.
    let odd = group.join(
      Self.request(newId: "m4", protocols: [("roundrobin", "x")], requireKnown: false), ticket: 6, now: 0)
    #expect(odd == [.join(6, .failure(.inconsistentGroupProtocol))])
    let otherType = group.join(
      Self.request(newId: "m5", type: "connect", requireKnown: false), ticket: 7, now: 0)
    #expect(otherType == [.join(7, .failure(.inconsistentGroupProtocol))])
  }

  @Test func sessionTimeoutOutsideTheRangeIsRejected() {
    var group = Machine(groupId: "g", configuration: Self.configuration(), now: 0)
    #expect(
      group.join(Self.request(newId: "m1", session: 1000), ticket: 1, now: 0) == [
        .join(1, .failure(.invalidSessionTimeout))
      ])
    #expect(
      group.join(Self.request(newId: "m1", session: 2_000_000), ticket: 2, now: 0) == [
        .join(2, .failure(.invalidSessionTimeout))
      ])
  }

  @Test func groupSizeIsBounded() {
    var group = Machine(groupId: "g", configuration: Self.configuration(maxMembers: 2), now: 0)
    _ = group.join(Self.request(newId: "m1", requireKnown: false), ticket: 1, now: 0)
    _ = group.join(Self.request(newId: "m2"), ticket: 2, now: 0)  // pending ids count too
    #expect(
      group.join(Self.request(newId: "m3"), ticket: 3, now: 0) == [.join(3, .failure(.groupMaxSizeReached))])
  }

  // MARK: Leaving and expiry

  @Test func leaveRebalancesTheRestAndTheLastLeaveEmptiesTheGroup() {
    var group = Self.stableGroup(["m1", "m2"])
    let (errors, actions) = group.leave([("m2", nil), ("nobody", nil)], now: 10)
    #expect(errors == [.none, .unknownMemberId] && actions.isEmpty)
    #expect(group.state == .preparingRebalance)
    let rejoined = group.join(Self.request("m1"), ticket: 1, now: 20)
    guard case .join(1, let result)? = rejoined.first else {
      Issue.record("m1 not answered: \(rejoined)")
      return
    }
    #expect(result.generationId == 2 && result.members.map(\.memberId) == ["m1"])
    _ = group.sync(memberId: "m1", generationId: 2, assignments: [:], ticket: 2, now: 30)
    let last = group.leave([("m1", nil)], now: 40)
    #expect(last.errors == [.none])
    #expect(group.state == .empty && group.generationId == 3 && group.memberCount == 0)
    #expect(group.heartbeat(memberId: "m1", generationId: 2, now: 50) == .unknownMemberId)
  }

  @Test func leaveAnswersAParkedJoin() {
    var group = Self.stableGroup(["m1", "m2"])
    #expect(group.join(Self.request("m2", protocols: [("range", "changed")]), ticket: 1, now: 10).isEmpty)
    let (errors, actions) = group.leave([("m2", nil)], now: 20)
    #expect(errors == [.none])
    #expect(actions.contains(.join(1, .failure(.unknownMemberId, memberId: "m2"))))
  }

  @Test func sessionExpiryRemovesTheMemberAndRebalances() {
    var group = Self.stableGroup(["m1", "m2"], session: 10_000)
    #expect(group.nextDeadline == 10_000)
    #expect(group.heartbeat(memberId: "m1", generationId: 1, now: 6_000) == .none)
    #expect(group.tick(now: 9_999).isEmpty)
    #expect(group.tick(now: 10_000).isEmpty)  // m2 is gone; nobody is parked
    #expect(group.member("m2") == nil && group.state == .preparingRebalance)
    let answers = group.join(Self.request("m1"), ticket: 1, now: 10_100)
    #expect(answers.count == 1 && group.state == .completingRebalance && group.generationId == 2)
    // The survivor goes silent as well: the group ends up Empty.
    _ = group.sync(memberId: "m1", generationId: 2, assignments: [:], ticket: 2, now: 10_100)
    _ = group.tick(now: 20_100)
    #expect(group.state == .empty && group.memberCount == 0)
  }

  @Test func rebalanceTimeoutDropsMembersThatDoNotRejoin() {
    var group = Self.stableGroup(["m1", "m2"])
    #expect(
      group.join(Self.request(newId: "m3", rebalance: 5_000, requireKnown: false), ticket: 1, now: 0).isEmpty)
    #expect(group.join(Self.request("m1", rebalance: 5_000), ticket: 2, now: 100).isEmpty)
    // m2 keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
    #expect(group.heartbeat(memberId: "m2", generationId: 1, now: 3_000) == .rebalanceInProgress)
    #expect(group.nextDeadline == 13_000)  // m2's session
    #expect(group.heartbeat(memberId: "m2", generationId: 1, now: 12_000) == .rebalanceInProgress)
    #expect(group.heartbeat(memberId: "m2", generationId: 1, now: 22_000) == .rebalanceInProgress)
    #expect(group.tick(now: 29_999).isEmpty)
    // The join phase ends at the longest rebalance timeout (m2's 30 s); m2 is dropped.
    let answers = group.tick(now: 30_000)
    #expect(Set(answers.map(\.ticket)) == [1, 2])
    #expect(group.member("m2") == nil && group.memberCount == 2 && group.generationId == 2)
  }

  @Test func unusedMemberIdExpiresAndStopsBlockingTheRebalance() {
    var group = Self.stableGroup(["m1"])
    #expect(
      group.join(Self.request(newId: "m2", session: 6_000), ticket: 1, now: 0) == [
        .join(1, .failure(.memberIdRequired, memberId: "m2"))
      ])
    _ = group.leave([("nobody", nil)], now: 0)
    // A membership change while an id is pending: the join waits for the pending member.
    #expect(group.join(Self.request("m1", protocols: [("range", "v2")]), ticket: 2, now: 10).isEmpty)
    #expect(group.state == .preparingRebalance)
    let answers = group.tick(now: 6_000)  // the handed-out id expires; m1 alone completes the join
    #expect(answers.map(\.ticket) == [2])
    #expect(group.pendingMemberCount == 0 && group.state == .completingRebalance)
  }

  // MARK: Static membership

  @Test func staticMemberRestartDoesNotRebalance() {
    var group = Self.stableGroup(["m1", "m2"], instances: ["m1": "instance-1"])
    let generation = group.generationId
    // The process restarts: same group.instance.id, no member id, same subscription.
    let answers = group.join(Self.request(newId: "m1-new", instance: "instance-1"), ticket: 1, now: 500)
    guard case .join(1, let result)? = answers.first, answers.count == 1 else {
      Issue.record("expected an immediate answer, got \(answers)")
      return
    }
    #expect(result.errorCode == .none && result.memberId == "m1-new" && result.generationId == generation)
    // The old leader id comes back, so the restarted leader does not compute an assignment.
    #expect(result.leaderId == "m1" && result.members.isEmpty)
    #expect(group.state == .stable && group.generationId == generation)
    #expect(group.memberId(forInstance: "instance-1") == "m1-new")
    // Its SyncGroup returns the assignment it had.
    let synced = group.sync(
      memberId: "m1-new", generationId: generation, assignments: [:], ticket: 2, now: 600)
    #expect(
      synced == [
        .sync(
          2,
          .init(
            errorCode: .none, protocolType: "consumer", protocolName: "range",
            assignment: ByteBuffer(string: "a-m1")))
      ])
    // The others carry on undisturbed.
    #expect(group.heartbeat(memberId: "m2", generationId: generation, now: 700) == .none)
  }

  @Test func fencedStaticInstance() {
    var group = Self.stableGroup(["m1", "m2"], instances: ["m1": "instance-1"])
    _ = group.join(Self.request(newId: "m1-new", instance: "instance-1"), ticket: 1, now: 10)
    // The replaced process is still around: everything it sends is fenced.
    #expect(
      group.heartbeat(memberId: "m1", groupInstanceId: "instance-1", generationId: 1, now: 20)
        == .fencedInstanceId)
    #expect(
      group.sync(
        memberId: "m1", groupInstanceId: "instance-1", generationId: 1, assignments: [:], ticket: 2, now: 20)
        == [.sync(2, .failure(.fencedInstanceId))])
    #expect(
      group.join(Self.request("m1", instance: "instance-1"), ticket: 3, now: 20) == [
        .join(3, .failure(.fencedInstanceId, memberId: "m1"))
      ])
    #expect(
      group.validateCommit(memberId: "m1", groupInstanceId: "instance-1", generationId: 1, now: 20)
        == .fencedInstanceId)
    #expect(group.leave([("m1", "instance-1")], now: 20).errors == [.fencedInstanceId])
    #expect(group.state == .stable)
  }

  @Test func staticReplacementFencesAParkedJoinAndChangedMetadataRebalances() {
    var group = Self.stableGroup(["m1", "m2"], instances: ["m2": "instance-2"])
    // m2 rejoins with new metadata (parked in the rebalance it starts)...
    #expect(
      group.join(
        Self.request("m2", instance: "instance-2", protocols: [("range", "new")]), ticket: 1, now: 10
      ).isEmpty)
    #expect(group.state == .preparingRebalance)
    // ...then a new process takes over its instance: the parked join is fenced.
    let answers = group.join(
      Self.request(newId: "m2-new", instance: "instance-2", protocols: [("range", "new")]), ticket: 2, now: 20
    )
    #expect(answers == [.join(1, .failure(.fencedInstanceId, memberId: "m2"))])
    let done = group.join(Self.request("m1"), ticket: 3, now: 30)
    #expect(Set(done.map(\.ticket)) == [2, 3])
    #expect(group.allMembers.map(\.memberId) == ["m1", "m2-new"] && group.generationId == 2)
  }

  @Test func staticLeaveByInstanceId() {
    var group = Self.stableGroup(["m1", "m2"], instances: ["m2": "instance-2"])
    #expect(group.leave([("", "instance-2"), ("", "unknown")], now: 10).errors == [.none, .unknownMemberId])
    #expect(group.member("m2") == nil && group.state == .preparingRebalance)
  }

  // MARK: Generations and phases

  @Test func staleGenerationIsRejected() {
    var group = Self.stableGroup(["m1", "m2"])
    #expect(group.heartbeat(memberId: "m1", generationId: 0, now: 10) == .illegalGeneration)
    #expect(
      group.sync(memberId: "m2", generationId: 7, assignments: [:], ticket: 1, now: 10) == [
        .sync(1, .failure(.illegalGeneration))
      ])
    #expect(
      group.validateCommit(memberId: "m1", groupInstanceId: nil, generationId: 0, now: 10)
        == .illegalGeneration)
    #expect(group.validateCommit(memberId: "m1", groupInstanceId: nil, generationId: 1, now: 10) == .none)
    // Generation -1 without a member id is only for Empty groups.
    #expect(
      group.validateCommit(memberId: "", groupInstanceId: nil, generationId: -1, now: 10) == .unknownMemberId)
    #expect(group.heartbeat(memberId: "stranger", generationId: 1, now: 10) == .unknownMemberId)
    var empty = Machine(groupId: "e", now: 0)
    #expect(empty.validateCommit(memberId: "", groupInstanceId: nil, generationId: -1, now: 10) == .none)
  }

  @Test func heartbeatsDuringRebalance() {
    var group = Self.stableGroup(["m1", "m2"])
    #expect(group.heartbeat(memberId: "m2", generationId: 1, now: 0) == .none)
    _ = group.join(Self.request(newId: "m3", requireKnown: false), ticket: 1, now: 0)
    #expect(group.heartbeat(memberId: "m1", generationId: 1, now: 10) == .rebalanceInProgress)
    #expect(group.heartbeat(memberId: "m2", generationId: 1, now: 10) == .rebalanceInProgress)
    #expect(group.validateCommit(memberId: "m1", groupInstanceId: nil, generationId: 1, now: 10) == .none)
    _ = group.join(Self.request("m1"), ticket: 2, now: 20)
    _ = group.join(Self.request("m2"), ticket: 3, now: 20)
    #expect(group.state == .completingRebalance)
    // Between JoinGroup and SyncGroup heartbeats are fine, commits are not.
    #expect(group.heartbeat(memberId: "m2", generationId: 2, now: 30) == .none)
    #expect(
      group.validateCommit(memberId: "m2", groupInstanceId: nil, generationId: 2, now: 30)
        == .rebalanceInProgress)
  }

  @Test func syncBeforeJoinCompletes() {
    var group = Self.stableGroup(["m1"])
    _ = group.join(Self.request(newId: "m2", requireKnown: false), ticket: 1, now: 0)
    #expect(group.state == .preparingRebalance)
    #expect(
      group.sync(memberId: "m1", generationId: 1, assignments: [:], ticket: 2, now: 10) == [
        .sync(2, .failure(.rebalanceInProgress))
      ])
    #expect(
      group.sync(memberId: "m2", generationId: 1, assignments: [:], ticket: 3, now: 10) == [
        .sync(3, .failure(.rebalanceInProgress))
      ])
    #expect(
      group.sync(memberId: "m9", generationId: 1, assignments: [:], ticket: 4, now: 10) == [
        .sync(4, .failure(.unknownMemberId))
      ])
    // A follower parked in SyncGroup when a new rebalance starts learns it at once.
    _ = group.join(Self.request("m1"), ticket: 5, now: 20)
    #expect(group.state == .completingRebalance)
    #expect(group.sync(memberId: "m2", generationId: 2, assignments: [:], ticket: 6, now: 30).isEmpty)
    let answers = group.join(Self.request(newId: "m3", requireKnown: false), ticket: 7, now: 40)
    #expect(answers == [.sync(6, .failure(.rebalanceInProgress))])
    #expect(group.state == .preparingRebalance)
  }

  @Test func rejoinWithSameMetadataInStableIsAnsweredAtOnce() {
    var group = Self.stableGroup(["m1", "m2"])
    let answers = group.join(Self.request("m2"), ticket: 1, now: 10)
    guard case .join(1, let result)? = answers.first else {
      Issue.record("no answer: \(answers)")
      return
    }
    #expect(result.generationId == 1 && result.leaderId == "m1" && result.members.isEmpty)
    #expect(group.state == .stable)
    // The leader rejoining always rebalances (it may want to reassign).
    #expect(group.join(Self.request("m1"), ticket: 2, now: 20).isEmpty)
    #expect(group.state == .preparingRebalance)
  }

  @Test func unloadAnswersEveryParkedRequest() {
    var group = Self.stableGroup(["m1", "m2"])
    _ = group.join(Self.request("m2", protocols: [("range", "x")]), ticket: 1, now: 0)
    let answers = group.unload(answering: .notCoordinator, now: 10)
    #expect(answers == [.join(1, .failure(.notCoordinator, memberId: "m2"))])
    #expect(group.state == .dead)
    #expect(group.heartbeat(memberId: "m1", generationId: 1, now: 20) == .coordinatorNotAvailable)
  }
}

extension GroupStateMachine {
  /// Shorthands for tests.
  mutating func sync(
    memberId: String, groupInstanceId: String? = nil, generationId: Int32, assignments: [String: ByteBuffer],
    ticket: Ticket, now: Int64
  ) -> [Action] {
    sync(
      memberId: memberId, groupInstanceId: groupInstanceId, generationId: generationId, protocolType: nil,
      protocolName: nil, assignments: assignments, ticket: ticket, now: now)
  }

  mutating func heartbeat(memberId: String, generationId: Int32, now: Int64) -> ErrorCode {
    heartbeat(memberId: memberId, groupInstanceId: nil, generationId: generationId, now: now)
  }
}
