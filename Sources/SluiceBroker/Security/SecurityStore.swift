public import KafkaProtocol
public import SluiceSASL
public import SluiceStorage
import Synchronization

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif

/// The broker's users (SCRAM credentials: salt, iterations, StoredKey, ServerKey — never a
/// password) and ACLs, kept in the metadata file's `scram-credentials` and `acls` sections,
/// so they are written atomically with fsync and survive a crash whole or not at all.
/// Changes are persisted off the event loops before they take effect.
public final class SecurityStore: Sendable {
  public struct CredentialChange: Sendable {
    public var user: String
    public var mechanism: SCRAMMechanism
    /// nil: delete.
    public var credential: SCRAMCredential?
    public init(user: String, mechanism: SCRAMMechanism, credential: SCRAMCredential?) {
      self.user = user
      self.mechanism = mechanism
      self.credential = credential
    }
  }

  struct State: Sendable {
    var credentials: [String: [SCRAMMechanism: SCRAMCredential]] = [:]
    var acls: Set<AclBinding> = []
    var authorizer: Authorizer
  }

  static let credentialSection = "scram-credentials"
  static let aclSection = "acls"

  let metadata: MetadataStore
  let superUsers: Set<String>
  let generation = Atomic<Int>(0)
  /// Held while a change is persisted and then applied, so that changes apply in the order
  /// they were written; readers (every request's ACL check) take only `state`, briefly.
  let writer = Mutex<Void>(())
  let allowEveryone: Mutex<Bool>
  let state: Mutex<State>

  /// Loads what the metadata file holds. `allowEveryoneIfNoAclFound`: Kafka's setting; the
  /// server lowers it to false once a listener authenticates, unless set explicitly.
  public init(metadata: MetadataStore, superUsers: Set<String>, allowEveryoneIfNoAclFound: Bool)
    throws(StorageError)
  {
    self.metadata = metadata
    self.superUsers = superUsers
    self.allowEveryone = Mutex(allowEveryoneIfNoAclFound)
    let document = metadata.snapshot
    var credentials: [String: [SCRAMMechanism: SCRAMCredential]] = [:]
    for (key, value) in document.sections[Self.credentialSection] ?? [:] {
      guard let (user, credential) = Self.decodeCredential(key: key, value: value) else {
        throw StorageError(.corruptMetadata, "unreadable SCRAM credential \(key)")
      }
      credentials[user, default: [:]][credential.mechanism] = credential
    }
    var acls: Set<AclBinding> = []
    for key in (document.sections[Self.aclSection] ?? [:]).keys {
      guard let binding = try? JSONDecoder().decode(AclBinding.self, from: Data(key.utf8)) else {
        throw StorageError(.corruptMetadata, "unreadable ACL \(key)")
      }
      acls.insert(binding)
    }
    state = Mutex(
      State(
        credentials: credentials, acls: acls,
        authorizer: Authorizer(
          acls: acls, superUsers: superUsers, allowEveryoneIfNoAclFound: allowEveryoneIfNoAclFound)))
  }

  /// Sets `allow.everyone.if.no.acl.found` (the server decides it from its listeners).
  public func setAllowEveryoneIfNoAclFound(_ allow: Bool) {
    allowEveryone.withLock { $0 = allow }
    state.withLock { $0.authorizer.allowEveryoneIfNoAclFound = allow }
  }

  public var authorizer: Authorizer { state.withLock { $0.authorizer } }

  /// Changes whenever a credential does (caches of verified passwords compare it).
  public var credentialGeneration: Int { generation.load(ordering: .relaxed) }

  // MARK: Credentials

  public func credential(user: String, mechanism: SCRAMMechanism) -> SCRAMCredential? {
    state.withLock { $0.credentials[user]?[mechanism] }
  }

  /// Every user's credentials (DescribeUserScramCredentials, `sluice user list`).
  public var users: [String: [SCRAMCredential]] {
    state.withLock {
      $0.credentials.mapValues { Array($0.values).sorted { $0.mechanism.rawValue < $1.mechanism.rawValue } }
    }
  }

  /// Whether `password` is `user`'s (PLAIN, HTTP Basic): checked against the user's
  /// SCRAM-SHA-512 credential, else its SCRAM-SHA-256 one. An unknown user costs the same
  /// PBKDF2 as a known one, so the time taken does not tell which users exist. Costs
  /// thousands of HMACs: call it off the event loops.
  public func verify(user: String, password: String) -> Bool {
    let credential = state.withLock { $0.credentials[user].flatMap { $0[.sha512] ?? $0[.sha256] } }
    guard let credential else {
      _ = Self.decoy.matches(password: password)
      return false
    }
    return credential.matches(password: password)
  }

  static let decoy = SCRAMCredential(
    mechanism: .sha512, password: "", salt: SCRAM.randomBytes(16),
    iterations: SCRAMMechanism.defaultIterations)

  /// Applies upserts and deletions together; persisted (through `offLoop`) before they
  /// count. Throws if persisting fails, leaving everything as it was.
  public func alterCredentials(
    _ changes: [CredentialChange],
    offLoop:
      @Sendable (@escaping @Sendable () throws(StorageError) -> Void) async throws(StorageError) -> Void
  ) async throws(StorageError) {
    try await offLoop { [self] () throws(StorageError) in try applyCredentials(changes) }
  }

  /// ``alterCredentials(_:offLoop:)`` on the calling thread, which must not be an event loop
  /// (it writes and fsyncs the metadata file): `sluice user --data-dir`.
  public func applyCredentials(_ changes: [CredentialChange]) throws(StorageError) {
    try writer.withLock { (_: inout Void) throws(StorageError) in try persistAndApply(changes) }
  }

  func persistAndApply(_ changes: [CredentialChange]) throws(StorageError) {
    try metadata.update { (document: inout MetadataStore.Document) throws(StorageError) in
      var section = document.sections[Self.credentialSection] ?? [:]
      for change in changes {
        let key = Self.credentialKey(user: change.user, mechanism: change.mechanism)
        section[key] = change.credential.map(Self.encodeCredential)
      }
      document.sections[Self.credentialSection] = section
    }
    defer { generation.wrappingAdd(1, ordering: .relaxed) }
    state.withLock { state in
      for change in changes {
        state.credentials[change.user, default: [:]][change.mechanism] = change.credential
        if state.credentials[change.user]?.isEmpty == true { state.credentials[change.user] = nil }
      }
    }
  }

  static func credentialKey(user: String, mechanism: SCRAMMechanism) -> String {
    "\(mechanism.rawValue):\(user)"
  }

  static func encodeCredential(_ credential: SCRAMCredential) -> String {
    [
      String(credential.iterations), SCRAM.base64(credential.salt), SCRAM.base64(credential.storedKey),
      SCRAM.base64(credential.serverKey),
    ].joined(separator: ":")
  }

  static func decodeCredential(key: String, value: String) -> (String, SCRAMCredential)? {
    guard let colon = key.firstIndex(of: ":"), let mechanism = SCRAMMechanism(rawValue: String(key[..<colon]))
    else { return nil }
    let fields = value.split(separator: ":")
    guard fields.count == 4, let iterations = Int(fields[0]), let salt = SCRAM.unbase64(fields[1]),
      let stored = SCRAM.unbase64(fields[2]), let server = SCRAM.unbase64(fields[3])
    else { return nil }
    return (
      String(key[key.index(after: colon)...]),
      SCRAMCredential(
        mechanism: mechanism, salt: salt, iterations: iterations, storedKey: stored, serverKey: server)
    )
  }

  // MARK: ACLs

  public var acls: [AclBinding] { state.withLock { Array($0.acls) } }

  public func describeAcls(_ filter: AclFilter) -> [AclBinding] {
    state.withLock { $0.acls.filter(filter.matches) }.sorted { $0.description < $1.description }
  }

  /// Adds bindings (persisted before they count); ones already present are kept once.
  public func createAcls(
    _ bindings: [AclBinding],
    offLoop:
      @Sendable (@escaping @Sendable () throws(StorageError) -> Void) async throws(StorageError) -> Void
  ) async throws(StorageError) {
    _ = try await changeAcls(offLoop: offLoop) { acls in
      for binding in bindings { acls.insert(binding) }
      return []
    }
  }

  /// Removes the bindings each filter matches; what each removed.
  public func deleteAcls(
    _ filters: [AclFilter],
    offLoop:
      @Sendable (@escaping @Sendable () throws(StorageError) -> Void) async throws(StorageError) -> Void
  ) async throws(StorageError) -> [[AclBinding]] {
    try await changeAcls(offLoop: offLoop) { acls in
      filters.map { filter in
        let matched = acls.filter(filter.matches)
        acls.subtract(matched)
        return matched.sorted { $0.description < $1.description }
      }
    }
  }

  func changeAcls(
    offLoop:
      @Sendable (@escaping @Sendable () throws(StorageError) -> Void) async throws(StorageError) -> Void,
    _ change: @escaping @Sendable (inout Set<AclBinding>) -> [[AclBinding]]
  ) async throws(StorageError) -> [[AclBinding]] {
    let result = Mutex<[[AclBinding]]>([])
    try await offLoop { [self] () throws(StorageError) in
      // Under the writer lock, so that concurrent changes apply one after the other; the
      // state lock (which every request's ACL check takes) only to read and to swap.
      try writer.withLock { (_: inout Void) throws(StorageError) in
        let current = state.withLock { $0.acls }
        var acls = current
        let removed = change(&acls)
        result.withLock { $0 = removed }
        guard acls != current else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var section: [String: String] = [:]
        for binding in acls {
          guard let data = try? encoder.encode(binding) else { continue }
          section[String(decoding: data, as: UTF8.self)] = "1"
        }
        try metadata.update { (document: inout MetadataStore.Document) throws(StorageError) in
          document.sections[Self.aclSection] = section
        }
        let authorizer = Authorizer(
          acls: acls, superUsers: superUsers, allowEveryoneIfNoAclFound: allowEveryone.withLock { $0 })
        state.withLock { state in
          state.acls = acls
          state.authorizer = authorizer
        }
      }
    }
    return result.withLock { $0 }
  }
}
