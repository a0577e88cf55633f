import KafkaProtocol
import NIOCore
import SluiceBroker

extension KafkaFrontDoor {
  /// Fetch (CLIENTS.md §3): whole batches from each requested partition in request order,
  /// KIP-74 soft limits, and long polling (``Broker/read(_:options:context:)``). On
  /// zero-copy connections from v10 on, large record data stays in files and travels in
  /// ``KafkaReply/records`` beside the body, whose `records` field is then empty.
  func fetch(_ request: FetchRequest, version: Int16, context: RequestContext) async -> KafkaReply {
    let plan = fetchPlan(request, version: version, context: context)
    let results = await broker.read(plan.reads, options: plan.options, context: context.call)
    return fetchReply(request, version: version, denied: plan.denied, results: results)
  }

  /// The same without a task (see ``Broker/read(_:options:context:completion:)``): the
  /// reply now, or nil and `completion` gets it later, on the connection's event loop.
  func fetch(
    _ request: FetchRequest, version: Int16, context: RequestContext,
    completion: @escaping @Sendable (KafkaReply) -> Void
  ) -> KafkaReply? {
    let plan = fetchPlan(request, version: version, context: context)
    let results = broker.read(plan.reads, options: plan.options, context: context.call) { results in
      completion(self.fetchReply(request, version: version, denied: plan.denied, results: results))
    }
    return results.map { fetchReply(request, version: version, denied: plan.denied, results: $0) }
  }

  /// The partitions a Fetch reads (those of topics the principal may read) and how.
  func fetchPlan(_ request: FetchRequest, version: Int16, context: RequestContext) -> (
    reads: [PartitionRead], options: ReadOptions, denied: Set<String>
  ) {
    var reads: [PartitionRead] = []
    // READ on each topic; a partition of a topic the principal may not read is answered
    // TOPIC_AUTHORIZATION_FAILED (and not read).
    let access = access(context)
    var denied: Set<String> = []
    for requested in request.topics where !access.allows(.read, .topic, requested.topic) {
      denied.insert(requested.topic)
    }
    for requested in request.topics where !denied.contains(requested.topic) {
      // Fetch v13+ (topic ids) is not advertised; names identify topics.
      let name = requested.topic
      for wanted in requested.partitions {
        reads.append(
          PartitionRead(
            topic: name, partition: wanted.partition, offset: wanted.fetchOffset,
            maxBytes: Int(max(0, wanted.partitionMaxBytes))))
      }
    }
    let fileRegions = context.zeroCopy && version >= 10
    let options = ReadOptions(
      maxBytes: version >= 3 ? Int(request.maxBytes) : Int(Int32.max), minBytes: Int(request.minBytes),
      maxWaitMs: Int64(max(0, request.maxWaitMs)), fileRegions: fileRegions, refuseZstd: version < 10)
    return (reads, options, denied)
  }

  /// The reply to a Fetch, given what was read.
  func fetchReply(
    _ request: FetchRequest, version: Int16, denied: Set<String>, results: [PartitionReadResult]
  ) -> KafkaReply {
    var response = FetchResponse()
    if version >= 7 { response.sessionId = 0 }  // fetch sessions declined: full fetches
    var external: [RecordData?] = []
    var next = results.makeIterator()
    for requested in request.topics {
      var topicResponse = FetchResponse.FetchableTopicResponse()
      if version >= 13 {
        topicResponse.topicId = requested.topicId
      } else {
        topicResponse.topic = requested.topic
      }
      let refused = denied.contains(requested.topic)
      for wanted in requested.partitions {
        let result =
          refused
          ? PartitionReadResult(error: BrokerError(.topicAuthorizationFailed, ""))
          : next.next() ?? PartitionReadResult(error: BrokerError(.unknownServerError, ""))
        var data = FetchResponse.PartitionData(
          partitionIndex: wanted.partition, highWatermark: result.highWatermark)
        if version >= 4 { data.lastStableOffset = result.lastStableOffset }
        if version >= 5 { data.logStartOffset = result.logStartOffset }
        if version >= 4 && request.isolationLevel == 1 { data.abortedTransactions = [] }
        if let error = result.error {
          data.errorCode = error.code.rawValue
          data.records = ByteBuffer()
          external.append(nil)
        } else if result.records.hasFileRegions {
          data.records = ByteBuffer()
          external.append(result.records)
        } else {
          data.records = (try? result.records.load()) ?? ByteBuffer()
          external.append(nil)
        }
        topicResponse.partitions.append(data)
      }
      response.responses.append(topicResponse)
    }
    return KafkaReply(body: .fetch(response), records: external.contains { $0 != nil } ? external : [])
  }
}
