import CoreMetrics
import KafkaProtocol
import Logging
import SluiceBroker
import Synchronization

/// Per-API request figures of the Kafka front door: requests answered, those whose
/// response carried an error code (by error), and the time from decoding to the response
/// (`sluice_kafka_*`, see ``SluiceMetrics``). An API's instruments are made on its first
/// request, from the process's `MetricsSystem`.
enum RequestMetrics {
  struct Instruments: Sendable {
    let name: String
    let requests: Counter
    let duration: CoreMetrics.Timer
  }

  static let byKey = Mutex<[Int16: Instruments]>([:])

  static func instruments(_ key: ApiKey) -> Instruments {
    byKey.withLock { table in
      if let existing = table[key.rawValue] { return existing }
      let dimensions = [("api", key.name)]
      let made = Instruments(
        name: key.name,
        requests: Counter(label: SluiceMetrics.requests, dimensions: dimensions),
        duration: CoreMetrics.Timer(label: SluiceMetrics.requestDuration, dimensions: dimensions))
      table[key.rawValue] = made
      return made
    }
  }

  struct ErrorKey: Hashable {
    var api: Int16
    var error: Int16
  }

  /// Error counters by API and error code, made when first seen.
  static let errors = Mutex<[ErrorKey: Counter]>([:])

  /// Counts an answered request: `reply` is what goes back (nil: nothing, acks=0). Returns
  /// the time it took and the error codes its response carried (for the request logs).
  @discardableResult
  static func record(
    _ request: KafkaRequest, _ reply: KafkaResponseBody?, since start: ContinuousClock.Instant
  )
    -> (elapsed: Duration, errors: [Int16])
  {
    let elapsed = ContinuousClock.now - start
    let instruments = instruments(request.apiKey)
    instruments.requests.increment()
    instruments.duration.recordNanoseconds(elapsed.nanoseconds)
    guard let reply else { return (elapsed, []) }
    var codes: [Int16] = []
    errorCodes(of: reply, into: &codes)
    for code in codes where code != 0 {
      let key = ErrorKey(api: request.apiKey.rawValue, error: code)
      let counter = errors.withLock { table in
        if let existing = table[key] { return existing }
        let made = Counter(
          label: SluiceMetrics.requestErrors,
          dimensions: [("api", instruments.name), ("error", ErrorCode(rawValue: code).name)])
        table[key] = made
        return made
      }
      counter.increment()
    }
    return (elapsed, codes)
  }

  /// The error codes of a response: Produce's and Fetch's per partition (and Fetch's
  /// top-level one), read directly; other APIs' top-level `errorCode` and those of the
  /// entries of their top-level lists (CreateTopics' topics, …), read by reflection — those
  /// requests are rare, and the walk stops there (never into a Metadata's partitions).
  static func errorCodes(of reply: KafkaResponseBody, into codes: inout [Int16]) {
    switch reply {
    case .produce(let response):
      for topic in response.responses {
        for partition in topic.partitionResponses where partition.errorCode != 0 {
          codes.append(partition.errorCode)
        }
      }
    case .fetch(let response):
      if response.errorCode != 0 { codes.append(response.errorCode) }
      for topic in response.responses {
        for partition in topic.partitions where partition.errorCode != 0 { codes.append(partition.errorCode) }
      }
    default:
      guard let body = Mirror(reflecting: reply).children.first?.value else { return }
      reflectErrorCodes(body, depth: 0, into: &codes)
    }
  }

  static func reflectErrorCodes(_ value: Any, depth: Int, into codes: inout [Int16]) {
    for child in Mirror(reflecting: value).children {
      if child.label == "errorCode", let code = child.value as? Int16 {
        if code != 0 { codes.append(code) }
      } else if depth == 0, Mirror(reflecting: child.value).displayStyle == .collection {
        for element in Mirror(reflecting: child.value).children {
          reflectErrorCodes(element.value, depth: 1, into: &codes)
        }
      }
    }
  }
}

/// The slow-request log (`sluice.slow`, with `sluice.slow.request.log.ms`) and the audit log
/// of admin requests (`sluice.audit`: who created, deleted or changed what, and the outcome).
enum RequestLogs {
  static let slow = Logger(label: "sluice.slow")
  static let audit = Logger(label: "sluice.audit")

  /// Requests that change topics, configs, records, groups, ACLs, users or quotas.
  static let adminApis: Set<ApiKey> = [
    .createTopics, .deleteTopics, .createPartitions, .alterConfigs, .incrementalAlterConfigs, .deleteRecords,
    .deleteGroups, .offsetDelete, .createAcls, .deleteAcls, .alterUserScramCredentials, .alterClientQuotas,
  ]

  static func metadata(
    _ request: KafkaRequest, context: RequestContext, errors codes: [Int16], elapsed: Duration
  ) -> Logger.Metadata {
    let micros = elapsed.microseconds
    return [
      "api": .string(request.apiKey.name),
      "version": .stringConvertible(request.apiVersion),
      "principal": .string(printableForLog(context.principal)),
      "client_host": .string(context.clientHost),
      "client_id": .string(printableForLog(request.header.clientId ?? "")),
      "duration_ms": .string(String(Double(micros) / 1000)),
      "errors": .array(codes.map { .string(ErrorCode(rawValue: $0).name) }),
    ]
  }

  /// The names a request acts on: the `name`, `topicName`, `groupId`, `resourceName`,
  /// `user`, `topicNames` and `groupsNames` fields of the request and of its top-level lists' entries (at most 100).
  static func resources(of request: KafkaRequest) -> [String] {
    guard let body = Mirror(reflecting: request.body).children.first?.value else { return [] }
    var names: [String] = []
    func visit(_ value: Any, depth: Int) {
      for child in Mirror(reflecting: value).children where names.count < 100 {
        switch child.label {
        case "name", "topicName", "groupId", "resourceName", "user", "entityName":
          if let text = (child.value as? String?) ?? nil { names.append(text) }
        case "topicNames", "groupsNames":
          if let list = child.value as? [String] { names += list.prefix(100 - names.count) }
        default:
          if depth == 0, Mirror(reflecting: child.value).displayStyle == .collection {
            for element in Mirror(reflecting: child.value).children { visit(element.value, depth: 1) }
          }
        }
      }
    }
    visit(body, depth: 0)
    return names
  }
}
