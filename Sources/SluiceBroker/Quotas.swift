import KafkaProtocol
import NIOCore
import SluiceStorage
import Synchronization

/// Kafka's client quotas: produce and fetch byte rates per `client-id` entity (or the
/// default for every client id without its own), enforced here by throttling
/// (docs/overflow.md), and KIP-612's connection creation rate per `ip` entity (or the
/// default for every address without its own), enforced by the listener when it accepts
/// (docs/broker.md). Configured through AlterClientQuotas, kept in the crash-safe metadata,
/// read back by DescribeClientQuotas.
public final class ClientQuotas: Sendable {
  /// The quota keys Sluice enforces.
  public static let producerByteRate = "producer_byte_rate"
  public static let consumerByteRate = "consumer_byte_rate"
  /// KIP-612: new connections per second from one client address.
  public static let connectionCreationRate = "connection_creation_rate"
  static let clientIdKeys = [producerByteRate, consumerByteRate]
  static let ipKeys = [connectionCreationRate]
  static let supportedKeys = clientIdKeys + ipKeys

  public enum Kind: Sendable { case produce, fetch }

  /// The entity types Sluice has quotas for. A `user` quota (the authenticated principal's
  /// name, docs/security.md) comes before a `client-id` one; the combined user + client-id
  /// entity is not supported.
  enum EntityType: String {
    case clientId = "client-id"
    case ip
    case user
  }

  /// nil name: the default entity of its type.
  struct EntityKey: Hashable {
    var type: EntityType
    var name: String?
  }

  /// A generic cell rate algorithm per (client id, kind): `theoretical` is when the client
  /// will have "paid" for everything it sent at the quota rate; up to `burst` ahead of now
  /// is free, beyond that the client is throttled for the difference.
  struct Tracker {
    /// Nanoseconds on the broker clock's monotonic reading.
    var theoretical: Int64
  }

  struct State {
    var configured: [EntityKey: [String: Double]] = [:]
    var trackers: [String: Tracker] = [:]
    /// Milliseconds of throttle applied, per (kind, client id); bounded like `trackers`.
    var throttled: [String: Int64] = [:]

    var hasIPQuotas: Bool { configured.keys.contains { $0.type == .ip } }
  }

  let state: Mutex<State>
  /// Whether any ip entity has a quota (`State.hasIPQuotas`, kept outside the lock): without
  /// one, accepting a connection costs one atomic load.
  let hasIPQuotas = Atomic<Bool>(false)
  let metadata: MetadataStore
  let clock: any BrokerClock
  /// Sending this far ahead of the quota is not throttled (ns).
  static let burst: Int64 = 200_000_000
  /// Kafka's cap on one throttle (quota.window.num × quota.window.size.seconds ≈ 11 s), in ns.
  static let maxThrottle: Int64 = 10_000_000_000
  static let maxDebt: Int64 = burst + maxThrottle
  static let maxTrackedClients = 10_000
  /// Client ids are tracked (and labelled in metrics) by at most this many characters.
  static let maxTrackedIdLength = 256
  /// The smallest rate AlterClientQuotas accepts, in bytes/s (or connections/s).
  static let minimumRate = 1.0
  /// Kafka's type for `connection_creation_rate` is INT.
  static let maximumConnectionRate = Double(Int32.max)
  /// Entries per AlterClientQuotas request.
  static let maxAlterEntries = 1000

  init(metadata: MetadataStore, clock: any BrokerClock) {
    self.metadata = metadata
    self.clock = clock
    var configured: [EntityKey: [String: Double]] = [:]
    for key in Self.supportedKeys {
      for (stored, text) in metadata.snapshot.sections["quota." + key] ?? [:] {
        guard let value = Double(text), let entity = Self.entity(stored: stored) else { continue }
        configured[entity, default: [:]][key] = value
      }
    }
    let initial = State(configured: configured)
    hasIPQuotas.store(initial.hasIPQuotas, ordering: .relaxed)
    state = Mutex(initial)
  }

  /// How an entity is named in the stored `quota.KEY` sections. Client ids keep the original
  /// encoding, "=ID" or "default"; addresses are "ip=ADDRESS" or "ip:default", which neither
  /// start with "=" nor equal "default", so a client id that looks like an address is never
  /// read back as an ip entity (or the other way round).
  static func storedEntity(_ key: EntityKey) -> String {
    switch key.type {
    case .clientId: key.name.map { "=" + $0 } ?? "default"
    case .ip: key.name.map { "ip=" + $0 } ?? "ip:default"
    case .user: key.name.map { "user=" + $0 } ?? "user:default"
    }
  }

  static func entity(stored: String) -> EntityKey? {
    if stored == "default" { return EntityKey(type: .clientId, name: nil) }
    if stored.hasPrefix("=") { return EntityKey(type: .clientId, name: String(stored.dropFirst())) }
    if stored == "ip:default" { return EntityKey(type: .ip, name: nil) }
    if stored.hasPrefix("ip=") { return EntityKey(type: .ip, name: String(stored.dropFirst(3))) }
    if stored == "user:default" { return EntityKey(type: .user, name: nil) }
    if stored.hasPrefix("user=") { return EntityKey(type: .user, name: String(stored.dropFirst(5))) }
    return nil
  }

  /// The byte rate that applies, and whether it is a user's: the user's own quota, the
  /// default user one (authenticated clients only), else the client id's own, else the
  /// default client-id one (Kafka's order, without the combined entities).
  func rate(_ key: String, clientId: String, user: String?, _ state: State) -> (rate: Double, byUser: Bool)? {
    if let user {
      if let rate = state.configured[EntityKey(type: .user, name: user)]?[key]
        ?? state.configured[EntityKey(type: .user, name: nil)]?[key]
      {
        return (rate, true)
      }
    }
    let rate =
      state.configured[EntityKey(type: .clientId, name: clientId)]?[key]
      ?? state.configured[EntityKey(type: .clientId, name: nil)]?[key]
    return rate.map { ($0, false) }
  }

  /// Whether any ip entity has a `connection_creation_rate` quota.
  public var hasConnectionCreationQuotas: Bool { hasIPQuotas.load(ordering: .relaxed) }

  /// The connection creation rate (connections/s) that applies to a client address (as
  /// `canonicalIPAddress` writes it): its own quota, else the default ip one; nil: unlimited.
  public func connectionCreationRate(ip: String) -> Double? {
    state.withLock { state in
      state.configured[EntityKey(type: .ip, name: ip)]?[Self.connectionCreationRate]
        ?? state.configured[EntityKey(type: .ip, name: nil)]?[Self.connectionCreationRate]
    }
  }

  /// The canonical text of a numeric IPv4 or IPv6 address (as the listener sees client
  /// addresses: IPv4-mapped IPv6 as plain IPv4); nil if `text` is not one. Host names are
  /// not resolved.
  public static func canonicalIPAddress(_ text: String) -> String? {
    guard let address = try? SocketAddress(ipAddress: text, port: 0), let canonical = address.ipAddress else {
      return nil
    }
    return unmapped(canonical)
  }

  /// "::ffff:1.2.3.4" (an IPv4 client of a dual-stack listener) as "1.2.3.4".
  public static func unmapped(_ ipAddress: String) -> String {
    ipAddress.hasPrefix("::ffff:") && ipAddress.contains(".") ? String(ipAddress.dropFirst(7)) : ipAddress
  }

  /// Records `bytes` of traffic; returns how long the client must be throttled (ms).
  ///
  /// A client is never more than `burst + maxThrottle` in debt: what it sent beyond that is
  /// forgiven, so trackers go idle (and can be pruned) within ~10 s of a client's last
  /// request. Past `maxTrackedClients` ids, new ones share one tracker.
  /// `user`: the authenticated user's name (nil for anonymous clients); a user quota is
  /// shared by all of that user's connections.
  public func record(clientId: String?, user: String? = nil, kind: Kind, bytes: Int) -> Int64 {
    let id = clientId ?? ""
    let key = kind == .produce ? Self.producerByteRate : Self.consumerByteRate
    return state.withLock { state -> Int64 in
      guard let (rate, byUser) = rate(key, clientId: id, user: user, state), rate >= Self.minimumRate else {
        return 0
      }
      let now = clock.monotonicNanos()
      // Trackers of client ids are "p"/"f" + id, of users "P"/"F" + name.
      let prefix = byUser ? (kind == .produce ? "P" : "F") : (kind == .produce ? "p" : "f")
      var trackerKey = prefix + (byUser ? user ?? "" : id).prefix(Self.maxTrackedIdLength)
      if state.trackers[trackerKey] == nil && state.trackers.count >= Self.maxTrackedClients {
        state.trackers = state.trackers.filter { $0.value.theoretical > now }
        if state.trackers.count >= Self.maxTrackedClients { trackerKey = kind == .produce ? "p*" : "f*" }
      }
      var tracker = state.trackers[trackerKey] ?? Tracker(theoretical: now)
      if tracker.theoretical < now { tracker.theoretical = now }
      let cost = min(Double(bytes) / rate * 1e9, Double(Self.maxDebt))  // ns; rate >= 1, so finite
      tracker.theoretical = min(tracker.theoretical + Int64(cost), now + Self.maxDebt)
      state.trackers[trackerKey] = tracker
      let ahead = tracker.theoretical - now - Self.burst
      guard ahead > 0 else { return 0 }
      let throttle = min(ahead, Self.maxThrottle) / 1_000_000
      if state.throttled[trackerKey] != nil || state.throttled.count < Self.maxTrackedClients {
        state.throttled[trackerKey, default: 0] += throttle
      }
      return throttle
    }
  }

  /// Throttle applied so far, per client id or user and quota (for metrics; `user` is set
  /// for a user quota's, `clientId` then empty).
  public func throttleTotals() -> [(clientId: String, user: String?, kind: Kind, ms: Int64)] {
    state.withLock { state in
      state.throttled.sorted { $0.key < $1.key }.map { key, ms in
        let subject = String(key.dropFirst())
        let kind = key.hasPrefix("p") || key.hasPrefix("P") ? Kind.produce : .fetch
        let byUser = key.hasPrefix("P") || key.hasPrefix("F")
        return (byUser ? "" : subject, byUser ? subject : nil, kind, ms)
      }
    }
  }

  // MARK: Describing and altering quotas

  /// One component of a quota filter (Kafka's DescribeClientQuotas): an entity type and
  /// which of its entities match.
  public struct FilterComponent: Sendable {
    public enum Match: Sendable {
      /// The entity of this name.
      case exact(String?)
      /// The type's default entity.
      case defaultEntity
      /// Any named entity of the type (not the default).
      case any
      /// A match type the caller did not know (refused, after the entity type is checked).
      case unknown(Int8)
    }
    public var entityType: String
    public var match: Match
    public init(entityType: String, match: Match) {
      self.entityType = entityType
      self.match = match
    }
  }

  /// An entity as quota requests name it: (type, name; nil name: the default).
  public typealias EntityName = (type: String, name: String?)

  /// A quota entity with its configured values.
  public struct Described: Sendable {
    public var entity: [(type: String, name: String?)]
    public var values: [(key: String, value: Double)]
  }

  /// The configured quotas matching every filter component (`strict`: entities of exactly
  /// the filtered types). INVALID_REQUEST for an unknown or repeated entity type.
  public func describe(_ components: [FilterComponent], strict: Bool) throws(BrokerError) -> [Described] {
    var filters: [(type: EntityType, match: FilterComponent.Match)] = []
    if Set(components.map(\.entityType)).count != components.count {
      throw BrokerError(.invalidRequest, "An entity type appears twice in the filter")
    }
    for component in components {
      guard let type = EntityType(rawValue: component.entityType) else {
        // Sluice has no authentication, so no user quotas: a filter on users matches nothing.
        if component.entityType == "user" { return [] }
        throw BrokerError(.invalidRequest, "Unknown entity type \(component.entityType)")
      }
      var match = component.match
      if case .unknown(let code) = match { throw BrokerError(.invalidRequest, "Unknown match type \(code)") }
      if type == .ip, case .exact(let text?) = match, let canonical = Self.canonicalIPAddress(text) {
        match = .exact(canonical)
      }
      filters.append((type, match))
    }
    // strict: only entities made of exactly the filtered types. Every entity here has one
    // type, and a filter component must match it, so a filter on two types matches nothing.
    if strict && filters.isEmpty { return [] }
    let configured = state.withLock { $0.configured }
    let ordered = configured.sorted {
      ($0.key.type == .clientId ? 0 : 1, $0.key.name ?? "") < (
        $1.key.type == .clientId ? 0 : 1, $1.key.name ?? ""
      )
    }
    return ordered.compactMap { entity, values -> Described? in
      for filter in filters {
        guard filter.type == entity.type else { return nil }
        switch filter.match {
        case .exact(let name): if entity.name == nil || entity.name != name { return nil }
        case .defaultEntity: if entity.name != nil { return nil }
        case .any: if entity.name == nil { return nil }
        case .unknown: return nil
        }
      }
      return Described(
        entity: [(entity.type.rawValue, entity.name)],
        values: values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }
  }

  /// One change of a quota: set `key` to `value`, or remove it.
  public struct Operation: Sendable {
    public var key: String
    public var value: Double
    public var remove: Bool
    public init(key: String, value: Double, remove: Bool) {
      self.key = key
      self.value = value
      self.remove = remove
    }
  }

  /// Why an alteration of `entity` is refused, nil if it is valid; the entity where it
  /// applies (an ip entity's address in canonical form).
  static func validate(_ entity: [EntityName], _ ops: [Operation]) -> (entity: EntityKey?, refusal: String?) {
    let types = entity.map(\.type)
    if types.count > 1 && types.contains(EntityType.ip.rawValue) {
      return (nil, "The ip entity cannot be combined with other entity types (as in Kafka)")
    }
    guard types.count == 1, let type = EntityType(rawValue: types[0]) else {
      return (
        nil,
        "Only the user, client-id and ip entities are supported, one per entry (not user and client-id together)"
      )
    }
    var name = entity[0].name
    if type == .ip, let text = name {
      guard let canonical = canonicalIPAddress(text) else {
        return (
          nil,
          "\(text) is not an IP address: the ip entity takes a numeric IPv4 or IPv6 address, or null for the default"
        )
      }
      name = canonical
    }
    let keys = type == .ip ? ipKeys : clientIdKeys
    if let bad = ops.first(where: { !keys.contains($0.key) }) {
      let supported = keys.joined(separator: ", ")
      return (nil, "Unsupported quota \(bad.key) for the \(type.rawValue) entity: it takes \(supported)")
    }
    if Set(ops.map(\.key)).count != ops.count {
      return (nil, "A quota key appears twice for one entity")
    }
    for op in ops where !op.remove {
      switch type {
      case .clientId, .user:
        guard op.value >= minimumRate && op.value.isFinite else {
          return (nil, "Quota \(op.key) must be a number of bytes/s >= 1, got \(op.value)")
        }
      case .ip:
        // Kafka's type for it is INT. Below 1/s, one connection would need more than the
        // one second of credit the limiter's bucket holds (and 0 would lock the address out).
        guard op.value >= minimumRate && op.value <= maximumConnectionRate && op.value.rounded() == op.value
        else {
          return (
            nil,
            "Quota \(op.key) must be a whole number of connections/s from 1 to \(Int32.max), got \(op.value) "
              + "(Kafka's type for it is INT; below 1/s, a single connection would need more than the one "
              + "second of the rate that an address may use at once)"
          )
        }
      }
    }
    return (EntityKey(type: type, name: name), nil)
  }

  /// Applies each alteration (persisted in the metadata file, on `offLoop`'s thread before
  /// it takes effect); one result per entry, nil where it succeeded.
  func alter(
    _ entries: [(entity: [EntityName], ops: [Operation])], validateOnly: Bool,
    offLoop:
      @Sendable (@escaping @Sendable () throws(StorageError) -> Void) async throws(StorageError) -> Void
  ) async -> [BrokerError?] {
    var results: [BrokerError?] = []
    for (index, entry) in entries.enumerated() {
      let (entity, refusal) = Self.validate(entry.entity, entry.ops)
      if let refusal {
        results.append(BrokerError(.invalidRequest, refusal))
      } else if index >= Self.maxAlterEntries {
        results.append(BrokerError(.invalidRequest, "At most \(Self.maxAlterEntries) entries per request"))
      } else if !validateOnly, let entity {
        let (ops, metadata) = (entry.ops, metadata)
        do {
          try await offLoop { () throws(StorageError) in
            try metadata.update { (document: inout MetadataStore.Document) throws(StorageError) in
              for op in ops {
                document.sections["quota." + op.key, default: [:]][Self.storedEntity(entity)] =
                  op.remove ? nil : String(op.value)
              }
            }
          }
          state.withLock { state in
            for op in ops {
              state.configured[entity, default: [:]][op.key] = op.remove ? nil : op.value
            }
            if state.configured[entity]?.isEmpty == true { state.configured[entity] = nil }
            hasIPQuotas.store(state.hasIPQuotas, ordering: .relaxed)
          }
          results.append(nil)
        } catch {
          results.append(BrokerError(.kafkaStorageError, error.message))
        }
      } else {
        results.append(nil)
      }
    }
    return results
  }
}

extension Broker {
  /// Applies quota alterations (see ``ClientQuotas/alter(_:validateOnly:offLoop:)``), their
  /// metadata writes on the admin thread.
  public func alterClientQuotas(
    _ entries: [(entity: [ClientQuotas.EntityName], ops: [ClientQuotas.Operation])], validateOnly: Bool
  ) async -> [BrokerError?] {
    let topics = self.topics
    return await quotas.alter(entries, validateOnly: validateOnly) { (work) async throws(StorageError) in
      try await topics.offLoop(work)
    }
  }
}
