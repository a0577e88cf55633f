public import KafkaProtocol
import NIOCore
public import SluiceBroker
public import SluiceSASL

/// One connection's SASL state on a SASL_PLAINTEXT or SASL_SSL listener: a value-type state
/// machine (time passed in) that the listener consults before each request.
///
/// Until authenticated, only ApiVersions, SaslHandshake and SaslAuthenticate pass; anything
/// else closes the connection, as Kafka does. After SaslHandshake v0 the client sends bare
/// length-prefixed SASL tokens with no request header (`expectsRawToken`); after v1, tokens
/// travel in SaslAuthenticate requests. With `connections.max.reauth.ms` the session has a
/// lifetime (KIP-368): the client re-authenticates on the same connection before it ends
/// (as the same principal), or the connection is closed at its next request.
public struct SaslSession: Sendable {
  public enum Outcome: Sendable, Equatable {
    /// Send this response (or raw token) and go on.
    case reply
    /// Send it, then close the connection.
    case replyThenClose(String)
  }

  enum Phase: Sendable {
    case awaitingHandshake
    case handshaken(mechanism: String, raw: Bool)
    case scram(SCRAMServerExchange, raw: Bool)
    case authenticated
  }

  public let mechanisms: [String]
  let security: SecurityStore
  let reauthenticationMs: Int64
  var phase = Phase.awaitingHandshake
  /// The authenticated principal (`User:alice`); kept across re-authentication.
  public private(set) var principal: String?
  /// When the current session ends (monotonic ms); nil: never.
  public private(set) var expiresAtMs: Int64?

  public init(mechanisms: [String], security: SecurityStore, reauthenticationMs: Int64) {
    self.mechanisms = mechanisms
    self.security = security
    self.reauthenticationMs = reauthenticationMs
  }

  public var isAuthenticated: Bool { principal != nil }

  /// After a v0 handshake: the next frame is a bare SASL token, not a request.
  public var expectsRawToken: Bool {
    switch phase {
    case .handshaken(_, let raw), .scram(_, let raw): raw
    default: false
    }
  }

  /// Why a request for `apiKey` may not be served now (the connection is then closed), or
  /// nil if it may.
  public func refusal(of apiKey: ApiKey, nowMs: Int64) -> String? {
    if apiKey == .apiVersions || apiKey == .saslHandshake || apiKey == .saslAuthenticate { return nil }
    guard principal != nil else { return "\(apiKey) request before SASL authentication" }
    if case .authenticated = phase {} else { return "\(apiKey) request during SASL re-authentication" }
    if let expiresAtMs, nowMs >= expiresAtMs { return "SASL session expired (connections.max.reauth.ms)" }
    return nil
  }

  public mutating func handshake(_ request: SaslHandshakeRequest, version: Int16) -> (
    SaslHandshakeResponse, Outcome
  ) {
    var response = SaslHandshakeResponse()
    response.mechanisms = mechanisms
    switch phase {
    case .awaitingHandshake, .authenticated:
      break
    default:
      response.errorCode = ErrorCode.illegalSaslState.rawValue
      return (response, .replyThenClose("SaslHandshake in the middle of an exchange"))
    }
    if case .authenticated = phase, version == 0 {
      response.errorCode = ErrorCode.illegalSaslState.rawValue
      return (response, .replyThenClose("re-authentication needs SaslHandshake v1"))
    }
    guard mechanisms.contains(request.mechanism) else {
      response.errorCode = ErrorCode.unsupportedSaslMechanism.rawValue
      return (response, .replyThenClose("unsupported SASL mechanism \(request.mechanism)"))
    }
    phase = .handshaken(mechanism: request.mechanism, raw: version == 0)
    return (response, .reply)
  }

  /// One SaslAuthenticate request (after a v1 handshake).
  public mutating func authenticate(_ request: SaslAuthenticateRequest, version: Int16, nowMs: Int64)
    -> (SaslAuthenticateResponse, Outcome)
  {
    var response = SaslAuthenticateResponse()
    if expectsRawToken
      || {
        if case .handshaken = phase { return false }
        if case .scram = phase { return false }
        return true
      }()
    {
      response.errorCode = ErrorCode.illegalSaslState.rawValue
      response.errorMessage = "SaslAuthenticate without a SaslHandshake v1 first"
      return (response, .replyThenClose(response.errorMessage ?? ""))
    }
    let bytes =
      request.authBytes.getBytes(at: request.authBytes.readerIndex, length: request.authBytes.readableBytes)
      ?? []
    switch step(bytes, nowMs: nowMs) {
    case .challenge(let token):
      response.authBytes = ByteBuffer(bytes: token)
      return (response, .reply)
    case .done(let token):
      response.authBytes = ByteBuffer(bytes: token)
      if version >= 1, let expiresAtMs { response.sessionLifetimeMs = max(1, expiresAtMs - nowMs) }
      return (response, .reply)
    case .failed(let error):
      response.errorCode = ErrorCode.saslAuthenticationFailed.rawValue
      response.errorMessage = error.message
      return (response, .replyThenClose(error.message))
    }
  }

  /// One bare token (after a v0 handshake): the bytes to send back as a bare frame (PLAIN's
  /// success is an empty one), or a failure (Kafka closes the connection without an answer).
  public mutating func rawToken(_ bytes: [UInt8], nowMs: Int64) -> Result<[UInt8], SASLError> {
    switch step(bytes, nowMs: nowMs) {
    case .challenge(let token), .done(let token): .success(token)
    case .failed(let error): .failure(error)
    }
  }

  enum Step {
    case challenge([UInt8])
    case done([UInt8])
    case failed(SASLError)
  }

  mutating func step(_ bytes: [UInt8], nowMs: Int64) -> Step {
    switch phase {
    case .handshaken(let mechanism, let raw):
      if mechanism == "PLAIN" {
        phase = .awaitingHandshake
        guard let (username, password) = PlainSASL.parse(bytes) else {
          return .failed(SASLError("invalid SASL/PLAIN message"))
        }
        guard security.verify(user: username, password: password) else {
          return .failed(SASLError("Authentication failed: Invalid username or password"))
        }
        return finish(username: username, token: [], nowMs: nowMs)
      }
      guard let scram = SCRAMMechanism(rawValue: mechanism) else {
        phase = .awaitingHandshake
        return .failed(SASLError("unsupported SASL mechanism \(mechanism)"))
      }
      let security = self.security
      var exchange = SCRAMServerExchange(mechanism: scram) { security.credential(user: $0, mechanism: scram) }
      let answer = exchange.respond(to: bytes)
      phase = .scram(exchange, raw: raw)
      return scramStep(answer, nowMs: nowMs)
    case .scram(var exchange, let raw):
      let answer = exchange.respond(to: bytes)
      phase = .scram(exchange, raw: raw)
      return scramStep(answer, nowMs: nowMs)
    default:
      return .failed(SASLError("SASL token without a handshake"))
    }
  }

  mutating func scramStep(_ answer: SCRAMServerExchange.Step, nowMs: Int64) -> Step {
    switch answer {
    case .challenge(let token): return .challenge(token)
    case .success(let final, let username): return finish(username: username, token: final, nowMs: nowMs)
    case .failure(let error):
      defer { phase = .awaitingHandshake }
      if error == SCRAMServerExchange.invalidCredentials, case .scram(let exchange, _) = phase {
        return .failed(SASLError("\(error.message) \(exchange.mechanism.rawValue)"))
      }
      return .failed(error)
    }
  }

  mutating func finish(username: String, token: [UInt8], nowMs: Int64) -> Step {
    let authenticated = "User:" + username
    if let principal, principal != authenticated {
      phase = .awaitingHandshake
      return .failed(SASLError("re-authentication must be as \(principal), not \(authenticated)"))
    }
    principal = authenticated
    phase = .authenticated
    expiresAtMs = reauthenticationMs > 0 ? nowMs + reauthenticationMs : nil
    return .done(token)
  }
}
