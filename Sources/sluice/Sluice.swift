import ArgumentParser
import Dispatch
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import SluiceBroker
import SluiceHTTP
import SluiceServer
import SluiceStorage

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif

/// Entry point. SwiftNIO's event loops are installed as Swift Concurrency's global executor
/// before any task runs, so the broker's connection tasks run on the event loop threads and
/// do not hop to a separate thread pool and back for every request (profiled: with the
/// default executor, thread wake-ups dominated the broker's CPU at 10k records/s).
@main
enum SluiceMain {
  static func main() {
    _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    Task {
      await Sluice.main()
      exit(0)
    }
    // The main queue keeps running (ArgumentParser's async entry uses the main actor).
    dispatchMain()
  }
}

/// The `sluice` command: the broker (`serve`) and client commands.
struct Sluice: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sluice",
    abstract: "Sluice: a single-binary, Kafka-compatible event-streaming broker.",
    version: sluiceVersionText,
    subcommands: [
      Serve.self, TopicCommand.self, ProduceCommand.self, ConsumeCommand.self, GroupCommand.self,
      BenchCommand.self, StorageCommand.self, WebhookCommand.self, DirectCommand.self, FeedCommand.self,
      UserCommand.self, AclCommand.self,
    ]
  )
}

struct Serve: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run the broker.",
    discussion: "With no options: a Kafka listener on 127.0.0.1:9092 and data in ./sluice-data. "
      + "Options also come from the environment (SLUICE_LISTEN, SLUICE_ADVERTISE, SLUICE_DATA_DIR, "
      + "SLUICE_CONFIG, SLUICE_METRICS_LISTEN, SLUICE_HTTP_LISTEN, SLUICE_STATSD_LISTEN) and from a Java-properties config file (--config, "
      + "keys listen, advertise, log.dirs, metrics.listen, http.listen, statsd.listen and the settings below).\n\nBroker settings, from --set KEY=VALUE, the environment "
      + "(SLUICE_ + KEY upper-cased with dots as underscores) or the file, strongest first:\n"
      + serveSettings.map { "  \($0.key) (default \($0.defaultValue)): \($0.help)" }.joined(separator: "\n")
      + "\n\nHTTP settings (with --http-listen), from the same places:\n"
      + httpSettings.helpLines()
      + "\n\nStatsD settings (with --statsd-listen; docs/udp.md), from the same places:\n"
      + statsdSettings.helpLines()
      + "\n\nSecurity settings (docs/security.md), from the same places:\n"
      + securitySettings.map {
        "  \($0.key) (default \($0.defaultValue.isEmpty ? "none" : $0.defaultValue)): \($0.help)"
      }
      .joined(separator: "\n")
      + "\n\nSIGINT/SIGTERM stop gracefully: stop accepting, finish in-flight requests, flush, close. "
      + "SIGHUP reloads the TLS certificate and key."
  )

  @Option(
    help: ArgumentHelp(
      "A Kafka listener, [PROTOCOL://]HOST:PORT with PROTOCOL PLAINTEXT (the default), SSL, SASL_PLAINTEXT or "
        + "SASL_SSL; repeatable (env SLUICE_LISTEN, comma-separated; docs/security.md)."))
  var listen: [String] = []

  @Option(
    help: ArgumentHelp(
      "Address clients of a listener are told to connect to, [PROTOCOL://]HOST:PORT; repeatable, by protocol "
        + "or by position; defaults to each listen address (env SLUICE_ADVERTISE)."))
  var advertise: [String] = []

  @Option(help: "Directory holding topics and metadata; default ./sluice-data (env SLUICE_DATA_DIR).")
  var dataDir: String?

  @Option(help: "Java-properties config file (env SLUICE_CONFIG).")
  var config: String?

  @Option(
    help: "Serve Prometheus metrics at http://HOST:PORT/metrics; off by default (env SLUICE_METRICS_LISTEN).")
  var metricsListen: String?

  @Option(
    help: ArgumentHelp(
      "Serve the HTTP API (REST Proxy v2, Server-Sent Events, /metrics, /openapi.json) at HOST:PORT; "
        + "off by default (env SLUICE_HTTP_LISTEN; docs/http.md)."))
  var httpListen: String?

  @Option(
    help: ArgumentHelp(
      "Accept StatsD metrics (UDP) at HOST:PORT and append them to a topic; off by default "
        + "(env SLUICE_STATSD_LISTEN; docs/udp.md)."))
  var statsdListen: String?

  @Option(name: .customLong("set"), help: "A broker setting, KEY=VALUE; repeatable (see below).")
  var settings: [String] = []

  @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
  var logLevel: String = "info"

  @Option(
    help: ArgumentHelp(
      "Log line format on stderr: text (swift-log's), logfmt or json (one object per line; "
        + "env SLUICE_LOG_FORMAT)."))
  var logFormat: String?

  func run() async throws {
    let environment = ProcessInfo.processInfo.environment
    var file: [String: String] = [:]
    if let path = config ?? environment["SLUICE_CONFIG"] { file = try readProperties(path) }
    var explicit: [String: String] = [:]
    for setting in settings {
      guard let equals = setting.firstIndex(of: "=") else {
        throw ValidationError("--set expects KEY=VALUE, got \"\(setting)\"")
      }
      explicit[String(setting[..<equals])] = String(setting[setting.index(after: equals)...])
    }
    let known = Set(serveSettings.map(\.key)).union(httpSettings.map(\.key)).union(statsdSettings.map(\.key))
      .union(securitySettings.map(\.key))
      .union([
        "listen", "advertise", "log.dirs", "metrics.listen", "http.listen", "statsd.listen",
      ])
    for key in explicit.keys.sorted() + file.keys.sorted() where !known.contains(key) {
      throw ValidationError("unknown setting \"\(key)\" (see sluice serve --help)")
    }

    var brokerConfig = BrokerConfig()
    var serverConfig = KafkaServer.Configuration()
    // A setting's value: explicit, else from the environment, else from the file.
    func value(_ key: String) -> String? { explicit[key] ?? environment[environmentName(key)] ?? file[key] }
    brokerConfig.auditLog = true  // the server's default (sluice.audit.log.enable)
    for setting in serveSettings {
      if let value = value(setting.key) { try setting.apply(&brokerConfig, &serverConfig, value) }
    }
    if let problem = brokerConfig.defaultOverflow.problem { throw ValidationError(problem) }
    func list(_ text: String?) -> [String] {
      (text ?? "").split(separator: ",").map { $0.trimmed() }.filter { !$0.isEmpty }
    }
    let listenTexts =
      listen.isEmpty ? list(environment["SLUICE_LISTEN"] ?? file["listen"] ?? "127.0.0.1:9092") : listen
    let advertiseTexts =
      advertise.isEmpty ? list(environment["SLUICE_ADVERTISE"] ?? file["advertise"]) : advertise
    let listeners = try makeListeners(listen: listenTexts, advertise: advertiseTexts, setting: value)
    guard let first = listeners.first else { throw ValidationError("--listen: no listener given") }
    let (advertisedHost, advertisedPort) = first.advertised ?? (first.host, Int32(first.port))
    brokerConfig.dataDirectory =
      dataDir ?? environment["SLUICE_DATA_DIR"] ?? file["log.dirs"] ?? "./sluice-data"
    brokerConfig.advertisedHost = advertisedHost
    brokerConfig.advertisedPort = advertisedPort
    brokerConfig.superUsers = Set(list(value("super.users")?.replacing(";", with: ",")))
    if let allow = value("allow.everyone.if.no.acl.found"), !allow.isEmpty {
      brokerConfig.allowEveryoneIfNoAclFound = try parseBool("allow.everyone.if.no.acl.found", allow)
    } else {
      brokerConfig.allowEveryoneIfNoAclFound = !listeners.contains { $0.authenticates }
    }
    serverConfig.listener = first
    let metricsText =
      metricsListen ?? explicit["metrics.listen"] ?? environment["SLUICE_METRICS_LISTEN"]
      ?? file["metrics.listen"]
    let metricsAddress = try metricsText.flatMap {
      $0.isEmpty ? nil : try parseHostPort($0, option: "--metrics-listen")
    }
    let httpText =
      httpListen ?? explicit["http.listen"] ?? environment["SLUICE_HTTP_LISTEN"] ?? file["http.listen"]
    var httpTLS = false
    var extraIdentities: [TLSIdentity] = []
    var httpConfig = try httpText.flatMap { text -> HTTPServerConfiguration? in
      if text.isEmpty { return nil }
      var address = text
      if address.lowercased().hasPrefix("https://") {
        httpTLS = true
        address = String(address.dropFirst(8))
      } else if address.lowercased().hasPrefix("http://") {
        address = String(address.dropFirst(7))
      }
      let (host, port) = try parseHostPort(address, option: "--http-listen")
      return HTTPServerConfiguration(host: host, port: port)
    }
    if httpConfig != nil {
      try httpSettings.apply(to: &httpConfig!, value)
      if let text = value("http.authentication"), !text.isEmpty {
        httpConfig!.authentication = try parseBool("http.authentication", text)
      } else {
        httpConfig!.authentication = listeners.contains { $0.authenticates }
      }
      if httpTLS {
        let identity = try httpIdentity(listeners: listeners, setting: value)
        httpConfig!.tls = { NIOSSLServerHandler(context: identity.context) }
        extraIdentities.append(identity)
      }
    }
    let statsdText =
      statsdListen ?? explicit["statsd.listen"] ?? environment["SLUICE_STATSD_LISTEN"]
      ?? file["statsd.listen"]
    var statsdConfig = try statsdText.flatMap { text -> StatsDConfiguration? in
      if text.isEmpty { return nil }
      let (host, port) = try parseHostPort(text, option: "--statsd-listen")
      return StatsDConfiguration(host: host, port: port)
    }
    if statsdConfig != nil {
      try statsdSettings.apply(to: &statsdConfig!, value)
    }

    guard let level = Logger.Level(rawValue: logLevel) else {
      throw ValidationError("unknown log level \(logLevel)")
    }
    let formatName = logFormat ?? environment["SLUICE_LOG_FORMAT"] ?? "text"
    guard let format = LogFormat(rawValue: formatName) else {
      throw ValidationError("unknown log format \(formatName) (text, logfmt or json)")
    }
    LoggingSystem.bootstrap { label -> any LogHandler in
      if format == .text {
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
      }
      var handler = StructuredLogHandler(label: label, format: format)
      handler.logLevel = level
      return handler
    }
    let logger = Logger(label: "sluice")
    raiseFileDescriptorLimit(
      wanted: serverConfig.maximumConnections, logFiles: brokerConfig.maxOpenLogFiles, logger: logger)
    let started = ContinuousClock.now
    // Before anything makes an instrument (the broker's logs make theirs as they open).
    let exporter = MetricsExporter()
    exporter.bootstrapMetricsSystem()
    let broker: Broker
    do {
      broker = try await Broker.open(config: brokerConfig)
    } catch {
      logger.critical("cannot open data directory \(brokerConfig.dataDirectory): \(error)")
      throw ExitCode(1)
    }
    logger.info(
      "data in \(brokerConfig.dataDirectory), \(broker.allTopics.count) topics, advertising \(advertisedHost):\(advertisedPort)"
    )
    let group = MultiThreadedEventLoopGroup.singleton
    let server = KafkaServer(broker: broker, configuration: serverConfig, group: group, logger: logger)
    // Further listeners share the broker and the settings, each with its own address and
    // security.
    let moreServers = listeners.dropFirst().map { listener in
      var configuration = serverConfig
      configuration.listener = listener
      return KafkaServer(broker: broker, configuration: configuration, group: group, logger: logger)
    }
    var tlsIdentities: [TLSIdentity] = []
    for identity in listeners.compactMap(\.tls) + extraIdentities
    where !tlsIdentities.contains(where: { $0 === identity }) {
      tlsIdentities.append(identity)
    }
    if !tlsIdentities.isEmpty { reloadOnHangup(tlsIdentities, logger: logger) }
    let bridges = ZMQBridges(broker: broker, group: group, logger: logger)
    let feeds = FeedBridges(broker: broker, group: group, logger: logger)
    let statsd = statsdConfig.map {
      StatsDIntake(broker: broker, configuration: $0, group: group, logger: logger)
    }
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
      .init(service: server)
    ]
    services += moreServers.map { .init(service: $0) }
    services += [
      .init(service: HousekeepingService(broker: broker)),
      .init(service: bridges),
      .init(service: feeds),
    ]
    if let statsd { services.append(.init(service: statsd)) }
    exporter.addCollector { broker.collectMetrics(into: $0) }
    for listener in [server] + moreServers { exporter.addCollector { listener.collectMetrics(into: $0) } }
    exporter.addCollector { bridges.collectMetrics(into: $0) }
    exporter.addCollector { feeds.collectMetrics(into: $0) }
    if let statsd { exporter.addCollector { statsd.collectMetrics(into: $0) } }
    if let httpConfig {
      // Adds its own figures (HTTP, webhooks) to the exporter, for both endpoints.
      services.append(
        .init(
          service: HTTPServer(
            broker: broker, configuration: httpConfig, group: group, logger: logger, metrics: exporter)))
    }
    if let (metricsHost, metricsPort) = metricsAddress {
      services.append(
        .init(
          service: MetricsServer(
            broker: broker, host: metricsHost, port: metricsPort, group: group, logger: logger,
            exporter: exporter)))
    }
    let serviceGroup = ServiceGroup(
      configuration: .init(
        services: services,
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger))
    Task {
      if let port = try? await server.waitUntilBound() {
        logger.info("ready on port \(port) after \(ContinuousClock.now - started)")
      }
    }
    var failure: (any Error)?
    do {
      try await serviceGroup.run()
    } catch {
      failure = error
      logger.error("stopped with error: \(error)")
    }
    await broker.shutdown()
    logger.info("stopped")
    // A failure to serve (e.g. the address is in use) must not look like a clean stop.
    if failure != nil { throw ExitCode(1) }
  }
}

/// SIGHUP: read the TLS certificate and key again (rotated certificates, no restart).
func reloadOnHangup(_ identities: [TLSIdentity], logger: Logger) {
  signal(SIGHUP, SIG_IGN)
  let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
  source.setEventHandler {
    for identity in identities {
      do {
        try identity.reload()
        logger.info("SIGHUP: reloaded TLS certificate \(identity.certificatePath)")
      } catch {
        logger.error("SIGHUP: cannot reload TLS certificate, keeping the old one: \(error)")
      }
    }
  }
  source.resume()
  // Kept for the life of the process (a released source stops delivering).
  _ = Unmanaged.passRetained(source as AnyObject)
}

/// Raises the soft limit on open files to the hard limit (as Go's runtime and many servers
/// do): every connection and every segment takes a descriptor, and a soft limit of 1024
/// would make accept fail long before `max.connections`. Warns when even the hard limit is
/// below what the connection cap needs.
func raiseFileDescriptorLimit(wanted connections: Int, logFiles: Int?, logger: Logger) {
  var limit = rlimit()
  guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
  if limit.rlim_cur < limit.rlim_max {
    var raised = limit
    raised.rlim_cur = limit.rlim_max
    if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
  }
  let headroom = 256  // metadata, the journal, the listeners, zero-copy sends
  // Log files take at most sluice.log.max.open.files (by default a quarter of the limit).
  let logFiles = logFiles ?? OpenFileCache.defaultCapacity()
  if limit.rlim_cur != rlim_t.max && Int(clamping: limit.rlim_cur) < connections + logFiles + headroom {
    logger.warning(
      "open-file limit \(limit.rlim_cur) is below max.connections \(connections) + sluice.log.max.open.files \(logFiles) + \(headroom): raise it (ulimit -n), or lower max.connections or sluice.log.max.open.files; log files that cannot be opened fail their requests with KAFKA_STORAGE_ERROR"
    )
  }
}
