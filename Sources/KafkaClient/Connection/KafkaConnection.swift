import KafkaProtocol
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SluiceSASL
import Synchronization

/// A request on its way to the socket, with the promise its response completes (nil when
/// the broker sends none: Produce with acks=0).
struct OutboundRequest: Sendable {
  var frame: ByteBuffer
  var correlationId: Int32
  var promise: EventLoopPromise<ByteBuffer>?
}

/// Matches response frames to requests. Kafka answers in request order on a connection, so
/// pending requests form a FIFO; a response whose correlation id is not the oldest pending
/// one means the stream is out of step, and the connection is closed.
final class ResponseMatcher: ChannelDuplexHandler {
  typealias InboundIn = ByteBuffer
  typealias OutboundIn = OutboundRequest
  typealias OutboundOut = ByteBuffer

  private var pending = CircularBuffer<(correlationId: Int32, promise: EventLoopPromise<ByteBuffer>)>()
  private var failure: KafkaError?

  func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    let request = unwrapOutboundIn(data)
    if let failure {
      request.promise?.fail(failure)
      promise?.fail(failure)
      return
    }
    if let responsePromise = request.promise {
      pending.append((request.correlationId, responsePromise))
    }
    context.write(wrapOutboundOut(request.frame), promise: promise)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let frame = unwrapInboundIn(data)
    guard let correlationId = frame.getInteger(at: frame.readerIndex, as: Int32.self),
      let first = pending.first, first.correlationId == correlationId
    else {
      fail(KafkaError(.protocolError, "response out of order or unexpected"), context: context)
      return
    }
    pending.removeFirst()
    first.promise.succeed(frame)
  }

  func channelInactive(context: ChannelHandlerContext) {
    failAll(failure ?? KafkaError(.connectionClosed, "connection closed"))
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    fail(
      error as? KafkaError ?? KafkaError(.connectionClosed, "connection error: \(error)"), context: context)
  }

  private func fail(_ error: KafkaError, context: ChannelHandlerContext) {
    failAll(error)
    context.close(promise: nil)
  }

  private func failAll(_ error: KafkaError) {
    if failure == nil { failure = error }
    while let entry = pending.popFirst() {
      entry.promise.fail(error)
    }
  }
}

/// One connection to one broker: frames requests with fresh correlation ids, pipelines
/// them, and hands each caller its own response. API versions are negotiated once on
/// connect (ApiVersions); ``version(for:)`` picks the highest version both sides support.
///
/// Usually a TCP channel; with an in-process transport, requests go straight to a
/// ``KafkaRequestHandler`` as values (no encoding, no socket).
final class KafkaConnection: Sendable {
  enum Link: Sendable {
    case channel(any Channel)
    case inProcess(any KafkaRequestHandler)
  }
  let link: Link
  let address: KafkaConfiguration.BrokerAddress
  let clientId: String
  let requestTimeout: Duration
  private let nextCorrelationId = Atomic<Int32>(1)
  private let brokerVersions: Mutex<[Int16: ClosedRange<Int16>]> = Mutex([:])
  private let closedInProcess = Atomic<Bool>(false)

  private init(link: Link, address: KafkaConfiguration.BrokerAddress, settings: KafkaConfiguration.Connection)
  {
    self.link = link
    self.address = address
    self.clientId = settings.clientId
    self.requestTimeout = settings.requestTimeout
  }

  var isActive: Bool {
    switch link {
    case .channel(let channel): channel.isActive
    case .inProcess: !closedInProcess.load(ordering: .relaxed)
    }
  }

  /// Connects and negotiates API versions.
  static func connect(
    to address: KafkaConfiguration.BrokerAddress, settings: KafkaConfiguration.Connection,
    group: any EventLoopGroup, logger: Logger
  ) async throws -> KafkaConnection {
    let link: Link
    if let handler = settings.transport.handler {
      link = .inProcess(handler)
    } else {
      link = .channel(try await openChannel(to: address, settings: settings, group: group))
    }
    let connection = KafkaConnection(link: link, address: address, settings: settings)
    do {
      try await connection.negotiateVersions()
      if case .channel = link, settings.security.securityProtocol.usesSASL {
        try await connection.authenticate(settings.security)
      }
    } catch {
      connection.close()
      throw error
    }
    logger.debug("connected to \(address) (\(settings.transport))")
    return connection
  }

  private static func openChannel(
    to address: KafkaConfiguration.BrokerAddress, settings: KafkaConfiguration.Connection,
    group: any EventLoopGroup
  ) async throws -> any Channel {
    let maximumFrameSize = settings.maximumFrameSize
    let tls =
      try settings.security.securityProtocol.usesTLS
      ? TLSContexts.shared.context(for: settings.security) : nil
    // The name checked against the broker's certificate (not for an IP address).
    let serverName =
      address.host.contains(where: { $0.isLetter }) && !address.host.contains(":") ? address.host : nil
    do {
      return try await ClientBootstrap(group: group)
        .connectTimeout(settings.requestTimeout.timeAmount)
        .channelOption(.socketOption(.tcp_nodelay), value: 1)
        .channelInitializer { channel in
          channel.eventLoop.makeCompletedFuture {
            if let tls {
              try channel.pipeline.syncOperations.addHandler(
                try NIOSSLClientHandler(context: tls, serverHostname: serverName))
            }
            try channel.pipeline.syncOperations.addHandlers(
              ByteToMessageHandler(KafkaFrameDecoder(maximumFrameSize: maximumFrameSize)),
              ResponseMatcher())
          }
        }
        .connect(host: address.host, port: address.port).get()
    } catch {
      throw KafkaError(.connectionFailed, "cannot connect to \(address): \(error)")
    }
  }

  /// SASL authentication (SaslHandshake v1, then SaslAuthenticate rounds): PLAIN or SCRAM.
  private func authenticate(_ security: KafkaConfiguration.Security) async throws {
    guard let username = security.saslUsername, let password = security.saslPassword else {
      throw KafkaError(
        .config,
        "security.protocol \(security.securityProtocol.rawValue) needs sasl.username and sasl.password")
    }
    let mechanism = security.saslMechanism.rawValue
    guard
      case .saslHandshake(let handshake) = try await send(
        .saslHandshake(SaslHandshakeRequest(mechanism: mechanism)),
        version: try version(for: .saslHandshake, min: 1, max: 1))
    else { throw KafkaError(.protocolError, "not a SaslHandshake response") }
    if handshake.errorCode != 0 {
      throw KafkaError.broker(
        ErrorCode(rawValue: handshake.errorCode), "SASL handshake",
        message: "broker offers \(handshake.mechanisms.joined(separator: ", "))")
    }
    let authenticateVersion = try version(for: .saslAuthenticate, max: 2)
    func round(_ bytes: [UInt8]) async throws -> [UInt8] {
      guard
        case .saslAuthenticate(let response) = try await send(
          .saslAuthenticate(SaslAuthenticateRequest(authBytes: ByteBuffer(bytes: bytes))),
          version: authenticateVersion)
      else { throw KafkaError(.protocolError, "not a SaslAuthenticate response") }
      if response.errorCode != 0 {
        throw KafkaError.broker(
          ErrorCode(rawValue: response.errorCode), "SASL authentication as \(username)",
          message: response.errorMessage)
      }
      return response.authBytes.getBytes(
        at: response.authBytes.readerIndex, length: response.authBytes.readableBytes) ?? []
    }
    switch security.saslMechanism {
    case .plain:
      _ = try await round(PlainSASL.message(username: username, password: password))
    case .scramSHA256, .scramSHA512:
      var exchange = SCRAMClientExchange(
        mechanism: security.saslMechanism == .scramSHA256 ? .sha256 : .sha512, username: username,
        password: password)
      let serverFirst = try await round(exchange.first())
      let serverFinal: [UInt8]
      do {
        serverFinal = try await round(try exchange.final(answering: serverFirst))
        try exchange.verify(serverFinal: serverFinal)
      } catch let error as SASLError {
        throw KafkaError(.protocolError, "SCRAM: \(error.message)")
      }
    }
  }

  private func negotiateVersions() async throws {
    var request = ApiVersionsRequest()
    request.clientSoftwareName = "sluice-swift"
    request.clientSoftwareVersion = "0.1.0"
    var response = try await apiVersions(request, version: 3)
    if ErrorCode(rawValue: response.errorCode) == .unsupportedVersion {
      response = try await apiVersions(request, version: 0)
    }
    try ErrorCode(rawValue: response.errorCode).check("ApiVersions")
    var table: [Int16: ClosedRange<Int16>] = [:]
    for api in response.apiKeys where api.minVersion <= api.maxVersion {
      table[api.apiKey] = api.minVersion...api.maxVersion
    }
    brokerVersions.withLock { $0 = table }
  }

  private func apiVersions(_ request: ApiVersionsRequest, version: Int16) async throws -> ApiVersionsResponse
  {
    let response = try await send(.apiVersions(request), version: version)
    guard case .apiVersions(let body) = response else {
      throw KafkaError(.protocolError, "not an ApiVersions response")
    }
    return body
  }

  /// The highest version of `key` that both this client (up to `clientMax`) and the broker
  /// support; throws `.unsupported` when the ranges do not meet.
  func version(for key: ApiKey, min clientMin: Int16 = 0, max clientMax: Int16) throws(KafkaError) -> Int16 {
    guard let broker = brokerVersions.withLock({ $0[key.rawValue] }) else {
      throw KafkaError(.unsupported, "broker \(address) does not support \(key.name)")
    }
    let high = Swift.min(broker.upperBound, clientMax)
    guard high >= Swift.max(broker.lowerBound, clientMin) else {
      throw KafkaError(
        .unsupported,
        "\(key.name): broker \(address) supports v\(broker.lowerBound)-\(broker.upperBound), "
          + "client v\(clientMin)-\(clientMax)")
    }
    return high
  }

  func supports(_ key: ApiKey) -> Bool { brokerVersions.withLock { $0[key.rawValue] != nil } }

  /// Sends a request and waits for its response (with the connection's request timeout:
  /// on expiry the connection is closed, failing everything pending on it).
  func send(_ body: KafkaRequestBody, version: Int16, timeout: Duration? = nil) async throws
    -> KafkaResponseBody
  {
    let correlationId = nextCorrelationId.wrappingAdd(1, ordering: .relaxed).oldValue
    let request = KafkaRequest(
      correlationId: correlationId, clientId: clientId, apiVersion: version, body: body)
    let channel: any Channel
    switch link {
    case .inProcess(let handler):
      guard !closedInProcess.load(ordering: .relaxed) else {
        throw KafkaError(.connectionClosed, "connection closed")
      }
      let response: KafkaResponseBody?
      do {
        response = try await handler.handleKafkaRequest(request)
      } catch {
        throw error as? KafkaError ?? KafkaError(.connectionClosed, "in-process broker: \(error)")
      }
      guard let response else { throw KafkaError(.protocolError, "no response to \(body.apiKey.name)") }
      return response
    case .channel(let c):
      channel = c
    }
    var buffer = channel.allocator.buffer(capacity: 256)
    do { try request.encodeFrame(into: &buffer) } catch { throw KafkaError(error) }
    let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
    let limit = timeout ?? requestTimeout
    let apiName = body.apiKey.name
    let timer = channel.eventLoop.scheduleTask(in: limit.timeAmount) {
      channel.pipeline.fireErrorCaught(KafkaError(.timedOut, "\(apiName) request timed out after \(limit)"))
    }
    channel.writeAndFlush(
      OutboundRequest(frame: buffer, correlationId: correlationId, promise: promise), promise: nil)
    let frame: ByteBuffer
    do {
      frame = try await promise.futureResult.get()
      timer.cancel()
    } catch {
      timer.cancel()
      throw error
    }
    do {
      return try KafkaResponse.decode(frame: frame, apiKey: body.apiKey, apiVersion: version).body
    } catch {
      throw KafkaError(error)
    }
  }

  /// Sends a request the broker will not answer (Produce with acks=0); returns once written.
  func sendWithoutResponse(_ body: KafkaRequestBody, version: Int16) async throws {
    let correlationId = nextCorrelationId.wrappingAdd(1, ordering: .relaxed).oldValue
    let request = KafkaRequest(
      correlationId: correlationId, clientId: clientId, apiVersion: version, body: body)
    switch link {
    case .inProcess(let handler):
      guard !closedInProcess.load(ordering: .relaxed) else {
        throw KafkaError(.connectionClosed, "connection closed")
      }
      do {
        _ = try await handler.handleKafkaRequest(request)
      } catch {
        throw error as? KafkaError ?? KafkaError(.connectionClosed, "in-process broker: \(error)")
      }
    case .channel(let channel):
      var buffer = channel.allocator.buffer(capacity: 256)
      do { try request.encodeFrame(into: &buffer) } catch { throw KafkaError(error) }
      try await channel.writeAndFlush(
        OutboundRequest(frame: buffer, correlationId: correlationId, promise: nil))
    }
  }

  func close() {
    switch link {
    case .channel(let channel): channel.close(promise: nil)
    case .inProcess: closedInProcess.store(true, ordering: .relaxed)
    }
  }
}

/// TLS contexts by security settings: one per distinct configuration, built on first use
/// (reading the CA and certificate files once).
final class TLSContexts: Sendable {
  static let shared = TLSContexts()
  let contexts = Mutex<[KafkaConfiguration.Security: NIOSSLContext]>([:])

  func context(for security: KafkaConfiguration.Security) throws(KafkaError) -> NIOSSLContext {
    if let cached = contexts.withLock({ $0[security] }) { return cached }
    var configuration = TLSConfiguration.makeClientConfiguration()
    configuration.minimumTLSVersion = .tlsv12
    configuration.certificateVerification =
      security.verifyHostname ? .fullVerification : .noHostnameVerification
    do {
      if let ca = security.caLocation { configuration.trustRoots = .file(ca) }
      if let certificate = security.certificateLocation {
        configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map {
          .certificate($0)
        }
        guard let key = security.keyLocation else {
          throw KafkaError(.config, "ssl.certificate.location needs ssl.key.location")
        }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
      }
      let context = try NIOSSLContext(configuration: configuration)
      contexts.withLock { $0[security] = context }
      return context
    } catch let error as KafkaError {
      throw error
    } catch {
      throw KafkaError(.config, "TLS settings: \(error)")
    }
  }
}

extension Duration {
  var timeAmount: TimeAmount {
    .nanoseconds(components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000)
  }
}
