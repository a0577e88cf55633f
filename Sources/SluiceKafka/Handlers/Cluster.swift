import KafkaProtocol
import SluiceBroker

/// FindCoordinator, DescribeCluster, InitProducerId: one broker is the whole cluster.
extension KafkaFrontDoor {
  /// FindCoordinator: DESCRIBE on the group is needed (GROUP_AUTHORIZATION_FAILED).
  func findCoordinator(
    _ request: FindCoordinatorRequest, version: Int16, context: RequestContext, access: Access
  )
    -> FindCoordinatorResponse
  {
    let config = broker.config
    let (host, port) = context.advertised ?? (config.advertisedHost, config.advertisedPort)
    var response = FindCoordinatorResponse()
    let supported = request.keyType == 0
    // Transaction coordinators (key type 1) do not exist here. The answer must not be a
    // retriable error (COORDINATOR_NOT_AVAILABLE): clients retry it until their timeout, so
    // a transactional producer would hang in init_transactions. TRANSACTIONAL_ID_
    // AUTHORIZATION_FAILED is fatal for them: they fail at once, saying why.
    func answer(_ key: String) -> (ErrorCode, String?) {
      guard supported else {
        return request.keyType == 1
          ? (.transactionalIdAuthorizationFailed, "Transactions are not supported by Sluice")
          : (.invalidRequest, "Unknown coordinator key type \(request.keyType)")
      }
      guard access.allows(.describe, .group, key) else {
        return (.groupAuthorizationFailed, "DESCRIBE on group \(key) is not allowed")
      }
      return (.none, nil)
    }
    if version >= 4 {
      response.coordinators = request.coordinatorKeys.map { key in
        let (code, message) = answer(key)
        let found = code == .none
        return .init(
          key: key, nodeId: found ? config.nodeId : -1, host: found ? host : "", port: found ? port : -1,
          errorCode: code.rawValue, errorMessage: message)
      }
    } else {
      let (code, message) = answer(request.key)
      let found = code == .none
      response.errorCode = code.rawValue
      if version >= 1 { response.errorMessage = message }
      response.nodeId = found ? config.nodeId : -1
      response.host = found ? host : ""
      response.port = found ? port : -1
    }
    return response
  }

  func describeCluster(_ request: DescribeClusterRequest, context: RequestContext, access: Access)
    -> DescribeClusterResponse
  {
    let config = broker.config
    let (host, port) = context.advertised ?? (config.advertisedHost, config.advertisedPort)
    var response = DescribeClusterResponse(
      endpointType: request.endpointType, clusterId: broker.clusterId, controllerId: config.nodeId,
      brokers: [.init(brokerId: config.nodeId, host: host, port: port)])
    if request.includeClusterAuthorizedOperations {
      response.clusterAuthorizedOperations = access.operations(
        Self.clusterOperations, .cluster, "kafka-cluster")
    }
    return response
  }

  /// InitProducerId for an idempotent producer: IDEMPOTENT_WRITE on the cluster, or WRITE
  /// on some topic (KIP-679), else CLUSTER_AUTHORIZATION_FAILED.
  func initProducerId(_ request: InitProducerIdRequest, access: Access) async -> InitProducerIdResponse {
    if request.transactionalId != nil {
      // Transactions are not implemented: fail clearly rather than pretend.
      return InitProducerIdResponse(
        errorCode: ErrorCode.transactionalIdAuthorizationFailed.rawValue, producerId: -1, producerEpoch: -1)
    }
    guard access.allowsCluster(.idempotentWrite) || access.allowsAny(.write, .topic) else {
      return InitProducerIdResponse(
        errorCode: ErrorCode.clusterAuthorizationFailed.rawValue, producerId: -1, producerEpoch: -1)
    }
    if request.producerId >= 0 && request.producerEpoch >= 0 && request.producerEpoch < Int16.max - 1 {
      // KIP-360: an idempotent producer bumping its own epoch after an error.
      return InitProducerIdResponse(producerId: request.producerId, producerEpoch: request.producerEpoch + 1)
    }
    do {
      return InitProducerIdResponse(producerId: try await broker.nextProducerId(), producerEpoch: 0)
    } catch {
      return InitProducerIdResponse(
        errorCode: ErrorCode.kafkaStorageError.rawValue, producerId: -1, producerEpoch: -1)
    }
  }

  /// The operations a topic, group or the cluster supports, reported as authorized-operation
  /// bit sets (``Access/operations(_:_:_:)``) for those the principal is allowed.
  static let topicOperations: [AclOperation] = [
    .read, .write, .create, .delete, .alter, .describe, .describeConfigs, .alterConfigs,
  ]
  static let groupOperations: [AclOperation] = [.read, .delete, .describe]
  static let clusterOperations: [AclOperation] = [
    .create, .alter, .describe, .clusterAction, .describeConfigs, .alterConfigs, .idempotentWrite,
  ]
}
