import KafkaProtocol
public import NIOCore
public import NIOHTTP1
import SluiceBroker
import Synchronization

/// REST Proxy v2's embedded formats that Sluice serves (the schema formats need a Schema
/// Registry, which Sluice does not have).
public enum EmbeddedFormat: String, Sendable {
  case binary
  case json

  /// The format a produce request's Content-Type names; nil for any other type.
  static func produceFormat(contentType: String?) -> Result<EmbeddedFormat, RestError> {
    let mediaType =
      (contentType ?? "").split(separator: ";").first.map {
        $0.trimmedSpaces().lowercased()
      } ?? ""
    switch mediaType {
    case "application/vnd.kafka.binary.v2+json": return .success(.binary)
    case "application/vnd.kafka.json.v2+json": return .success(.json)
    case "application/vnd.kafka.avro.v2+json", "application/vnd.kafka.jsonschema.v2+json",
      "application/vnd.kafka.protobuf.v2+json":
      return .failure(
        RestError(
          .unsupportedMediaType, 415,
          "\(mediaType) needs a Schema Registry, which Sluice does not have: use "
            + "application/vnd.kafka.binary.v2+json or application/vnd.kafka.json.v2+json"))
    default:
      return .failure(
        RestError(
          .unsupportedMediaType, 415,
          "HTTP 415 Unsupported Media Type: produce takes application/vnd.kafka.binary.v2+json or "
            + "application/vnd.kafka.json.v2+json"))
    }
  }
}

extension StringProtocol {
  /// Without leading and trailing spaces and tabs.
  func trimmedSpaces() -> String {
    var slice = Substring(self)
    while slice.first == " " || slice.first == "\t" { slice = slice.dropFirst() }
    while slice.last == " " || slice.last == "\t" { slice = slice.dropLast() }
    return String(slice)
  }
}

/// An error answered with REST Proxy's body `{"error_code":…,"message":…}`.
public struct RestError: Error, Sendable, Equatable {
  public var status: HTTPResponseStatus
  public var code: Int
  public var message: String

  public init(_ status: HTTPResponseStatus, _ code: Int, _ message: String) {
    self.status = status
    self.code = code
    self.message = message
  }
}

/// Request bodies that must be a JSON object with known members (REST Proxy's rules).
enum JSONBody {
  /// The object: 400 for malformed JSON, 422 for another value (`null` passes as nil when
  /// `allowNull`) or a member not in `allowed`.
  static func object(_ body: ByteBuffer, allowed: Set<String>, allowNull: Bool = false) -> Result<
    JSONValue?, RestError
  > {
    let root: JSONValue
    do {
      root = try JSONParser.parse(body)
    } catch {
      return .failure(RestError(.badRequest, 400, "Bad Request: malformed JSON: \(error)"))
    }
    if allowNull && root.isNull { return .success(nil) }
    guard case .object(let members) = root.json else {
      return .failure(RestError(.unprocessableEntity, 422, "The request body must be a JSON object"))
    }
    if let unknown = members.first(where: { !allowed.contains($0.0) }) {
      return .failure(RestError(.unprocessableEntity, 422, "Unrecognized field: \(unknown.0)"))
    }
    return .success(root)
  }
}

/// A produce request's records, decoded: keys and values as the bytes to store.
public struct RestProduceRequest: Sendable {
  public struct Record: Sendable {
    public var key: ByteBuffer?
    public var value: ByteBuffer?
    public var partition: Int32?
  }

  public var records: [Record]

  /// Parses and checks a body as REST Proxy does: unknown fields are refused (422), records
  /// may not be empty (422), a binary key or value must be a base64 string (400), a json
  /// one is stored as compact JSON text; `null` or no key/value is a Kafka null.
  public static func parse(_ body: ByteBuffer, format: EmbeddedFormat) -> Result<
    RestProduceRequest, RestError
  > {
    let allowed: Set<String> = ["records", "key_schema", "key_schema_id", "value_schema", "value_schema_id"]
    let root: JSONValue
    switch JSONBody.object(body, allowed: allowed) {
    case .failure(let failure): return .failure(failure)
    case .success(let value): root = value!
    }
    guard let records = root["records"]?.array, !records.isEmpty else {
      return .failure(RestError(.unprocessableEntity, 422, "records: must not be empty"))
    }
    var decoded: [Record] = []
    decoded.reserveCapacity(records.count)
    for (index, record) in records.enumerated() {
      guard case .object(let fields) = record.json else {
        return .failure(RestError(.unprocessableEntity, 422, "records[\(index)]: must be a JSON object"))
      }
      if let unknown = fields.first(where: { !["key", "value", "partition"].contains($0.0) }) {
        return .failure(RestError(.unprocessableEntity, 422, "Unrecognized field: \(unknown.0)"))
      }
      var partition: Int32?
      if let value = record["partition"], !value.isNull {
        guard let number = value.integer(Int32.self), number >= 0 else {
          return .failure(
            RestError(
              .unprocessableEntity, 422, "records[\(index)].partition: must be a partition number"))
        }
        partition = number
      }
      var entry = Record(key: nil, value: nil, partition: partition)
      for field in ["key", "value"] {
        guard let value = record[field], !value.isNull else { continue }
        let bytes: ByteBuffer
        switch format {
        case .json:
          var writer = JSONWriter()
          writer.value(value)
          bytes = writer.buffer
        case .binary:
          guard let text = value.string else {
            return .failure(
              RestError(
                .badRequest, 400,
                "Bad Request: data=\(String(buffer: value.raw).prefix(64)) is not a base64 string."))
          }
          guard let decodedBytes = Base64.decode(text) else {
            return .failure(
              RestError(
                .badRequest, 400,
                "Bad Request: data=\(String(buffer: value.raw).prefix(64)) is not a valid base64 string."))
          }
          bytes = decodedBytes
        }
        if field == "key" { entry.key = bytes } else { entry.value = bytes }
      }
      decoded.append(entry)
    }
    return .success(RestProduceRequest(records: decoded))
  }
}

/// Chooses partitions for records without one, as a Kafka producer does: a keyed record by
/// `murmur2(key)` (the Java client's default partitioner, so a REST producer and a Kafka
/// producer put a key in the same partition); unkeyed records of one request all go to one
/// partition, the next in turn for each request (sticky per request).
final class RestPartitioner: Sendable {
  let next = Atomic<Int>(0)

  func stickyPartition(count: Int32) -> Int32 {
    Int32((next.wrappingAdd(1, ordering: .relaxed).oldValue & Int.max) % Int(count))
  }

  static func partition(key: ByteBuffer, count: Int32) -> Int32 { kafkaKeyPartition(key, count: count) }
}

/// The REST Proxy v2 handlers: topics, partitions, offsets, brokers and produce.
struct RestProxy {
  let broker: Broker
  let counters: HTTPCounters
  let partitioner: RestPartitioner
  let route: String
  /// Which topics GET /topics lists (with authentication: those the principal may describe).
  var visibleTopic: @Sendable (String) -> Bool = { _ in true }

  init(broker: Broker, counters: HTTPCounters, partitioner: RestPartitioner, route: String) {
    self.broker = broker
    self.counters = counters
    self.partitioner = partitioner
    self.route = route
  }

  func error(_ error: RestError) -> HTTPResponse {
    .error(error.status, code: error.code, error.message, route: route)
  }

  func topicNotFound() -> HTTPResponse {
    .error(.notFound, code: 40401, "Topic not found.", route: route)
  }

  func partitionNotFound() -> HTTPResponse {
    .error(.notFound, code: 40402, "Partition not found.", route: route)
  }

  /// 406 when the client accepts none of the types the answer can have.
  func refuseAccept(_ request: HTTPRequest) -> HTTPResponse? {
    let accept = request.headers[canonicalForm: "accept"]
    if accept.isEmpty { return nil }
    for entry in accept {
      let type = entry.split(separator: ";").first.map { $0.trimmedSpaces().lowercased() }
      switch type {
      case "*/*", "application/*", "application/json", "application/vnd.kafka+json",
        "application/vnd.kafka.v2+json":
        return nil
      case let type? where type.hasPrefix("application/vnd.kafka.") && type.hasSuffix(".v2+json"):
        return nil
      default:
        continue
      }
    }
    return .error(.notAcceptable, code: 406, "HTTP 406 Not Acceptable", route: route)
  }

  func brokers() -> HTTPResponse {
    .json(route: route) { writer in
      writer.object { $0.member("brokers") { $0.array([broker.config.nodeId]) { $0.number($1) } } }
    }
  }

  func listTopics() -> HTTPResponse {
    let visible = broker.allTopics.filter { visibleTopic($0.name) }
    return .json(route: route) { writer in writer.array(visible) { $0.string($1.name) } }
  }

  func writePartition(_ writer: inout JSONWriter, _ partition: Partition) {
    let node = broker.config.nodeId
    let online = partition.offlineReason == nil
    writer.object { object in
      object.member("partition") { $0.number(partition.index) }
      object.member("leader") { $0.number(online ? node : -1) }
      object.member("replicas") { replicas in
        replicas.array([node]) { writer, broker in
          writer.object { replica in
            replica.member("broker") { $0.number(broker) }
            replica.member("leader") { $0.bool(online) }
            replica.member("in_sync") { $0.bool(online) }
          }
        }
      }
    }
  }

  func describeTopic(_ name: String) -> HTTPResponse {
    guard let topic = broker.topic(name) else { return topicNotFound() }
    return .json(route: route) { writer in
      writer.object { object in
        object.member("name") { $0.string(topic.name) }
        object.member("configs") { configs in
          configs.object { members in
            for entry in topic.config.effectiveValues() {
              members.member(entry.name) { $0.string(entry.value) }
            }
          }
        }
        object.member("partitions") { $0.array(topic.partitions) { writePartition(&$0, $1) } }
      }
    }
  }

  func listPartitions(_ name: String) -> HTTPResponse {
    guard let topic = broker.topic(name) else { return topicNotFound() }
    return .json(route: route) { writer in writer.array(topic.partitions) { writePartition(&$0, $1) } }
  }

  func partition(_ name: String, _ index: String) -> Result<Partition, RestError> {
    guard let topic = broker.topic(name) else {
      return .failure(RestError(.notFound, 40401, "Topic not found."))
    }
    guard let number = Int32(index), let partition = topic.partition(number) else {
      return .failure(RestError(.notFound, 40402, "Partition not found."))
    }
    return .success(partition)
  }

  func describePartition(_ name: String, _ index: String) -> HTTPResponse {
    switch partition(name, index) {
    case .failure(let failure): return error(failure)
    case .success(let partition): return .json(route: route) { writePartition(&$0, partition) }
    }
  }

  func partitionOffsets(_ name: String, _ index: String) async -> HTTPResponse {
    switch partition(name, index) {
    case .failure(let failure):
      return error(failure)
    case .success(let partition):
      return .json(route: route) { writer in
        writer.object { object in
          object.member("beginning_offset") { $0.number(partition.logStartOffset) }
          object.member("end_offset") { $0.number(partition.highWatermark) }
        }
      }
    }
  }

  /// `POST /topics/{topic}` and `POST /topics/{topic}/partitions/{partition}`.
  func produce(_ request: HTTPRequest, topic name: String, partition pathPartition: String?) async
    -> HTTPResponse
  {
    let format: EmbeddedFormat
    switch EmbeddedFormat.produceFormat(contentType: request.headers.first(name: "content-type")) {
    case .failure(let failure): return error(failure)
    case .success(let value): format = value
    }
    var topic = broker.topic(name)
    if topic == nil && broker.config.autoCreateTopics {
      // As a Kafka producer's metadata request would (auto.create.topics.enable).
      do {
        _ = try await broker.createTopic(
          name: name, partitions: broker.config.defaultPartitions, configs: [:])
      } catch {
        if case .exists = error {
        } else {
          return .error(.notFound, code: 40401, "Topic not found: \(error.message)", route: route)
        }
      }
      topic = broker.topic(name)
    }
    guard let topic else { return topicNotFound() }
    var defaultPartition: Int32?
    if let pathPartition {
      guard let number = Int32(pathPartition), topic.partition(number) != nil else {
        return partitionNotFound()
      }
      defaultPartition = number
    }
    let parsed: RestProduceRequest
    switch RestProduceRequest.parse(request.body, format: format) {
    case .failure(let failure): return error(failure)
    case .success(let value): parsed = value
    }
    let count = Int32(topic.partitions.count)
    let sticky = partitioner.stickyPartition(count: max(1, count))
    let now = broker.clock.now()
    let maxBytes = topic.config.maxMessageBytes
    // Records in request order, grouped by partition into batches no larger than the
    // topic's max.message.bytes (a record too large alone fails alone).
    var outcomes: [RecordOutcome] = Array(
      repeating: .failed(50002, "not produced"), count: parsed.records.count)
    var batches: [(partition: Int32, indexes: [Int], builder: RecordBatchBuilder)] = []
    var open: [Int32: Int] = [:]
    for (index, record) in parsed.records.enumerated() {
      let partition: Int32
      if let chosen = record.partition ?? defaultPartition {
        partition = chosen
      } else if let key = record.key {
        partition = RestPartitioner.partition(key: key, count: count)
      } else {
        partition = sticky
      }
      guard partition < count else {
        outcomes[index] = .failed(
          50003,
          "UNKNOWN_TOPIC_OR_PARTITION: Partition \(partition) of topic \(name) with partition count "
            + "\(count) is not present")
        continue
      }
      let size = (record.key?.readableBytes ?? 0) + (record.value?.readableBytes ?? 0) + 32
      if let at = open[partition], batches[at].builder.uncompressedSize + size <= maxBytes {
        batches[at].builder.append(key: record.key, value: record.value, timestamp: now)
        batches[at].indexes.append(index)
      } else {
        var builder = RecordBatchBuilder(capacity: min(size + 128, maxBytes))
        builder.append(key: record.key, value: record.value, timestamp: now)
        open[partition] = batches.count
        batches.append((partition, [index], builder))
      }
    }
    var writes: [PartitionRecords] = []
    var written: [Int] = []
    for (at, batch) in batches.enumerated() {
      var builder = batch.builder
      do {
        let built = try builder.build()
        writes.append(PartitionRecords(topic: name, partition: batch.partition, records: built.buffer))
        written.append(at)
      } catch {
        for index in batch.indexes { outcomes[index] = .failed(50002, "\(error)") }
      }
    }
    if !writes.isEmpty {
      let result = await broker.produce(
        writes, options: ProduceOptions(acks: .all), context: CallContext())
      for (write, outcome) in zip(written, result.results) {
        let batch = batches[write]
        switch outcome {
        case .appended(let firstOffset, _, _), .duplicate(let firstOffset, _):
          for (position, index) in batch.indexes.enumerated() {
            outcomes[index] = .stored(batch.partition, firstOffset + Int64(position))
          }
          counters.producedRecords.wrappingAdd(batch.indexes.count, ordering: .relaxed)
        case .failed(let failure):
          let code = failure.code.isRetriable ? 50003 : 50002
          let message =
            failure.message.isEmpty ? failure.code.name : "\(failure.code.name): \(failure.message)"
          for index in batch.indexes { outcomes[index] = .failed(code, message) }
        }
      }
    }
    return .json(route: route) { writer in
      writer.object { object in
        object.member("key_schema_id") { $0.null() }
        object.member("value_schema_id") { $0.null() }
        object.member("offsets") { offsets in
          offsets.array(outcomes) { writer, outcome in
            writer.object { entry in
              switch outcome {
              case .stored(let partition, let offset):
                entry.member("partition") { $0.number(partition) }
                entry.member("offset") { $0.number(offset) }
                entry.member("error_code") { $0.null() }
                entry.member("error") { $0.null() }
              case .failed(let code, let message):
                entry.member("partition") { $0.null() }
                entry.member("offset") { $0.null() }
                entry.member("error_code") { $0.number(code) }
                entry.member("error") { $0.string(message) }
              }
            }
          }
        }
      }
    }
  }

  enum RecordOutcome {
    case stored(Int32, Int64)
    case failed(Int, String)
  }
}
