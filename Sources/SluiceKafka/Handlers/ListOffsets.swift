import KafkaProtocol
import SluiceBroker

extension KafkaFrontDoor {
  /// ListOffsets: -2 earliest (log start), -1 latest (high watermark; the same under
  /// read_committed, as there are no transactions), -3 the record with the largest
  /// timestamp (v7+), ≥ 0 the first record whose timestamp is ≥ it (or -1/-1 if none).
  func listOffsets(_ request: ListOffsetsRequest, version: Int16, access: Access) -> ListOffsetsResponse {
    var response = ListOffsetsResponse()
    response.topics = request.topics.map { requested in
      var topicResponse = ListOffsetsResponse.ListOffsetsTopicResponse(name: requested.name)
      let topic = broker.topic(requested.name)
      let allowed = access.allows(.describe, .topic, requested.name)
      topicResponse.partitions = requested.partitions.map { wanted in
        var result = ListOffsetsResponse.ListOffsetsPartitionResponse(
          partitionIndex: wanted.partitionIndex, timestamp: -1, offset: -1)
        guard allowed else {
          result.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
          return result
        }
        guard let partition = topic?.partition(wanted.partitionIndex) else {
          result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
          return result
        }
        let query: Partition.OffsetQuery
        switch wanted.timestamp {
        case -2: query = .earliest
        case -1: query = .latest
        case -3 where version >= 7: query = .maxTimestamp
        case let timestamp where timestamp >= 0: query = .timestamp(timestamp)
        default:
          result.errorCode = ErrorCode.invalidRequest.rawValue
          return result
        }
        do throws(BrokerError) {
          if let found = try partition.offset(for: query) {
            result.offset = found.offset
            if case .maxTimestamp = query { result.timestamp = found.timestamp }
            if case .timestamp = query { result.timestamp = found.timestamp }
          }
        } catch {
          result.errorCode = error.code.rawValue
        }
        return result
      }
      return topicResponse
    }
    return response
  }
}
