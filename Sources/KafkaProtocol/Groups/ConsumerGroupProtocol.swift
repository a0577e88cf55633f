package import NIOCore

/// One member's subscription as the group leader sees it.
package struct GroupSubscription: Sendable, Hashable {
  package var memberId: String
  package var groupInstanceId: String?
  package var topics: [String]
  package init(memberId: String, groupInstanceId: String? = nil, topics: [String]) {
    self.memberId = memberId
    self.groupInstanceId = groupInstanceId
    self.topics = topics
  }
}

/// The classic consumer protocol's assignors: pure functions from the members'
/// subscriptions and the partition counts to each member's partitions. Shared by the Swift
/// client and the broker's own group members (the HTTP front door's REST consumers).
///
/// Both order members the way the Java client does (by group.instance.id when a member has
/// one, else by member id), so a Sluice leader and a Java/librdkafka leader hand out the
/// same assignment for the same group.
package enum PartitionAssignment {
  package typealias Result = [String: [String: [Int32]]]

  private static func sorted(_ members: [GroupSubscription]) -> [GroupSubscription] {
    members.sorted {
      ($0.groupInstanceId ?? $0.memberId, $0.memberId) < ($1.groupInstanceId ?? $1.memberId, $1.memberId)
    }
  }

  /// Range: per topic, the subscribed members in order each get a contiguous run of
  /// partitions; the first `partitions % members` get one more.
  package static func range(members: [GroupSubscription], partitionCounts: [String: Int]) -> Result {
    var result: Result = [:]
    for member in members { result[member.memberId] = [:] }
    let ordered = sorted(members)
    let topics = Set(members.flatMap(\.topics)).sorted()
    for topic in topics {
      guard let count = partitionCounts[topic], count > 0 else { continue }
      let subscribed = ordered.filter { $0.topics.contains(topic) }
      let share = count / subscribed.count
      let extra = count % subscribed.count
      var next = 0
      for (index, member) in subscribed.enumerated() {
        let length = share + (index < extra ? 1 : 0)
        guard length > 0 else { continue }
        result[member.memberId]![topic] = (next..<next + length).map { Int32($0) }
        next += length
      }
    }
    return result
  }

  /// Round robin: every topic-partition in (topic, partition) order goes to the next member
  /// (in order, cycling) that subscribes to its topic.
  package static func roundRobin(members: [GroupSubscription], partitionCounts: [String: Int]) -> Result {
    var result: Result = [:]
    for member in members { result[member.memberId] = [:] }
    let ordered = sorted(members)
    guard !ordered.isEmpty else { return result }
    let topics = Set(members.flatMap(\.topics)).sorted()
    var cursor = 0
    for topic in topics {
      guard let count = partitionCounts[topic], count > 0 else { continue }
      for partition in 0..<count {
        for step in 0..<ordered.count {
          let member = ordered[(cursor + step) % ordered.count]
          guard member.topics.contains(topic) else { continue }
          result[member.memberId]![topic, default: []].append(Int32(partition))
          cursor = (cursor + step + 1) % ordered.count
          break
        }
      }
    }
    return result
  }
}

/// The consumer protocol's embedded encodings (`protocol_type` "consumer"): subscription
/// metadata in JoinGroup and assignments in SyncGroup, each an int16 version then the
/// struct.
package enum ConsumerProtocolCodec {
  package static let subscriptionVersion: Int16 = 1

  package static func encodeSubscription(topics: [String]) throws(KafkaProtocolError) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeInteger(subscriptionVersion)
    try ConsumerProtocolSubscription(topics: topics.sorted(), userData: nil, ownedPartitions: [])
      .encode(to: &buffer, version: subscriptionVersion)
    return buffer
  }

  /// Decodes a member's subscription; newer versions are read as the newest known one (the
  /// format only ever appends fields).
  package static func decodeSubscription(_ metadata: ByteBuffer) throws(KafkaProtocolError)
    -> ConsumerProtocolSubscription
  {
    var buffer = metadata
    guard let version = buffer.readInteger(as: Int16.self), version >= 0 else {
      throw KafkaProtocolError(.truncated, "consumer subscription without a valid version")
    }
    return try ConsumerProtocolSubscription(from: &buffer, version: min(version, 3))
  }

  package static func encodeAssignment(_ partitions: [String: [Int32]]) throws(KafkaProtocolError)
    -> ByteBuffer
  {
    var buffer = ByteBuffer()
    buffer.writeInteger(Int16(0))
    try ConsumerProtocolAssignment(
      assignedPartitions: partitions.keys.sorted().map {
        .init(topic: $0, partitions: partitions[$0]!.sorted())
      }, userData: nil
    ).encode(to: &buffer, version: 0)
    return buffer
  }

  /// Decodes the assignment from SyncGroup, sorted and without duplicates or negative
  /// partitions; empty bytes mean no partitions.
  package static func decodeAssignment(_ bytes: ByteBuffer) throws(KafkaProtocolError) -> [(
    topic: String, partition: Int32
  )] {
    guard bytes.readableBytes > 0 else { return [] }
    var buffer = bytes
    guard let version = buffer.readInteger(as: Int16.self), version >= 0 else {
      throw KafkaProtocolError(.truncated, "consumer assignment without a valid version")
    }
    let assignment = try ConsumerProtocolAssignment(from: &buffer, version: min(version, 3))
    var seen: Set<String> = []
    var result: [(topic: String, partition: Int32)] = []
    for topic in assignment.assignedPartitions {
      for partition in topic.partitions
      where partition >= 0 && seen.insert("\(topic.topic)\u{0}\(partition)").inserted {
        result.append((topic.topic, partition))
      }
    }
    return result.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
  }
}
