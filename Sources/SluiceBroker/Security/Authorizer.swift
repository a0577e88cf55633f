public import KafkaProtocol

/// Decides requests against a set of ACLs, as Kafka's standard authorizer does:
/// super users may do anything; a resource no ACL covers is open only with
/// `allow.everyone.if.no.acl.found`; a matching DENY wins over any ALLOW; an ALLOW for the
/// operation, for ALL, or for an operation that implies it (READ implies DESCRIBE, …) grants.
public struct Authorizer: Sendable {
  public var superUsers: Set<String>
  public var allowEveryoneIfNoAclFound: Bool
  var byType: [AclResourceType: [AclBinding]] = [:]

  public init(acls: some Sequence<AclBinding>, superUsers: Set<String>, allowEveryoneIfNoAclFound: Bool) {
    self.superUsers = superUsers
    self.allowEveryoneIfNoAclFound = allowEveryoneIfNoAclFound
    for binding in acls { byType[binding.resourceType, default: []].append(binding) }
  }

  /// True when no ACL exists and everyone is allowed: nothing to check.
  public var allowsEverything: Bool { allowEveryoneIfNoAclFound && byType.isEmpty }

  public func authorize(
    principal: String, host: String, operation: AclOperation, resourceType: AclResourceType, name: String
  ) -> Bool {
    if allowsEverything || superUsers.contains(principal) { return true }
    let covering = (byType[resourceType] ?? []).filter { $0.covers(name) }
    if covering.isEmpty { return allowEveryoneIfNoAclFound }
    func applies(_ binding: AclBinding) -> Bool {
      (binding.principal == principal || binding.principal == "User:*")
        && (binding.host == host || binding.host == "*")
    }
    if covering.contains(where: {
      $0.permission == .deny && applies($0) && ($0.operation == operation || $0.operation == .all)
    }) {
      return false
    }
    return covering.contains {
      $0.permission == .allow && applies($0)
        && ($0.operation == operation || $0.operation == .all || $0.operation.implies.contains(operation))
    }
  }

  /// Whether `principal` may do `operation` on at least one resource of the type (Kafka's
  /// `authorizeByResourceType`, used for IDEMPOTENT_WRITE through WRITE on any topic).
  public func authorizeAny(
    principal: String, host: String, operation: AclOperation, resourceType: AclResourceType
  )
    -> Bool
  {
    if allowsEverything || superUsers.contains(principal) { return true }
    let bindings = byType[resourceType] ?? []
    if bindings.isEmpty { return allowEveryoneIfNoAclFound }
    func applies(_ binding: AclBinding) -> Bool {
      (binding.principal == principal || binding.principal == "User:*")
        && (binding.host == host || binding.host == "*")
        && (binding.operation == operation || binding.operation == .all)
    }
    return bindings.contains { allow in
      allow.permission == .allow && applies(allow)
        && !bindings.contains { deny in
          deny.permission == .deny && deny.resourceName == allow.resourceName
            && deny.patternType == allow.patternType && applies(deny)
        }
    }
  }
}
