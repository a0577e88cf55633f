public import Logging
import NIOCore
import NIOHTTP1
public import NIOPosix
public import ServiceLifecycle
public import SluiceBroker
import Synchronization

/// Prometheus metrics over HTTP: `GET /metrics` answers the text exposition format
/// (version 0.0.4), computed from the broker's state at each scrape.
public final class MetricsServer: Service, Sendable {
  let broker: Broker
  let host: String
  let port: Int
  let group: MultiThreadedEventLoopGroup
  let logger: Logger
  let kafkaServer: KafkaServer?
  let extra: @Sendable () -> String
  let boundPort = Mutex<Int?>(nil)

  /// - Parameter extra: more exposition text appended at each scrape (e.g. the ZeroMQ bridges').
  public init(
    broker: Broker, host: String, port: Int, group: MultiThreadedEventLoopGroup, logger: Logger,
    kafkaServer: KafkaServer? = nil, extra: @escaping @Sendable () -> String = { "" }
  ) {
    self.extra = extra
    self.broker = broker
    self.host = host
    self.port = port
    self.group = group
    self.logger = logger
    self.kafkaServer = kafkaServer
  }

  /// The port bound, once listening.
  public var listeningPort: Int? { boundPort.withLock { $0 } }

  /// The exposition text of the broker (and of a Kafka listener's connections), computed
  /// at each call: for another front door that serves `/metrics` too.
  public static func renderer(
    broker: Broker, kafkaServer: KafkaServer?, extra: @escaping @Sendable () -> String = { "" }
  ) -> @Sendable () -> String {
    {
      MetricsRenderer.render(
        broker, connections: kafkaServer?.connectionCount, connectionRates: kafkaServer?.connectionRates)
        + extra()
    }
  }

  public func run() async throws {
    let render = Self.renderer(broker: broker, kafkaServer: kafkaServer, extra: extra)
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

/// The exposition text.
enum MetricsRenderer {
  static func escape(_ value: String) -> String {
    var out = ""
    for character in value {
      switch character {
      case "\\": out += "\\\\"
      case "\"": out += "\\\""
      case "\n": out += "\\n"
      default: out.append(character)
      }
    }
    return out
  }

  struct Family {
    var name: String
    var type: String
    var help: String
    var samples: [(labels: [(String, String)], value: Int64)] = []
  }

  static func render(_ broker: Broker, connections: Int?, connectionRates: ConnectionRateCounters?) -> String
  {
    var families: [String: Family] = [:]
    var order: [String] = []
    func add(_ name: String, _ type: String, _ help: String, _ labels: [(String, String)], _ value: Int64) {
      if families[name] == nil {
        families[name] = Family(name: name, type: type, help: help)
        order.append(name)
      }
      families[name]!.samples.append((labels, value))
    }
    if let connections {
      add("sluice_connections", "gauge", "Open client connections.", [], Int64(connections))
    }
    if let connectionRates {
      // No address label: its cardinality would be the attacker's to choose.
      add(
        "sluice_connections_throttled_total", "counter",
        "Connections closed because their client address exceeded its connection_creation_rate quota.", [],
        Int64(connectionRates.throttledConnections))
      add(
        "sluice_connections_delayed_total", "counter",
        "Connections whose setup waited for the broker-wide max.connection.creation.rate.", [],
        Int64(connectionRates.delayedConnections))
    }
    for topic in broker.allTopics {
      let t = ("topic", topic.name)
      for partition in topic.partitions {
        let p = [t, ("partition", String(partition.index))]
        add(
          "sluice_partition_log_start_offset", "gauge", "First offset still in the log.", p,
          partition.logStartOffset)
        add(
          "sluice_partition_log_end_offset", "gauge", "Offset the next record will get.", p,
          partition.logEndOffset)
        add(
          "sluice_partition_high_watermark", "gauge", "Offset up to which consumers may read.", p,
          partition.highWatermark)
        add(
          "sluice_partition_size_bytes", "gauge", "Bytes retained in the log.", p,
          partition.retainedBytes(from: partition.logStartOffset))
        add(
          "sluice_partition_offline", "gauge",
          "1 when the partition's log has failed (write or fsync error, corruption) and refuses appends.", p,
          partition.offlineReason == nil ? 0 : 1)
      }
      let stats = broker.overflowStatistics(topic)
      add(
        "sluice_overflow_backlog_bytes", "gauge",
        "Bytes between the slowest counted consumer group and the log end (docs/overflow.md).", [t],
        stats.backlogBytes)
      for (group, bytes) in stats.groupBacklogBytes.sorted(by: { $0.key < $1.key }) {
        add(
          "sluice_overflow_group_backlog_bytes", "gauge",
          "Bytes between a consumer group's committed offsets and the log end.", [t, ("group", group)], bytes)
      }
      add(
        "sluice_overflow_dropped_bytes_total", "counter", "Bytes dropped by the drop-oldest policy.", [t],
        stats.droppedBytes)
      add(
        "sluice_overflow_dropped_records_total", "counter", "Records dropped by the drop-oldest policy.", [t],
        stats.droppedRecords)
      add(
        "sluice_overflow_rejected_requests_total", "counter",
        "Partition writes refused by the reject policy.", [t], stats.rejectedRequests)
      add(
        "sluice_overflow_throttled_requests_total", "counter",
        "Partition writes held by the backpressure policy.", [t], stats.throttledRequests)
      add(
        "sluice_overflow_throttle_time_ms_total", "counter",
        "Milliseconds produce requests were held by the backpressure policy.", [t], stats.throttleMs)
      add(
        "sluice_overflow_timed_out_requests_total", "counter",
        "Partition writes held for sluice.overflow.max.wait.ms and then refused.", [t], stats.timedOutRequests
      )
    }
    for entry in broker.quotas.throttleTotals() {
      add(
        "sluice_quota_throttle_time_ms_total", "counter",
        "Milliseconds clients were throttled for exceeding a byte-rate quota.",
        [
          ("client_id", entry.clientId), ("user", entry.user ?? ""),
          ("quota", entry.kind == .produce ? "produce" : "fetch"),
        ],
        entry.ms)
    }
    var out = ""
    for name in order {
      let family = families[name]!
      out += "# HELP \(name) \(family.help)\n# TYPE \(name) \(family.type)\n"
      for sample in family.samples {
        let labels = sample.labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",")
        out += labels.isEmpty ? "\(name) \(sample.value)\n" : "\(name){\(labels)} \(sample.value)\n"
      }
    }
    return out
  }
}
