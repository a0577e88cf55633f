import Foundation
import KafkaClient
import Logging
import NIOPosix
import SluiceBroker
import SluiceServer

/// A Sluice broker in this process, on a free loopback port, with a temporary data directory.
final class InProcessBroker: Sendable {
  let server: KafkaServer
  let broker: Broker
  let port: Int
  let directory: String
  let task: Task<Void, any Error>

  var address: KafkaConfiguration.BrokerAddress { .init(host: "127.0.0.1", port: port) }

  init(configure: (inout KafkaServer.Configuration) -> Void = { _ in }) async throws {
    directory = NSTemporaryDirectory() + "kafka-client-tests-" + UUID().uuidString
    // The broker advertises its configured port, so bind to a port known in advance.
    let port = try Self.freePort()
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

  static func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
  }

  func stop() async {
    task.cancel()
    _ = try? await task.value
    await broker.shutdown()
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// Runs `body` against a fresh broker and stops it afterwards.
  static func with<T>(_ body: (InProcessBroker) async throws -> T) async throws -> T {
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
