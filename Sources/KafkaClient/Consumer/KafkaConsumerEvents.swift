/// A change of a group consumer's assignment (swift-kafka-client's
/// `KafkaConsumerRebalance`).
public struct KafkaConsumerRebalance: Sendable, Hashable {
  public enum Kind: Sendable, Hashable {
    /// A rebalance gave this member `partitions`; fetching starts at each one's committed
    /// offset (or the configured reset).
    case assign
    /// A rebalance is taking `partitions` away. With auto-commit their positions were
    /// committed first; nothing more is delivered from them.
    case revoke
    /// The membership ended without an orderly rebalance (session expired, fenced):
    /// another member may already own `partitions`, so their positions were not committed.
    case error(String)
  }
  public let kind: Kind
  public let partitions: [KafkaTopicPartition]
  public init(kind: Kind, partitions: [KafkaTopicPartition]) {
    self.kind = kind
    self.partitions = partitions
  }
}

/// Something that happened to a consumer (swift-kafka-client's `KafkaConsumerEvent`).
/// Received through the ``KafkaConsumerEvents`` sequence from
/// ``KafkaConsumer/makeConsumerWithEvents(config:logger:)``.
public enum KafkaConsumerEvent: Sendable, Hashable {
  case rebalance(KafkaConsumerRebalance)
  /// An error the consumer met outside an iteration step (a failed auto-commit).
  case error(KafkaError)
  /// Not a real event: it keeps `switch` statements from being exhaustive, so that new
  /// events can be added (swift-kafka-client's spelling, kept for source compatibility).
  case DO_NOT_SWITCH_OVER_THIS_EXHAUSITVELY
}

/// The consumer's events, as an `AsyncSequence`. Up to 256 unread events are kept (the
/// newest); the sequence ends when the consumer closes.
public struct KafkaConsumerEvents: AsyncSequence, Sendable {
  public typealias Element = KafkaConsumerEvent
  let stream: AsyncStream<KafkaConsumerEvent>

  public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: stream.makeAsyncIterator()) }

  /// The events' iterator.
  public struct AsyncIterator: AsyncIteratorProtocol {
    var base: AsyncStream<KafkaConsumerEvent>.AsyncIterator
    public mutating func next() async -> KafkaConsumerEvent? { await base.next() }
  }
}
