import NIOCore
import NIOHTTP1
import SluiceBroker

/// `/v1/webhooks`: create, list, describe, pause, resume and delete subscriptions.
struct WebhookAPI {
  let webhooks: Webhooks
  let broker: Broker
  let route: String

  static let fields: Set<String> = [
    "name", "topic", "url", "secret", "max_attempts", "dead_letter_topic", "from", "timeout_ms",
    "retry_backoff_ms", "max_backoff_ms",
  ]

  func error(_ status: HTTPResponseStatus, _ code: Int, _ message: String) -> HTTPResponse {
    .error(status, code: code, message, route: route)
  }

  func failure(_ failure: Webhooks.Failure, _ name: String) -> HTTPResponse {
    switch failure {
    case .exists: error(.conflict, 40901, "A webhook named \(name) exists.")
    case .notFound: error(.notFound, 40404, "Webhook not found.")
    case .tooMany: error(.tooManyRequests, 42901, "Too many webhooks (at most \(Webhooks.maxSubscriptions)).")
    case .storage(let message): error(.internalServerError, 50002, "Cannot store the webhooks: \(message)")
    }
  }

  static func spec(_ root: JSONValue) -> Result<WebhookSpec, RestError> {
    func invalid(_ message: String) -> Result<WebhookSpec, RestError> {
      .failure(RestError(.unprocessableEntity, 422, message))
    }
    func integer(_ field: String, _ fallback: Int64, _ range: ClosedRange<Int64>) -> Int64? {
      guard let value = root[field], !value.isNull else { return fallback }
      guard let number = value.integer(Int64.self), range.contains(number) else { return nil }
      return number
    }
    guard let name = root["name"]?.string, WebhookSpec.validName(name) else {
      return invalid("name: must match \(WebhookSpec.namePattern)")
    }
    guard let topic = root["topic"]?.string, !topic.isEmpty, topic.utf8.count <= 249 else {
      return invalid("topic: must be a topic name")
    }
    guard let url = root["url"]?.string, HTTPURL(url) != nil else {
      return invalid("url: must be an http:// URL (https receivers are not supported yet)")
    }
    var secret: String?
    if let value = root["secret"], !value.isNull {
      guard let text = value.string, text.hasPrefix("whsec_"), let key = Base64.decode(text.dropFirst(6)),
        key.readableBytes >= 16, key.readableBytes <= 64
      else {
        return invalid("secret: must be whsec_ followed by the base64 of a 16 to 64 byte key")
      }
      secret = text
    }
    guard let attempts = integer("max_attempts", 10, 1...100) else {
      return invalid("max_attempts: 1 to 100")
    }
    guard let timeout = integer("timeout_ms", 10_000, 1...300_000) else {
      return invalid("timeout_ms: 1 to 300000")
    }
    guard let backoff = integer("retry_backoff_ms", 1000, 1...600_000) else {
      return invalid("retry_backoff_ms: 1 to 600000")
    }
    // The default maximum is 60 s, or the first backoff when that is longer (found by FuzzHTTP:
    // retry_backoff_ms 108888 alone gave a spec whose backoff passed its maximum).
    guard let maxBackoff = integer("max_backoff_ms", max(60_000, backoff), backoff...3_600_000) else {
      return invalid("max_backoff_ms: retry_backoff_ms to 3600000")
    }
    var deadLetter = "\(name).dlq"
    if let value = root["dead_letter_topic"], !value.isNull {
      guard let text = value.string, WebhookSpec.validName(text), text != topic else {
        return invalid("dead_letter_topic: must be a topic name other than the topic")
      }
      deadLetter = text
    }
    var from = "end"
    if let value = root["from"], !value.isNull {
      guard let text = value.string, text == "beginning" || text == "end" else {
        return invalid("from: beginning or end")
      }
      from = text
    }
    return .success(
      WebhookSpec(
        name: name, topic: topic, url: url, secret: secret, maxAttempts: Int(attempts),
        deadLetterTopic: deadLetter, from: from, timeoutMs: timeout, retryBackoffMs: backoff,
        maxBackoffMs: maxBackoff, paused: false))
  }

  /// The `name` of a create request's body, for the audit log (nil if there is none).
  static func name(in request: HTTPRequest) -> String? {
    guard case .success(let root?) = RestConsumerAPI.body(request, allowed: fields) else { return nil }
    return root["name"]?.string
  }

  func create(_ request: HTTPRequest) async -> HTTPResponse {
    let root: JSONValue
    switch RestConsumerAPI.body(request, allowed: Self.fields) {
    case .failure(let failure): return error(failure.status, failure.code, failure.message)
    case .success(nil): return error(.unprocessableEntity, 422, "A webhook needs a JSON body")
    case .success(let value?): root = value
    }
    let spec: WebhookSpec
    switch Self.spec(root) {
    case .failure(let failure): return error(failure.status, failure.code, failure.message)
    case .success(let value): spec = value
    }
    guard broker.topic(spec.topic) != nil else { return error(.notFound, 40401, "Topic not found.") }
    if let failure = await webhooks.create(spec) { return self.failure(failure, spec.name) }
    return describe(spec.name, status: .created)
  }

  func list() -> HTTPResponse {
    let names = webhooks.specs().map(\.name)
    return .json(route: route) { writer in
      writer.array(names) { writer, name in
        if let (spec, stats) = webhooks.describe(name) {
          write(spec, stats, into: &writer)
        } else {
          writer.null()
        }
      }
    }
  }

  func describe(_ name: String, status: HTTPResponseStatus = .ok) -> HTTPResponse {
    guard let (spec, stats) = webhooks.describe(name) else { return failure(.notFound, name) }
    return .json(status, route: route) { write(spec, stats, into: &$0) }
  }

  func write(_ spec: WebhookSpec, _ stats: WebhookStats, into writer: inout JSONWriter) {
    let positions = stats.positions.withLock { $0 }
    let partitions = broker.topic(spec.topic)?.partitions ?? []
    let last = stats.last.withLock { $0 }
    var totalLag: Int64 = 0
    let rows: [(Int32, Int64?, Int64)] = partitions.map { partition in
      let end = partition.highWatermark
      let position = positions[partition.index]
      if let position { totalLag += max(0, end - position) }
      return (partition.index, position, end)
    }
    writer.object { object in
      object.member("name") { $0.string(spec.name) }
      object.member("topic") { $0.string(spec.topic) }
      object.member("url") { $0.string(spec.url) }
      object.member("signed") { $0.bool(spec.secret != nil) }
      object.member("max_attempts") { $0.number(spec.maxAttempts) }
      object.member("dead_letter_topic") { $0.string(spec.deadLetterTopic) }
      object.member("from") { $0.string(spec.from) }
      object.member("timeout_ms") { $0.number(spec.timeoutMs) }
      object.member("retry_backoff_ms") { $0.number(spec.retryBackoffMs) }
      object.member("max_backoff_ms") { $0.number(spec.maxBackoffMs) }
      object.member("state") { $0.string(spec.paused ? "paused" : "active") }
      object.member("group") { $0.string(spec.group) }
      object.member("lag") { $0.number(totalLag) }
      object.member("partitions") {
        $0.array(rows) { writer, row in
          writer.object { object in
            object.member("partition") { $0.number(row.0) }
            object.member("delivered_offset") { writer in
              if let position = row.1 { writer.number(position - 1) } else { writer.null() }
            }
            object.member("end_offset") { $0.number(row.2) }
            object.member("lag") { writer in
              if let position = row.1 { writer.number(max(0, row.2 - position)) } else { writer.null() }
            }
          }
        }
      }
      object.member("delivered") { $0.number(stats.delivered.load(ordering: .relaxed)) }
      object.member("failures") { $0.number(stats.failures.load(ordering: .relaxed)) }
      object.member("retries") { $0.number(stats.retries.load(ordering: .relaxed)) }
      object.member("dead_lettered") { $0.number(stats.deadLettered.load(ordering: .relaxed)) }
      object.member("last_error") { writer in
        if let error = last.error { writer.string(error) } else { writer.null() }
      }
      object.member("last_status") { writer in
        if let status = last.status { writer.number(status) } else { writer.null() }
      }
      object.member("last_error_at") { writer in
        if let at = last.at { writer.number(at) } else { writer.null() }
      }
    }
  }

  func delete(_ name: String) async -> HTTPResponse {
    if let failure = await webhooks.delete(name) { return self.failure(failure, name) }
    return HTTPResponse(
      status: .noContent, headers: HTTPHeaders(), body: ByteBuffer(), stream: nil, route: route)
  }

  func pause(_ name: String, _ paused: Bool) async -> HTTPResponse {
    if let failure = await webhooks.setPaused(name, paused) { return self.failure(failure, name) }
    return describe(name)
  }
}
