import KafkaProtocol
import NIOCore
import NIOPosix
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

  /// Runs a step of `session` on a thread-pool thread: PLAIN checks a password with PBKDF2
  /// (thousands of HMACs), which must not hold up the event loop's other connections.
  func offLoop<T: Sendable>(
    _ session: inout SaslSession, _ step: @escaping @Sendable (inout SaslSession) -> T
  ) async
    -> T
  {
    let copy = session
    let work: @Sendable () -> (SaslSession, T) = {
      var updated = copy
      let result = step(&updated)
      return (updated, result)
    }
    let (updated, result): (SaslSession, T)
    do {
      (updated, result) = try await NIOThreadPool.singleton.runIfActive(work)
    } catch {
      (updated, result) = work()
    }
    session = updated
    return result
  }

  /// One frame of a SASL listener's connection. Once `session` authenticates, the frame
  /// limit is raised to `socket.request.max.bytes` before the final answer is written (the
  /// client's next request may be a full-size Produce).
  func saslStep(
    _ frame: ByteBuffer, session: inout SaslSession, channel: any Channel, frameLimit: FrameLimit?
  )
    async -> SaslStepResult
  {
    let nowMs = Self.monotonicMs()
    let wasAuthenticated = session.isAuthenticated
    let maximumFrameSize = configuration.maximumFrameSize
    func raiseLimit(_ session: SaslSession) {
      if !wasAuthenticated && session.isAuthenticated {
        frameLimit?.bytes.store(maximumFrameSize, ordering: .relaxed)
      }
    }
    if session.expectsRawToken {
      let bytes = frame.getBytes(at: frame.readerIndex, length: frame.readableBytes) ?? []
      let outcome = await offLoop(&session) { $0.rawToken(bytes, nowMs: nowMs) }
      raiseLimit(session)
      switch outcome {
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
    let request: KafkaRequest
    switch Self.decode(frame, prefix) {
    case .success(let decoded): request = decoded
    case .failure(let refusal): return .close(refusal.reason)
    }
    let body: KafkaResponseBody
    let outcome: SaslSession.Outcome
    switch request.body {
    case .saslHandshake(let handshake):
      let (response, next) = session.handshake(handshake, version: prefix.apiVersion)
      (body, outcome) = (.saslHandshake(response), next)
    case .saslAuthenticate(let authenticate):
      let version = prefix.apiVersion
      let (response, next) = await offLoop(&session) {
        $0.authenticate(authenticate, version: version, nowMs: nowMs)
      }
      raiseLimit(session)
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
