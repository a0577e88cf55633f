public import KafkaClient
import KafkaProtocol
public import Logging
import NIOCore
import NIOPosix
public import ServiceLifecycle
public import SluiceBroker
import SluiceKafka
public import SluiceServer
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A Sluice broker running inside this Swift process.
///
/// Two ways to run it:
/// - as a simple object: `let broker = try await EmbeddedBroker.start(configuration)`, then
///   `try await broker.stop()`;
/// - as a swift-service-lifecycle `Service`: `EmbeddedBroker(configuration:)` in a
///   `ServiceGroup`; ``run()`` serves until graceful shutdown, then closes the logs.
///
/// With ``Configuration/listener`` set it also accepts remote Kafka clients over TCP; with
/// `nil` it is reachable only from this process. Either way, clients in this process can
/// skip the network: ``producerConfiguration()``, ``consumerConfiguration(_:)`` and
/// ``adminConfiguration()`` return `KafkaClient` configurations whose requests go straight
/// to the broker's request handler as values (no encoding, no socket).
public final class EmbeddedBroker: Service, Sendable {
  /// Where and how the embedded broker runs.
  public struct Configuration: Sendable {
    /// Broker settings: data directory, topic defaults, group settings, … The advertised
    /// address is set from ``listener``.
    public var broker: BrokerConfig
    /// The TCP listener for remote clients; nil for an in-process-only broker.
    public var listener: Listener?
    public var logger: Logger
    /// The principal in-process clients act as, for ACLs (docs/security.md): put it in
    /// `broker.superUsers` to let the embedding process do anything.
    public var inProcessPrincipal = "User:ANONYMOUS"

    /// A TCP listener.
    public struct Listener: Sendable {
      public var host: String
      /// 0 picks a free port (see ``EmbeddedBroker/port``).
      public var port: Int
      /// The host clients are told to connect to; defaults to `host` (127.0.0.1 for a
      /// wildcard address).
      public var advertisedHost: String?
      /// Listener limits (frame size, connection caps, idle timeout) and security
      /// (`server.listener.securityProtocol`, `.tls`, `.saslMechanisms`; docs/security.md).
      public var server = KafkaServer.Configuration()
      public init(host: String = "127.0.0.1", port: Int = 0, advertisedHost: String? = nil) {
        self.host = host
        self.port = port
        self.advertisedHost = advertisedHost
      }
    }

    /// A broker with its data in `dataDirectory` and, by default, a loopback listener on a
    /// free port.
    public init(
      dataDirectory: String, listener: Listener? = Listener(),
      logger: Logger = Logger(label: "sluice.embedded")
    ) {
      self.broker = BrokerConfig()
      self.broker.dataDirectory = dataDirectory
      self.listener = listener
      self.logger = logger
    }
  }

  public let configuration: Configuration
  /// The broker itself (for direct calls; most users need only the client configurations).
  public let broker: Broker
  /// The TCP port remote clients connect to; nil without a listener.
  public let port: Int?
  private let server: KafkaServer?
  private let handler: InProcessHandler
  private let standalone = Mutex<(group: ServiceGroup, task: Task<Void, any Error>)?>(nil)

  /// Opens the data directory (recovering what is there). Nothing is served until
  /// ``run()``, or use ``start(_:)``.
  public init(configuration: Configuration) throws {
    var configuration = configuration
    // As `sluice serve`: a resource no ACL covers is closed once the listener authenticates.
    if configuration.broker.allowEveryoneIfNoAclFound == nil {
      configuration.broker.allowEveryoneIfNoAclFound =
        !(configuration.listener?.server.listener.authenticates ?? false)
    }
    var port: Int?
    if let listener = configuration.listener {
      // The broker advertises its port in Metadata, so the port must be known before it
      // opens: a requested port 0 is resolved to a free one first.
      let chosen = listener.port == 0 ? try Self.freePort(host: listener.host) : listener.port
      configuration.listener?.port = chosen
      let wildcard = listener.host == "0.0.0.0" || listener.host == "::"
      configuration.broker.advertisedHost =
        listener.advertisedHost ?? (wildcard ? "127.0.0.1" : listener.host)
      configuration.broker.advertisedPort = Int32(chosen)
      port = chosen
    } else {
      configuration.broker.advertisedHost = "in-process"
      configuration.broker.advertisedPort = 1
    }
    self.configuration = configuration
    self.port = port
    self.broker = try Broker(config: configuration.broker)
    self.handler = InProcessHandler(broker: broker, principal: configuration.inProcessPrincipal)
    if let listener = configuration.listener {
      var serverConfiguration = listener.server
      serverConfiguration.host = listener.host
      serverConfiguration.port = listener.port
      self.server = KafkaServer(
        broker: broker, configuration: serverConfiguration, group: MultiThreadedEventLoopGroup.singleton,
        logger: configuration.logger)
    } else {
      self.server = nil
    }
  }

  /// Opens the broker and starts serving; returns once the listener (if any) accepts
  /// connections. Stop it with ``stop()``.
  public static func start(_ configuration: Configuration) async throws -> EmbeddedBroker {
    let embedded = try EmbeddedBroker(configuration: configuration)
    let group = ServiceGroup(
      configuration: .init(services: [.init(service: embedded)], logger: configuration.logger))
    let task = Task { try await group.run() }
    embedded.standalone.withLock { $0 = (group, task) }
    if let server = embedded.server {
      do {
        _ = try await server.waitUntilBound()
      } catch {
        try? await embedded.stop()
        throw error
      }
    }
    return embedded
  }

  /// Stops a broker started with ``start(_:)``: stops accepting, lets connections finish
  /// the request in hand, flushes and closes the logs.
  public func stop() async throws {
    guard let (group, task) = standalone.withLock({ $0 }) else { return }
    await group.triggerGracefulShutdown()
    try await task.value
  }

  /// Serves until graceful shutdown (swift-service-lifecycle), then flushes and closes
  /// the logs. In-process clients get a closed connection afterwards.
  public func run() async throws {
    let broker = self.broker
    let server = self.server
    var failure: (any Error)?
    do {
      try await withThrowingDiscardingTaskGroup { group in
        if let server { group.addTask { try await server.run() } }
        group.addTask { try await HousekeepingService(broker: broker).run() }
        // Topics with sluice.zmq.pub / sluice.zmq.pull get their ZeroMQ bridges here too.
        group.addTask { [logger = configuration.logger] in
          try await ZMQBridges(broker: broker, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
            .run()
        }
        // And topics with sluice.feed.multicast their multicast feeds (docs/udp.md).
        group.addTask { [logger = configuration.logger] in
          try await FeedBridges(broker: broker, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
            .run()
        }
        group.addTask {
          // Parked group requests of in-process clients are answered at shutdown too.
          try? await gracefulShutdown()
          broker.beginShutdown()
        }
      }
    } catch {
      failure = error
    }
    handler.stopped.store(true, ordering: .releasing)
    await broker.shutdown()
    if let failure { throw failure }
  }

  /// How in-process clients reach this broker.
  public var transport: KafkaConfiguration.Transport { .inProcess(handler) }

  /// A producer configuration that talks to this broker in-process.
  public func producerConfiguration() -> KafkaProducerConfiguration {
    var configuration = KafkaProducerConfiguration()
    configuration.connection.transport = transport
    configuration.connection.clientId = "sluice-embedded"
    return configuration
  }

  /// A consumer configuration that talks to this broker in-process.
  public func consumerConfiguration(_ strategy: KafkaConsumptionStrategy) -> KafkaConsumerConfiguration {
    var configuration = KafkaConsumerConfiguration(consumptionStrategy: strategy)
    configuration.connection.transport = transport
    configuration.connection.clientId = "sluice-embedded"
    return configuration
  }

  /// An admin configuration that talks to this broker in-process.
  public func adminConfiguration() -> KafkaAdminConfiguration {
    var configuration = KafkaAdminConfiguration()
    configuration.connection.transport = transport
    configuration.connection.clientId = "sluice-embedded"
    return configuration
  }

  /// The address remote clients bootstrap from; nil without a listener.
  public var bootstrapAddress: KafkaConfiguration.BrokerAddress? {
    port.map { KafkaConfiguration.BrokerAddress(host: configuration.broker.advertisedHost, port: $0) }
  }

  private static func freePort(host: String) throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw EmbeddedBrokerError(message: "socket() failed: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr(host == "localhost" ? "127.0.0.1" : host)
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0 else { throw EmbeddedBrokerError(message: "cannot bind \(host): errno \(errno)") }
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
  }
}

/// A failure to set up the embedded broker.
public struct EmbeddedBrokerError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public var description: String { message }
}

/// Hands in-process client requests to the broker, through the Kafka front door (as values:
/// no encoding, no socket).
final class InProcessHandler: KafkaRequestHandler {
  let frontDoor: KafkaFrontDoor
  let stopped = Atomic<Bool>(false)

  let principal: String

  init(broker: Broker, principal: String) {
    self.frontDoor = KafkaFrontDoor(broker: broker)
    self.principal = principal
  }

  func handleKafkaRequest(_ request: KafkaRequest) async throws -> KafkaResponseBody? {
    guard !stopped.load(ordering: .acquiring) else {
      throw KafkaError(.connectionClosed, "the embedded broker has stopped")
    }
    return await frontDoor.handle(
      request, context: RequestContext(clientHost: "in-process", principal: principal))
  }
}
