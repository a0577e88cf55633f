/// Idempotent-producer bookkeeping for one partition, as a value-type state machine:
/// per producer id, the epoch and the last five batches' sequence ranges with the offsets
/// they were given (Kafka keeps five because a producer has at most five in flight).
public struct ProducerStateTable: Sendable, Hashable {
  public struct Batch: Sendable, Hashable {
    public var firstSequence: Int32
    public var lastSequence: Int32
    public var firstOffset: Int64
    public var lastOffset: Int64
  }

  public struct Entry: Sendable, Hashable {
    public var epoch: Int16
    public var batches: [Batch]
  }

  public enum Decision: Equatable, Sendable {
    /// Append it.
    case append
    /// An exact repeat of a batch already appended: answer with its offsets, append nothing.
    case duplicate(firstOffset: Int64)
    /// The epoch is older than the producer's current one (INVALID_PRODUCER_EPOCH).
    case fencedEpoch
    /// The sequence does not follow the last one (OUT_OF_ORDER_SEQUENCE_NUMBER).
    case outOfOrder(expected: Int32)
  }

  public private(set) var producers: [Int64: Entry] = [:]
  /// Upper bound on producers tracked per partition; the least recently used is forgotten.
  public var capacity = 10_000
  private var lastUse: [Int64: UInt64] = [:]
  private var clock: UInt64 = 0

  public init() {}

  static func next(_ sequence: Int32) -> Int32 {
    sequence == Int32.max ? 0 : sequence + 1
  }

  static func lastSequence(first: Int32, count: Int32) -> Int32 {
    let last = Int64(first) + Int64(count) - 1
    return Int32(truncatingIfNeeded: last > Int64(Int32.max) ? last - Int64(Int32.max) - 1 : last)
  }

  /// Decides what to do with a batch from `producerId` (≥ 0) at `epoch` whose records carry
  /// sequences `firstSequence ..< firstSequence + count`.
  public func check(producerId: Int64, epoch: Int16, firstSequence: Int32, count: Int32) -> Decision {
    guard let entry = producers[producerId] else { return .append }  // unknown producer: accept
    if epoch < entry.epoch { return .fencedEpoch }
    if epoch > entry.epoch {
      // A bumped epoch restarts sequences at 0.
      return firstSequence == 0 ? .append : .outOfOrder(expected: 0)
    }
    let last = Self.lastSequence(first: firstSequence, count: count)
    if let cached = entry.batches.first(where: {
      $0.firstSequence == firstSequence && $0.lastSequence == last
    }) {
      return .duplicate(firstOffset: cached.firstOffset)
    }
    guard let previous = entry.batches.last else { return .append }
    let expected = Self.next(previous.lastSequence)
    return firstSequence == expected ? .append : .outOfOrder(expected: expected)
  }

  /// Records an appended batch.
  public mutating func record(
    producerId: Int64, epoch: Int16, firstSequence: Int32, count: Int32, firstOffset: Int64, lastOffset: Int64
  ) {
    var entry = producers[producerId] ?? Entry(epoch: epoch, batches: [])
    if epoch != entry.epoch {
      entry = Entry(epoch: epoch, batches: [])
    }
    entry.batches.append(
      Batch(
        firstSequence: firstSequence, lastSequence: Self.lastSequence(first: firstSequence, count: count),
        firstOffset: firstOffset, lastOffset: lastOffset))
    if entry.batches.count > 5 { entry.batches.removeFirst(entry.batches.count - 5) }
    producers[producerId] = entry
    clock += 1
    lastUse[producerId] = clock
    if producers.count > capacity, let oldest = lastUse.min(by: { $0.value < $1.value })?.key {
      producers[oldest] = nil
      lastUse[oldest] = nil
    }
  }
}
