/// Kafka's ACL model (KIP-11, KIP-290 prefixed patterns), with Kafka's numeric codes: who
/// (principal, host) may or may not do what (operation) to which resources (type, name,
/// literal or prefix).

/// Kafka's ACL enumerations: a numeric code on the wire and an upper-case name
/// (`CLUSTER_ACTION`) in tools, derived here from the case name (`clusterAction`).
public protocol AclCode: CaseIterable, Sendable {}

extension AclCode {
  /// Kafka's name: the case name in upper snake case.
  public var name: String {
    var result = ""
    for character in String(describing: self) {
      if character.isUppercase { result.append("_") }
      result.append(contentsOf: character.uppercased())
    }
    return result
  }

  /// The case of a Kafka name, in any case, with `-` or `_` between words.
  public init?(name: String) {
    let wanted = name.uppercased().replacing("-", with: "_")
    guard let match = Self.allCases.first(where: { $0.name == wanted }) else { return nil }
    self = match
  }
}

/// `ResourceType` codes.
public enum AclResourceType: Int8, Sendable, Codable, CaseIterable, AclCode {
  case unknown = 0
  case any = 1
  case topic = 2
  case group = 3
  case cluster = 4
  case transactionalId = 5
  case delegationToken = 6
  case user = 7

}

/// `AclOperation` codes.
public enum AclOperation: Int8, Sendable, Codable, CaseIterable, AclCode {
  case unknown = 0
  case any = 1
  case all = 2
  case read = 3
  case write = 4
  case create = 5
  case delete = 6
  case alter = 7
  case describe = 8
  case clusterAction = 9
  case describeConfigs = 10
  case alterConfigs = 11
  case idempotentWrite = 12
  case createTokens = 13
  case describeTokens = 14

  /// Operations an ALLOW for this one also grants (Kafka: READ, WRITE, DELETE and ALTER
  /// imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS).
  public var implies: [AclOperation] {
    switch self {
    case .read, .write, .delete, .alter: [.describe]
    case .alterConfigs: [.describeConfigs]
    default: []
    }
  }
}

/// `AclPermissionType` codes.
public enum AclPermission: Int8, Sendable, Codable, CaseIterable, AclCode {
  case unknown = 0
  case any = 1
  case deny = 2
  case allow = 3

}

/// `PatternType` codes. A binding is LITERAL or PREFIXED; filters may also say ANY or MATCH.
public enum AclPatternType: Int8, Sendable, Codable, CaseIterable, AclCode {
  case unknown = 0
  case any = 1
  case match = 2
  case literal = 3
  case prefixed = 4

}

/// One ACL: `permission` for `principal` from `host` to do `operation` on the resources
/// `resourceType` + `resourceName` (exactly, or every name starting with it when PREFIXED;
/// the literal name "*" is every resource of the type).
public struct AclBinding: Hashable, Sendable, Codable, CustomStringConvertible {
  public var resourceType: AclResourceType
  public var resourceName: String
  public var patternType: AclPatternType
  public var principal: String
  public var host: String
  public var operation: AclOperation
  public var permission: AclPermission

  public init(
    resourceType: AclResourceType, resourceName: String, patternType: AclPatternType = .literal,
    principal: String, host: String = "*", operation: AclOperation, permission: AclPermission = .allow
  ) {
    self.resourceType = resourceType
    self.resourceName = resourceName
    self.patternType = patternType
    self.principal = principal
    self.host = host
    self.operation = operation
    self.permission = permission
  }

  /// Why this binding cannot be stored, if it cannot (CreateAcls answers INVALID_REQUEST).
  public var problem: String? {
    if ![.topic, .group, .cluster, .transactionalId, .user, .delegationToken].contains(resourceType) {
      return "resource type \(resourceType.name) cannot be used in an ACL"
    }
    if ![.literal, .prefixed].contains(patternType) {
      return "pattern type \(patternType.name) cannot be used in an ACL (LITERAL or PREFIXED)"
    }
    if [.unknown, .any].contains(operation) { return "operation \(operation.name) cannot be used in an ACL" }
    if ![.allow, .deny].contains(permission) {
      return "permission \(permission.name) cannot be used in an ACL"
    }
    if resourceName.isEmpty { return "the resource name is empty" }
    if resourceType == .cluster && resourceName != "kafka-cluster" {
      return "the cluster resource is named kafka-cluster"
    }
    guard let colon = principal.firstIndex(of: ":"), colon != principal.startIndex,
      principal.index(after: colon) != principal.endIndex
    else { return "principal \"\(principal)\" is not of the form Type:name (User:alice)" }
    if host.isEmpty { return "the host is empty (use * for any host)" }
    if resourceName.utf8.count > 1024 || principal.utf8.count > 1024 || host.utf8.count > 256 {
      return "resource name, principal or host too long"
    }
    return nil
  }

  /// Whether this binding covers resource `name` of its type.
  public func covers(_ name: String) -> Bool {
    switch patternType {
    case .literal: resourceName == name || resourceName == "*"
    case .prefixed: name.hasPrefix(resourceName)
    default: false
    }
  }

  public var description: String {
    "\(permission.name) \(principal) from \(host) \(operation.name) on \(resourceType.name):\(patternType.name):\(resourceName)"
  }
}

/// DescribeAcls and DeleteAcls filters: nil (or ANY) fields match everything.
public struct AclFilter: Hashable, Sendable {
  public var resourceType: AclResourceType
  public var resourceName: String?
  public var patternType: AclPatternType
  public var principal: String?
  public var host: String?
  public var operation: AclOperation
  public var permission: AclPermission

  public init(
    resourceType: AclResourceType = .any, resourceName: String? = nil, patternType: AclPatternType = .any,
    principal: String? = nil, host: String? = nil, operation: AclOperation = .any,
    permission: AclPermission = .any
  ) {
    self.resourceType = resourceType
    self.resourceName = resourceName
    self.patternType = patternType
    self.principal = principal
    self.host = host
    self.operation = operation
    self.permission = permission
  }

  public var problem: String? {
    if resourceType == .unknown || patternType == .unknown || operation == .unknown || permission == .unknown
    {
      return "the filter has an UNKNOWN field"
    }
    return nil
  }

  public func matches(_ binding: AclBinding) -> Bool {
    if resourceType != .any && resourceType != binding.resourceType { return false }
    if operation != .any && operation != binding.operation { return false }
    if permission != .any && permission != binding.permission { return false }
    if let principal, principal != binding.principal { return false }
    if let host, host != binding.host { return false }
    switch patternType {
    case .any:
      if let resourceName, resourceName != binding.resourceName { return false }
    case .literal, .prefixed:
      if patternType != binding.patternType { return false }
      if let resourceName, resourceName != binding.resourceName { return false }
    case .match:
      // Every binding that applies to the named resource: literal equal or "*", or a prefix.
      guard let resourceName else { return true }
      if binding.patternType == .literal {
        return binding.resourceName == resourceName || binding.resourceName == "*"
      }
      return resourceName.hasPrefix(binding.resourceName)
    default:
      return false
    }
    return true
  }
}

extension AclBinding {
  /// A binding from its wire codes; nil if a code is unknown.
  public init?(
    codes resourceType: Int8, resourceName: String, patternType: Int8, principal: String, host: String,
    operation: Int8, permission: Int8
  ) {
    guard let type = AclResourceType(rawValue: resourceType),
      let pattern = AclPatternType(rawValue: patternType),
      let operation = AclOperation(rawValue: operation), let permission = AclPermission(rawValue: permission)
    else { return nil }
    self.init(
      resourceType: type, resourceName: resourceName, patternType: pattern, principal: principal, host: host,
      operation: operation, permission: permission)
  }
}
