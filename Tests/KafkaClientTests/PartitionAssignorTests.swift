import KafkaClient
import KafkaProtocol
import Testing

/// The range and round-robin assignors, as pure functions (expected values worked out by
/// hand from the Java client's documented behaviour).
@Suite struct PartitionAssignorTests {
  @Test func rangeGivesContiguousRunsAndTheRemainderToTheFirstMembers() {
    let members = [
      GroupSubscription(memberId: "m2", topics: ["t"]),
      GroupSubscription(memberId: "m1", topics: ["t", "u"]),
    ]
    let result = PartitionAssignment.range(members: members, partitionCounts: ["t": 5, "u": 2])
    #expect(result["m1"] == ["t": [0, 1, 2], "u": [0, 1]])
    #expect(result["m2"] == ["t": [3, 4]])
  }

  @Test func rangeOrdersStaticMembersByInstanceId() {
    let members = [
      GroupSubscription(memberId: "aaa", groupInstanceId: "z", topics: ["t"]),
      GroupSubscription(memberId: "zzz", groupInstanceId: "a", topics: ["t"]),
    ]
    let result = PartitionAssignment.range(members: members, partitionCounts: ["t": 2])
    #expect(result["zzz"] == ["t": [0]])
    #expect(result["aaa"] == ["t": [1]])
  }

  @Test func rangeWithMoreMembersThanPartitionsLeavesSomeEmpty() {
    let members = (1...3).map { GroupSubscription(memberId: "m\($0)", topics: ["t"]) }
    let result = PartitionAssignment.range(members: members, partitionCounts: ["t": 2])
    #expect(result["m1"] == ["t": [0]])
    #expect(result["m2"] == ["t": [1]])
    #expect(result["m3"] == [:])
  }

  @Test func roundRobinCyclesOverAllTopicPartitions() {
    let members = [
      GroupSubscription(memberId: "b", topics: ["t1", "t2"]),
      GroupSubscription(memberId: "a", topics: ["t1", "t2"]),
    ]
    let result = PartitionAssignment.roundRobin(members: members, partitionCounts: ["t1": 3, "t2": 3])
    #expect(result["a"] == ["t1": [0, 2], "t2": [1]])
    #expect(result["b"] == ["t1": [1], "t2": [0, 2]])
  }

  @Test func roundRobinSkipsMembersNotSubscribedToATopic() {
    let members = [
      GroupSubscription(memberId: "a", topics: ["t1"]),
      GroupSubscription(memberId: "b", topics: ["t1", "t2"]),
    ]
    let result = PartitionAssignment.roundRobin(
      members: members, partitionCounts: ["t1": 2, "t2": 2, "x": 4])
    #expect(result["a"] == ["t1": [0]])
    #expect(result["b"] == ["t1": [1], "t2": [0, 1]])
  }

  @Test func unknownTopicsGetNothing() {
    let members = [GroupSubscription(memberId: "a", topics: ["missing"])]
    #expect(PartitionAssignment.assign(.range, members: members, partitionCounts: [:]) == ["a": [:]])
    #expect(PartitionAssignment.assign(.roundRobin, members: members, partitionCounts: [:]) == ["a": [:]])
  }
}
