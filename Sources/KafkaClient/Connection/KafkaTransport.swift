public import KafkaProtocol

/// Something in this process that answers Kafka requests directly — an embedded broker.
///
/// A client configured with ``KafkaConfiguration/Transport/inProcess(_:)`` hands each
/// request to the handler as a decoded value instead of encoding it onto a socket, and takes
/// the decoded response back: no framing, no copies through the kernel, no event-loop hops.
public protocol KafkaRequestHandler: AnyObject, Sendable {
  /// Answers one request; nil when the API sends no response (Produce with acks=0).
  /// Throws when the handler cannot take requests (stopped): the client treats that as a
  /// closed connection.
  func handleKafkaRequest(_ request: KafkaRequest) async throws -> KafkaResponseBody?
}

extension KafkaConfiguration {
  /// How a client reaches brokers: TCP sockets (the default), or a handler in this process.
  public struct Transport: Sendable, Hashable, CustomStringConvertible {
    let handler: (any KafkaRequestHandler)?

    /// TCP connections to the bootstrap and advertised broker addresses.
    public static let tcp = Transport(handler: nil)

    /// Every request goes to `handler` in this process; broker addresses are not used (the
    /// bootstrap list may be empty).
    public static func inProcess(_ handler: any KafkaRequestHandler) -> Transport {
      Transport(handler: handler)
    }

    /// Whether requests go to a handler in this process.
    public var isInProcess: Bool { handler != nil }

    public static func == (a: Self, b: Self) -> Bool {
      a.handler.map(ObjectIdentifier.init) == b.handler.map(ObjectIdentifier.init)
    }
    public func hash(into hasher: inout Hasher) {
      hasher.combine(handler.map(ObjectIdentifier.init))
    }
    public var description: String { handler == nil ? "tcp" : "in-process" }
  }
}
