import NIOCore
import Testing

@testable import SluiceFeed

/// The receiver's state machine: events in, deliveries and requests out, with a mock clock.
@Suite struct FeedSequencerTests {
  let session = MoldUDP64.Session("V000000000")!

  func packet(_ sequence: UInt64, _ count: Int, end: Bool = false) -> MoldUDP64.Packet {
    MoldUDP64.Packet(
      session: session, sequence: sequence,
      messages: (0..<count).map { ByteBuffer(string: "m\(sequence + UInt64($0))") }, isEndOfSession: end)
  }

  func delivered(_ actions: [FeedSequencer.Action]) -> [UInt64] {
    actions.compactMap { if case .deliver(let message) = $0 { message.sequence } else { nil } }
  }

  func requests(_ actions: [FeedSequencer.Action]) -> [MoldUDP64.Request] {
    actions.compactMap { if case .request(let request) = $0 { request } else { nil } }
  }

  @Test func inOrderPacketsAreDeliveredAtOnce() {
    var sequencer = FeedSequencer()
    #expect(delivered(sequencer.receive(packet(10, 3), retransmitted: false, nowMs: 0)) == [10, 11, 12])
    #expect(delivered(sequencer.receive(packet(13, 2), retransmitted: false, nowMs: 1)) == [13, 14])
    #expect(sequencer.statistics.delivered == 5 && sequencer.statistics.gaps == 0)
  }

  @Test func aGapIsRequestedBufferedAroundAndFilledInOrder() {
    var sequencer = FeedSequencer()
    _ = sequencer.receive(packet(1, 2), retransmitted: false, nowMs: 0)
    // 3..5 lost; 6..7 arrive: held back, 3..5 requested.
    let afterGap = sequencer.receive(packet(6, 2), retransmitted: false, nowMs: 10)
    #expect(delivered(afterGap).isEmpty)
    #expect(requests(afterGap) == [MoldUDP64.Request(session: session, sequence: 3, count: 3)])
    #expect(sequencer.statistics.gaps == 1 && sequencer.statistics.missing == 3)
    // Not asked again before the timeout…
    #expect(requests(sequencer.tick(nowMs: 50)).isEmpty)
    // …but after it.
    #expect(
      requests(sequencer.tick(nowMs: 111)) == [MoldUDP64.Request(session: session, sequence: 3, count: 3)])
    // The answer fills the gap: everything comes out in order, once.
    let filled = sequencer.receive(packet(3, 3), retransmitted: true, nowMs: 120)
    #expect(delivered(filled) == [3, 4, 5, 6, 7])
    #expect(sequencer.statistics.recovered == 3)
    // A late copy from the group is a duplicate.
    #expect(delivered(sequencer.receive(packet(4, 2), retransmitted: false, nowMs: 130)).isEmpty)
    #expect(sequencer.statistics.duplicates == 2)
  }

  @Test func aPartialAnswerAsksAtOnceForTheRest() {
    var sequencer = FeedSequencer()
    _ = sequencer.receive(packet(1, 1), retransmitted: false, nowMs: 0)
    _ = sequencer.receive(packet(101, 1), retransmitted: false, nowMs: 0)  // 2...100 missing
    let partial = sequencer.receive(packet(2, 40), retransmitted: true, nowMs: 5)
    #expect(delivered(partial) == Array(2...41))
    #expect(requests(partial) == [MoldUDP64.Request(session: session, sequence: 42, count: 59)])
  }

  @Test func aHeartbeatRevealsALostTail() {
    var sequencer = FeedSequencer()
    _ = sequencer.receive(packet(1, 5), retransmitted: false, nowMs: 0)
    let actions = sequencer.receive(packet(9, 0), retransmitted: false, nowMs: 1000)  // next is 9: 6...8 lost
    #expect(requests(actions) == [MoldUDP64.Request(session: session, sequence: 6, count: 3)])
    // An end of session says the same.
    var other = FeedSequencer()
    _ = other.receive(packet(1, 5), retransmitted: false, nowMs: 0)
    #expect(requests(other.receive(packet(8, 0, end: true), retransmitted: false, nowMs: 1)).count == 1)
    #expect(other.statistics.endsOfSession == 1)
  }

  @Test func aLateJoinerStartsFromTheRequestedSequenceNumber() {
    var sequencer = FeedSequencer(configuration: FeedSequencer.Configuration(from: 1))
    let first = sequencer.receive(packet(500, 0), retransmitted: false, nowMs: 0)
    #expect(requests(first) == [MoldUDP64.Request(session: session, sequence: 1, count: 499)])
    #expect(delivered(sequencer.receive(packet(1, 499), retransmitted: true, nowMs: 1)) == Array(1...499))
  }

  @Test func whatTheServerNoLongerHasIsSkippedAndCounted() {
    var sequencer = FeedSequencer(configuration: FeedSequencer.Configuration(from: 1))
    _ = sequencer.receive(packet(100, 2), retransmitted: false, nowMs: 0)
    // The server's heartbeat: the log starts at 60.
    let skipped = sequencer.receive(packet(60, 0), retransmitted: true, nowMs: 1)
    #expect(sequencer.statistics.unrecoverable == 59)
    #expect(requests(skipped) == [MoldUDP64.Request(session: session, sequence: 60, count: 40)])
    #expect(delivered(sequencer.receive(packet(60, 40), retransmitted: true, nowMs: 2)) == Array(60...101))
  }

  @Test func sessionsAreSequencedApart() {
    var sequencer = FeedSequencer()
    let other = MoldUDP64.Session("V000000001")!
    _ = sequencer.receive(packet(1, 1), retransmitted: false, nowMs: 0)
    let actions = sequencer.receive(
      MoldUDP64.Packet(session: other, sequence: 7, messages: [ByteBuffer(string: "x")]),
      retransmitted: false,
      nowMs: 0)
    #expect(delivered(actions) == [7])
    #expect(sequencer.positions == [session: 2, other: 8])
  }

  @Test func theOutOfOrderBufferIsBounded() {
    var configuration = FeedSequencer.Configuration()
    configuration.maxBuffered = 10
    var sequencer = FeedSequencer(configuration: configuration)
    _ = sequencer.receive(packet(1, 1), retransmitted: false, nowMs: 0)
    _ = sequencer.receive(packet(3, 30), retransmitted: false, nowMs: 0)  // 2 missing; 30 waiting
    #expect(sequencer.statistics.overflowed == 20)
    // The gap and what overflowed are fetched in turn.
    let first = sequencer.receive(packet(2, 1), retransmitted: true, nowMs: 1)
    #expect(delivered(first) == Array(2...12))
    #expect(requests(first) == [MoldUDP64.Request(session: session, sequence: 13, count: 20)])
    #expect(delivered(sequencer.receive(packet(13, 20), retransmitted: true, nowMs: 2)) == Array(13...32))
  }

  @Test func sessionsAreBounded() {
    var configuration = FeedSequencer.Configuration()
    configuration.maxSessions = 2
    var sequencer = FeedSequencer(configuration: configuration)
    for index in 0..<5 {
      let session = MoldUDP64.Session("X00000000\(index)")!
      _ = sequencer.receive(
        MoldUDP64.Packet(session: session, sequence: 1, messages: []), retransmitted: false, nowMs: 0)
    }
    #expect(sequencer.positions.count == 2)
  }

  @Test func aPacketWhoseSequenceNumbersWouldOverflowIsRefused() {
    var sequencer = FeedSequencer()
    let overflowing = MoldUDP64.Packet(
      session: session, sequence: .max - 1, messages: Array(repeating: ByteBuffer(string: "x"), count: 3))
    let actions = sequencer.receive(overflowing, retransmitted: false, nowMs: 0)
    #expect(actions.isEmpty && sequencer.statistics.malformed == 1)
  }

  @Test func skippingWhatIsGoneKeepsWhatWasReceived() {
    var sequencer = FeedSequencer()
    _ = sequencer.receive(packet(1, 99), retransmitted: false, nowMs: 0)  // next: 100
    _ = sequencer.receive(packet(150, 50), retransmitted: false, nowMs: 0)  // 150...199 waiting
    // Retention moved the log start to 171 meanwhile: the server says so.
    let actions = sequencer.receive(packet(171, 0), retransmitted: true, nowMs: 1)
    #expect(delivered(actions) == Array(150...199))
    #expect(sequencer.statistics.unrecoverable == 50)  // 100...149 only
  }

  @Test func aGoneAnswerCountsOnlyForTheOutstandingRequest() {
    var sequencer = FeedSequencer()
    _ = sequencer.receive(packet(1, 5), retransmitted: false, nowMs: 0)
    // No gap, no request: a forged "gone" heartbeat far ahead changes nothing.
    #expect(sequencer.receive(packet(1 << 63, 0), retransmitted: true, nowMs: 1).isEmpty)
    #expect(delivered(sequencer.receive(packet(6, 1), retransmitted: false, nowMs: 2)) == [6])
    #expect(sequencer.statistics.unrecoverable == 0)
  }

  @Test func aSessionThatStartsAgainAfterItsEndIsFollowed() {
    var sequencer = FeedSequencer()
    _ = sequencer.receive(packet(1, 10), retransmitted: false, nowMs: 0)
    _ = sequencer.receive(packet(11, 0, end: true), retransmitted: false, nowMs: 1)
    // Deleted and created again: offsets from 0.
    #expect(delivered(sequencer.receive(packet(1, 3), retransmitted: false, nowMs: 2)) == [1, 2, 3])
    #expect(sequencer.statistics.restarts == 1 && sequencer.statistics.duplicates == 0)
    // Without an end first, lower numbers are duplicates.
    _ = sequencer.receive(packet(2, 1), retransmitted: false, nowMs: 3)
    #expect(sequencer.statistics.duplicates == 1 && sequencer.statistics.restarts == 1)
  }

  @Test func noRequestsWhileTheConsumerLags() {
    var sequencer = FeedSequencer()
    _ = sequencer.receive(packet(1, 1), retransmitted: false, nowMs: 0)
    let lagging = sequencer.receive(packet(10, 1), retransmitted: false, nowMs: 1, requesting: false)
    #expect(requests(lagging).isEmpty && sequencer.statistics.requests == 0)
    #expect(
      requests(sequencer.tick(nowMs: 2)) == [MoldUDP64.Request(session: session, sequence: 2, count: 8)])
  }

  @Test func theBufferBoundCoversAllSessions() {
    var configuration = FeedSequencer.Configuration()
    configuration.maxBuffered = 10
    var sequencer = FeedSequencer(configuration: configuration)
    for index in 0..<3 {
      let session = MoldUDP64.Session("V00000000\(index)")!
      _ = sequencer.receive(
        MoldUDP64.Packet(session: session, sequence: 1, messages: [ByteBuffer()]), retransmitted: false,
        nowMs: 0)
      _ = sequencer.receive(
        MoldUDP64.Packet(session: session, sequence: 3, messages: Array(repeating: ByteBuffer(), count: 6)),
        retransmitted: false, nowMs: 0)
    }
    #expect(sequencer.bufferedTotal == 10 && sequencer.statistics.overflowed == 8)
  }
}
