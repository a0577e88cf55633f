public import KafkaProtocol
import SluiceStorage

extension Broker {
  /// The APIs and versions this broker implements — and therefore advertises. Nothing else
  /// may be listed (clients call what is listed, and Kafka clients do not recover from an
  /// unsupported request).
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
    // Client quotas (client-id entity only): Quotas.swift.
    (.describeClientQuotas, 0...1),
    (.alterClientQuotas, 0...1),
  ]

  public static func supportedVersions(_ key: ApiKey) -> ClosedRange<Int16>? {
    supportedApis.first { $0.key == key }?.versions
  }

  /// Handles one decoded request; nil means "send no response" (Produce with acks=0).
  /// Record data is always in memory in the result.
  public func handle(_ request: KafkaRequest, context: RequestContext = RequestContext()) async
    -> KafkaResponseBody?
  {
    var plain = context
    plain.zeroCopy = false
    return await handleForWire(request, context: plain)?.body
  }

  /// Charges a Produce or Fetch to its client's byte-rate quota; returns the throttle (ms).
  func chargeQuota(_ request: KafkaRequest, _ reply: inout WireReply, context: RequestContext) {
    switch request.body {
    case .produce:
      let throttle = quotas.record(
        clientId: request.header.clientId, kind: .produce, bytes: context.requestBytes)
      guard throttle > 0 else { return }
      reply.muteMs = throttle
      if case .produce(var body)? = reply.body {
        body.throttleTimeMs = max(body.throttleTimeMs, Int32(clamping: throttle))
        reply.body = .produce(body)
      }
    case .fetch:
      guard case .fetch(var body)? = reply.body else { return }
      var bytes = reply.fileRecords.values.reduce(0) { $0 + $1.reduce(0) { $0 + $1.length } }
      for topic in body.responses {
        for partition in topic.partitions { bytes += partition.records?.readableBytes ?? 0 }
      }
      let throttle = quotas.record(clientId: request.header.clientId, kind: .fetch, bytes: bytes)
      guard throttle > 0 else { return }
      reply.muteMs = throttle
      body.throttleTimeMs = max(body.throttleTimeMs, Int32(clamping: throttle))
      reply.body = .fetch(body)
    default:
      return
    }
  }

  /// Handles one decoded request for the network layer: with `context.zeroCopy`, fetched
  /// record data stays in files (see ``WireReply``).
  public func handleForWire(_ request: KafkaRequest, context: RequestContext) async -> WireReply? {
    let version = request.apiVersion
    if case .fetch(let body) = request.body {
      var fileRecords: [UInt64: [LogChunk]] = [:]
      let response = await fetch(
        body, version: version, zeroCopy: context.zeroCopy, eventLoop: context.eventLoop,
        connectionOpen: context.connectionOpen, fileRecords: &fileRecords)
      var reply = WireReply(body: .fetch(response), fileRecords: fileRecords)
      chargeQuota(request, &reply, context: context)
      return reply
    }
    let body = await handleInMemory(request, context: context)
    if case .produce = request.body {
      var reply = WireReply(body: body, fileRecords: [:])
      chargeQuota(request, &reply, context: context)
      return reply.body == nil && reply.muteMs == 0 ? nil : reply
    }
    return body.map { WireReply(body: $0, fileRecords: [:]) }
  }

  func handleInMemory(_ request: KafkaRequest, context: RequestContext = RequestContext()) async
    -> KafkaResponseBody?
  {
    let version = request.apiVersion
    switch request.body {
    case .apiVersions: return .apiVersions(apiVersions(errorCode: .none))
    case .metadata(let body): return .metadata(metadata(body, version: version))
    case .produce(let body):
      return await produce(
        body, version: version, connectionOpen: context.connectionOpen, eventLoop: context.eventLoop
      ).map {
        .produce($0)
      }
    case .fetch(let body):
      var unused: [UInt64: [LogChunk]] = [:]
      return .fetch(await fetch(body, version: version, zeroCopy: false, fileRecords: &unused))
    case .listOffsets(let body): return .listOffsets(listOffsets(body, version: version))
    case .findCoordinator(let body): return .findCoordinator(findCoordinator(body, version: version))
    case .initProducerId(let body): return .initProducerId(initProducerId(body))
    case .createTopics(let body): return .createTopics(createTopics(body, version: version))
    case .deleteTopics(let body): return .deleteTopics(deleteTopics(body, version: version))
    case .createPartitions(let body): return .createPartitions(createPartitions(body))
    case .deleteRecords(let body): return .deleteRecords(deleteRecords(body))
    case .describeConfigs(let body): return .describeConfigs(describeConfigs(body, version: version))
    case .alterConfigs(let body): return .alterConfigs(alterConfigs(body))
    case .incrementalAlterConfigs(let body): return .incrementalAlterConfigs(incrementalAlterConfigs(body))
    case .describeCluster(let body): return .describeCluster(describeCluster(body))
    case .joinGroup(let body):
      let (clientId, clientHost) = (request.header.clientId, context.clientHost)
      return .joinGroup(await joinGroup(body, version: version, clientId: clientId, clientHost: clientHost))
    case .syncGroup(let body): return .syncGroup(await syncGroup(body, version: version))
    case .heartbeat(let body): return .heartbeat(heartbeat(body, version: version))
    case .leaveGroup(let body): return .leaveGroup(leaveGroup(body, version: version))
    case .offsetCommit(let body): return .offsetCommit(await offsetCommit(body, version: version))
    case .offsetFetch(let body): return .offsetFetch(offsetFetch(body, version: version))
    case .offsetDelete(let body): return .offsetDelete(await offsetDelete(body))
    case .listGroups(let body): return .listGroups(listGroups(body, version: version))
    case .describeGroups(let body): return .describeGroups(describeGroups(body, version: version))
    case .deleteGroups(let body): return .deleteGroups(await deleteGroups(body))
    case .describeClientQuotas(let body): return .describeClientQuotas(quotas.describe(body))
    case .alterClientQuotas(let body): return .alterClientQuotas(quotas.alter(body))
    default: return nil
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

  func findCoordinator(_ request: FindCoordinatorRequest, version: Int16) -> FindCoordinatorResponse {
    var response = FindCoordinatorResponse()
    let supported = request.keyType == 0
    // Transaction coordinators (key type 1) do not exist here.
    let code: ErrorCode = supported ? ErrorCode.none : .coordinatorNotAvailable
    if version >= 4 {
      response.coordinators = request.coordinatorKeys.map { key in
        .init(
          key: key, nodeId: supported ? config.nodeId : -1, host: supported ? config.advertisedHost : "",
          port: supported ? config.advertisedPort : -1, errorCode: code.rawValue,
          errorMessage: supported ? nil : "Transactions are not supported by Sluice")
      }
    } else {
      response.errorCode = code.rawValue
      if version >= 1 { response.errorMessage = supported ? nil : "Transactions are not supported by Sluice" }
      response.nodeId = supported ? config.nodeId : -1
      response.host = supported ? config.advertisedHost : ""
      response.port = supported ? config.advertisedPort : -1
    }
    return response
  }

  func describeCluster(_ request: DescribeClusterRequest) -> DescribeClusterResponse {
    var response = DescribeClusterResponse(
      endpointType: request.endpointType, clusterId: clusterId, controllerId: config.nodeId,
      brokers: [.init(brokerId: config.nodeId, host: config.advertisedHost, port: config.advertisedPort)])
    if request.includeClusterAuthorizedOperations {
      response.clusterAuthorizedOperations = Self.clusterOperations
    }
    return response
  }

  func initProducerId(_ request: InitProducerIdRequest) -> InitProducerIdResponse {
    if request.transactionalId != nil {
      // Transactions are not implemented: fail clearly rather than pretend.
      return InitProducerIdResponse(
        errorCode: ErrorCode.transactionalIdAuthorizationFailed.rawValue, producerId: -1, producerEpoch: -1)
    }
    if request.producerId >= 0 && request.producerEpoch >= 0 && request.producerEpoch < Int16.max - 1 {
      // KIP-360: an idempotent producer bumping its own epoch after an error.
      return InitProducerIdResponse(producerId: request.producerId, producerEpoch: request.producerEpoch + 1)
    }
    do {
      let id = try metadata.update { (document: inout MetadataStore.Document) throws(StorageError) -> Int64 in
        let next = Int64(document.sections["producerIds"]?["next"] ?? "1000") ?? 1000
        document.sections["producerIds", default: [:]]["next"] = String(next + 1)
        return next
      }
      return InitProducerIdResponse(producerId: id, producerEpoch: 0)
    } catch {
      return InitProducerIdResponse(
        errorCode: ErrorCode.kafkaStorageError.rawValue, producerId: -1, producerEpoch: -1)
    }
  }
}
