import KafkaProtocol
import SluiceBroker

/// JoinGroup, SyncGroup, Heartbeat, LeaveGroup: version differences resolved here, the
/// protocol itself in ``GroupCoordinator`` / ``GroupStateMachine``.
extension KafkaFrontDoor {
  func joinGroup(_ request: JoinGroupRequest, version: Int16, clientId: String?, clientHost: String) async
    -> JoinGroupResponse
  {
    // A share group's id is not also a consumer group's (Kafka: INCONSISTENT_GROUP_PROTOCOL).
    if broker.shares.group(request.groupId) != nil {
      var refused = JoinGroupResponse()
      refused.errorCode = ErrorCode.inconsistentGroupProtocol.rawValue
      refused.memberId = request.memberId
      return refused
    }
    let clientId = clientId ?? ""
    // Kafka's form: client id, "-", a UUID (the client id part bounded).
    let prefix = clientId.isEmpty ? "member" : String(clientId.prefix(200))
    let join = GroupStateMachine.JoinRequest(
      memberId: request.memberId,
      groupInstanceId: version >= 5 ? request.groupInstanceId : nil,
      clientId: clientId,
      clientHost: clientHost.isEmpty ? "" : "/" + clientHost,  // as Kafka shows it
      sessionTimeoutMs: request.sessionTimeoutMs,
      rebalanceTimeoutMs: version >= 1 && request.rebalanceTimeoutMs > 0
        ? request.rebalanceTimeoutMs : request.sessionTimeoutMs,
      protocolType: request.protocolType,
      protocols: request.protocols.map { .init(name: $0.name, metadata: $0.metadata) },
      requireKnownMemberId: version >= 4,
      newMemberId: prefix + "-" + KafkaUUID.random().description)
    let result = await broker.groups.join(groupId: request.groupId, join)
    var response = JoinGroupResponse()
    response.errorCode = result.errorCode.rawValue
    response.generationId = result.generationId
    if version >= 7 {
      response.protocolType = result.protocolType
      response.protocolName = result.protocolName
    } else {
      response.protocolName = result.protocolName ?? ""
    }
    response.leader = result.leaderId
    response.memberId = result.memberId
    response.members = result.members.map { member in
      var entry = JoinGroupResponse.JoinGroupResponseMember(
        memberId: member.memberId, metadata: member.metadata)
      if version >= 5 { entry.groupInstanceId = member.groupInstanceId }
      return entry
    }
    return response
  }

  func syncGroup(_ request: SyncGroupRequest, version: Int16) async -> SyncGroupResponse {
    let result = await broker.groups.sync(
      groupId: request.groupId, memberId: request.memberId,
      groupInstanceId: version >= 3 ? request.groupInstanceId : nil,
      generationId: request.generationId,
      protocolType: version >= 5 ? request.protocolType : nil,
      protocolName: version >= 5 ? request.protocolName : nil,
      assignments: request.assignments.map { ($0.memberId, $0.assignment) })
    var response = SyncGroupResponse()
    response.errorCode = result.errorCode.rawValue
    response.assignment = result.assignment
    if version >= 5 {
      response.protocolType = result.protocolType
      response.protocolName = result.protocolName
    }
    return response
  }

  func heartbeat(_ request: HeartbeatRequest, version: Int16) -> HeartbeatResponse {
    let code = broker.groups.heartbeat(
      groupId: request.groupId, memberId: request.memberId,
      groupInstanceId: version >= 3 ? request.groupInstanceId : nil, generationId: request.generationId)
    return HeartbeatResponse(errorCode: code.rawValue)
  }

  func leaveGroup(_ request: LeaveGroupRequest, version: Int16) -> LeaveGroupResponse {
    var response = LeaveGroupResponse()
    if broker.groups.invalidGroupId(request.groupId) {
      response.errorCode = ErrorCode.invalidGroupId.rawValue
      return response
    }
    let leaving: [(memberId: String, groupInstanceId: String?)] =
      version >= 3 ? request.members.map { ($0.memberId, $0.groupInstanceId) } : [(request.memberId, nil)]
    let errors = broker.groups.leave(groupId: request.groupId, members: leaving)
    if version >= 3 {
      response.members = zip(leaving, errors).map { member, error in
        .init(memberId: member.memberId, groupInstanceId: member.groupInstanceId, errorCode: error.rawValue)
      }
    } else {
      response.errorCode = (errors.first ?? .none).rawValue
    }
    return response
  }
}
