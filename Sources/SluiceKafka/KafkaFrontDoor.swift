public import KafkaProtocol
public import NIOCore
public import SluiceBroker

/// What the Kafka front door knows about the connection a request came on.
public struct RequestContext: Sendable {
  public var clientHost: String
  /// Whether the connection can send file regions (plaintext sockets): Fetch then leaves
  /// record data in the segment files, to be sent with sendfile.
  public var zeroCopy: Bool
  /// The size of the request's frame (what a produce quota is charged).
  public var requestBytes: Int
  /// Whether the client is still connected (a request held by backpressure gives up when
  /// it is not).
  public var connectionOpen: @Sendable () -> Bool
  /// The event loop that owns the connection, if there is one. A parked Fetch then times
  /// out with a timer on this loop and is resumed on it, rather than through a Swift
  /// Concurrency sleep (a libdispatch timer and its threads) and on whichever loop the
  /// append that woke it ran on.
  public var eventLoop: (any EventLoop)?
  /// Who sent the request: `User:<name>` once SASL authenticated it, the client
  /// certificate's `User:<distinguished name>` on an SSL listener that asked for one, else
  /// `User:ANONYMOUS`. ACLs are checked against it.
  public var principal: String
  /// The address clients of this listener are told to connect to (Metadata,
  /// FindCoordinator, DescribeCluster); nil: the broker's `advertisedHost`/`advertisedPort`.
  public var advertised: (host: String, port: Int32)?

  public static let anonymous = "User:ANONYMOUS"

  public init(
    clientHost: String = "", zeroCopy: Bool = false, requestBytes: Int = 0,
    connectionOpen: @escaping @Sendable () -> Bool = { true }, eventLoop: (any EventLoop)? = nil,
    principal: String = RequestContext.anonymous, advertised: (host: String, port: Int32)? = nil
  ) {
    self.principal = principal
    self.advertised = advertised
    self.clientHost = clientHost
    self.zeroCopy = zeroCopy
    self.requestBytes = requestBytes
    self.connectionOpen = connectionOpen
    self.eventLoop = eventLoop
  }

  var call: CallContext { CallContext(eventLoop: eventLoop, isConnected: connectionOpen) }

  /// The `user` quota entity this request counts against: the principal's name, or nil for
  /// unauthenticated clients.
  var quotaUser: String? {
    guard principal != Self.anonymous, principal.hasPrefix("User:") else { return nil }
    return String(principal.dropFirst(5))
  }
}

/// A response ready to be encoded, with the record data that travels beside it: for each
/// `records` field of a Fetch response whose data is left in files, in the order the encoder
/// meets them, the pieces to send there (see ``KafkaResponseEncoder``).
public struct KafkaReply: Sendable {
  /// nil: send nothing (Produce with acks=0).
  public var body: KafkaResponseBody?
  /// Record data by `records` field, in encoding order; nil entries are encoded from the body.
  public var records: [RecordData?] = []
  /// A client quota's throttle: after sending the response, read nothing more from this
  /// connection for this long (Kafka's channel muting; librdkafka does not pause itself).
  public var muteMs: Int64 = 0

  public init(body: KafkaResponseBody?, records: [RecordData?] = [], muteMs: Int64 = 0) {
    self.body = body
    self.records = records
    self.muteMs = muteMs
  }
}

/// The Kafka front door: routes each decoded Kafka request to the broker's domain API and
/// translates the answer back into the response of the request's API version. The TCP
/// listener (`SluiceServer`), the embedded broker's in-process transport and the tests all
/// go through it; nothing in the broker below knows Kafka's request or response structs.
public struct KafkaFrontDoor: Sendable {
  public let broker: Broker

  public init(broker: Broker) { self.broker = broker }

  /// The APIs and versions this front door implements — and therefore advertises. Nothing
  /// else may be listed (clients call what is listed, and Kafka clients do not recover from
  /// an unsupported request).
  ///
  /// Produce starts at v0 although only v2 record batches are accepted (older message
  /// formats get UNSUPPORTED_FOR_MESSAGE_FORMAT per partition): librdkafka before 2.11
  /// enables gzip/snappy/lz4 only if Produce v0 is inside the advertised range, and no
  /// client that sees v3+ advertised sends v0-2. FindCoordinator is listed because
  /// librdkafka 2.0 enables LZ4 only when FindCoordinator v0 is.
  public static let supportedApis: [(key: ApiKey, versions: ClosedRange<Int16>)] = [
    (.produce, 0...10),
    (.fetch, 4...12),
    (.listOffsets, 1...7),
    (.metadata, 0...12),
    (.findCoordinator, 0...4),
    (.apiVersions, 0...4),
    (.createTopics, 0...7),
    (.deleteTopics, 0...6),
    (.initProducerId, 0...4),
    (.describeConfigs, 0...4),
    (.alterConfigs, 0...2),
    (.createPartitions, 0...3),
    (.deleteRecords, 0...2),
    (.incrementalAlterConfigs, 0...1),
    (.describeCluster, 0...1),
    // Consumer groups (classic protocol) and committed offsets: Handlers/Groups.swift,
    // Offsets.swift, GroupAdmin.swift. OffsetCommit v0-1 (v0 ZooKeeper-era, v1 with a
    // per-partition timestamp) are not implemented; no client listed in CLIENTS.md uses them.
    (.offsetCommit, 2...9),
    (.offsetFetch, 1...9),
    (.joinGroup, 0...9),
    (.heartbeat, 0...4),
    (.leaveGroup, 0...5),
    (.syncGroup, 0...5),
    (.describeGroups, 0...5),
    (.listGroups, 0...5),
    (.deleteGroups, 0...2),
    (.offsetDelete, 0...0),
    // Client quotas (client-id and ip entities): Handlers/Quotas.swift.
    (.describeClientQuotas, 0...1),
    (.alterClientQuotas, 0...1),
    // Security (docs/security.md): SASL, ACLs, SCRAM credentials. SaslHandshake and
    // SaslAuthenticate are answered by the listener on SASL listeners (``SaslSession``).
    (.saslHandshake, 0...1),
    (.saslAuthenticate, 0...2),
    (.describeAcls, 0...3),
    (.createAcls, 0...3),
    (.deleteAcls, 0...3),
    (.describeUserScramCredentials, 0...0),
    (.alterUserScramCredentials, 0...0),
    // Share groups (KIP-932), v1 as Kafka 4.1 and librdkafka 2.16: Handlers/Shares.swift.
    (.shareGroupHeartbeat, 1...1),
    (.shareGroupDescribe, 1...1),
    (.shareFetch, 1...1),
    (.shareAcknowledge, 1...1),
  ]

  public static func supportedVersions(_ key: ApiKey) -> ClosedRange<Int16>? {
    supportedApis.first { $0.key == key }?.versions
  }

  /// Handles one decoded request with every record in memory in the answer (the
  /// in-process transport and tests); nil means "send no response" (Produce with acks=0).
  public func handle(_ request: KafkaRequest, context: RequestContext = RequestContext()) async
    -> KafkaResponseBody?
  {
    var plain = context
    plain.zeroCopy = false
    return await reply(to: request, context: plain)?.body
  }

  /// Handles one decoded request for the network layer: with `context.zeroCopy`, fetched
  /// record data may stay in files (``KafkaReply/records``).
  public func reply(to request: KafkaRequest, context: RequestContext) async -> KafkaReply? {
    let started = ContinuousClock.now
    let version = request.apiVersion
    let reply: KafkaReply?
    switch request.body {
    case .fetch(let body):
      reply = charged(request, await fetch(body, version: version, context: context), context: context)
    case .produce(let body):
      reply = charged(request, await produce(body, version: version, context: context), context: context)
    default:
      reply = await handleOther(request, context: context).map { KafkaReply(body: $0) }
    }
    finished(request, reply?.body, since: started, context: context)
    return reply
  }

  /// Counts a request answered outside ``reply(to:context:)`` (the listener's ApiVersions)
  /// in the request metrics.
  public static func countAnswered(
    _ request: KafkaRequest, _ body: KafkaResponseBody?, since start: ContinuousClock.Instant
  ) {
    RequestMetrics.record(request, body, since: start)
  }

  /// A request answered: its metrics, the slow-request log and, for an admin request, the
  /// audit log.
  func finished(
    _ request: KafkaRequest, _ body: KafkaResponseBody?, since start: ContinuousClock.Instant,
    context: RequestContext
  ) {
    let (elapsed, errors) = RequestMetrics.record(request, body, since: start)
    let slowMs = broker.config.slowRequestLogMs
    if slowMs > 0, elapsed >= .milliseconds(slowMs) {
      RequestLogs.slow.warning(
        "slow request",
        metadata: RequestLogs.metadata(request, context: context, errors: errors, elapsed: elapsed))
    }
    if broker.config.auditLog, RequestLogs.adminApis.contains(request.apiKey) {
      var metadata = RequestLogs.metadata(request, context: context, errors: errors, elapsed: elapsed)
      metadata["resources"] = .array(RequestLogs.resources(of: request).map { .string(printableForLog($0)) })
      RequestLogs.audit.info("admin request", metadata: metadata)
    }
  }

  /// What ``replyWithoutTask(to:context:completion:)`` did with a request.
  public enum ImmediateReply: Sendable {
    /// Answered (nil: nothing to send).
    case reply(KafkaReply?)
    /// The reply goes to the completion.
    case later
    /// Not a Produce or a Fetch: use ``reply(to:context:)``.
    case notHandled
  }

  /// Produce and Fetch without a Swift task where the broker can answer at once: the reply
  /// now, or `.later` and `completion` gets it — from any thread (a Fetch woken by an append
  /// is completed on `context.eventLoop`). The same replies as ``reply(to:context:)``.
  public func replyWithoutTask(
    to request: KafkaRequest, context: RequestContext,
    completion: @escaping @Sendable (KafkaReply?) -> Void
  ) -> ImmediateReply {
    let version = request.apiVersion
    let started = ContinuousClock.now
    switch request.body {
    case .fetch(let body):
      let reply = fetch(body, version: version, context: context) { reply in
        let charged = self.charged(request, reply, context: context)
        self.finished(request, charged.body, since: started, context: context)
        completion(charged)
      }
      guard let reply else { return .later }
      let charged = charged(request, reply, context: context)
      self.finished(request, charged.body, since: started, context: context)
      return .reply(charged)
    case .produce(let body):
      let response = produce(body, version: version, context: context) { response in
        let charged = self.charged(request, response, context: context)
        self.finished(request, charged?.body, since: started, context: context)
        completion(charged)
      }
      guard let response else { return .later }
      let charged = charged(request, response, context: context)
      self.finished(request, charged?.body, since: started, context: context)
      return .reply(charged)
    default:
      return .notHandled
    }
  }

  func charged(_ request: KafkaRequest, _ fetched: KafkaReply, context: RequestContext) -> KafkaReply {
    var reply = fetched
    chargeQuota(request, &reply, context: context)
    return reply
  }

  func charged(_ request: KafkaRequest, _ response: ProduceResponse?, context: RequestContext) -> KafkaReply?
  {
    var reply = KafkaReply(body: response.map { .produce($0) })
    chargeQuota(request, &reply, context: context)
    return reply.body == nil && reply.muteMs == 0 ? nil : reply
  }

  func handleOther(_ request: KafkaRequest, context: RequestContext) async -> KafkaResponseBody? {
    let version = request.apiVersion
    let access = access(context)
    let group = ErrorCode.groupAuthorizationFailed.rawValue
    switch request.body {
    case .apiVersions: return .apiVersions(apiVersions(errorCode: .none))
    case .metadata(let body):
      return .metadata(await metadata(body, version: version, context: context, access: access))
    case .listOffsets(let body): return .listOffsets(listOffsets(body, version: version, access: access))
    case .findCoordinator(let body):
      return .findCoordinator(findCoordinator(body, version: version, context: context, access: access))
    case .initProducerId(let body): return .initProducerId(await initProducerId(body, access: access))
    case .createTopics(let body):
      return .createTopics(await createTopics(body, version: version, access: access))
    case .deleteTopics(let body):
      return .deleteTopics(await deleteTopics(body, version: version, access: access))
    case .createPartitions(let body): return .createPartitions(await createPartitions(body, access: access))
    case .deleteRecords(let body): return .deleteRecords(await deleteRecords(body, access: access))
    case .describeConfigs(let body):
      return .describeConfigs(describeConfigs(body, version: version, access: access))
    case .alterConfigs(let body): return .alterConfigs(await alterConfigs(body, access: access))
    case .incrementalAlterConfigs(let body):
      return .incrementalAlterConfigs(await incrementalAlterConfigs(body, access: access))
    case .describeCluster(let body):
      return .describeCluster(describeCluster(body, context: context, access: access))
    case .joinGroup(let body):
      guard access.allows(.read, .group, body.groupId) else {
        return .joinGroup(.init(errorCode: group, memberId: body.memberId))
      }
      let (clientId, clientHost) = (request.header.clientId, context.clientHost)
      return .joinGroup(await joinGroup(body, version: version, clientId: clientId, clientHost: clientHost))
    case .syncGroup(let body):
      guard access.allows(.read, .group, body.groupId) else { return .syncGroup(.init(errorCode: group)) }
      return .syncGroup(await syncGroup(body, version: version))
    case .heartbeat(let body):
      guard access.allows(.read, .group, body.groupId) else { return .heartbeat(.init(errorCode: group)) }
      return .heartbeat(heartbeat(body, version: version))
    case .leaveGroup(let body):
      guard access.allows(.read, .group, body.groupId) else { return .leaveGroup(.init(errorCode: group)) }
      return .leaveGroup(leaveGroup(body, version: version))
    case .offsetCommit(let body):
      return .offsetCommit(await offsetCommit(body, version: version, access: access))
    case .offsetFetch(let body): return .offsetFetch(offsetFetch(body, version: version, access: access))
    case .offsetDelete(let body): return .offsetDelete(await offsetDelete(body, access: access))
    case .listGroups(let body): return .listGroups(listGroups(body, version: version, access: access))
    case .describeGroups(let body):
      return .describeGroups(describeGroups(body, version: version, access: access))
    case .deleteGroups(let body): return .deleteGroups(await deleteGroups(body, access: access))
    case .describeClientQuotas(let body):
      guard access.allowsCluster(.describeConfigs) else {
        return .describeClientQuotas(
          .init(
            errorCode: ErrorCode.clusterAuthorizationFailed.rawValue,
            errorMessage: "DESCRIBE_CONFIGS on the cluster is needed", entries: nil))
      }
      return .describeClientQuotas(describeClientQuotas(body))
    case .alterClientQuotas(let body):
      guard access.allowsCluster(.alterConfigs) else {
        return .alterClientQuotas(
          .init(
            entries: body.entries.map {
              .init(
                errorCode: ErrorCode.clusterAuthorizationFailed.rawValue,
                errorMessage: "ALTER_CONFIGS on the cluster is needed",
                entity: $0.entity.map { .init(entityType: $0.entityType, entityName: $0.entityName) })
            }))
      }
      return .alterClientQuotas(await alterClientQuotas(body))
    case .shareGroupHeartbeat(let body):
      guard access.allows(.read, .group, body.groupId) else {
        return .shareGroupHeartbeat(.init(errorCode: group, errorMessage: "READ on the group is needed"))
      }
      if let topics = body.subscribedTopicNames,
        let denied = topics.first(where: { !access.allows(.describe, .topic, $0) })
      {
        return .shareGroupHeartbeat(
          .init(
            errorCode: ErrorCode.topicAuthorizationFailed.rawValue,
            errorMessage: "DESCRIBE on topic \(denied) is needed"))
      }
      return .shareGroupHeartbeat(
        await shareGroupHeartbeat(body, clientId: request.header.clientId, clientHost: context.clientHost))
    case .shareGroupDescribe(let body): return .shareGroupDescribe(shareGroupDescribe(body, access: access))
    case .shareFetch(let body): return .shareFetch(await shareFetch(body, context: context, access: access))
    case .shareAcknowledge(let body):
      return .shareAcknowledge(await shareAcknowledge(body, context: context, access: access))
    case .saslHandshake:
      // Answered here only on listeners without SASL.
      return .saslHandshake(.init(errorCode: ErrorCode.illegalSaslState.rawValue, mechanisms: []))
    case .saslAuthenticate:
      return .saslAuthenticate(
        .init(
          errorCode: ErrorCode.illegalSaslState.rawValue,
          errorMessage: "this listener does not use SASL"))
    case .createAcls(let body): return .createAcls(await createAcls(body, access: access))
    case .describeAcls(let body): return .describeAcls(describeAcls(body, access: access))
    case .deleteAcls(let body): return .deleteAcls(await deleteAcls(body, access: access))
    case .describeUserScramCredentials(let body):
      return .describeUserScramCredentials(describeUserScramCredentials(body, access: access))
    case .alterUserScramCredentials(let body):
      return .alterUserScramCredentials(await alterUserScramCredentials(body, access: access))
    default: return nil
    }
  }

  /// Charges a Produce or Fetch to its client's byte-rate quota, setting the throttle.
  func chargeQuota(_ request: KafkaRequest, _ reply: inout KafkaReply, context: RequestContext) {
    switch request.body {
    case .produce:
      let throttle = broker.quotas.record(
        clientId: request.header.clientId, user: context.quotaUser, kind: .produce,
        bytes: context.requestBytes)
      guard throttle > 0 else { return }
      reply.muteMs = throttle
      if case .produce(var body)? = reply.body {
        body.throttleTimeMs = max(body.throttleTimeMs, Int32(clamping: throttle))
        reply.body = .produce(body)
      }
    case .fetch:
      guard case .fetch(var body)? = reply.body else { return }
      var bytes = reply.records.reduce(0) { $0 + ($1?.count ?? 0) }
      for topic in body.responses {
        for partition in topic.partitions { bytes += partition.records?.readableBytes ?? 0 }
      }
      let throttle = broker.quotas.record(
        clientId: request.header.clientId, user: context.quotaUser, kind: .fetch, bytes: bytes)
      guard throttle > 0 else { return }
      reply.muteMs = throttle
      body.throttleTimeMs = max(body.throttleTimeMs, Int32(clamping: throttle))
      reply.body = .fetch(body)
    default:
      return
    }
  }

  /// The ApiVersions answer; with an error code for a request at an unsupported version
  /// (which the server answers with a v0 body, as Kafka does).
  public func apiVersions(errorCode: ErrorCode) -> ApiVersionsResponse {
    ApiVersionsResponse(
      errorCode: errorCode.rawValue,
      apiKeys: Self.supportedApis.map {
        .init(apiKey: $0.key.rawValue, minVersion: $0.versions.lowerBound, maxVersion: $0.versions.upperBound)
      })
  }
}
