public import Logging
import NIOCore
import NIOHTTP1
public import NIOPosix
public import ServiceLifecycle
public import SluiceBroker
import Synchronization

/// Prometheus metrics over HTTP: `GET /metrics` answers the text exposition format
/// (version 0.0.4) of a ``MetricsExporter``: the swift-metrics instruments of the process
/// and the figures its collectors read at each scrape.
public final class MetricsServer: Service, Sendable {
  let host: String
  let port: Int
  let group: MultiThreadedEventLoopGroup
  let logger: Logger
  public let exporter: MetricsExporter
  let boundPort = Mutex<Int?>(nil)

  /// - Parameter exporter: what to serve; nil makes one with the broker's figures (and
  ///   `kafkaServer`'s connections).
  public init(
    broker: Broker, host: String, port: Int, group: MultiThreadedEventLoopGroup, logger: Logger,
    kafkaServer: KafkaServer? = nil, exporter: MetricsExporter? = nil
  ) {
    self.host = host
    self.port = port
    self.group = group
    self.logger = logger
    if let exporter {
      self.exporter = exporter
    } else {
      let made = MetricsExporter()
      made.addCollector { broker.collectMetrics(into: $0) }
      if let kafkaServer { made.addCollector { kafkaServer.collectMetrics(into: $0) } }
      self.exporter = made
    }
  }

  /// The port bound, once listening.
  public var listeningPort: Int? { boundPort.withLock { $0 } }

  public func run() async throws {
    let exporter = self.exporter
    let render: @Sendable () -> String = { exporter.render() }
    let channel = try await ServerBootstrap(group: group)
      .serverChannelOption(.backlog, value: 64)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      // A client may shut down its sending side after the request (`nc -N`): the answer,
      // rendered off the loop, must still go out before the connection closes.
      .childChannelOption(.allowRemoteHalfClosure, value: true)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.configureHTTPServerPipeline()
          try channel.pipeline.syncOperations.addHandler(MetricsHandler(render: render))
        }
      }
      .bind(host: host, port: port).get()
    boundPort.withLock { $0 = channel.localAddress?.port }
    logger.info("metrics on http://\(host):\(channel.localAddress?.port ?? port)/metrics")
    // Ends on graceful shutdown and on cancellation (a ServiceGroup cancels its services
    // when one of them fails).
    await withGracefulShutdownHandler {
      await withTaskCancellationHandler {
        try? await channel.closeFuture.get()
      } onCancel: {
        channel.close(promise: nil)
      }
    } onGracefulShutdown: {
      channel.close(promise: nil)
    }
  }
}

extension KafkaServer {
  /// This listener's connection figures, labelled with the listener.
  public func collectMetrics(into metrics: MetricsCollection) {
    let listener = configuration.listener
    let name = ("listener", "\(listener.securityProtocol.rawValue)://\(listener.host):\(listener.port)")
    metrics.gauge("sluice_connections", "Open client connections.", [name], connectionCount)
    // No address label: its cardinality would be the attacker's to choose.
    metrics.counter(
      "sluice_connections_throttled_total",
      "Connections closed because their client address exceeded its connection_creation_rate quota.", [name],
      connectionRates.throttledConnections)
    metrics.counter(
      "sluice_connections_delayed_total",
      "Connections whose setup waited for the broker-wide max.connection.creation.rate.", [name],
      connectionRates.delayedConnections)
  }
}

/// Answers `GET /metrics`. The text is computed on a thread-pool thread, not on the event
/// loop: it walks every topic, partition and group, which with many of them takes long
/// enough to hold up the Kafka connections that share the loop. HTTP pipelining assistance
/// (`configureHTTPServerPipeline`) holds a connection's next request until this response
/// has ended, so answers stay in order.
final class MetricsHandler: ChannelInboundHandler {
  typealias InboundIn = HTTPServerRequestPart
  typealias OutboundOut = HTTPServerResponsePart

  let render: @Sendable () -> String
  var head: HTTPRequestHead?

  init(render: @escaping @Sendable () -> String) { self.render = render }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let request):
      head = request
    case .body:
      break
    case .end:
      guard let request = head else { return }
      head = nil
      guard request.method == .GET && request.uri.split(separator: "?").first == "/metrics" else {
        respond(context: context, to: request, status: .notFound, text: "Not found: try GET /metrics\n")
        return
      }
      let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
      NIOThreadPool.singleton.runIfActive(eventLoop: context.eventLoop, render).whenComplete { result in
        let (handler, context) = bound.value
        switch result {
        case .success(let text):
          handler.respond(context: context, to: request, status: .ok, text: text)
        case .failure(let error):
          handler.respond(
            context: context, to: request, status: .serviceUnavailable,
            text: "metrics unavailable: \(error)\n")
        }
      }
    }
  }

  func respond(
    context: ChannelHandlerContext, to request: HTTPRequestHead, status: HTTPResponseStatus, text: String
  ) {
    var headers = HTTPHeaders()
    headers.add(
      name: "Content-Type", value: status == .ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain")
    headers.add(name: "Content-Length", value: String(text.utf8.count))
    headers.add(name: "Connection", value: request.isKeepAlive ? "keep-alive" : "close")
    context.write(
      wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
      promise: nil)
    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
    if request.isKeepAlive {
      context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    } else {
      let channel = context.channel
      context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
  }
}
