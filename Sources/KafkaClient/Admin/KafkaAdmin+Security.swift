public import KafkaProtocol
import NIOCore
import SluiceSASL

/// Users (SCRAM credentials) and ACLs, as Kafka's Admin client manages them.
extension KafkaAdmin {
  /// A user and the SCRAM mechanisms it has credentials for, with their iteration counts.
  public struct ScramUser: Sendable, Hashable {
    public var name: String
    public var mechanisms: [(mechanism: String, iterations: Int)]

    public static func == (a: Self, b: Self) -> Bool {
      a.name == b.name && a.mechanisms.map(\.mechanism) == b.mechanisms.map(\.mechanism)
        && a.mechanisms.map(\.iterations) == b.mechanisms.map(\.iterations)
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(name) }
  }

  /// Creates or replaces `user`'s credential for `mechanism` (`SCRAM-SHA-256` or
  /// `SCRAM-SHA-512`). The password is salted and hashed here; only the salted form travels.
  /// 8192 iterations by default, as `sluice user add` (`SCRAMMechanism.defaultIterations`).
  public func upsertScramCredential(
    user: String, password: String, mechanism: String = "SCRAM-SHA-512", iterations: Int = 8192
  ) async throws {
    guard let scram = SCRAMMechanism(rawValue: mechanism.uppercased()) else {
      throw KafkaError(.config, "unknown SCRAM mechanism \(mechanism) (SCRAM-SHA-256 or SCRAM-SHA-512)")
    }
    let salt = SCRAM.randomBytes(32)
    var request = AlterUserScramCredentialsRequest()
    request.upsertions = [
      .init(
        name: user, mechanism: scram.kafkaType, iterations: Int32(iterations), salt: ByteBuffer(bytes: salt),
        saltedPassword: ByteBuffer(
          bytes: scram.saltedPassword(Array(password.utf8), salt: salt, iterations: iterations)))
    ]
    try await alterScram(request)
  }

  /// Deletes `user`'s credential for `mechanism`.
  public func deleteScramCredential(user: String, mechanism: String = "SCRAM-SHA-512") async throws {
    guard let scram = SCRAMMechanism(rawValue: mechanism.uppercased()) else {
      throw KafkaError(.config, "unknown SCRAM mechanism \(mechanism) (SCRAM-SHA-256 or SCRAM-SHA-512)")
    }
    var request = AlterUserScramCredentialsRequest()
    request.deletions = [.init(name: user, mechanism: scram.kafkaType)]
    try await alterScram(request)
  }

  func alterScram(_ request: AlterUserScramCredentialsRequest) async throws {
    guard
      case .alterUserScramCredentials(let response) = try await send(
        .alterUserScramCredentials(request), key: .alterUserScramCredentials, max: 0)
    else { throw KafkaError(.protocolError, "not an AlterUserScramCredentials response") }
    for result in response.results {
      try ErrorCode(rawValue: result.errorCode).check(
        "alter credentials of \(result.user)", message: result.errorMessage)
    }
  }

  /// Users with SCRAM credentials (all, or the named ones).
  public func describeScramUsers(_ names: [String]? = nil) async throws -> [ScramUser] {
    var request = DescribeUserScramCredentialsRequest()
    request.users = names?.map { .init(name: $0) }
    guard
      case .describeUserScramCredentials(let response) = try await send(
        .describeUserScramCredentials(request), key: .describeUserScramCredentials, max: 0)
    else { throw KafkaError(.protocolError, "not a DescribeUserScramCredentials response") }
    try ErrorCode(rawValue: response.errorCode).check("describe users", message: response.errorMessage)
    return try response.results.map { result in
      try ErrorCode(rawValue: result.errorCode).check(
        "describe user \(result.user)", message: result.errorMessage)
      return ScramUser(
        name: result.user,
        mechanisms: result.credentialInfos.map {
          (
            SCRAMMechanism(kafkaType: $0.mechanism)?.rawValue ?? "UNKNOWN(\($0.mechanism))",
            Int($0.iterations)
          )
        })
    }
  }

  /// Adds ACLs.
  public func createAcls(_ bindings: [AclBinding]) async throws {
    var request = CreateAclsRequest()
    request.creations = bindings.map {
      .init(
        resourceType: $0.resourceType.rawValue, resourceName: $0.resourceName,
        resourcePatternType: $0.patternType.rawValue, principal: $0.principal, host: $0.host,
        operation: $0.operation.rawValue, permissionType: $0.permission.rawValue)
    }
    guard case .createAcls(let response) = try await send(.createAcls(request), key: .createAcls, max: 3)
    else {
      throw KafkaError(.protocolError, "not a CreateAcls response")
    }
    for result in response.results {
      try ErrorCode(rawValue: result.errorCode).check("create ACL", message: result.errorMessage)
    }
  }

  /// The ACLs `filter` matches.
  public func describeAcls(_ filter: AclFilter = AclFilter()) async throws -> [AclBinding] {
    let request = DescribeAclsRequest(
      resourceTypeFilter: filter.resourceType.rawValue, resourceNameFilter: filter.resourceName,
      patternTypeFilter: filter.patternType.rawValue, principalFilter: filter.principal,
      hostFilter: filter.host,
      operation: filter.operation.rawValue, permissionType: filter.permission.rawValue)
    guard
      case .describeAcls(let response) = try await send(.describeAcls(request), key: .describeAcls, max: 3)
    else { throw KafkaError(.protocolError, "not a DescribeAcls response") }
    try ErrorCode(rawValue: response.errorCode).check("describe ACLs", message: response.errorMessage)
    return response.resources.flatMap { resource in
      resource.acls.compactMap { acl in
        AclBinding(
          codes: resource.resourceType, resourceName: resource.resourceName,
          patternType: resource.patternType,
          principal: acl.principal, host: acl.host, operation: acl.operation, permission: acl.permissionType)
      }
    }
  }

  /// Removes the ACLs each filter matches; the removed ones.
  @discardableResult
  public func deleteAcls(_ filters: [AclFilter]) async throws -> [AclBinding] {
    var request = DeleteAclsRequest()
    request.filters = filters.map {
      .init(
        resourceTypeFilter: $0.resourceType.rawValue, resourceNameFilter: $0.resourceName,
        patternTypeFilter: $0.patternType.rawValue, principalFilter: $0.principal, hostFilter: $0.host,
        operation: $0.operation.rawValue, permissionType: $0.permission.rawValue)
    }
    guard case .deleteAcls(let response) = try await send(.deleteAcls(request), key: .deleteAcls, max: 3)
    else {
      throw KafkaError(.protocolError, "not a DeleteAcls response")
    }
    var removed: [AclBinding] = []
    for result in response.filterResults {
      try ErrorCode(rawValue: result.errorCode).check("delete ACLs", message: result.errorMessage)
      removed += result.matchingAcls.compactMap {
        AclBinding(
          codes: $0.resourceType, resourceName: $0.resourceName, patternType: $0.patternType,
          principal: $0.principal, host: $0.host, operation: $0.operation, permission: $0.permissionType)
      }
    }
    return removed
  }
}
