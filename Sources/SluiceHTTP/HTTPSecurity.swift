import Crypto
import KafkaProtocol
import NIOCore
import NIOHTTP1
import SluiceBroker
import Synchronization

/// Authentication and authorization of the HTTP front door with the broker's users and
/// ACLs (docs/security.md): HTTP Basic (`Authorization: Basic base64(user:password)`)
/// checked against the SCRAM credentials, then the same ACL checks as the Kafka APIs the
/// route stands for (produce: WRITE on the topic; consumers and event streams: READ on the
/// group and topics; webhooks: ALTER on the cluster and READ on the topic; …).
struct HTTPSecurity: Sendable {
  let broker: Broker
  let cache: VerifiedPasswords

  /// The principal a request authenticates as, or the 401 response.
  enum Authentication {
    case success(String)
    case failure(HTTPResponse)
  }

  /// The principal a request authenticates as, or the 401 response. The password check
  /// (a PBKDF2) runs off the event loop; a failure is answered after 100 ms, to slow guessing.
  func authenticate(_ request: HTTPRequest, route: String) async -> Authentication {
    guard let header = request.headers.first(name: "authorization"), header.utf8.count <= 4096,
      header.lowercased().hasPrefix("basic "),
      let buffer = Base64.decode(header.dropFirst(6)),
      case let decoded = Array(buffer.readableBytesView),
      let colon = decoded.firstIndex(of: UInt8(ascii: ":")),
      let user = String(validating: decoded[..<colon], as: UTF8.self),
      let password = String(validating: decoded[(colon + 1)...], as: UTF8.self), !user.isEmpty
    else { return .failure(Self.unauthorized(route)) }
    let generation = broker.security.credentialGeneration
    if cache.contains(user: user, password: password, generation: generation) {
      return .success("User:" + user)
    }
    let security = broker.security
    if await offLoop({ security.verify(user: user, password: password) }) {
      cache.insert(user: user, password: password, generation: generation)
      return .success("User:" + user)
    }
    try? await Task.sleep(for: .milliseconds(100))
    return .failure(Self.unauthorized(route))
  }

  static func unauthorized(_ route: String) -> HTTPResponse {
    var response = HTTPResponse.error(.unauthorized, code: 40101, "Authentication failed", route: route)
    response.headers.replaceOrAdd(
      name: "WWW-Authenticate", value: "Basic realm=\"sluice\", charset=\"UTF-8\"")
    return response
  }

  /// The refusal of `request` on `template` for `principal`, or nil if every resource it
  /// touches allows it.
  func authorize(
    _ request: HTTPRequest, method: HTTPMethod, template: String, parameters: [String: String],
    principal: String,
    host: String
  ) -> HTTPResponse? {
    func may(_ operation: AclOperation, _ type: AclResourceType, _ name: String) -> Bool {
      broker.authorize(principal, host: host, operation, type, name)
    }
    func denied(_ what: String) -> HTTPResponse {
      .error(.forbidden, code: 40301, "Not authorized: \(what) for \(principal)", route: template)
    }
    let topic = parameters["topic"]
    let group = parameters["group"]
    switch (method, template) {
    case (.GET, "/"), (.GET, "/openapi.json"), (.GET, "/topics"):
      return nil  // GET /topics lists only what the principal may describe (see `visibleTopics`)
    case (.GET, "/brokers"), (.GET, "/metrics"), (.GET, "/v1/webhooks"), (.GET, "/v1/webhooks/{name}"):
      return may(.describe, .cluster, "kafka-cluster") ? nil : denied("DESCRIBE on the cluster")
    case (.POST, "/topics/{topic}"), (.POST, "/topics/{topic}/partitions/{partition}"):
      let name = topic ?? ""
      if !may(.write, .topic, name) { return denied("WRITE on topic \(name)") }
      // Producing to a topic that does not exist creates it: CREATE, as Kafka's Metadata.
      if broker.topic(name) == nil && !may(.create, .cluster, "kafka-cluster") && !may(.create, .topic, name)
      {
        return denied("CREATE on topic \(name)")
      }
      return nil
    case (_, let path) where path.hasPrefix("/topics/{topic}"):
      return may(.describe, .topic, topic ?? "") ? nil : denied("DESCRIBE on topic \(topic ?? "")")
    case (.GET, "/v1/topics/{topic}/events"):
      if !may(.read, .topic, topic ?? "") { return denied("READ on topic \(topic ?? "")") }
      if let group = request.query["group"], !may(.read, .group, group) {
        return denied("READ on group \(group)")
      }
      return nil
    case (_, let path) where path.hasPrefix("/v1/webhooks"):
      if !may(.alter, .cluster, "kafka-cluster") { return denied("ALTER on the cluster") }
      for name in Self.topics(in: request.body) where !may(.read, .topic, name) {
        return denied("READ on topic \(name)")
      }
      return nil
    case (_, let path) where path.hasPrefix("/consumers/{group}"):
      if !may(.read, .group, group ?? "") { return denied("READ on group \(group ?? "")") }
      for name in Self.topics(in: request.body) where !may(.read, .topic, name) {
        return denied("READ on topic \(name)")
      }
      return nil
    default:
      return denied("an unknown route")
    }
  }

  /// Topic names a request body names: `topics` (a list), `topic`, `dead_letter_topic`, and
  /// `partitions[].topic` (consumer assignments, offsets, positions).
  static func topics(in body: ByteBuffer) -> [String] {
    guard body.readableBytes > 0, let root = try? JSONParser.parse(body) else { return [] }
    var names: [String] = []
    if let list = root["topics"]?.array { names += list.compactMap(\.string) }
    if let name = root["topic"]?.string { names.append(name) }
    if let name = root["dead_letter_topic"]?.string { names.append(name) }
    for key in ["partitions", "offsets"] {
      for entry in root[key]?.array ?? [] {
        if let name = entry["topic"]?.string { names.append(name) }
      }
    }
    return names
  }
}

/// Passwords recently verified (as SHA-256 of user and password, never the password), so
/// that HTTP Basic on every request does not cost a PBKDF2 each: entries last a minute, at
/// most 10,000 of them, and none outlives a change of any credential.
final class VerifiedPasswords: Sendable {
  let entries = Mutex<[[UInt8]: (expiry: ContinuousClock.Instant, generation: Int)]>([:])
  static let lifetime = Duration.seconds(60)
  static let capacity = 10_000

  static func key(_ user: String, _ password: String) -> [UInt8] {
    Array(SHA256.hash(data: Array(user.utf8) + [0] + Array(password.utf8)))
  }

  func contains(user: String, password: String, generation: Int) -> Bool {
    let key = Self.key(user, password)
    let now = ContinuousClock.now
    return entries.withLock { entries in
      guard let entry = entries[key] else { return false }
      if entry.expiry <= now || entry.generation != generation {
        entries[key] = nil
        return false
      }
      return true
    }
  }

  func insert(user: String, password: String, generation: Int) {
    let key = Self.key(user, password)
    let now = ContinuousClock.now
    entries.withLock { entries in
      if entries.count >= Self.capacity { entries = entries.filter { $0.value.expiry > now } }
      if entries.count >= Self.capacity { entries.removeAll() }
      entries[key] = (now + Self.lifetime, generation)
    }
  }
}
