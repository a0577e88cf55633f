import Foundation
import KafkaClient
import KafkaProtocol
import Logging
import NIOCore
import SluiceBroker
import SluiceEmbedded
import SluiceSASL
import SluiceServer
import Testing

/// The Swift client over SASL and TLS against an embedded broker's secured listener: SCRAM
/// and PLAIN logins, a refused password, ACLs, and certificate verification. Certificates
/// are made with openssl for each run.
@Suite(.serialized) struct SecureClientTests {
  static func openssl(_ arguments: [String], in directory: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "openssl \(arguments.joined(separator: " "))")
  }

  /// A CA and a certificate for 127.0.0.1/localhost signed by it, in `directory`.
  static func makeCertificates(in directory: String) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try openssl(
      [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=test CA",
      ], in: directory)
    try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(
      toFile: directory + "/san.cnf", atomically: true, encoding: .utf8)
    try openssl(
      [
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr", "-subj",
        "/CN=localhost",
      ],
      in: directory)
    try openssl(
      [
        "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "broker.pem", "-days", "1", "-extfile", "san.cnf",
      ], in: directory)
  }

  static func start(_ securityProtocol: SecurityProtocol, directory: String, certificates: String?)
    async throws
    -> EmbeddedBroker
  {
    var logger = Logger(label: "secure-test")
    logger.logLevel = .warning
    var configuration = EmbeddedBroker.Configuration(dataDirectory: directory, logger: logger)
    configuration.broker.allowEveryoneIfNoAclFound = false
    configuration.broker.superUsers = ["User:app"]
    configuration.inProcessPrincipal = "User:app"
    configuration.listener?.server.listener.securityProtocol = securityProtocol
    if let certificates {
      configuration.listener?.server.listener.tls = try TLSIdentity(
        certificatePath: certificates + "/broker.pem", keyPath: certificates + "/broker.key", caPath: nil,
        clientAuthentication: .none)
    }
    let broker = try await EmbeddedBroker.start(configuration)
    try await broker.broker.alterCredentials([
      .init(
        user: "alice", mechanism: .sha256, credential: SCRAMCredential(mechanism: .sha256, password: "pw")),
      .init(
        user: "alice", mechanism: .sha512, credential: SCRAMCredential(mechanism: .sha512, password: "pw")),
    ])
    try await broker.broker.createAcls([
      AclBinding(resourceType: .topic, resourceName: "mine", principal: "User:alice", operation: .write),
      AclBinding(resourceType: .topic, resourceName: "mine", principal: "User:alice", operation: .read),
    ])
    let admin = try KafkaAdmin(configuration: broker.adminConfiguration())  // in-process, as User:app
    try await admin.createTopic("mine", partitions: 1)
    try await admin.createTopic("theirs", partitions: 1)
    await admin.close()
    return broker
  }

  static func producer(
    _ broker: EmbeddedBroker, _ securityProtocol: KafkaConfiguration.Security.SecurityProtocol,
    mechanism: KafkaConfiguration.Security.SASLMechanism, password: String = "pw", ca: String? = nil
  ) throws -> KafkaProducer {
    var configuration = KafkaProducerConfiguration(bootstrapAddresses: [
      try #require(broker.bootstrapAddress)
    ])
    configuration.connection.security.securityProtocol = securityProtocol
    configuration.connection.security.saslMechanism = mechanism
    configuration.connection.security.saslUsername = "alice"
    configuration.connection.security.saslPassword = password
    configuration.connection.security.caLocation = ca
    configuration.connection.connectTimeout = .seconds(3)
    configuration.deliveryTimeout = .seconds(5)
    return try KafkaProducer(configuration: configuration)
  }

  @Test(arguments: [KafkaConfiguration.Security.SASLMechanism.scramSHA256, .scramSHA512, .plain])
  func saslLoginsAndAcls(_ mechanism: KafkaConfiguration.Security.SASLMechanism) async throws {
    let directory = NSTemporaryDirectory() + "sluice-secure-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let broker = try await Self.start(.saslPlaintext, directory: directory, certificates: nil)
    let producer = try Self.producer(broker, .saslPlaintext, mechanism: mechanism)
    let ack = try await producer.sendAcked(KafkaProducerMessage(topic: "mine", value: "hello"))
    #expect(ack.offset.rawValue == 0)
    await #expect {
      try await producer.sendAcked(KafkaProducerMessage(topic: "theirs", value: "no"))
    } throws: { ($0 as? KafkaError)?.brokerErrorCode == .topicAuthorizationFailed }
    try await producer.close()

    let wrong = try Self.producer(broker, .saslPlaintext, mechanism: mechanism, password: "nope")
    await #expect {
      try await wrong.sendAcked(KafkaProducerMessage(topic: "mine", value: "no"))
    } throws: { ($0 as? KafkaError)?.brokerErrorCode == .saslAuthenticationFailed }
    try? await wrong.close()
    try await broker.stop()
  }

  @Test func saslOverTLSVerifiesTheBrokerCertificate() async throws {
    let directory = NSTemporaryDirectory() + "sluice-secure-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let certificates = directory + "-certs"
    defer { try? FileManager.default.removeItem(atPath: certificates) }
    try Self.makeCertificates(in: certificates)
    let broker = try await Self.start(.saslSSL, directory: directory, certificates: certificates)
    let producer = try Self.producer(broker, .saslSSL, mechanism: .scramSHA512, ca: certificates + "/ca.pem")
    let ack = try await producer.sendAcked(KafkaProducerMessage(topic: "mine", value: "over TLS"))
    #expect(ack.offset.rawValue == 0)
    try await producer.close()
    // Without the CA, the system trust store does not know the broker's certificate.
    let untrusting = try Self.producer(broker, .saslSSL, mechanism: .scramSHA512)
    await #expect(throws: KafkaError.self) {
      try await untrusting.sendAcked(KafkaProducerMessage(topic: "mine", value: "no"))
    }
    try? await untrusting.close()
    try await broker.stop()
  }
}
