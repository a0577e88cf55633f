import KafkaProtocol
import SluiceBroker

/// ListGroups, DescribeGroups, DeleteGroups.
extension KafkaFrontDoor {
  /// Consumer groups are classic groups; share groups (ListGroups v5+) are "share".
  static let groupType = "classic"
  /// ListGroups: every group with DESCRIBE on the cluster, else the groups the principal
  /// may DESCRIBE.
  func listGroups(_ request: ListGroupsRequest, version: Int16, access: Access) -> ListGroupsResponse {
    let all = access.allowsCluster(.describe)
    func visible(_ groupId: String) -> Bool { all || access.allows(.describe, .group, groupId) }
    let states = version >= 4 ? Set(request.statesFilter.map { $0.lowercased() }) : []
    let types = version >= 5 ? Set(request.typesFilter.map { $0.lowercased() }) : []
    var response = ListGroupsResponse()
    if types.isEmpty || types.contains("share") {
      for groupId in broker.shares.groupIds where visible(groupId) {
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
    where visible(group.groupId) && (states.isEmpty || states.contains(group.state.rawValue.lowercased())) {
      var entry = ListGroupsResponse.ListedGroup(groupId: group.groupId, protocolType: group.protocolType)
      if version >= 4 { entry.groupState = group.state.rawValue }
      if version >= 5 { entry.groupType = Self.groupType }
      response.groups.append(entry)
    }
    return response
  }

  /// DescribeGroups: DESCRIBE on each group (GROUP_AUTHORIZATION_FAILED).
  func describeGroups(_ request: DescribeGroupsRequest, version: Int16, access: Access)
    -> DescribeGroupsResponse
  {
    var response = DescribeGroupsResponse()
    for groupId in request.groups {
      var described = DescribeGroupsResponse.DescribedGroup(groupId: groupId)
      if version >= 3 && request.includeAuthorizedOperations {
        described.authorizedOperations = access.operations(Self.groupOperations, .group, groupId)
      }
      if !access.allows(.describe, .group, groupId) {
        described.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
      } else if broker.groups.invalidGroupId(groupId) {
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

  /// DeleteGroups: DELETE on each group (GROUP_AUTHORIZATION_FAILED).
  func deleteGroups(_ request: DeleteGroupsRequest, access: Access) async -> DeleteGroupsResponse {
    var response = DeleteGroupsResponse()
    for groupId in request.groupsNames {
      guard access.allows(.delete, .group, groupId) else {
        response.results.append(
          .init(groupId: groupId, errorCode: ErrorCode.groupAuthorizationFailed.rawValue))
        continue
      }
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
