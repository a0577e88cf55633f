import KafkaProtocol
import SluiceBroker

/// FindCoordinator, DescribeCluster, InitProducerId: one broker is the whole cluster.
extension KafkaFrontDoor {
  func findCoordinator(_ request: FindCoordinatorRequest, version: Int16) -> FindCoordinatorResponse {
    let config = broker.config
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
    let config = broker.config
    var response = DescribeClusterResponse(
      endpointType: request.endpointType, clusterId: broker.clusterId, controllerId: config.nodeId,
      brokers: [.init(brokerId: config.nodeId, host: config.advertisedHost, port: config.advertisedPort)])
    if request.includeClusterAuthorizedOperations {
      response.clusterAuthorizedOperations = Self.clusterOperations
    }
    return response
  }

  func initProducerId(_ request: InitProducerIdRequest) async -> InitProducerIdResponse {
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
      return InitProducerIdResponse(producerId: try await broker.nextProducerId(), producerEpoch: 0)
    } catch {
      return InitProducerIdResponse(
        errorCode: ErrorCode.kafkaStorageError.rawValue, producerId: -1, producerEpoch: -1)
    }
  }

  /// Kafka's ACL operation codes as a bit set (AclOperation: READ 3, WRITE 4, CREATE 5,
  /// DELETE 6, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11,
  /// IDEMPOTENT_WRITE 12). Without an authorizer Kafka reports every operation a resource
  /// type supports, and so does Sluice, which has none yet.
  static func operations(_ codes: [Int32]) -> Int32 { codes.reduce(0) { $0 | (1 << $1) } }
  /// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
  static let topicOperations = operations([3, 4, 5, 6, 7, 8, 10, 11])
  /// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
  static let clusterOperations = operations([5, 7, 8, 9, 10, 11, 12])
}
