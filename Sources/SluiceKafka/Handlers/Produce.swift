import KafkaProtocol
import SluiceBroker

extension KafkaFrontDoor {
  /// Produce (CLIENTS.md §3): the request's partitions handed to ``Broker/produce(_:options:context:)``
  /// and its answers put back per version. nil for acks=0 (no response is sent).
  func produce(_ request: ProduceRequest, version: Int16, context: RequestContext) async -> ProduceResponse? {
    var response = ProduceResponse()
    let acks: Acks? =
      switch request.acks {
      case 0: Acks.none
      case 1: .leader
      case -1: .all
      default: nil
      }
    // Refusals of the whole request, per partition as Kafka reports them.
    var refusal: BrokerError?
    if acks == nil {
      refusal = BrokerError(.invalidRequiredAcks, "acks must be 0, 1 or -1")
    } else if request.transactionalId != nil {
      refusal = BrokerError(.transactionalIdAuthorizationFailed, "Transactions are not supported by Sluice")
    }
    // WRITE on each topic; partitions of a topic the principal may not write are answered
    // TOPIC_AUTHORIZATION_FAILED and the rest are written.
    let access = access(context)
    var writes: [PartitionRecords] = []
    var denied: [Bool] = []
    for topicData in request.topicData {
      let allowed = access.allows(.write, .topic, topicData.name)
      for data in topicData.partitionData {
        denied.append(!allowed)
        if allowed {
          writes.append(PartitionRecords(topic: topicData.name, partition: data.index, records: data.records))
        }
      }
    }
    var results: [PartitionAppendResult] = []
    if let refusal {
      results = Array(repeating: .failed(refusal), count: writes.count)
    } else if let acks, !writes.isEmpty {
      let outcome = await broker.produce(
        writes, options: ProduceOptions(acks: acks, allowZstd: version >= 7), context: context.call)
      results = outcome.results
      if outcome.heldMs > 0 { response.throttleTimeMs = Int32(clamping: outcome.heldMs) }
    }
    if denied.contains(true) {
      let refused = PartitionAppendResult.failed(
        BrokerError(.topicAuthorizationFailed, "WRITE on the topic is not allowed for \(context.principal)"))
      var allowedResults = results.makeIterator()
      results = denied.map { $0 ? refused : (allowedResults.next() ?? refused) }
    }
    var next = results.makeIterator()
    for topicData in request.topicData {
      var topicResponse = ProduceResponse.TopicProduceResponse(name: topicData.name)
      for data in topicData.partitionData {
        var result = ProduceResponse.PartitionProduceResponse(index: data.index, baseOffset: -1)
        if version >= 5 { result.logStartOffset = -1 }
        switch next.next() {
        case .appended(let firstOffset, let logAppendTime, let logStartOffset):
          result.baseOffset = firstOffset
          if version >= 2 { result.logAppendTimeMs = logAppendTime }
          if version >= 5 { result.logStartOffset = logStartOffset }
        case .duplicate(let firstOffset, let logStartOffset):
          result.baseOffset = firstOffset
          if version >= 5 { result.logStartOffset = logStartOffset }
        case .failed(let error):
          result.errorCode = error.code.rawValue
          if version >= 8 {
            result.errorMessage = error.message
            result.recordErrors = error.recordErrors.map {
              .init(batchIndex: $0.index, batchIndexErrorMessage: $0.message)
            }
          }
        case nil:
          result.errorCode = ErrorCode.unknownServerError.rawValue
        }
        topicResponse.partitionResponses.append(result)
      }
      response.responses.append(topicResponse)
    }
    return request.acks == 0 ? nil : response
  }
}
