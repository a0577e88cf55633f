import KafkaProtocol
import SluiceBroker

/// ListGroups, DescribeGroups, DeleteGroups.
extension KafkaFrontDoor {
  /// Consumer groups are classic groups; share groups (ListGroups v5+) are "share".
  static let groupType = "classic"
  /// DescribeGroups v3+ `authorized_operations` with no ACLs: READ (3), DELETE (6), DESCRIBE (8).
  static let groupOperations: Int32 = (1 << 3) | (1 << 6) | (1 << 8)

  func listGroups(_ request: ListGroupsRequest, version: Int16) -> ListGroupsResponse {
    let states = version >= 4 ? Set(request.statesFilter.map { $0.lowercased() }) : []
    let types = version >= 5 ? Set(request.typesFilter.map { $0.lowercased() }) : []
    var response = ListGroupsResponse()
    if types.isEmpty || types.contains("share") {
      for groupId in broker.shares.groupIds {
        guard let group = broker.shares.group(groupId) else { continue }
        let state = group.members.isEmpty ? "Empty" : "Stable"
        guard states.isEmpty || states.contains(state.lowercased()) else { continue }
        var entry = ListGroupsResponse.ListedGroup(groupId: groupId, protocolType: "share")
        if version >= 4 { entry.groupState = state }
        if version >= 5 { entry.groupType = "share" }
        response.groups.append(entry)
      }
    }
    guard types.isEmpty || types.contains(Self.groupType) else { return response }
    for group in broker.groups.list()
    where states.isEmpty || states.contains(group.state.rawValue.lowercased()) {
      var entry = ListGroupsResponse.ListedGroup(groupId: group.groupId, protocolType: group.protocolType)
      if version >= 4 { entry.groupState = group.state.rawValue }
      if version >= 5 { entry.groupType = Self.groupType }
      response.groups.append(entry)
    }
    return response
  }

  func describeGroups(_ request: DescribeGroupsRequest, version: Int16) -> DescribeGroupsResponse {
    var response = DescribeGroupsResponse()
    for groupId in request.groups {
      var described = DescribeGroupsResponse.DescribedGroup(groupId: groupId)
      if version >= 3 && request.includeAuthorizedOperations {
        described.authorizedOperations = Self.groupOperations
      }
      if broker.groups.invalidGroupId(groupId) {
        described.errorCode = ErrorCode.invalidGroupId.rawValue
      } else if let group = broker.groups.describe(groupId) {
        described.groupState = group.state.rawValue
        described.protocolType = group.protocolType
        // As Kafka: metadata, assignments and the protocol only once the group is Stable.
        let stable = group.state == .stable
        described.protocolData = stable ? group.protocolName ?? "" : ""
        described.members = group.members.map { member in
          var entry = DescribeGroupsResponse.DescribedGroupMember(
            memberId: member.memberId, clientId: member.clientId, clientHost: member.clientHost)
          if version >= 4 { entry.groupInstanceId = member.groupInstanceId }
          if stable {
            entry.memberMetadata = member.metadata(for: group.protocolName)
            entry.memberAssignment = member.assignment
          }
          return entry
        }
      } else {
        // Kafka's answer for a group it does not know: no error, state Dead.
        described.groupState = GroupStateMachine.State.dead.rawValue
      }
      response.groups.append(described)
    }
    return response
  }

  func deleteGroups(_ request: DeleteGroupsRequest) async -> DeleteGroupsResponse {
    var response = DeleteGroupsResponse()
    for groupId in request.groupsNames {
      if broker.shares.knows(groupId) {
        let code = await broker.shares.delete(groupId) ?? .none
        response.results.append(.init(groupId: groupId, errorCode: code.rawValue))
        continue
      }
      let code = await broker.groups.deleteGroup(groupId)
      response.results.append(.init(groupId: groupId, errorCode: code.rawValue))
    }
    return response
  }
}
