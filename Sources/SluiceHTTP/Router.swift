import KafkaProtocol
import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceBroker

/// A request, its body complete (within the server's limit).
struct HTTPRequest: Sendable {
  var method: HTTPMethod
  /// The path's segments, percent-decoded ("/topics/a%2Fb" is ["topics", "a/b"]).
  var segments: [String]
  var query: [String: String]
  var headers: HTTPHeaders
  var body: ByteBuffer

  init(head: HTTPRequestHead, body: ByteBuffer) {
    method = head.method
    headers = head.headers
    self.body = body
    let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
    let path = parts.first.map(String.init) ?? "/"
    segments = path.split(separator: "/").map { Self.percentDecoded(String($0)) ?? String($0) }
    query = [:]
    if parts.count > 1 {
      for pair in parts[1].split(separator: "&") {
        let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let name = Self.percentDecoded(String(kv[0]), plusIsSpace: true) ?? String(kv[0])
        let value = kv.count > 1 ? Self.percentDecoded(String(kv[1]), plusIsSpace: true) ?? String(kv[1]) : ""
        if query[name] == nil { query[name] = value }
      }
    }
  }

  /// `%XX` escapes decoded; nil when an escape is malformed or the result is not UTF-8.
  static func percentDecoded(_ text: String, plusIsSpace: Bool = false) -> String? {
    guard text.utf8.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) })
    else { return text }
    var bytes: [UInt8] = []
    var iterator = Array(text.utf8).makeIterator()
    while let byte = iterator.next() {
      if byte == UInt8(ascii: "%") {
        guard let high = iterator.next().flatMap(Self.hexValue),
          let low = iterator.next().flatMap(Self.hexValue)
        else { return nil }
        bytes.append(high << 4 | low)
      } else if plusIsSpace && byte == UInt8(ascii: "+") {
        bytes.append(UInt8(ascii: " "))
      } else {
        bytes.append(byte)
      }
    }
    return String(validating: bytes, as: UTF8.self)
  }

  static func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
  }
}

/// What a handler may ask of the connection.
struct RequestContext: Sendable {
  var channel: any Channel
  /// Whether the client is still there and the server not stopping.
  var isOpen: @Sendable () -> Bool
}

/// A streamed body: written part by part by the handler, then `.end` by the server.
typealias ResponseStream =
  @Sendable (NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, RequestContext) async throws -> Void

/// A response: a whole body, or a stream.
struct HTTPResponse: Sendable {
  var status: HTTPResponseStatus
  var headers: HTTPHeaders
  var body: ByteBuffer
  var stream: ResponseStream?
  /// The route template answered (a metrics label: from a fixed set).
  var route: String

  static let restContentType = "application/vnd.kafka.v2+json"

  static func json(_ status: HTTPResponseStatus = .ok, _ body: ByteBuffer, route: String) -> HTTPResponse {
    var headers = HTTPHeaders()
    headers.add(name: "Content-Type", value: restContentType)
    return HTTPResponse(status: status, headers: headers, body: body, stream: nil, route: route)
  }

  static func json(
    _ status: HTTPResponseStatus = .ok, route: String, _ write: (inout JSONWriter) -> Void
  ) -> HTTPResponse {
    var writer = JSONWriter()
    write(&writer)
    return json(status, writer.buffer, route: route)
  }

  /// REST Proxy's error body: `{"error_code":…,"message":…}`.
  static func error(_ status: HTTPResponseStatus, code: Int, _ message: String, route: String) -> HTTPResponse
  {
    json(status, route: route) { writer in
      writer.object { object in
        object.member("error_code") { $0.number(code) }
        object.member("message") { $0.string(message) }
      }
    }
  }

  static func text(_ status: HTTPResponseStatus, _ text: String, contentType: String, route: String)
    -> HTTPResponse
  {
    var headers = HTTPHeaders()
    headers.add(name: "Content-Type", value: contentType)
    return HTTPResponse(
      status: status, headers: headers, body: ByteBuffer(string: text), stream: nil, route: route)
  }
}

/// Routes requests to the REST Proxy, event-stream, metrics and document handlers.
struct Router: Sendable {
  let broker: Broker
  let configuration: HTTPServerConfiguration
  let counters: HTTPCounters
  let metrics: MetricsExporter
  let console: Console
  let consumers: RestConsumers
  let webhooks: Webhooks
  /// nil: no authentication (`http.authentication=false`).
  let security: HTTPSecurity?
  let partitioner = RestPartitioner()

  /// Every route: method and path template, as `/openapi.json` documents them (a test keeps
  /// the two equal).
  static let routes: [(method: HTTPMethod, template: String)] = [
    (.GET, "/"),
    (.GET, "/brokers"),
    (.GET, "/topics"),
    (.GET, "/topics/{topic}"),
    (.POST, "/topics/{topic}"),
    (.GET, "/topics/{topic}/partitions"),
    (.GET, "/topics/{topic}/partitions/{partition}"),
    (.POST, "/topics/{topic}/partitions/{partition}"),
    (.GET, "/topics/{topic}/partitions/{partition}/offsets"),
    (.POST, "/consumers/{group}"),
    (.DELETE, "/consumers/{group}/instances/{instance}"),
    (.POST, "/consumers/{group}/instances/{instance}/subscription"),
    (.GET, "/consumers/{group}/instances/{instance}/subscription"),
    (.DELETE, "/consumers/{group}/instances/{instance}/subscription"),
    (.POST, "/consumers/{group}/instances/{instance}/assignments"),
    (.GET, "/consumers/{group}/instances/{instance}/assignments"),
    (.POST, "/consumers/{group}/instances/{instance}/offsets"),
    (.GET, "/consumers/{group}/instances/{instance}/offsets"),
    (.POST, "/consumers/{group}/instances/{instance}/positions"),
    (.POST, "/consumers/{group}/instances/{instance}/positions/beginning"),
    (.POST, "/consumers/{group}/instances/{instance}/positions/end"),
    (.GET, "/consumers/{group}/instances/{instance}/records"),
    (.GET, "/v1/topics/{topic}/events"),
    (.GET, "/v1/webhooks"),
    (.POST, "/v1/webhooks"),
    (.GET, "/v1/webhooks/{name}"),
    (.DELETE, "/v1/webhooks/{name}"),
    (.POST, "/v1/webhooks/{name}/pause"),
    (.POST, "/v1/webhooks/{name}/resume"),
    (.GET, "/metrics"),
    (.GET, "/openapi.json"),
  ]

  /// The template a path matches (literal segments, `{name}` for one segment).
  static func match(_ segments: [String]) -> (template: String, parameters: [String: String])? {
    for template in Set(routes.map(\.template)) {
      let parts = template.split(separator: "/").map(String.init)
      guard parts.count == segments.count else { continue }
      var parameters: [String: String] = [:]
      var matched = true
      for (part, segment) in zip(parts, segments) {
        if part.hasPrefix("{") {
          parameters[String(part.dropFirst().dropLast())] = segment
        } else if part != segment {
          matched = false
          break
        }
      }
      if matched { return (template, parameters) }
    }
    return nil
  }

  func handle(_ request: HTTPRequest, context: RequestContext) async -> HTTPResponse {
    if request.segments.first == "ui" {
      // The web console: the same users (HTTP Basic) and ACLs as the API.
      var principal: String?
      if let security {
        switch await security.authenticate(request, route: "/ui") {
        case .success(let authenticated): principal = authenticated
        case .failure(let refusal): return refusal
        }
      }
      return await console.handle(
        request, principal: principal, host: context.channel.remoteAddress?.ipAddress ?? "")
    }
    guard let (template, parameters) = Self.match(request.segments) else {
      return .error(.notFound, code: 404, "HTTP 404 Not Found", route: "unmatched")
    }
    let method = request.method == .HEAD ? .GET : request.method
    guard Self.routes.contains(where: { $0.method == method && $0.template == template }) else {
      return .error(.methodNotAllowed, code: 405, "HTTP 405 Method Not Allowed", route: template)
    }
    var rest = RestProxy(broker: broker, counters: counters, partitioner: partitioner, route: template)
    var authenticated: String?
    if let security, !(method == .GET && (template == "/" || template == "/openapi.json")) {
      let principal: String
      switch await security.authenticate(request, route: template) {
      case .success(let authenticated): principal = authenticated
      case .failure(let refusal): return refusal
      }
      let host = context.channel.remoteAddress?.ipAddress ?? ""
      if let refusal = security.authorize(
        request, method: method, template: template, parameters: parameters, principal: principal, host: host)
      {
        return refusal
      }
      let broker = self.broker
      rest.visibleTopic = { broker.authorize(principal, host: host, .describe, .topic, $0) }
      authenticated = principal
    }
    switch (method, template) {
    case (.GET, "/metrics"):
      let metrics = self.metrics
      let text = await offLoop { metrics.render() }
      return .text(.ok, text, contentType: "text/plain; version=0.0.4; charset=utf-8", route: template)
    case (.GET, "/openapi.json"):
      return .json(.ok, ByteBuffer(string: OpenAPIDocument.text), route: template)
        .with(contentType: "application/json")
    case (.GET, "/v1/topics/{topic}/events"):
      return EventStream.response(
        request, topic: parameters["topic"]!, broker: broker, configuration: configuration, counters: counters
      )
    case (_, let path) where path.hasPrefix("/v1/webhooks"):
      let api = WebhookAPI(webhooks: webhooks, broker: broker, route: template)
      let response: HTTPResponse
      switch (method, template) {
      case (.POST, "/v1/webhooks"): response = await api.create(request)
      case (.GET, "/v1/webhooks"): return api.list()
      case (.GET, "/v1/webhooks/{name}"): return api.describe(parameters["name"]!)
      case (.DELETE, "/v1/webhooks/{name}"): response = await api.delete(parameters["name"]!)
      case (.POST, "/v1/webhooks/{name}/pause"): response = await api.pause(parameters["name"]!, true)
      default: response = await api.pause(parameters["name"]!, false)
      }
      if broker.config.auditLog {
        // Who created, deleted, paused or resumed which subscription, and the outcome.
        ConsoleState.auditLogger.info(
          "admin request",
          metadata: [
            "api": .string("\(method.rawValue) \(template)"),
            "resources": .array([
              .string(printableForLog(parameters["name"] ?? WebhookAPI.name(in: request) ?? ""))
            ]),
            "principal": .string(printableForLog(authenticated ?? "User:ANONYMOUS")),
            "client_host": .string(context.channel.remoteAddress?.ipAddress ?? ""),
            "status": .stringConvertible(response.status.code), "front_door": "http",
          ])
      }
      return response
    default:
      if let refusal = rest.refuseAccept(request) { return refusal }
      switch (method, template) {
      case (.GET, "/"):
        return .json(.ok, ByteBuffer(string: "{}"), route: template)
      case (.GET, "/brokers"):
        return rest.brokers()
      case (.GET, "/topics"):
        return rest.listTopics()
      case (.GET, "/topics/{topic}"):
        return rest.describeTopic(parameters["topic"]!)
      case (.GET, "/topics/{topic}/partitions"):
        return rest.listPartitions(parameters["topic"]!)
      case (.GET, "/topics/{topic}/partitions/{partition}"):
        return rest.describePartition(parameters["topic"]!, parameters["partition"]!)
      case (.GET, "/topics/{topic}/partitions/{partition}/offsets"):
        return await rest.partitionOffsets(parameters["topic"]!, parameters["partition"]!)
      case (.POST, "/topics/{topic}"):
        return await rest.produce(request, topic: parameters["topic"]!, partition: nil)
      case (.POST, "/topics/{topic}/partitions/{partition}"):
        return await rest.produce(request, topic: parameters["topic"]!, partition: parameters["partition"]!)
      case (.POST, "/consumers/{group}"):
        var api = RestConsumerAPI(consumers: consumers, configuration: configuration, route: template)
        api.principal = authenticated
        return api.create(request, group: parameters["group"]!)
      case (_, let path) where path.hasPrefix("/consumers/{group}/instances/{instance}"):
        var api = RestConsumerAPI(consumers: consumers, configuration: configuration, route: template)
        api.principal = authenticated
        return await api.handle(request, method, parameters, context: context)
      default:
        return .error(.methodNotAllowed, code: 405, "HTTP 405 Method Not Allowed", route: template)
      }
    }
  }
}

extension HTTPResponse {
  func with(contentType: String) -> HTTPResponse {
    var copy = self
    copy.headers.replaceOrAdd(name: "Content-Type", value: contentType)
    return copy
  }
}

/// Runs blocking or long work on NIO's thread pool, not on a task executor thread that the
/// connections share.
func offLoop<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
  do {
    return try await NIOThreadPool.singleton.runIfActive { work() }
  } catch {
    return work()
  }
}
