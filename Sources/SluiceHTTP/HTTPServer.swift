public import Logging
public import NIOCore
import NIOHTTP1
public import NIOPosix
public import ServiceLifecycle
public import SluiceBroker
import Synchronization

/// Limits and timeouts of the HTTP front door. Everything a client controls is bounded:
/// header bytes and count (by NIO's decoder), body bytes, the time to send a request, the
/// time a connection may sit idle, and the number of connections.
public struct HTTPServerConfiguration: Sendable {
  public var host: String
  public var port: Int
  /// `http.authentication`: require HTTP Basic with a broker user on every route but `/`
  /// and `/openapi.json`, and apply the ACLs (docs/security.md).
  public var authentication = false
  /// HTTPS: makes the TLS handler of each accepted connection, first in its pipeline (the
  /// CLI's gives swift-nio-ssl's server handler with the certificate of the moment, reloaded
  /// on SIGHUP). Injected, so that this front door does not link a TLS library itself.
  public var tls: (@Sendable () -> any ChannelHandler)?
  /// Open connections at most; a connection beyond it is closed as it is accepted.
  public var maxConnections = 1024
  /// Request body bytes at most (413 beyond, before the bytes are kept).
  public var maxBodyBytes = 16 * 1024 * 1024
  /// Header bytes (names and values) and header fields of one request at most.
  public var maxHeaderBytes = 64 * 1024
  public var maxHeaderFields = 128
  /// A connection that has not sent a complete request head this long after it opened or
  /// after its last response ended is closed (slow headers, idle keep-alive).
  public var idleTimeoutMs: Int64 = 30_000
  /// A request whose body has not arrived in full this long after its head has its
  /// connection closed (slow bodies).
  public var requestTimeoutMs: Int64 = 30_000
  /// Server-Sent Events: a comment is sent after this long without events.
  public var heartbeatMs: Int64 = 15_000
  /// Server-Sent Events: record bytes read per wake (the bound on what a stream holds for a
  /// slow reader, beside the socket's send buffer).
  public var streamReadBytes = 1024 * 1024
  /// REST consumer instances at most (`POST /consumers/{group}` answers 429 beyond).
  public var maxConsumers = 1000
  /// A REST consumer instance unused this long is closed (it leaves its group).
  public var consumerInstanceTimeoutMs: Int64 = 300_000
  /// How long `GET …/records` waits for records at most (a `timeout` query can shorten it).
  public var consumerRequestTimeoutMs: Int64 = 1000
  /// Key and value bytes one `GET …/records` answer holds at most (at least one record).
  public var consumerRequestMaxBytes = 16 * 1024 * 1024

  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }
}

/// Counters of the HTTP front door, exported at `/metrics`.
public final class HTTPCounters: Sendable {
  let connections = Atomic<Int>(0)
  let refusedConnections = Atomic<Int>(0)
  let timedOut = Atomic<Int>(0)
  let streams = Atomic<Int>(0)
  let producedRecords = Atomic<Int>(0)
  let streamedEvents = Atomic<Int>(0)
  /// Responses by route template and status code (both from fixed sets).
  let responses = Mutex<[String: Int]>([:])

  func count(route: String, status: Int) {
    responses.withLock { $0["\(route) \(status)", default: 0] += 1 }
  }

  /// These counters' figures, at a scrape.
  public func collectMetrics(into metrics: MetricsCollection) {
    metrics.gauge(
      "sluice_http_connections", "Open HTTP connections.", [], connections.load(ordering: .relaxed))
    metrics.counter(
      "sluice_http_connections_refused_total",
      "HTTP connections closed at accept because the connection limit was reached.", [],
      refusedConnections.load(ordering: .relaxed))
    metrics.counter(
      "sluice_http_timeouts_total",
      "HTTP connections closed for sending a request too slowly or sitting idle.",
      [], timedOut.load(ordering: .relaxed))
    metrics.gauge(
      "sluice_http_event_streams", "Open Server-Sent Events streams.", [], streams.load(ordering: .relaxed))
    metrics.counter(
      "sluice_http_produced_records_total", "Records appended through the REST produce API.", [],
      producedRecords.load(ordering: .relaxed))
    metrics.counter(
      "sluice_http_streamed_events_total", "Records sent as Server-Sent Events.", [],
      streamedEvents.load(ordering: .relaxed))
    for (key, value) in responses.withLock({ $0 }) {
      let parts = key.split(separator: " ", maxSplits: 1)
      metrics.counter(
        "sluice_http_responses_total", "HTTP responses by route and status code.",
        [("route", String(parts[0])), ("code", parts.count > 1 ? String(parts[1]) : "")], value)
    }
  }
}

/// The HTTP/1.1 front door: Confluent REST Proxy v2 (topics, produce), Server-Sent Events,
/// `/metrics` and `/openapi.json`, on the broker's domain API. Built on SwiftNIO's HTTP/1
/// codec (see docs/http.md for why not Hummingbird).
public final class HTTPServer: Service, Sendable {
  let broker: Broker
  let configuration: HTTPServerConfiguration
  let group: MultiThreadedEventLoopGroup
  let logger: Logger
  let router: Router
  let consumers: RestConsumers
  /// Webhook subscriptions and their dispatcher.
  public let webhooks: Webhooks
  public let counters: HTTPCounters
  let boundPort = Mutex<Int?>(nil)
  let live = Mutex<[ObjectIdentifier: any Channel]>([:])
  let stopping = Atomic<Bool>(false)

  /// - Parameter metrics: the exposition served at `/metrics`, to which this server adds
  ///   its own counters and its webhooks'; nil serves only those.
  public init(
    broker: Broker, configuration: HTTPServerConfiguration, group: MultiThreadedEventLoopGroup,
    logger: Logger, metrics: MetricsExporter? = nil
  ) {
    self.broker = broker
    self.configuration = configuration
    self.group = group
    self.logger = logger
    let counters = HTTPCounters()
    self.counters = counters
    let consumers = RestConsumers(broker: broker, configuration: configuration)
    self.consumers = consumers
    let webhooks = Webhooks(broker: broker, logger: logger)
    self.webhooks = webhooks
    let metrics = metrics ?? MetricsExporter()
    metrics.addCollector { counters.collectMetrics(into: $0) }
    metrics.addCollector { webhooks.collectMetrics(into: $0) }
    self.router = Router(
      broker: broker, configuration: configuration, counters: counters, metrics: metrics,
      console: Console(broker: broker, webhooks: webhooks, metrics: metrics, state: ConsoleState()),
      consumers: consumers, webhooks: webhooks,
      security: configuration.authentication ? HTTPSecurity(broker: broker, cache: VerifiedPasswords()) : nil)
  }

  /// The port bound, once listening.
  public var listeningPort: Int? { boundPort.withLock { $0 } }

  public func run() async throws {
    let configuration = self.configuration
    let counters = self.counters
    let limits = {
      var limits = NIOHTTPDecoderLimitConfiguration()
      limits.maxHeaderFieldSize = configuration.maxHeaderBytes
      limits.maxHeaderListSize = configuration.maxHeaderBytes
      limits.maxHeaderFieldCount = configuration.maxHeaderFields
      return limits
    }()
    let server = try await ServerBootstrap(group: group)
      .serverChannelOption(.backlog, value: 256)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelOption(.allowRemoteHalfClosure, value: true)
      .bind(host: configuration.host, port: configuration.port) { channel in
        channel.eventLoop.makeCompletedFuture {
          if let tls = configuration.tls {
            try channel.pipeline.syncOperations.addHandler(tls())
          }
          try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
          try channel.pipeline.syncOperations.addHandler(
            HTTPTimeoutHandler(
              idleTimeoutMs: configuration.idleTimeoutMs, requestTimeoutMs: configuration.requestTimeoutMs,
              counters: counters))
          return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
            wrappingChannelSynchronously: channel)
        }
      }
    boundPort.withLock { $0 = server.channel.localAddress?.port }
    logger.info(
      "HTTP on \(configuration.tls == nil ? "http" : "https")://\(configuration.host):\(server.channel.localAddress?.port ?? configuration.port)/"
    )
    try await withGracefulShutdownHandler {
      try await withTaskCancellationHandler {
        try await server.executeThenClose { inbound in
          try await withThrowingDiscardingTaskGroup { tasks in
            self.webhooks.start()
            tasks.addTask {
              await self.consumers.run(until: { self.stopping.load(ordering: .relaxed) })
              await self.webhooks.stopAll()
            }
            for try await connection in inbound {
              let channel = connection.channel
              let admitted = counters.connections.wrappingAdd(1, ordering: .relaxed).newValue
              if admitted > configuration.maxConnections || stopping.load(ordering: .relaxed) {
                counters.connections.wrappingSubtract(1, ordering: .relaxed)
                counters.refusedConnections.wrappingAdd(1, ordering: .relaxed)
                // Closed through the wrapper, which must be finished before it goes.
                tasks.addTask { try? await connection.executeThenClose { _, _ in } }
                continue
              }
              let id = ObjectIdentifier(channel)
              live.withLock { $0[id] = channel }
              tasks.addTask {
                await self.serve(connection)
                self.live.withLock { _ = $0.removeValue(forKey: id) }
                counters.connections.wrappingSubtract(1, ordering: .relaxed)
              }
            }
          }
        }
      } onCancel: {
        self.stop(server.channel)
      }
    } onGracefulShutdown: {
      self.stop(server.channel)
    }
  }

  /// Stops accepting; each connection ends after the response it is sending (its input is
  /// shut, so it reads no further request; event streams see `stopping` and end).
  func stop(_ server: any Channel) {
    stopping.store(true, ordering: .relaxed)
    server.close(promise: nil)
    for channel in live.withLock({ Array($0.values) }) {
      // TLS cannot shut only the input (NIOSSL refuses): such connections close outright.
      channel.close(mode: configuration.tls == nil ? .input : .all, promise: nil)
    }
  }

  /// One connection: requests in order, each answered before the next is read.
  func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
    let channel = connection.channel
    do {
      try await connection.executeThenClose { inbound, outbound in
        var parts = inbound.makeAsyncIterator()
        while !stopping.load(ordering: .relaxed), let part = try await parts.next() {
          guard case .head(let head) = part else { continue }
          let contentLength = head.headers.first(name: "content-length").flatMap { Int($0) }
          if let contentLength, contentLength > configuration.maxBodyBytes {
            try await writeTooLarge(head, outbound)
            return
          }
          var body = ByteBuffer()
          var ended = false
          while let part = try await parts.next() {
            switch part {
            case .body(var bytes):
              guard body.readableBytes + bytes.readableBytes <= configuration.maxBodyBytes else {
                try await writeTooLarge(head, outbound)
                return
              }
              body.writeBuffer(&bytes)
            case .end:
              ended = true
            case .head:
              return
            }
            if ended { break }
          }
          guard ended else { return }
          let request = HTTPRequest(head: head, body: body)
          let context = RequestContext(
            channel: channel, isOpen: { [weak self] in channel.isActive && !(self?.isStopping ?? true) })
          let response = await router.handle(request, context: context)
          counters.count(route: response.route, status: Int(response.status.code))
          let keepAlive = head.isKeepAlive && !stopping.load(ordering: .relaxed) && response.stream == nil
          var headers = response.headers
          headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
          if let stream = response.stream, head.method != .HEAD {
            let responseHead = HTTPResponseHead(
              version: head.version, status: response.status, headers: headers)
            try await outbound.write(.head(responseHead))
            try await stream(outbound, context)
            try await outbound.write(.end(nil))
            return
          }
          if response.stream == nil {
            headers.replaceOrAdd(name: "Content-Length", value: String(response.body.readableBytes))
          }
          let responseHead = HTTPResponseHead(
            version: head.version, status: response.status, headers: headers)
          if head.method == .HEAD {
            // A stream's HEAD: its head only (the stream is not started).
            try await outbound.write(contentsOf: [.head(responseHead), .end(nil)])
          } else {
            try await outbound.write(
              contentsOf: [.head(responseHead), .body(.byteBuffer(response.body)), .end(nil)])
          }
          if !keepAlive { return }
        }
      }
    } catch {
      logger.debug("HTTP connection from \(channel.remoteAddress?.description ?? "?") ended: \(error)")
    }
  }

  var isStopping: Bool { stopping.load(ordering: .relaxed) }

  func writeTooLarge(
    _ head: HTTPRequestHead, _ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
  ) async throws {
    let response = HTTPResponse.error(
      .payloadTooLarge, code: 413,
      "Request body larger than \(configuration.maxBodyBytes) bytes", route: "-")
    counters.count(route: "-", status: 413)
    var headers = response.headers
    headers.replaceOrAdd(name: "Connection", value: "close")
    headers.replaceOrAdd(name: "Content-Length", value: String(response.body.readableBytes))
    try await outbound.write(
      contentsOf: [
        .head(HTTPResponseHead(version: head.version, status: response.status, headers: headers)),
        .body(.byteBuffer(response.body)), .end(nil),
      ])
  }
}

/// Slow-client bounds. A connection waiting for a request head (just opened, or after a
/// response) is closed after `idleTimeoutMs`; a request whose end has not arrived
/// `requestTimeoutMs` after its head is closed too. No timer runs while a response is being
/// produced (a long-lived event stream is the server's to end).
final class HTTPTimeoutHandler: ChannelDuplexHandler {
  typealias InboundIn = HTTPServerRequestPart
  typealias InboundOut = HTTPServerRequestPart
  typealias OutboundIn = HTTPServerResponsePart
  typealias OutboundOut = HTTPServerResponsePart

  let idleTimeoutMs: Int64
  let requestTimeoutMs: Int64
  let counters: HTTPCounters
  var timer: Scheduled<Void>?
  /// Requests whose end has arrived but whose response has not ended (pipelining).
  var answering = 0

  init(idleTimeoutMs: Int64, requestTimeoutMs: Int64, counters: HTTPCounters) {
    self.idleTimeoutMs = idleTimeoutMs
    self.requestTimeoutMs = requestTimeoutMs
    self.counters = counters
  }

  func handlerAdded(context: ChannelHandlerContext) {
    if context.channel.isActive { arm(context: context, idleTimeoutMs) }
  }

  func channelActive(context: ChannelHandlerContext) {
    arm(context: context, idleTimeoutMs)
    context.fireChannelActive()
  }

  func channelInactive(context: ChannelHandlerContext) {
    timer?.cancel()
    timer = nil
    context.fireChannelInactive()
  }

  func arm(context: ChannelHandlerContext, _ ms: Int64) {
    timer?.cancel()
    let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
    let counters = self.counters
    timer = context.eventLoop.scheduleTask(in: .milliseconds(ms)) {
      counters.timedOut.wrappingAdd(1, ordering: .relaxed)
      bound.value.close(promise: nil)
    }
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head:
      if answering == 0 { arm(context: context, requestTimeoutMs) }
    case .body:
      break
    case .end:
      answering += 1
      timer?.cancel()
      timer = nil
    }
    context.fireChannelRead(data)
  }

  func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    if case .end = unwrapOutboundIn(data) {
      answering = max(0, answering - 1)
      if answering == 0 { arm(context: context, idleTimeoutMs) }
    }
    context.write(data, promise: promise)
  }
}
