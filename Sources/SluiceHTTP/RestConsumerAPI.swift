import NIOCore
import NIOHTTP1
import SluiceBroker

/// The REST Proxy v2 consumer endpoints (`/consumers/…`), over ``RestConsumers``.
struct RestConsumerAPI {
  let consumers: RestConsumers
  let configuration: HTTPServerConfiguration
  let route: String
  /// With HTTP authentication: who is asking. An instance serves only its creator, and
  /// subscriptions must name their topics (each checked for READ).
  var principal: String? = nil

  /// Names (instance names, topics) at most this long; lists at most this many entries.
  static let maxNameBytes = 255
  static let maxEntries = 10_000
  static let maxPatternBytes = 1024

  func error(_ error: RestError) -> HTTPResponse {
    .error(error.status, code: error.code, error.message, route: route)
  }

  func noContent() -> HTTPResponse {
    HTTPResponse(status: .noContent, headers: HTTPHeaders(), body: ByteBuffer(), stream: nil, route: route)
  }

  /// The request's JSON object, nil for an empty body; 415 for a content type REST Proxy
  /// does not take here, 400 for malformed JSON, 422 for another JSON value or a field not
  /// in `allowed`.
  static func body(_ request: HTTPRequest, allowed: Set<String>) -> Result<JSONValue?, RestError> {
    if request.body.readableBytes == 0 { return .success(nil) }
    if let type = request.headers.first(name: "content-type") {
      let base = type.split(separator: ";").first.map { $0.trimmedSpaces().lowercased() } ?? ""
      let accepted =
        base == "application/json" || base == "application/vnd.kafka.v2+json"
        || (base.hasPrefix("application/vnd.kafka.") && base.hasSuffix(".v2+json"))
      guard accepted else {
        return .failure(RestError(.unsupportedMediaType, 415, "HTTP 415 Unsupported Media Type"))
      }
    }
    return JSONBody.object(request.body, allowed: allowed, allowNull: true)
  }

  static func invalid(_ message: String) -> RestError {
    RestError(.unprocessableEntity, 422, message)
  }

  /// `[{"topic":…,"partition":…}]` (with `extra` fields allowed in each entry).
  static func partitions(_ value: JSONValue?, field: String, extra: Set<String> = []) -> Result<
    [(TopicPartition, JSONValue)], RestError
  > {
    guard let value, !value.isNull else { return .success([]) }
    guard let entries = value.array else { return .failure(invalid("\(field): must be an array")) }
    guard entries.count <= maxEntries else {
      return .failure(invalid("\(field): at most \(maxEntries) entries"))
    }
    var result: [(TopicPartition, JSONValue)] = []
    for (index, entry) in entries.enumerated() {
      guard case .object(let members) = entry.json else {
        return .failure(invalid("\(field)[\(index)]: must be an object"))
      }
      if let unknown = members.first(where: { !(["topic", "partition"] as Set).union(extra).contains($0.0) })
      {
        return .failure(invalid("Unrecognized field: \(unknown.0)"))
      }
      guard let topic = entry["topic"]?.string, !topic.isEmpty, topic.utf8.count <= maxNameBytes else {
        return .failure(invalid("\(field)[\(index)].topic: must be a topic name"))
      }
      guard let partition = entry["partition"]?.integer(Int32.self), partition >= 0 else {
        return .failure(invalid("\(field)[\(index)].partition: must be a partition number"))
      }
      result.append((TopicPartition(topic: topic, partition: partition), entry))
    }
    return .success(result)
  }

  // MARK: Instances

  static let createFields: Set<String> = [
    "name", "id", "format", "auto.offset.reset", "auto.commit.enable", "fetch.min.bytes",
    "consumer.request.timeout.ms", "responseMinBytes", "requestWaitMs",
  ]

  static func settings(_ root: JSONValue?, defaults: HTTPServerConfiguration) -> Result<
    (name: String?, settings: ConsumerSettings), RestError
  > {
    var settings = ConsumerSettings(requestTimeoutMs: defaults.consumerRequestTimeoutMs)
    guard let root else { return .success((nil, settings)) }
    func text(_ field: String) -> Result<String?, RestError> {
      guard let value = root[field], !value.isNull else { return .success(nil) }
      if let string = value.string { return .success(string) }
      if case .number(let number) = value.json { return .success(number) }
      if case .bool(let flag) = value.json { return .success(flag ? "true" : "false") }
      return .failure(invalid("\(field): must be a string"))
    }
    func configError(_ message: String) -> RestError {
      RestError(.unprocessableEntity, 42204, "Invalid consumer configuration: \(message)")
    }
    do throws(RestError) {
      let id = try text("id").get()
      let named = try text("name").get()
      var name = id ?? named
      if let given = name {
        guard !given.isEmpty, given.utf8.count <= maxNameBytes else {
          return .failure(invalid("name: must be 1 to \(maxNameBytes) bytes"))
        }
      } else {
        name = nil
      }
      if let format = try text("format").get() {
        switch format.lowercased() {
        case "binary": settings.format = .binary
        case "json": settings.format = .json
        case "avro", "jsonschema", "protobuf":
          return .failure(
            configError(
              "format \(format) needs a Schema Registry, which Sluice does not have (use binary or json)"))
        default: return .failure(RestError(.unprocessableEntity, 422, "Invalid format type."))
        }
      }
      if let reset = try text("auto.offset.reset").get() {
        guard let policy = ConsumerSettings.Reset(rawValue: reset) else {
          return .failure(
            configError(
              "Invalid value \(reset.prefix(64)) for configuration auto.offset.reset: "
                + "String must be one of: latest, earliest, none"))
        }
        settings.reset = policy
      }
      if let commit = try text("auto.commit.enable").get() {
        switch commit.lowercased() {
        case "true": settings.autoCommit = true
        case "false": settings.autoCommit = false
        default: return .failure(configError("auto.commit.enable: expected true or false"))
        }
      }
      let minBytesText = try text("fetch.min.bytes").get()
      let responseMinBytes = try text("responseMinBytes").get()
      if let minBytes = minBytesText ?? responseMinBytes {
        guard let bytes = Int(minBytes), (-1...10_000_000).contains(bytes) else {
          return .failure(
            RestError(
              .unprocessableEntity, 40001,
              "Invalid consumer configuration: fetch.min.bytes must be in [-1, 10000000]"))
        }
        settings.fetchMinBytes = bytes
      }
      let timeoutText = try text("consumer.request.timeout.ms").get()
      let requestWaitMs = try text("requestWaitMs").get()
      if let timeout = timeoutText ?? requestWaitMs {
        guard let ms = Int64(timeout), (0...300_000).contains(ms) else {
          return .failure(configError("consumer.request.timeout.ms must be in [0, 300000]"))
        }
        settings.requestTimeoutMs = ms
      }
      return .success((name, settings))
    } catch {
      return .failure(error)
    }
  }

  /// `POST /consumers/{group}`.
  func create(_ request: HTTPRequest, group: String) -> HTTPResponse {
    guard !group.isEmpty, group.utf8.count <= 1024 else {
      return error(Self.invalid("group: must be 1 to 1024 bytes"))
    }
    let parsed = Self.body(request, allowed: Self.createFields).flatMap {
      Self.settings($0, defaults: configuration)
    }
    guard case .success(let (given, settings)) = parsed else {
      if case .failure(let failure) = parsed { return error(failure) }
      return error(RestError(.internalServerError, 500, "Internal Server Error"))
    }
    let name = given ?? "rest-consumer-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
    switch consumers.create(group: group, name: name, settings: settings, owner: principal) {
    case .failure(let failure):
      return error(failure)
    case .success:
      let host = request.headers.first(name: "host") ?? "\(configuration.host):\(configuration.port)"
      let uri = "http://\(host)/consumers/\(Self.pathSegment(group))/instances/\(Self.pathSegment(name))"
      return .json(route: route) { writer in
        writer.object { object in
          object.member("instance_id") { $0.string(name) }
          object.member("base_uri") { $0.string(uri) }
        }
      }
    }
  }

  /// Percent-encodes all but RFC 3986's unreserved characters.
  static func pathSegment(_ text: String) -> String {
    var out = ""
    for byte in text.utf8 {
      switch byte {
      case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
        UInt8(ascii: "~"):
        out.unicodeScalars.append(Unicode.Scalar(byte))
      default:
        let hex = String(byte, radix: 16, uppercase: true)
        out += "%" + (hex.count == 1 ? "0" : "") + hex
      }
    }
    return out
  }

  func instance(_ parameters: [String: String]) -> Result<RestConsumer, RestError> {
    guard
      let consumer = consumers.lookup(
        group: parameters["group"]!, name: parameters["instance"]!, principal: principal)
    else {
      return .failure(RestConsumers.notFound)
    }
    return .success(consumer)
  }

  /// Every `/consumers/{group}/instances/{instance}…` route.
  func handle(
    _ request: HTTPRequest, _ method: HTTPMethod, _ parameters: [String: String], context: RequestContext
  )
    async -> HTTPResponse
  {
    let base = "/consumers/{group}/instances/{instance}"
    if method == .DELETE && route == base {
      let removed = await consumers.remove(
        group: parameters["group"]!, name: parameters["instance"]!, principal: principal)
      return removed ? noContent() : error(RestConsumers.notFound)
    }
    let consumer: RestConsumer
    switch instance(parameters) {
    case .failure(let failure): return error(failure)
    case .success(let found): consumer = found
    }
    switch (method, String(route.dropFirst(base.count))) {
    case (.POST, "/subscription"): return await subscribe(request, consumer)
    case (.GET, "/subscription"):
      let topics = await consumer.subscription == .none ? [] : await consumer.subscribedTopics()
      return .json(route: route) { writer in
        writer.object { object in object.member("topics") { $0.array(topics) { $0.string($1) } } }
      }
    case (.DELETE, "/subscription"):
      await consumer.unsubscribe()
      return noContent()
    case (.POST, "/assignments"):
      switch Self.body(request, allowed: ["partitions"]).flatMap({
        Self.partitions($0?["partitions"], field: "partitions")
      }) {
      case .failure(let failure): return error(failure)
      case .success(let entries):
        if let failure = await consumer.assign(entries.map(\.0)) { return error(failure) }
        return noContent()
      }
    case (.GET, "/assignments"):
      let assigned = await consumer.assigned
      return .json(route: route) { writer in
        writer.object { object in
          object.member("partitions") { Self.writePartitions(assigned, into: &$0) }
        }
      }
    case (.POST, "/offsets"): return await commit(request, consumer)
    case (.GET, "/offsets"): return await committed(request, consumer)
    case (.POST, "/positions"): return await seek(request, consumer)
    case (.POST, "/positions/beginning"), (.POST, "/positions/end"):
      let target: RestConsumer.Seek = route.hasSuffix("beginning") ? .beginning : .end
      switch Self.body(request, allowed: ["partitions"]).flatMap({
        Self.partitions($0?["partitions"], field: "partitions")
      }) {
      case .failure(let failure): return error(failure)
      case .success(let entries):
        if let failure = await consumer.seek(entries.map { ($0.0, target) }) { return error(failure) }
        return noContent()
      }
    case (.GET, "/records"): return await records(request, consumer, context: context)
    default:
      return .error(.methodNotAllowed, code: 405, "HTTP 405 Method Not Allowed", route: route)
    }
  }

  static func writePartitions(_ partitions: [TopicPartition], into writer: inout JSONWriter) {
    writer.array(partitions) { writer, entry in
      writer.object { object in
        object.member("topic") { $0.string(entry.topic) }
        object.member("partition") { $0.number(entry.partition) }
      }
    }
  }

  func subscribe(_ request: HTTPRequest, _ consumer: RestConsumer) async -> HTTPResponse {
    let root: JSONValue?
    switch Self.body(request, allowed: ["topics", "topic_pattern"]) {
    case .failure(let failure): return error(failure)
    case .success(let value): root = value
    }
    let subscription: RestConsumer.Subscription
    if let list = root?["topics"], !list.isNull {
      guard let entries = list.array, entries.count <= Self.maxEntries else {
        return error(Self.invalid("topics: must be an array of at most \(Self.maxEntries) topic names"))
      }
      var topics: [String] = []
      for entry in entries {
        guard let topic = entry.string, !topic.isEmpty, topic.utf8.count <= Self.maxNameBytes else {
          return error(Self.invalid("topics: must be an array of topic names"))
        }
        topics.append(topic)
      }
      subscription = .topics(Array(Set(topics)).sorted())
    } else if let pattern = root?["topic_pattern"], !pattern.isNull {
      if principal != nil {
        return error(
          RestError(
            .forbidden, 40301,
            "topic_pattern is not available with HTTP authentication: name the topics (each needs READ)"))
      }
      guard let text = pattern.string, text.utf8.count <= Self.maxPatternBytes, (try? Regex(text)) != nil
      else {
        return error(
          Self.invalid("topic_pattern: must be a regular expression of at most \(Self.maxPatternBytes) bytes")
        )
      }
      subscription = .pattern(text)
    } else {
      return noContent()
    }
    if let failure = await consumer.subscribe(subscription) { return error(failure) }
    return noContent()
  }

  func commit(_ request: HTTPRequest, _ consumer: RestConsumer) async -> HTTPResponse {
    let root: JSONValue?
    switch Self.body(request, allowed: ["offsets"]) {
    case .failure(let failure): return error(failure)
    case .success(let value): root = value
    }
    let failure: RestError?
    if let list = root?["offsets"], !list.isNull {
      switch Self.partitions(list, field: "offsets", extra: ["offset", "metadata"]) {
      case .failure(let failure): return error(failure)
      case .success(let entries):
        var commits: [(TopicPartition, Int64, String)] = []
        for (index, (partition, entry)) in entries.enumerated() {
          // REST Proxy's offsets are the last records consumed: the next offset is committed.
          guard let offset = entry["offset"]?.integer(Int64.self), offset >= 0, offset < Int64.max else {
            return error(Self.invalid("offsets[\(index)].offset: must be an offset"))
          }
          let metadata = entry["metadata"]?.string ?? ""
          commits.append((partition, offset + 1, metadata))
        }
        failure = await consumer.commit(commits)
      }
    } else {
      failure = await consumer.commitPositions()
    }
    if let failure { return error(failure) }
    return .json(.ok, ByteBuffer(string: "[]"), route: route)
  }

  func committed(_ request: HTTPRequest, _ consumer: RestConsumer) async -> HTTPResponse {
    var wanted: [TopicPartition]?
    switch Self.body(request, allowed: ["partitions"]).flatMap({ root in
      root == nil
        ? .success(nil) : Self.partitions(root?["partitions"], field: "partitions").map { $0 as Optional }
    }) {
    case .failure(let failure): return error(failure)
    case .success(let entries): wanted = entries?.map(\.0)
    }
    let offsets = await consumer.committedOffsets(wanted)
    return .json(route: route) { writer in
      writer.object { object in
        object.member("offsets") {
          $0.array(offsets) { writer, entry in
            writer.object { object in
              object.member("topic") { $0.string(entry.0.topic) }
              object.member("partition") { $0.number(entry.0.partition) }
              object.member("offset") { $0.number(entry.1.offset) }
              object.member("metadata") { $0.string(entry.1.metadata) }
            }
          }
        }
      }
    }
  }

  func seek(_ request: HTTPRequest, _ consumer: RestConsumer) async -> HTTPResponse {
    let root: JSONValue?
    switch Self.body(request, allowed: ["offsets", "timestamps"]) {
    case .failure(let failure): return error(failure)
    case .success(let value): root = value
    }
    var targets: [(TopicPartition, RestConsumer.Seek)] = []
    switch Self.partitions(root?["offsets"], field: "offsets", extra: ["offset", "metadata"]) {
    case .failure(let failure): return error(failure)
    case .success(let entries):
      for (index, (partition, entry)) in entries.enumerated() {
        guard let offset = entry["offset"]?.integer(Int64.self), offset >= 0 else {
          return error(Self.invalid("offsets[\(index)].offset: must be an offset"))
        }
        targets.append((partition, .offset(offset)))
      }
    }
    switch Self.partitions(root?["timestamps"], field: "timestamps", extra: ["timestamp", "metadata"]) {
    case .failure(let failure): return error(failure)
    case .success(let entries):
      for (index, (partition, entry)) in entries.enumerated() {
        guard let text = entry["timestamp"]?.string, let ms = ISO8601.milliseconds(text) else {
          return error(Self.invalid("timestamps[\(index)].timestamp: must be an ISO-8601 instant"))
        }
        targets.append((partition, .timestamp(ms)))
      }
    }
    if let failure = await consumer.seek(targets) { return error(failure) }
    return noContent()
  }

  enum Accepted: Equatable {
    case any
    case format(EmbeddedFormat)
    case other
  }

  /// The embedded format an `Accept` header asks for.
  static func acceptedFormat(_ request: HTTPRequest) -> Accepted {
    let accept = request.headers[canonicalForm: "accept"]
    if accept.isEmpty { return .any }
    for entry in accept {
      switch entry.split(separator: ";").first.map({ $0.trimmedSpaces().lowercased() }) {
      case "application/vnd.kafka.binary.v2+json", "application/vnd.kafka.v2+json": return .format(.binary)
      case "application/vnd.kafka.json.v2+json": return .format(.json)
      case "*/*", "application/*", "application/json": return .any
      default: continue
      }
    }
    return .other
  }

  func records(_ request: HTTPRequest, _ consumer: RestConsumer, context: RequestContext) async
    -> HTTPResponse
  {
    let format = consumer.settings.format
    let accepted = Self.acceptedFormat(request)
    if accepted != .any && accepted != .format(format) {
      return error(
        RestError(
          .notAcceptable, 40601,
          "The requested embedded data format does not match the deserializer for this consumer instance"))
    }
    var timeout = consumer.settings.requestTimeoutMs
    if let text = request.query["timeout"] {
      guard let ms = Int64(text) else {
        return error(RestError(.badRequest, 400, "timeout: must be a number"))
      }
      if ms > 0 { timeout = min(timeout, ms) }
    }
    var maxBytes = configuration.consumerRequestMaxBytes
    if let text = request.query["max_bytes"] {
      guard let bytes = Int64(text) else {
        return error(RestError(.badRequest, 400, "max_bytes: must be a number"))
      }
      if bytes > 0 { maxBytes = Int(min(Int64(maxBytes), bytes)) }
    }
    switch await consumer.read(timeoutMs: timeout, maxBytes: maxBytes, format: format, context: context) {
    case .failure(let failure): return error(failure)
    case .success(let body):
      return .json(.ok, body, route: route).with(
        contentType: "application/vnd.kafka.\(format.rawValue).v2+json")
    }
  }
}

/// ISO-8601 instants as REST Proxy's seek takes them: `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)`.
public enum ISO8601 {
  public static func milliseconds(_ text: String) -> Int64? {
    let bytes = Array(text.utf8)
    guard bytes.count >= 20, bytes.count <= 40 else { return nil }
    func number(_ from: Int, _ count: Int) -> Int64? {
      guard from + count <= bytes.count else { return nil }
      var value: Int64 = 0
      for byte in bytes[from..<from + count] {
        guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
        value = value * 10 + Int64(byte - UInt8(ascii: "0"))
      }
      return value
    }
    guard bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
      bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: "t"), bytes[13] == UInt8(ascii: ":"),
      bytes[16] == UInt8(ascii: ":"),
      let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
      let minute = number(14, 2), let second = number(17, 2),
      (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
    else { return nil }
    var index = 19
    var millis: Int64 = 0
    if index < bytes.count && bytes[index] == UInt8(ascii: ".") {
      index += 1
      var digits = 0
      while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
        if digits < 3 { millis = millis * 10 + Int64(bytes[index] - UInt8(ascii: "0")) }
        digits += 1
        index += 1
      }
      guard digits > 0 else { return nil }
      if digits < 3 { for _ in digits..<3 { millis *= 10 } }
    }
    var offsetMinutes: Int64 = 0
    guard index < bytes.count else { return nil }
    if bytes[index] == UInt8(ascii: "Z") || bytes[index] == UInt8(ascii: "z") {
      guard index + 1 == bytes.count else { return nil }
    } else {
      guard bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-"), index + 6 == bytes.count,
        bytes[index + 3] == UInt8(ascii: ":"), let hours = number(index + 1, 2),
        let minutes = number(index + 4, 2),
        hours < 24, minutes < 60
      else { return nil }
      offsetMinutes = (hours * 60 + minutes) * (bytes[index] == UInt8(ascii: "-") ? -1 : 1)
    }
    // Days from the civil date (proleptic Gregorian), as Howard Hinnant's algorithm states it.
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    let days = era * 146_097 + dayOfEra - 719_468
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetMinutes * 60
    return seconds * 1000 + millis
  }
}
