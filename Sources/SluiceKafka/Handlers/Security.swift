import KafkaProtocol
import NIOCore
import SluiceBroker
import SluiceSASL

/// ACLs (CreateAcls, DescribeAcls, DeleteAcls) and SCRAM credentials
/// (DescribeUserScramCredentials, AlterUserScramCredentials), and the authorization helpers
/// every handler uses. See docs/security.md.
extension KafkaFrontDoor {
  /// The request's principal and host with the ACLs of the moment (nil: no ACL exists and
  /// everyone is allowed, so nothing need be checked).
  struct Access: Sendable {
    let authorizer: Authorizer?
    let principal: String
    let host: String

    func allows(_ operation: AclOperation, _ type: AclResourceType, _ name: String) -> Bool {
      authorizer?.authorize(
        principal: principal, host: host, operation: operation, resourceType: type, name: name)
        ?? true
    }

    func allowsCluster(_ operation: AclOperation) -> Bool { allows(operation, .cluster, "kafka-cluster") }

    /// Whether some resource of the type allows it (InitProducerId: WRITE on any topic).
    func allowsAny(_ operation: AclOperation, _ type: AclResourceType) -> Bool {
      authorizer?.authorizeAny(principal: principal, host: host, operation: operation, resourceType: type)
        ?? true
    }

    /// Kafka's authorized-operations bit set: the operations of `candidates` allowed here.
    func operations(_ candidates: [AclOperation], _ type: AclResourceType, _ name: String) -> Int32 {
      candidates.reduce(0) { allows($1, type, name) ? $0 | (1 << Int32($1.rawValue)) : $0 }
    }
  }

  func access(_ context: RequestContext) -> Access {
    let authorizer = broker.security.authorizer
    return Access(
      authorizer: authorizer.allowsEverything ? nil : authorizer, principal: context.principal,
      host: context.clientHost)
  }

  func createAcls(_ request: CreateAclsRequest, access: Access) async -> CreateAclsResponse {
    var response = CreateAclsResponse()
    guard access.allowsCluster(.alter) else {
      response.results = request.creations.map { _ in
        .init(
          errorCode: ErrorCode.clusterAuthorizationFailed.rawValue,
          errorMessage: "ALTER on the cluster is needed")
      }
      return response
    }
    var valid: [AclBinding] = []
    var results: [CreateAclsResponse.AclCreationResult] = []
    for creation in request.creations {
      guard
        let binding = AclBinding(
          codes: creation.resourceType, resourceName: creation.resourceName,
          patternType: creation.resourcePatternType, principal: creation.principal, host: creation.host,
          operation: creation.operation, permission: creation.permissionType)
      else {
        results.append(
          .init(errorCode: ErrorCode.invalidRequest.rawValue, errorMessage: "unknown ACL field code"))
        continue
      }
      if let problem = binding.problem {
        results.append(.init(errorCode: ErrorCode.invalidRequest.rawValue, errorMessage: problem))
        continue
      }
      valid.append(binding)
      results.append(.init(errorCode: 0, errorMessage: nil))
    }
    do {
      try await broker.createAcls(valid)
    } catch {
      for index in results.indices where results[index].errorCode == 0 {
        results[index] = .init(errorCode: error.code.rawValue, errorMessage: error.message)
      }
    }
    response.results = results
    return response
  }

  static func filter(
    type: Int8, name: String?, pattern: Int8, principal: String?, host: String?, operation: Int8,
    permission: Int8
  ) -> AclFilter? {
    guard let type = AclResourceType(rawValue: type), let pattern = AclPatternType(rawValue: pattern),
      let operation = AclOperation(rawValue: operation), let permission = AclPermission(rawValue: permission)
    else { return nil }
    let filter = AclFilter(
      resourceType: type, resourceName: name, patternType: pattern, principal: principal, host: host,
      operation: operation, permission: permission)
    return filter.problem == nil ? filter : nil
  }

  func describeAcls(_ request: DescribeAclsRequest, access: Access) -> DescribeAclsResponse {
    var response = DescribeAclsResponse()
    guard access.allowsCluster(.describe) else {
      response.errorCode = ErrorCode.clusterAuthorizationFailed.rawValue
      response.errorMessage = "DESCRIBE on the cluster is needed"
      return response
    }
    guard
      let filter = Self.filter(
        type: request.resourceTypeFilter, name: request.resourceNameFilter,
        pattern: request.patternTypeFilter,
        principal: request.principalFilter, host: request.hostFilter, operation: request.operation,
        permission: request.permissionType)
    else {
      response.errorCode = ErrorCode.invalidRequest.rawValue
      response.errorMessage = "invalid ACL filter"
      return response
    }
    var resources: [String: DescribeAclsResponse.DescribeAclsResource] = [:]
    var order: [String] = []
    for binding in broker.security.describeAcls(filter) {
      let key = "\(binding.resourceType.rawValue)|\(binding.patternType.rawValue)|\(binding.resourceName)"
      if resources[key] == nil {
        order.append(key)
        resources[key] = .init(
          resourceType: binding.resourceType.rawValue, resourceName: binding.resourceName,
          patternType: binding.patternType.rawValue)
      }
      resources[key]?.acls.append(
        .init(
          principal: binding.principal, host: binding.host, operation: binding.operation.rawValue,
          permissionType: binding.permission.rawValue))
    }
    response.errorMessage = nil
    response.resources = order.compactMap { resources[$0] }
    return response
  }

  func deleteAcls(_ request: DeleteAclsRequest, access: Access) async -> DeleteAclsResponse {
    var response = DeleteAclsResponse()
    guard access.allowsCluster(.alter) else {
      response.filterResults = request.filters.map { _ in
        .init(
          errorCode: ErrorCode.clusterAuthorizationFailed.rawValue,
          errorMessage: "ALTER on the cluster is needed")
      }
      return response
    }
    let filters = request.filters.map {
      Self.filter(
        type: $0.resourceTypeFilter, name: $0.resourceNameFilter, pattern: $0.patternTypeFilter,
        principal: $0.principalFilter, host: $0.hostFilter, operation: $0.operation,
        permission: $0.permissionType)
    }
    // An invalid filter matches nothing (and says why); the valid ones are applied together.
    let never = AclFilter(resourceType: .unknown)
    do {
      let removed = try await broker.deleteAcls(filters.map { $0 ?? never })
      response.filterResults = zip(filters, removed).map { filter, removed in
        guard filter != nil else {
          return .init(errorCode: ErrorCode.invalidRequest.rawValue, errorMessage: "invalid ACL filter")
        }
        return .init(
          errorCode: 0, errorMessage: nil,
          matchingAcls: removed.map {
            .init(
              errorCode: 0, errorMessage: nil, resourceType: $0.resourceType.rawValue,
              resourceName: $0.resourceName,
              patternType: $0.patternType.rawValue, principal: $0.principal, host: $0.host,
              operation: $0.operation.rawValue, permissionType: $0.permission.rawValue)
          })
      }
    } catch {
      response.filterResults = request.filters.map { _ in
        .init(errorCode: error.code.rawValue, errorMessage: error.message)
      }
    }
    return response
  }

  func describeUserScramCredentials(_ request: DescribeUserScramCredentialsRequest, access: Access)
    -> DescribeUserScramCredentialsResponse
  {
    var response = DescribeUserScramCredentialsResponse()
    guard access.allowsCluster(.describe) else {
      response.errorCode = ErrorCode.clusterAuthorizationFailed.rawValue
      response.errorMessage = "DESCRIBE on the cluster is needed"
      return response
    }
    response.errorMessage = nil
    let users = broker.security.users
    func info(_ credentials: [SCRAMCredential]) -> [DescribeUserScramCredentialsResponse.CredentialInfo] {
      credentials.map { .init(mechanism: $0.mechanism.kafkaType, iterations: Int32(clamping: $0.iterations)) }
    }
    guard let wanted = request.users, !wanted.isEmpty else {
      response.results = users.keys.sorted().map {
        .init(user: $0, errorCode: 0, errorMessage: nil, credentialInfos: info(users[$0] ?? []))
      }
      return response
    }
    var seen: [String: Int] = [:]
    for user in wanted { seen[user.name, default: 0] += 1 }
    var reported: Set<String> = []
    for user in wanted where reported.insert(user.name).inserted {
      if seen[user.name, default: 0] > 1 {
        response.results.append(
          .init(
            user: user.name, errorCode: ErrorCode.duplicateResource.rawValue,
            errorMessage: "user \(user.name) named more than once"))
      } else if let credentials = users[user.name] {
        response.results.append(
          .init(user: user.name, errorCode: 0, errorMessage: nil, credentialInfos: info(credentials)))
      } else {
        response.results.append(
          .init(
            user: user.name, errorCode: ErrorCode.resourceNotFound.rawValue,
            errorMessage: "attempt to describe a user credential that does not exist"))
      }
    }
    return response
  }

  func alterUserScramCredentials(_ request: AlterUserScramCredentialsRequest, access: Access) async
    -> AlterUserScramCredentialsResponse
  {
    var response = AlterUserScramCredentialsResponse()
    let names = request.deletions.map(\.name) + request.upsertions.map(\.name)
    var order: [String] = []
    for name in names where !order.contains(name) { order.append(name) }
    guard access.allowsCluster(.alter) else {
      response.results = order.map {
        .init(
          user: $0, errorCode: ErrorCode.clusterAuthorizationFailed.rawValue,
          errorMessage: "ALTER on the cluster is needed")
      }
      return response
    }
    var errors: [String: (ErrorCode, String)] = [:]
    var changes: [String: [SecurityStore.CredentialChange]] = [:]
    // As Kafka: a user named twice in one request (whatever the mechanisms) is refused whole.
    var counts: [String: Int] = [:]
    for name in names { counts[name, default: 0] += 1 }
    for (name, count) in counts where count > 1 {
      errors[name] = (.duplicateResource, "a user credential cannot be altered twice in the same request")
    }
    let existing = broker.security.users
    func fail(_ user: String, _ code: ErrorCode, _ message: String) {
      if errors[user] == nil { errors[user] = (code, message) }
    }
    for deletion in request.deletions {
      guard let mechanism = SCRAMMechanism(kafkaType: deletion.mechanism) else {
        fail(deletion.name, .unsupportedSaslMechanism, "unknown SCRAM mechanism \(deletion.mechanism)")
        continue
      }
      guard existing[deletion.name]?.contains(where: { $0.mechanism == mechanism }) == true else {
        fail(deletion.name, .resourceNotFound, "attempt to delete a user credential that does not exist")
        continue
      }
      changes[deletion.name, default: []].append(
        .init(user: deletion.name, mechanism: mechanism, credential: nil))
    }
    for upsertion in request.upsertions {
      guard let mechanism = SCRAMMechanism(kafkaType: upsertion.mechanism) else {
        fail(upsertion.name, .unsupportedSaslMechanism, "unknown SCRAM mechanism \(upsertion.mechanism)")
        continue
      }
      let iterations = Int(upsertion.iterations)
      let salt =
        upsertion.salt.getBytes(at: upsertion.salt.readerIndex, length: upsertion.salt.readableBytes) ?? []
      let salted =
        upsertion.saltedPassword.getBytes(
          at: upsertion.saltedPassword.readerIndex, length: upsertion.saltedPassword.readableBytes) ?? []
      if upsertion.name.isEmpty || upsertion.name.utf8.count > 1024 {
        fail(upsertion.name, .unacceptableCredential, "username must be 1 to 1024 bytes")
      } else if !(SCRAMMechanism.minIterations...SCRAMMechanism.maxIterations).contains(iterations) {
        fail(
          upsertion.name, .unacceptableCredential,
          "iterations \(iterations) outside \(SCRAMMechanism.minIterations)...\(SCRAMMechanism.maxIterations)"
        )
      } else if salt.isEmpty || salt.count > 1024 {
        fail(upsertion.name, .unacceptableCredential, "salt must be 1 to 1024 bytes")
      } else if salted.count != mechanism.hashLength {
        fail(upsertion.name, .unacceptableCredential, "salted password must be \(mechanism.hashLength) bytes")
      }
      let credential = SCRAMCredential(
        mechanism: mechanism, saltedPassword: salted, salt: salt, iterations: iterations)
      changes[upsertion.name, default: []].append(
        .init(user: upsertion.name, mechanism: mechanism, credential: credential))
    }
    // A user with any error has none of its changes applied; the others' apply together.
    let applied = order.filter { errors[$0] == nil }.flatMap { changes[$0] ?? [] }
    var storageError: BrokerError?
    if !applied.isEmpty {
      do {
        try await broker.alterCredentials(applied)
      } catch {
        storageError = error
      }
    }
    response.results = order.map { user in
      if let (code, message) = errors[user] {
        return .init(user: user, errorCode: code.rawValue, errorMessage: message)
      }
      if let storageError {
        return .init(user: user, errorCode: storageError.code.rawValue, errorMessage: storageError.message)
      }
      return .init(user: user, errorCode: 0, errorMessage: nil)
    }
    return response
  }
}
