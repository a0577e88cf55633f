/// The number ``KafkaProducer/send(_:)`` gives a message, and its delivery report carries:
/// 1, 2, 3, … per producer.
public struct KafkaProducerMessageID: Hashable, Comparable, Sendable, CustomStringConvertible {
  let rawValue: UInt
  public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
  public var description: String { String(rawValue) }
}

/// What became of one message: acknowledged by the broker, or failed for good.
public struct KafkaDeliveryReport: Hashable, Sendable {
  public enum Status: Hashable, Sendable {
    case acknowledged(message: KafkaAcknowledgedMessage)
    case failure(KafkaError)
  }
  public var status: Status
  /// The id ``KafkaProducer/send(_:)`` returned for the message.
  public var id: KafkaProducerMessageID

  @usableFromInline
  init(status: Status, id: KafkaProducerMessageID) {
    self.status = status
    self.id = id
  }

  /// The acknowledged message, or the delivery failure thrown.
  @discardableResult
  public func get() throws(KafkaError) -> KafkaAcknowledgedMessage {
    switch status {
    case .acknowledged(let message): return message
    case .failure(let error): throw error
    }
  }
}

/// Something the producer reports: delivery reports of messages sent with
/// ``KafkaProducer/send(_:)``, or an error not tied to a message.
public enum KafkaProducerEvent: Sendable, Hashable {
  case deliveryReports([KafkaDeliveryReport])
  case error(KafkaError)
  /// Not a real event: it keeps `switch` statements from being exhaustive, so that new
  /// events can be added (swift-kafka-client's spelling, kept for source compatibility).
  case DO_NOT_SWITCH_OVER_THIS_EXHAUSITVELY
}

/// The producer's events, from ``KafkaProducer/makeProducerWithEvents(config:logger:)``.
/// Unbounded: iterate it, or every report is kept. It ends when the producer closes.
public struct KafkaProducerEvents: AsyncSequence, Sendable {
  public typealias Element = KafkaProducerEvent
  let stream: AsyncStream<KafkaProducerEvent>

  public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: stream.makeAsyncIterator()) }

  public struct AsyncIterator: AsyncIteratorProtocol {
    var base: AsyncStream<KafkaProducerEvent>.AsyncIterator
    public mutating func next() async -> KafkaProducerEvent? { await base.next() }
  }
}
