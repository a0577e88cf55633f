public import NIOCore

/// A message delivered by a feed receiver, in sequence order per session.
public struct FeedMessage: Sendable {
  public var session: MoldUDP64.Session
  public var sequence: UInt64
  public var payload: ByteBuffer
  /// Whether it came from the retransmission server rather than the multicast group.
  public var recovered: Bool

  public init(session: MoldUDP64.Session, sequence: UInt64, payload: ByteBuffer, recovered: Bool) {
    self.session = session
    self.sequence = sequence
    self.payload = payload
    self.recovered = recovered
  }

  /// The partition of a Sluice feed session (`V`/`R` + 9 digits), else nil.
  public var partition: Int32? { FeedSession.partition(session) }
  /// The Kafka offset of a Sluice feed message: sequence − 1.
  public var offset: Int64 { Int64(clamping: sequence) - 1 }
  /// The record envelope of a `record` feed (session starting with `R`); nil for a `value`
  /// feed or an envelope that does not decode.
  public var record: FeedRecord? {
    guard FeedSession.payload(session) == .record else { return nil }
    return try? FeedRecord(decoding: payload)
  }
}

/// How Sluice names a feed's sessions: the payload kind, then the partition in 9 digits.
public enum FeedSession {
  public enum Payload: String, Sendable {
    case value
    case record

    var letter: Character { self == .value ? "V" : "R" }
  }

  public static func session(partition: Int32, payload: Payload) -> MoldUDP64.Session {
    let digits = String(partition)
    return MoldUDP64.Session(
      String(payload.letter) + String(repeating: "0", count: max(0, 9 - digits.count)) + digits)!
  }

  public static func partition(_ session: MoldUDP64.Session) -> Int32? {
    guard payload(session) != nil else { return nil }
    let digits = session.bytes.dropFirst()
    guard digits.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
    return Int32(String(decoding: digits, as: UTF8.self))
  }

  public static func payload(_ session: MoldUDP64.Session) -> Payload? {
    switch session.bytes[0] {
    case UInt8(ascii: "V"): .value
    case UInt8(ascii: "R"): .record
    default: nil
    }
  }
}

/// What a receiver has seen: counts for the accuracy of a feed.
public struct FeedStatistics: Sendable, Equatable, CustomStringConvertible {
  /// Datagrams received from the group, and from the retransmission server.
  public var packets = 0
  public var retransmittedPackets = 0
  /// Datagrams that were not MoldUDP64.
  public var malformed = 0
  /// Messages delivered in order, and how many of them came from retransmission.
  public var delivered = 0
  public var recovered = 0
  /// Messages received again (already delivered or already buffered).
  public var duplicates = 0
  /// Gaps seen (a packet or heartbeat past the next expected number), and the messages
  /// they left missing.
  public var gaps = 0
  public var missing: UInt64 = 0
  /// Retransmission requests sent.
  public var requests = 0
  /// Messages the server no longer had (past retention): skipped.
  public var unrecoverable: UInt64 = 0
  /// Out-of-order messages not buffered because the buffer was full (requested again).
  public var overflowed = 0
  /// Ends of session seen.
  public var endsOfSession = 0
  /// Sessions that started again from a lower sequence number after their end.
  public var restarts = 0
  /// Packets of new sessions refused because `maxSessions` were tracked.
  public var refusedSessions = 0

  public init() {}

  public var description: String {
    "packets=\(packets) retransmitted_packets=\(retransmittedPackets) malformed=\(malformed) "
      + "delivered=\(delivered) recovered=\(recovered) duplicates=\(duplicates) gaps=\(gaps) "
      + "missing=\(missing) requests=\(requests) unrecoverable=\(unrecoverable) overflowed=\(overflowed) "
      + "ends_of_session=\(endsOfSession) restarts=\(restarts) refused_sessions=\(refusedSessions)"
  }
}

/// The receiving side of a MoldUDP64 feed as a value-type state machine (no sockets, an
/// injected clock): orders messages by sequence number per session, finds gaps, says which
/// retransmission requests to send and when to send them again, and delivers each message
/// once, in order.
public struct FeedSequencer: Sendable {
  public struct Configuration: Sendable {
    /// Start every session here (catch up through retransmission); nil: at the first
    /// packet or heartbeat seen.
    public var from: UInt64?
    /// A request still unanswered after this long is sent again.
    public var requestTimeoutMs: Int64 = 100
    /// Out-of-order messages buffered at most, all sessions together; more are dropped and
    /// requested again when their turn comes.
    public var maxBuffered = 1_000_000
    /// Sessions tracked at most (a group carrying more is misconfigured or hostile).
    public var maxSessions = 4096

    public init(from: UInt64? = nil) { self.from = from }
  }

  /// What the I/O shell does next.
  public enum Action: Sendable {
    case deliver(FeedMessage)
    case request(MoldUDP64.Request)
  }

  struct SessionState: Sendable {
    /// The next sequence number to deliver.
    var next: UInt64
    /// One past the highest sequence number known to exist.
    var known: UInt64
    /// Buffered out-of-order messages, and their sequence numbers sorted (from `head`).
    var buffered: [UInt64: (payload: ByteBuffer, recovered: Bool)] = [:]
    var order: [UInt64] = []
    var head = 0
    /// The outstanding request: from where, when.
    var requested: (sequence: UInt64, atMs: Int64)?
    /// An end of session was seen: a packet before `next` then starts the session anew (a
    /// topic deleted and created again, its offsets from 0).
    var ended = false
  }

  public let configuration: Configuration
  public private(set) var statistics = FeedStatistics()
  var sessions: [MoldUDP64.Session: SessionState] = [:]
  /// Messages buffered in all sessions.
  var bufferedTotal = 0

  public init(configuration: Configuration = Configuration()) {
    self.configuration = configuration
  }

  /// The sessions seen and the next sequence number each expects.
  public var positions: [MoldUDP64.Session: UInt64] { sessions.mapValues(\.next) }

  /// A datagram that did not decode.
  public mutating func malformed() {
    statistics.malformed += 1
  }

  /// A packet from the group (`retransmitted: false`) or the retransmission server.
  /// `requesting: false` (the consumer lags) asks for no gaps now; `tick` asks later.
  public mutating func receive(
    _ packet: MoldUDP64.Packet, retransmitted: Bool, nowMs: Int64, requesting: Bool = true
  ) -> [Action] {
    let start = packet.sequence
    guard start <= UInt64.max - UInt64(packet.messages.count) else {
      statistics.malformed += 1
      return []
    }
    if retransmitted { statistics.retransmittedPackets += 1 } else { statistics.packets += 1 }
    var state: SessionState
    if let existing = sessions[packet.session] {
      state = existing
    } else {
      guard sessions.count < configuration.maxSessions else {
        statistics.refusedSessions += 1
        return []
      }
      let first = configuration.from ?? start
      state = SessionState(next: first, known: first)
    }
    var actions: [Action] = []
    if !retransmitted && state.ended && start < state.next {
      // The session started again from a lower number after its end: a new log.
      statistics.restarts += 1
      bufferedTotal -= state.buffered.count
      state = SessionState(next: start, known: start)
    }
    if packet.isEndOfSession {
      statistics.endsOfSession += 1
      state.ended = true
    } else if !retransmitted {
      state.ended = false
    }
    let end = start + UInt64(packet.messages.count)  // one past this packet's messages
    if retransmitted && packet.messages.isEmpty && !packet.isEndOfSession && start > state.next {
      // The server's answer for sequence numbers it no longer holds (trusted only as the
      // answer to the outstanding request): what is buffered below its first retained
      // number is delivered, the holes are counted and skipped.
      if let requested = state.requested, requested.sequence == state.next {
        skip(packet.session, to: start, &state, &actions)
      }
    } else {
      if !retransmitted && start > state.known {
        statistics.gaps += 1
        statistics.missing += start - state.known
      }
      state.known = max(state.known, end)
      for (index, message) in packet.messages.enumerated() {
        let sequence = start + UInt64(index)
        if sequence < state.next || state.buffered[sequence] != nil {
          statistics.duplicates += 1
        } else if sequence == state.next {
          deliver(packet.session, sequence, message, retransmitted, &state, &actions)
          deliverReady(packet.session, &state, &actions)
        } else if bufferedTotal >= configuration.maxBuffered {
          statistics.overflowed += 1
        } else {
          state.buffered[sequence] = (message, retransmitted)
          bufferedTotal += 1
          insertOrdered(sequence, &state)
        }
      }
    }
    // A reply that moved `next` lets the next request go at once.
    if retransmitted, let requested = state.requested, requested.sequence != state.next {
      state.requested = nil
    }
    if requesting { requestIfNeeded(packet.session, &state, nowMs: nowMs, &actions) }
    sessions[packet.session] = state
    return actions
  }

  /// Moves `next` to `target`, delivering what is buffered on the way and counting the
  /// holes as unrecoverable.
  private mutating func skip(
    _ session: MoldUDP64.Session, to target: UInt64, _ state: inout SessionState, _ actions: inout [Action]
  ) {
    while state.head < state.order.count, state.order[state.head] < target {
      let sequence = state.order[state.head]
      state.head += 1
      guard let entry = state.buffered.removeValue(forKey: sequence) else { continue }
      bufferedTotal -= 1
      statistics.unrecoverable += sequence - state.next
      deliver(session, sequence, entry.payload, entry.recovered, &state, &actions)
    }
    statistics.unrecoverable += target - state.next
    state.next = target
    state.known = max(state.known, target)
    state.requested = nil
    deliverReady(session, &state, &actions)
  }

  /// Requests sent again for gaps whose request timed out.
  public mutating func tick(nowMs: Int64) -> [Action] {
    var actions: [Action] = []
    for (session, var state) in sessions where state.next < state.known {
      requestIfNeeded(session, &state, nowMs: nowMs, &actions)
      sessions[session] = state
    }
    return actions
  }

  private mutating func requestIfNeeded(
    _ session: MoldUDP64.Session, _ state: inout SessionState, nowMs: Int64, _ actions: inout [Action]
  ) {
    guard state.next < state.known else {
      state.requested = nil
      return
    }
    if let requested = state.requested, requested.sequence == state.next,
      nowMs - requested.atMs < configuration.requestTimeoutMs
    {
      return
    }
    // The missing run: up to the first buffered message, or what is known to exist.
    let firstBuffered = state.head < state.order.count ? state.order[state.head] : state.known
    let run = min(firstBuffered, state.known) - state.next
    let count = UInt16(min(run, UInt64(UInt16.max - 1)))
    guard count > 0 else { return }
    actions.append(.request(MoldUDP64.Request(session: session, sequence: state.next, count: count)))
    statistics.requests += 1
    state.requested = (state.next, nowMs)
  }

  private mutating func deliver(
    _ session: MoldUDP64.Session, _ sequence: UInt64, _ payload: ByteBuffer, _ recovered: Bool,
    _ state: inout SessionState, _ actions: inout [Action]
  ) {
    actions.append(
      .deliver(FeedMessage(session: session, sequence: sequence, payload: payload, recovered: recovered)))
    statistics.delivered += 1
    if recovered { statistics.recovered += 1 }
    state.next = sequence + 1
  }

  /// Delivers buffered messages that are now next in line.
  private mutating func deliverReady(
    _ session: MoldUDP64.Session, _ state: inout SessionState, _ actions: inout [Action]
  ) {
    while state.head < state.order.count {
      let sequence = state.order[state.head]
      if sequence > state.next { break }
      state.head += 1
      guard let entry = state.buffered.removeValue(forKey: sequence) else { continue }
      bufferedTotal -= 1
      if sequence == state.next {
        deliver(session, sequence, entry.payload, entry.recovered, &state, &actions)
      }
    }
    compact(&state)
  }

  private func compact(_ state: inout SessionState) {
    if state.head == state.order.count {
      state.order.removeAll(keepingCapacity: true)
      state.head = 0
    } else if state.head > 4096 && state.head * 2 > state.order.count {
      state.order.removeFirst(state.head)
      state.head = 0
    }
  }

  /// Keeps `order` sorted: arrivals are mostly in increasing order (appended); a message
  /// filling a hole further back is inserted by binary search.
  private func insertOrdered(_ sequence: UInt64, _ state: inout SessionState) {
    if state.head == state.order.count || state.order[state.order.count - 1] < sequence {
      state.order.append(sequence)
      return
    }
    var low = state.head
    var high = state.order.count
    while low < high {
      let middle = (low + high) / 2
      if state.order[middle] < sequence { low = middle + 1 } else { high = middle }
    }
    state.order.insert(sequence, at: low)
  }
}
