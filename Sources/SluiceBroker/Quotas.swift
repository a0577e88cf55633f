import KafkaProtocol
import SluiceStorage
import Synchronization

/// Kafka's client quotas for the `client-id` entity: produce and fetch byte rates per
/// client id (or the default for every client id without its own), enforced by throttling
/// (docs/overflow.md). Configured through AlterClientQuotas, kept in the crash-safe
/// metadata, read back by DescribeClientQuotas.
public final class ClientQuotas: Sendable {
  /// The quota keys Sluice enforces.
  public static let producerByteRate = "producer_byte_rate"
  public static let consumerByteRate = "consumer_byte_rate"
  static let supportedKeys = [producerByteRate, consumerByteRate]

  public enum Kind: Sendable { case produce, fetch }

  /// nil client id: the default entity.
  struct EntityKey: Hashable { var clientId: String? }

  /// A generic cell rate algorithm per (client id, kind): `theoretical` is when the client
  /// will have "paid" for everything it sent at the quota rate; up to `burst` ahead of now
  /// is free, beyond that the client is throttled for the difference.
  struct Tracker {
    var theoretical: ContinuousClock.Instant
  }

  struct State {
    var configured: [EntityKey: [String: Double]] = [:]
    var trackers: [String: Tracker] = [:]
    /// Milliseconds of throttle applied, per (kind, client id); bounded like `trackers`.
    var throttled: [String: Int64] = [:]
  }

  let state: Mutex<State>
  let metadata: MetadataStore
  /// Sending this far ahead of the quota is not throttled.
  static let burst: Duration = .milliseconds(200)
  /// Kafka's cap on one throttle (quota.window.num × quota.window.size.seconds ≈ 11 s).
  static let maxThrottle: Duration = .seconds(10)
  static let maxDebt: Duration = burst + maxThrottle
  static let maxTrackedClients = 10_000
  /// Client ids are tracked (and labelled in metrics) by at most this many characters.
  static let maxTrackedIdLength = 256
  /// The smallest rate AlterClientQuotas accepts, in bytes/s.
  static let minimumRate = 1.0
  /// Entries per AlterClientQuotas request.
  static let maxAlterEntries = 1000

  init(metadata: MetadataStore) {
    self.metadata = metadata
    var configured: [EntityKey: [String: Double]] = [:]
    for key in Self.supportedKeys {
      for (entity, text) in metadata.snapshot.sections["quota." + key] ?? [:] {
        guard let value = Double(text) else { continue }
        let clientId: String? = entity.hasPrefix("=") ? String(entity.dropFirst()) : nil
        configured[EntityKey(clientId: clientId), default: [:]][key] = value
      }
    }
    state = Mutex(State(configured: configured))
  }

  static func storedEntity(_ key: EntityKey) -> String { key.clientId.map { "=" + $0 } ?? "default" }

  /// The byte rate that applies to `clientId`: its own quota, else the default one.
  func rate(_ key: String, clientId: String, _ state: State) -> Double? {
    state.configured[EntityKey(clientId: clientId)]?[key] ?? state.configured[EntityKey(clientId: nil)]?[key]
  }

  /// Records `bytes` of traffic; returns how long the client must be throttled (ms).
  ///
  /// A client is never more than `burst + maxThrottle` in debt: what it sent beyond that is
  /// forgiven, so trackers go idle (and can be pruned) within ~10 s of a client's last
  /// request. Past `maxTrackedClients` ids, new ones share one tracker.
  public func record(clientId: String?, kind: Kind, bytes: Int) -> Int64 {
    let id = clientId ?? ""
    let key = kind == .produce ? Self.producerByteRate : Self.consumerByteRate
    return state.withLock { state -> Int64 in
      guard let rate = rate(key, clientId: id, state), rate >= Self.minimumRate else { return 0 }
      let now = ContinuousClock.now
      var trackerKey = (kind == .produce ? "p" : "f") + id.prefix(Self.maxTrackedIdLength)
      if state.trackers[trackerKey] == nil && state.trackers.count >= Self.maxTrackedClients {
        state.trackers = state.trackers.filter { $0.value.theoretical > now }
        if state.trackers.count >= Self.maxTrackedClients { trackerKey = kind == .produce ? "p*" : "f*" }
      }
      var tracker = state.trackers[trackerKey] ?? Tracker(theoretical: now)
      if tracker.theoretical < now { tracker.theoretical = now }
      let cost = min(Double(bytes) / rate, Self.maxDebt.inSeconds)  // seconds; rate >= 1, so finite
      tracker.theoretical = min(tracker.theoretical + .nanoseconds(Int64(cost * 1e9)), now + Self.maxDebt)
      state.trackers[trackerKey] = tracker
      let ahead = tracker.theoretical - now - Self.burst
      guard ahead > .zero else { return 0 }
      let throttle = min(ahead, Self.maxThrottle).milliseconds
      if state.throttled[trackerKey] != nil || state.throttled.count < Self.maxTrackedClients {
        state.throttled[trackerKey, default: 0] += throttle
      }
      return throttle
    }
  }

  /// Throttle applied so far, per client id and quota (for metrics).
  public func throttleTotals() -> [(clientId: String, kind: Kind, ms: Int64)] {
    state.withLock { state in
      state.throttled.sorted { $0.key < $1.key }.map { key, ms in
        (String(key.dropFirst()), key.hasPrefix("p") ? Kind.produce : .fetch, ms)
      }
    }
  }

  // MARK: DescribeClientQuotas / AlterClientQuotas

  func describe(_ request: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    var response = DescribeClientQuotasResponse()
    response.errorMessage = nil
    // Components: entity type, and match type 0 (exact name), 1 (the default), 2 (any).
    var wantsClientId: (matchType: Int8, name: String?)?
    if Set(request.components.map(\.entityType)).count != request.components.count {
      response.errorCode = ErrorCode.invalidRequest.rawValue
      response.errorMessage = "An entity type appears twice in the filter"
      response.entries = nil
      return response
    }
    for component in request.components {
      guard component.entityType == "client-id" else {
        if component.entityType == "user" {
          // Sluice has no authentication, so no user quotas: a filter on users matches nothing.
          response.entries = []
        } else {
          response.errorCode = ErrorCode.invalidRequest.rawValue
          response.errorMessage = "Unknown entity type \(component.entityType)"
          response.entries = nil
        }
        return response
      }
      guard (0...2).contains(component.matchType) else {
        response.errorCode = ErrorCode.invalidRequest.rawValue
        response.errorMessage = "Unknown match type \(component.matchType)"
        response.entries = nil
        return response
      }
      wantsClientId = (component.matchType, component.match)
    }
    // strict: only entities made of exactly the filtered types; every entity here is a
    // client-id one.
    if request.strict && wantsClientId == nil {
      response.entries = []
      return response
    }
    let configured = state.withLock { $0.configured }
    response.entries = configured.sorted { ($0.key.clientId ?? "") < ($1.key.clientId ?? "") }.compactMap {
      entity, values -> DescribeClientQuotasResponse.EntryData? in
      if let filter = wantsClientId {
        switch filter.matchType {
        case 0: if entity.clientId == nil || entity.clientId != filter.name { return nil }
        case 1: if entity.clientId != nil { return nil }
        default: if entity.clientId == nil { return nil }  // 2: any specified name, not the default
        }
      }
      return .init(
        entity: [.init(entityType: "client-id", entityName: entity.clientId)],
        values: values.sorted { $0.key < $1.key }.map { .init(key: $0.key, value: $0.value) })
    }
    return response
  }

  func alter(_ request: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    var response = AlterClientQuotasResponse()
    for entry in request.entries {
      var result = AlterClientQuotasResponse.EntryData(
        entity: entry.entity.map { .init(entityType: $0.entityType, entityName: $0.entityName) })
      result.errorMessage = nil
      func fail(_ code: ErrorCode, _ message: String) {
        result.errorCode = code.rawValue
        result.errorMessage = message
      }
      if entry.entity.count != 1 || entry.entity[0].entityType != "client-id" {
        fail(
          .invalidRequest,
          "Only the client-id entity is supported (Sluice has no authentication, so no users)")
      } else if let bad = entry.ops.first(where: { !Self.supportedKeys.contains($0.key) }) {
        fail(
          .invalidRequest,
          "Unsupported quota \(bad.key): Sluice enforces \(Self.supportedKeys.joined(separator: ", "))")
      } else if let bad = entry.ops.first(where: {
        !$0.remove && !($0.value >= Self.minimumRate && $0.value.isFinite)
      }) {
        fail(.invalidRequest, "Quota \(bad.key) must be a number of bytes/s >= 1, got \(bad.value)")
      } else if Set(entry.ops.map(\.key)).count != entry.ops.count {
        fail(.invalidRequest, "A quota key appears twice for one entity")
      } else if response.entries.count >= Self.maxAlterEntries {
        fail(.invalidRequest, "At most \(Self.maxAlterEntries) entries per request")
      } else if !request.validateOnly {
        let entity = EntityKey(clientId: entry.entity[0].entityName)
        do {
          try metadata.update { (document: inout MetadataStore.Document) throws(StorageError) in
            for op in entry.ops {
              document.sections["quota." + op.key, default: [:]][Self.storedEntity(entity)] =
                op.remove ? nil : String(op.value)
            }
          }
          state.withLock { state in
            for op in entry.ops {
              state.configured[entity, default: [:]][op.key] = op.remove ? nil : op.value
            }
            if state.configured[entity]?.isEmpty == true { state.configured[entity] = nil }
          }
        } catch {
          fail(.kafkaStorageError, error.message)
        }
      }
      response.entries.append(result)
    }
    return response
  }
}
