import Foundation
public import KafkaClient
import Logging
import NIOPosix
public import SluiceBroker
public import SluiceServer

/// A Sluice broker in this process, on a free loopback port, with a temporary data directory.
public final class InProcessBroker: Sendable {
  public let server: KafkaServer
  public let broker: Broker
  public let port: Int
  public let directory: String
  let task: Task<Void, any Error>

  public var address: KafkaConfiguration.BrokerAddress { .init(host: "127.0.0.1", port: port) }

  public init(configure: (inout KafkaServer.Configuration) -> Void = { _ in }) async throws {
    directory = NSTemporaryDirectory() + "kafka-client-tests-" + UUID().uuidString
    // The broker advertises its configured port, so bind to a port known in advance.
    let port = try LoopbackSocket.freePort()
    var config = BrokerConfig()
    config.dataDirectory = directory
    config.advertisedHost = "127.0.0.1"
    config.advertisedPort = Int32(port)
    config.defaultPartitions = 1
    broker = try Broker(config: config)
    var serverConfiguration = KafkaServer.Configuration()
    serverConfiguration.host = "127.0.0.1"
    serverConfiguration.port = port
    configure(&serverConfiguration)
    var logger = Logger(label: "test-broker")
    logger.logLevel = .warning
    server = KafkaServer(
      broker: broker, configuration: serverConfiguration, group: MultiThreadedEventLoopGroup.singleton,
      logger: logger)
    let server = self.server
    task = Task { try await server.run() }
    self.port = try await server.waitUntilBound()
  }

  public func stop() async {
    task.cancel()
    _ = try? await task.value
    await broker.shutdown()
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// Runs `body` against a fresh broker and stops it afterwards.
  public static func with<T>(_ body: (InProcessBroker) async throws -> T) async throws -> T {
    let broker = try await InProcessBroker()
    do {
      let result = try await body(broker)
      await broker.stop()
      return result
    } catch {
      await broker.stop()
      throw error
    }
  }
}
