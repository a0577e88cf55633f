public import KafkaProtocol
import NIOCore
public import NIOSSL
import Synchronization
import X509

/// Kafka's listener security protocols (`security.protocol`).
public typealias SecurityProtocol = KafkaSecurityProtocol

/// `ssl.client.auth`.
public enum ClientAuthentication: String, Sendable {
  case none, requested, required
}

/// A listener's TLS identity: the certificate chain and key from PEM files, with an optional
/// CA bundle for client certificates. ``reload()`` (on SIGHUP) reads the files again; new
/// connections use the new certificate, open ones keep theirs.
public final class TLSIdentity: Sendable {
  public let certificatePath: String
  public let keyPath: String
  public let caPath: String?
  public let clientAuthentication: ClientAuthentication
  let current: Mutex<NIOSSLContext>

  public init(
    certificatePath: String, keyPath: String, caPath: String?, clientAuthentication: ClientAuthentication
  )
    throws
  {
    self.certificatePath = certificatePath
    self.keyPath = keyPath
    self.caPath = caPath
    self.clientAuthentication = clientAuthentication
    current = Mutex(
      try Self.makeContext(
        certificatePath: certificatePath, keyPath: keyPath, caPath: caPath,
        clientAuthentication: clientAuthentication
      ))
  }

  public var context: NIOSSLContext { current.withLock { $0 } }

  /// Reads the certificate, key and CA files again; on failure the old ones stay.
  public func reload() throws {
    let fresh = try Self.makeContext(
      certificatePath: certificatePath, keyPath: keyPath, caPath: caPath,
      clientAuthentication: clientAuthentication)
    current.withLock { $0 = fresh }
  }

  static func makeContext(
    certificatePath: String, keyPath: String, caPath: String?, clientAuthentication: ClientAuthentication
  ) throws -> NIOSSLContext {
    let chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
    guard !chain.isEmpty else { throw TLSConfigurationError("no certificate in \(certificatePath)") }
    let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
    var configuration = TLSConfiguration.makeServerConfiguration(
      certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
    configuration.minimumTLSVersion = .tlsv12
    switch clientAuthentication {
    case .none: configuration.certificateVerification = .none
    case .requested: configuration.certificateVerification = .optionalVerification
    case .required: configuration.certificateVerification = .noHostnameVerification
    }
    if clientAuthentication != .none {
      guard let caPath else {
        throw TLSConfigurationError("ssl.client.auth=\(clientAuthentication.rawValue) needs ssl.ca.location")
      }
      configuration.trustRoots = .file(caPath)
    }
    return try NIOSSLContext(configuration: configuration)
  }

  /// Kafka's principal for a client certificate: `User:` and the subject's distinguished
  /// name in RFC 2253 form, most specific first (`User:CN=client,OU=eng,O=Acme`).
  public static func principal(of certificate: NIOSSLCertificate) -> String? {
    guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else {
      return nil
    }
    return "User:" + String(describing: parsed.subject)
  }
}

public struct TLSConfigurationError: Error, CustomStringConvertible {
  public var description: String
  public init(_ description: String) { self.description = description }
}

/// One Kafka listener: where it binds, what it tells clients, and how it secures
/// connections (`--listen SASL_SSL://0.0.0.0:9093`).
public struct ListenerConfiguration: Sendable {
  public var securityProtocol: SecurityProtocol
  public var host: String
  public var port: Int
  /// What Metadata tells clients of this listener; nil: the broker's advertised address.
  public var advertised: (host: String, port: Int32)?
  public var tls: TLSIdentity?
  /// `sasl.enabled.mechanisms`.
  public var saslMechanisms: [String]
  /// `connections.max.reauth.ms` (0: sessions never expire).
  public var reauthenticationMs: Int64

  public init(
    securityProtocol: SecurityProtocol = .plaintext, host: String = "127.0.0.1", port: Int = 9092,
    advertised: (host: String, port: Int32)? = nil, tls: TLSIdentity? = nil,
    saslMechanisms: [String] = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"], reauthenticationMs: Int64 = 0
  ) {
    self.securityProtocol = securityProtocol
    self.host = host
    self.port = port
    self.advertised = advertised
    self.tls = tls
    self.saslMechanisms = saslMechanisms
    self.reauthenticationMs = reauthenticationMs
  }

  /// Whether connections here are authenticated (SASL, or TLS with client certificates
  /// required): then ACLs default to closed (`allow.everyone.if.no.acl.found=false`).
  public var authenticates: Bool {
    securityProtocol.usesSASL || (securityProtocol == .ssl && tls?.clientAuthentication == .required)
  }
}

/// The largest frame a connection may send, changeable while it is open: small until a SASL
/// connection has authenticated (as Kafka's 512 KiB `sasl.server.max.receive.size`), then
/// `socket.request.max.bytes`.
final class FrameLimit: Sendable {
  let bytes: Atomic<Int>
  init(_ bytes: Int) { self.bytes = Atomic(bytes) }
}

/// ``KafkaFrameDecoder``'s framing with a limit that can change (``FrameLimit``).
struct LimitedFrameDecoder: NIOSingleStepByteToMessageDecoder {
  typealias InboundOut = ByteBuffer
  let limit: FrameLimit

  mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
    try KafkaFrameDecoder.nextFrame(from: &buffer, maximumFrameSize: limit.bytes.load(ordering: .relaxed))
  }

  mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
    try decode(buffer: &buffer)
  }
}
