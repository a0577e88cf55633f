import KafkaProtocol
import NIOCore
import SluiceBroker

/// Share groups (KIP-932) on the Kafka wire: ShareGroupHeartbeat, ShareGroupDescribe,
/// ShareFetch and ShareAcknowledge, translated onto ``Broker/shareFetch(_:context:)`` and
/// ``ShareGroups`` (docs/queues.md). Topics travel by id.
extension KafkaFrontDoor {
  func shareGroupHeartbeat(_ request: ShareGroupHeartbeatRequest, clientId: String?, clientHost: String) async
    -> ShareGroupHeartbeatResponse
  {
    var response = ShareGroupHeartbeatResponse()
    guard !request.groupId.isEmpty else {
      response.errorCode = ErrorCode.invalidGroupId.rawValue
      response.errorMessage = "GroupId must not be empty"
      return response
    }
    if let names = request.subscribedTopicNames, names.count > 10_000 {
      response.errorCode = ErrorCode.invalidRequest.rawValue
      response.errorMessage = "\(names.count) subscribed topics; at most 10000"
      return response
    }
    let result = await broker.shareHeartbeat(
      .init(
        groupId: request.groupId, memberId: request.memberId, memberEpoch: request.memberEpoch,
        rackId: request.rackId, subscribedTopicNames: request.subscribedTopicNames, clientId: clientId ?? "",
        clientHost: clientHost))
    if let error = result.error {
      response.errorCode = error.code.rawValue
      response.errorMessage = error.message
      return response
    }
    response.memberId = result.memberId
    response.memberEpoch = result.memberEpoch
    response.heartbeatIntervalMs = result.heartbeatIntervalMs
    if let assignment = result.assignment {
      var byTopic: [String: [Int32]] = [:]
      var order: [String] = []
      for key in assignment {
        if byTopic[key.topic] == nil { order.append(key.topic) }
        byTopic[key.topic, default: []].append(key.partition)
      }
      response.assignment = .init(
        topicPartitions: order.compactMap { name in
          broker.topic(name).map { .init(topicId: $0.id, partitions: byTopic[name] ?? []) }
        })
    }
    return response
  }

  func shareGroupDescribe(_ request: ShareGroupDescribeRequest, access: Access) -> ShareGroupDescribeResponse
  {
    var response = ShareGroupDescribeResponse()
    for groupId in request.groupIds.prefix(10_000) {
      var described = ShareGroupDescribeResponse.DescribedGroup()
      described.groupId = groupId
      guard access.allows(.describe, .group, groupId) else {
        described.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
        described.errorMessage = "DESCRIBE on group \(groupId) is not allowed"
        response.groups.append(described)
        continue
      }
      guard let group = broker.shares.group(groupId) else {
        described.errorCode = ErrorCode.groupIdNotFound.rawValue
        described.errorMessage = "Share group \(groupId) not found"
        response.groups.append(described)
        continue
      }
      described.groupState = group.members.isEmpty ? "Empty" : "Stable"
      described.groupEpoch = group.groupEpoch
      described.assignmentEpoch = group.groupEpoch
      described.assignorName = "simple"
      for member in group.members.values.sorted(by: { $0.memberId < $1.memberId }) {
        var entry = ShareGroupDescribeResponse.Member()
        entry.memberId = member.memberId
        entry.rackId = member.rackId
        entry.memberEpoch = member.memberEpoch
        entry.clientId = member.clientId
        entry.clientHost = member.clientHost
        entry.subscribedTopicNames = member.subscribedTopics
        var byTopic: [String: [Int32]] = [:]
        for key in member.assignment ?? [] { byTopic[key.topic, default: []].append(key.partition) }
        entry.assignment.topicPartitions = byTopic.keys.sorted().compactMap { name in
          broker.topic(name).map { .init(topicId: $0.id, topicName: name, partitions: byTopic[name] ?? []) }
        }
        described.members.append(entry)
      }
      response.groups.append(described)
    }
    return response
  }

  /// The refusal of a ShareFetch or ShareAcknowledge: READ on the group and on every topic
  /// it names is needed (the whole request is refused, with the first denial).
  func shareDenial(group: String?, topics: [KafkaUUID], access: Access) -> (ErrorCode, String)? {
    if access.authorizer == nil { return nil }
    if !access.allows(.read, .group, group ?? "") {
      return (.groupAuthorizationFailed, "READ on group \(group ?? "") is not allowed")
    }
    for id in topics {
      if let name = broker.topic(id: id)?.name, !access.allows(.read, .topic, name) {
        return (.topicAuthorizationFailed, "READ on topic \(name) is not allowed")
      }
    }
    return nil
  }

  func shareFetch(_ request: ShareFetchRequest, context: RequestContext, access: Access) async
    -> ShareFetchResponse
  {
    if let (code, message) = shareDenial(
      group: request.groupId, topics: request.topics.map(\.topicId),
      access: access)
    {
      return ShareFetchResponse(errorCode: code.rawValue, errorMessage: message)
    }
    var call = ShareFetchCall(
      groupId: request.groupId ?? "", memberId: request.memberId ?? "",
      sessionEpoch: request.shareSessionEpoch)
    call.maxWaitMs = Int64(max(0, request.maxWaitMs))
    call.maxBytes = Int(max(1, request.maxBytes))
    call.maxRecords = request.maxRecords > 0 ? Int(request.maxRecords) : 500
    var response = ShareFetchResponse()
    var names: [KafkaUUID: String] = [:]
    var unknown: [(KafkaUUID, Int32)] = []
    for topic in request.topics {
      guard let name = broker.topic(id: topic.topicId)?.name else {
        unknown += topic.partitions.map { (topic.topicId, $0.partitionIndex) }
        continue
      }
      names[topic.topicId] = name
      for partition in topic.partitions {
        let key = SharePartitionKey(topic: name, partition: partition.partitionIndex)
        call.partitions.append(key)
        let (acknowledgements, problem) = Self.acknowledgements(
          key, partition.acknowledgementBatches.map { ($0.firstOffset, $0.lastOffset, $0.acknowledgeTypes) })
        if let problem {
          response.errorCode = ErrorCode.invalidRequest.rawValue
          response.errorMessage = problem
          return response
        }
        call.acknowledgements += acknowledgements
      }
    }
    for topic in request.forgottenTopicsData {
      guard let name = broker.topic(id: topic.topicId)?.name else { continue }
      call.forgotten += topic.partitions.map { SharePartitionKey(topic: name, partition: $0) }
    }
    let result = await broker.shareFetch(call, context: context.call)
    response.acquisitionLockTimeoutMs = Int32(clamping: result.lockTimeoutMs)
    if let error = result.error {
      response.errorCode = error.code.rawValue
      response.errorMessage = error.message
      return response
    }
    var topics: [String: ShareFetchResponse.ShareFetchableTopicResponse] = [:]
    var order: [String] = []
    var idsByName: [String: KafkaUUID] = [:]
    for (id, name) in names { idsByName[name] = id }
    for partition in result.partitions {
      // A topic deleted during the call still answers, under the id the client sent.
      guard let id = broker.topic(partition.key.topic)?.id ?? idsByName[partition.key.topic] else { continue }
      let name = partition.key.topic
      if topics[name] == nil {
        topics[name] = .init(topicId: id, partitions: [])
        order.append(name)
      }
      var data = ShareFetchResponse.PartitionData()
      data.partitionIndex = partition.key.partition
      data.currentLeader = .init(leaderId: broker.config.nodeId, leaderEpoch: 0)
      if let error = partition.error {
        data.errorCode = error.code.rawValue
        data.errorMessage = error.message
      }
      if let error = partition.acknowledgeError {
        data.acknowledgeErrorCode = error.code.rawValue
        data.acknowledgeErrorMessage = error.message
      }
      data.records = (try? partition.records.load()) ?? ByteBuffer()
      data.acquiredRecords = partition.acquired.map {
        .init(firstOffset: $0.first, lastOffset: $0.last, deliveryCount: $0.deliveryCount)
      }
      topics[name]!.partitions.append(data)
    }
    response.responses = order.map { topics[$0]! }
    var byId: [KafkaUUID: Int] = [:]
    for (index, topic) in response.responses.enumerated() { byId[topic.topicId] = index }
    for (id, partition) in unknown {
      var data = ShareFetchResponse.PartitionData()
      data.partitionIndex = partition
      data.errorCode = ErrorCode.unknownTopicId.rawValue
      data.errorMessage = "Unknown topic id \(id)"
      data.records = ByteBuffer()
      if let index = byId[id] {
        response.responses[index].partitions.append(data)
      } else {
        byId[id] = response.responses.count
        response.responses.append(.init(topicId: id, partitions: [data]))
      }
    }
    return response
  }

  func shareAcknowledge(_ request: ShareAcknowledgeRequest, context: RequestContext, access: Access) async
    -> ShareAcknowledgeResponse
  {
    if let (code, message) = shareDenial(
      group: request.groupId, topics: request.topics.map(\.topicId), access: access)
    {
      return ShareAcknowledgeResponse(errorCode: code.rawValue, errorMessage: message)
    }
    var call = ShareFetchCall(
      groupId: request.groupId ?? "", memberId: request.memberId ?? "",
      sessionEpoch: request.shareSessionEpoch)
    call.fetch = false
    var response = ShareAcknowledgeResponse()
    var unknown: [(KafkaUUID, Int32)] = []
    // Every partition the request names is answered (librdkafka takes a missing one for
    // INVALID_RECORD_STATE), those without batches too.
    var listed: [(KafkaUUID, SharePartitionKey)] = []
    for topic in request.topics {
      guard let name = broker.topic(id: topic.topicId)?.name else {
        unknown += topic.partitions.map { (topic.topicId, $0.partitionIndex) }
        continue
      }
      for partition in topic.partitions {
        let key = SharePartitionKey(topic: name, partition: partition.partitionIndex)
        listed.append((topic.topicId, key))
        let (acknowledgements, problem) = Self.acknowledgements(
          key, partition.acknowledgementBatches.map { ($0.firstOffset, $0.lastOffset, $0.acknowledgeTypes) })
        if let problem {
          response.errorCode = ErrorCode.invalidRequest.rawValue
          response.errorMessage = problem
          return response
        }
        call.acknowledgements += acknowledgements
      }
    }
    let result = await broker.shareFetch(call, context: context.call)
    if let error = result.error {
      response.errorCode = error.code.rawValue
      response.errorMessage = error.message
      return response
    }
    var byId: [KafkaUUID: Int] = [:]
    func append(_ id: KafkaUUID, _ data: ShareAcknowledgeResponse.PartitionData) {
      if let index = byId[id] {
        response.responses[index].partitions.append(data)
      } else {
        byId[id] = response.responses.count
        response.responses.append(.init(topicId: id, partitions: [data]))
      }
    }
    let outcomes = Dictionary(result.partitions.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
    var answered = Set<SharePartitionKey>()
    for (id, key) in listed where answered.insert(key).inserted {
      var data = ShareAcknowledgeResponse.PartitionData()
      data.partitionIndex = key.partition
      data.currentLeader = .init(leaderId: broker.config.nodeId, leaderEpoch: 0)
      if let error = outcomes[key]?.acknowledgeError ?? outcomes[key]?.error {
        data.errorCode = error.code.rawValue
        data.errorMessage = error.message
      }
      append(id, data)
    }
    for (id, partition) in unknown {
      var data = ShareAcknowledgeResponse.PartitionData()
      data.partitionIndex = partition
      data.errorCode = ErrorCode.unknownTopicId.rawValue
      data.errorMessage = "Unknown topic id \(id)"
      append(id, data)
    }
    return response
  }

  /// One partition's acknowledgement batches in the broker's terms, or why they are
  /// refused: a batch without types, or a type that is not Kafka's (0 gap, 1 accept,
  /// 2 release, 3 reject).
  static func acknowledgements(
    _ key: SharePartitionKey, _ batches: [(first: Int64, last: Int64, types: [Int8])]
  ) -> ([ShareAcknowledgement], problem: String?) {
    var result: [ShareAcknowledgement] = []
    for batch in batches {
      guard !batch.types.isEmpty else { return ([], "An acknowledgement batch has no acknowledge types") }
      var types: [ShareAcknowledgeType] = []
      for raw in batch.types {
        guard let type = ShareAcknowledgeType(rawValue: raw) else {
          return ([], "Acknowledge type \(raw) is not 0 (gap), 1 (accept), 2 (release) or 3 (reject)")
        }
        types.append(type)
      }
      result.append(ShareAcknowledgement(key: key, first: batch.first, last: batch.last, types: types))
    }
    return (result, nil)
  }
}
