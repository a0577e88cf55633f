import KafkaProtocol
import NIOCore
import SluiceKafka

/// SASL on a listener's connections: the handshake and authentication requests (and, after
/// a v0 handshake, bare tokens) are answered here through the connection's ``SaslSession``;
/// other requests pass once it has authenticated.
extension KafkaServer {
  enum SaslStepResult {
    /// The frame was a SASL exchange step, answered.
    case handled
    case close(String)
    /// An ordinary request the session allows: serve it.
    case pass
  }

  /// Kafka's `connection.failed.authentication.delay.ms`: a failed authentication is
  /// answered (and the connection closed) only after this, to slow password guessing.
  static let failedAuthenticationDelay = Duration.milliseconds(100)

  static let monotonicStart = ContinuousClock.now
  static func monotonicMs() -> Int64 {
    let elapsed = ContinuousClock.now - monotonicStart
    return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
  }

  func saslStep(_ frame: ByteBuffer, session: inout SaslSession, channel: any Channel) async -> SaslStepResult
  {
    let nowMs = Self.monotonicMs()
    if session.expectsRawToken {
      let bytes = frame.getBytes(at: frame.readerIndex, length: frame.readableBytes) ?? []
      switch session.rawToken(bytes, nowMs: nowMs) {
      case .success(let token):
        var out = channel.allocator.buffer(capacity: 4 + token.count)
        out.writeInteger(Int32(token.count))
        out.writeBytes(token)
        do {
          try await channel.writeAndFlush(out)
        } catch {
          return .close("write failed: \(error)")
        }
        return .handled
      case .failure(let error):
        try? await Task.sleep(for: Self.failedAuthenticationDelay)
        return .close("SASL authentication failed: \(error)")
      }
    }
    guard let prefix = RequestHeaderPrefix.peek(frame) else {
      return .close("frame of \(frame.readableBytes) bytes is too short for a request header")
    }
    guard prefix.apiKey == .saslHandshake || prefix.apiKey == .saslAuthenticate else {
      if let refusal = session.refusal(of: prefix.apiKey, nowMs: nowMs) { return .close(refusal) }
      return .pass
    }
    guard let versions = KafkaFrontDoor.supportedVersions(prefix.apiKey), versions.contains(prefix.apiVersion)
    else {
      return .close("unsupported request \(prefix.apiKey) v\(prefix.apiVersion)")
    }
    let request: KafkaRequest
    do {
      request = try KafkaRequest.decode(frame: frame)
    } catch {
      return .close("malformed \(prefix.apiKey) v\(prefix.apiVersion) request: \(error)")
    }
    let body: KafkaResponseBody
    let outcome: SaslSession.Outcome
    switch request.body {
    case .saslHandshake(let handshake):
      let (response, next) = session.handshake(handshake, version: prefix.apiVersion)
      (body, outcome) = (.saslHandshake(response), next)
    case .saslAuthenticate(let authenticate):
      let (response, next) = session.authenticate(authenticate, version: prefix.apiVersion, nowMs: nowMs)
      (body, outcome) = (.saslAuthenticate(response), next)
      if response.errorCode == ErrorCode.saslAuthenticationFailed.rawValue {
        try? await Task.sleep(for: Self.failedAuthenticationDelay)
      }
    default:
      return .close("unexpected request")
    }
    guard
      case .send(let bytes) = encode(
        KafkaReply(body: body), correlationId: prefix.correlationId, apiKey: prefix.apiKey,
        version: prefix.apiVersion)
    else { return .close("response encoding failed") }
    do {
      try await channel.writeAndFlush(bytes)
    } catch {
      return .close("write failed: \(error)")
    }
    if case .replyThenClose(let reason) = outcome { return .close(reason) }
    return .handled
  }
}
