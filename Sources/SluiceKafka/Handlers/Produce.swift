import KafkaProtocol
import SluiceBroker

extension KafkaFrontDoor {
  /// Produce (CLIENTS.md §3): the request's partitions handed to ``Broker/produce(_:options:context:)``
  /// and its answers put back per version. nil for acks=0 (no response is sent).
  func produce(_ request: ProduceRequest, version: Int16, context: RequestContext) async -> ProduceResponse? {
    let plan = producePlan(request, context: context)
    var outcome: ProduceResult?
    if let acks = plan.acks, plan.refusal == nil, !plan.writes.isEmpty {
      outcome = await broker.produce(
        plan.writes, options: ProduceOptions(acks: acks, allowZstd: version >= 7), context: context.call)
    }
    return produceResponse(request, version: version, plan: plan, outcome: outcome)
  }

  /// The same without a task when the broker appends at once (see
  /// ``Broker/produce(_:options:context:completion:)``): the response now, or nil and
  /// `completion` gets it later, from any thread.
  func produce(
    _ request: ProduceRequest, version: Int16, context: RequestContext,
    completion: @escaping @Sendable (ProduceResponse?) -> Void
  ) -> ProduceResponse?? {
    let plan = producePlan(request, context: context)
    guard let acks = plan.acks, plan.refusal == nil, !plan.writes.isEmpty else {
      return .some(produceResponse(request, version: version, plan: plan, outcome: nil))
    }
    let outcome = broker.produce(
      plan.writes, options: ProduceOptions(acks: acks, allowZstd: version >= 7), context: context.call
    ) { outcome in
      completion(self.produceResponse(request, version: version, plan: plan, outcome: outcome))
    }
    guard let outcome else { return nil }
    return .some(produceResponse(request, version: version, plan: plan, outcome: outcome))
  }

  /// What a Produce asks the broker to write, and what is refused before it is asked.
  struct ProducePlan: Sendable {
    var acks: Acks?
    /// Refuses the whole request.
    var refusal: BrokerError?
    /// The partitions the principal may write.
    var writes: [PartitionRecords] = []
    /// Per partition in request order: refused for lack of WRITE.
    var denied: [Bool] = []
    var principal: String
  }

  func producePlan(_ request: ProduceRequest, context: RequestContext) -> ProducePlan {
    var plan = ProducePlan(principal: context.principal)
    plan.acks =
      switch request.acks {
      case 0: Acks.none
      case 1: .leader
      case -1: .all
      default: nil
      }
    // Refusals of the whole request, per partition as Kafka reports them.
    if plan.acks == nil {
      plan.refusal = BrokerError(.invalidRequiredAcks, "acks must be 0, 1 or -1")
    } else if request.transactionalId != nil {
      plan.refusal = BrokerError(
        .transactionalIdAuthorizationFailed, "Transactions are not supported by Sluice")
    }
    // WRITE on each topic; partitions of a topic the principal may not write are answered
    // TOPIC_AUTHORIZATION_FAILED and the rest are written.
    let access = access(context)
    for topicData in request.topicData {
      let allowed = access.allows(.write, .topic, topicData.name)
      for data in topicData.partitionData {
        plan.denied.append(!allowed)
        if allowed {
          plan.writes.append(
            PartitionRecords(topic: topicData.name, partition: data.index, records: data.records))
        }
      }
    }
    return plan
  }

  /// The response to a Produce, given what the broker did (nil: it was not asked).
  func produceResponse(_ request: ProduceRequest, version: Int16, plan: ProducePlan, outcome: ProduceResult?)
    -> ProduceResponse?
  {
    var response = ProduceResponse()
    var results: [PartitionAppendResult] = []
    if let refusal = plan.refusal {
      results = Array(repeating: .failed(refusal), count: plan.writes.count)
    } else if let outcome {
      results = outcome.results
      if outcome.heldMs > 0 { response.throttleTimeMs = Int32(clamping: outcome.heldMs) }
    }
    if plan.denied.contains(true) {
      let refused = PartitionAppendResult.failed(
        BrokerError(.topicAuthorizationFailed, "WRITE on the topic is not allowed for \(plan.principal)"))
      var allowedResults = results.makeIterator()
      results = plan.denied.map { $0 ? refused : (allowedResults.next() ?? refused) }
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
