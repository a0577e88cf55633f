import KafkaProtocol
import SluiceStorage

extension Broker {
  /// ListOffsets: -2 earliest (log start), -1 latest (high watermark; the same under
  /// read_committed, as there are no transactions), -3 the record with the largest
  /// timestamp (v7+), ≥ 0 the first record whose timestamp is ≥ it (or -1/-1 if none).
  func listOffsets(_ request: ListOffsetsRequest, version: Int16) -> ListOffsetsResponse {
    var response = ListOffsetsResponse()
    response.topics = request.topics.map { requested in
      var topicResponse = ListOffsetsResponse.ListOffsetsTopicResponse(name: requested.name)
      let topic = self.topic(requested.name)
      topicResponse.partitions = requested.partitions.map { wanted in
        var result = ListOffsetsResponse.ListOffsetsPartitionResponse(
          partitionIndex: wanted.partitionIndex, timestamp: -1, offset: -1)
        guard let partition = topic?.partition(wanted.partitionIndex) else {
          result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
          return result
        }
        do throws(StorageError) {
          switch wanted.timestamp {
          case -2:
            result.offset = partition.log.logStartOffset
          case -1:
            result.offset = partition.highWatermark
          case -3 where version >= 7:
            if let found = try partition.log.maxTimestamp() {
              result.offset = found.offset
              result.timestamp = found.timestamp
            }
          case let timestamp where timestamp >= 0:
            if let found = try partition.log.offset(forTimestamp: timestamp),
              found.offset < partition.highWatermark
            {
              result.offset = found.offset
              result.timestamp = found.timestamp
            }
          default:
            result.errorCode = ErrorCode.invalidRequest.rawValue  // INVALID_REQUEST
          }
        } catch {
          result.errorCode = ErrorCode.from(error).rawValue
        }
        return result
      }
      return topicResponse
    }
    return response
  }
}
