/// Something that happened to a group consumer's assignment (swift-kafka-client's
/// `KafkaConsumerEvent`). Received through the ``KafkaConsumerEvents`` sequence from
/// ``KafkaConsumer/makeConsumerWithEvents(configuration:logger:)``.
public enum KafkaConsumerEvent: Sendable, Hashable {
  /// A rebalance gave this member these partitions; fetching starts at each one's
  /// committed offset (or ``KafkaConsumerConfiguration/autoOffsetReset``).
  case partitionsAssigned([KafkaTopicPartition])
  /// A rebalance is taking these partitions away. With auto-commit their positions were
  /// committed first; nothing more is delivered from them.
  case partitionsRevoked([KafkaTopicPartition])
  /// The membership ended without an orderly rebalance (session expired, fenced): another
  /// member may already own these partitions, so their positions were not committed.
  case partitionsLost([KafkaTopicPartition])
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
