public import KafkaProtocol

/// An error from the client: a broker error code, a connection problem, a timeout, bad
/// configuration or undecodable data.
///
/// Shaped like `PSQLError` and swift-kafka-client's `KafkaError`: a struct with a nested
/// `Code` of static members, so new codes do not break a caller's `switch`.
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    enum Base: String, Hashable, Sendable {
      case broker, connectionFailed, connectionClosed, timedOut, config, protocolError, closed, unsupported
      case queueFull
    }
    let base: Base
    /// The broker answered with an error code (see ``KafkaError/brokerErrorCode``).
    public static let broker = Code(base: .broker)
    /// No broker could be reached.
    public static let connectionFailed = Code(base: .connectionFailed)
    /// A connection closed with requests outstanding.
    public static let connectionClosed = Code(base: .connectionClosed)
    /// A request or delivery timed out.
    public static let timedOut = Code(base: .timedOut)
    /// Invalid configuration or arguments.
    public static let config = Code(base: .config)
    /// The broker sent bytes that could not be decoded, or answered out of order.
    public static let protocolError = Code(base: .protocolError)
    /// The producer, consumer or admin client was already closed.
    public static let closed = Code(base: .closed)
    /// The broker does not offer an API (or version) this operation needs.
    public static let unsupported = Code(base: .unsupported)
    /// The producer's buffer (``KafkaProducerConfiguration/bufferMemory``) is full:
    /// ``KafkaProducer/send(_:)`` does not wait (librdkafka's QUEUE_FULL); try again later.
    public static let queueFull = Code(base: .queueFull)
    public var description: String { base.rawValue }
  }

  public var code: Code
  /// The broker's error code when ``code`` is ``Code/broker``.
  public var brokerErrorCode: ErrorCode?
  public var message: String

  public init(_ code: Code, _ message: String, brokerErrorCode: ErrorCode? = nil) {
    self.code = code
    self.message = message
    self.brokerErrorCode = brokerErrorCode
  }

  /// Wraps a broker error code; `context` says what was being done.
  public static func broker(_ errorCode: ErrorCode, _ context: String, message: String? = nil) -> KafkaError {
    let detail = message.map { ": \($0)" } ?? ""
    return KafkaError(.broker, "\(context): \(errorCode.name)\(detail)", brokerErrorCode: errorCode)
  }

  /// Whether trying again (after a metadata refresh or reconnect) may succeed.
  public var isRetriable: Bool {
    switch code {
    case .broker: brokerErrorCode?.isRetriable ?? false
    case .connectionFailed, .connectionClosed, .timedOut, .queueFull: true
    default: false
    }
  }

  /// Errors after which the producer or consumer cannot continue (fenced, unauthorized,
  /// unsupported, misconfigured, closed).
  public var isFatal: Bool {
    switch code {
    case .config, .closed, .unsupported: return true
    case .broker:
      guard let c = brokerErrorCode else { return false }
      return [
        ErrorCode.invalidProducerEpoch, .clusterAuthorizationFailed, .topicAuthorizationFailed,
        .unsupportedVersion, .unsupportedForMessageFormat, .saslAuthenticationFailed,
        ErrorCode(rawValue: 90),  // PRODUCER_FENCED
      ].contains(c)
    default: return false
    }
  }

  public var description: String { "KafkaError(\(code)): \(message)" }
}

extension ErrorCode {
  /// Throws unless `.none`.
  func check(_ context: @autoclosure () -> String, message: String? = nil) throws(KafkaError) {
    if self != .none { throw KafkaError.broker(self, context(), message: message) }
  }
}

extension KafkaError {
  init(_ error: KafkaProtocolError) {
    self.init(.protocolError, "\(error)")
  }
}
