import Foundation
import KafkaProtocol
import SluiceBroker
import SluiceServer
import SluiceTestSupport
import Testing

/// KIP-612 connection creation rates: the limiter as a state machine with an injected
/// clock, then the listener over real sockets (quota management itself is tested in
/// SluiceBrokerTests/ConnectionQuotaTests.swift).
@Suite(.serialized) struct ConnectionRateTests {
  typealias Limiter = ConnectionRateLimiter

  // MARK: The limiter

  @Test func aQuotaGrantsOneSecondOfItsRateAtOnceThenOnePerInterval() {
    var limiter = Limiter()
    let start = ContinuousClock.now
    func decide(_ address: String, _ quota: Double?, at now: ContinuousClock.Instant = start)
      -> Limiter.Decision
    {
      limiter.decide(address: address, quota: quota, now: now)
    }
    let decisions = (0..<8).map { _ in decide("a", 5) }
    #expect(decisions.prefix(5).allSatisfy { $0 == .accept })
    // The sixth would be granted 200 ms later; refused ones are not charged.
    #expect(decisions.dropFirst(5).allSatisfy { $0 == .throttle(.milliseconds(200)) })
    let almost = decide("a", 5, at: start + .milliseconds(199))
    #expect(almost == .throttle(.milliseconds(1)))
    let due = decide("a", 5, at: start + .milliseconds(200))
    #expect(due == .accept)
    // Other addresses have their own cells; no quota (or an unlimited one): no cell at all.
    let others = [decide("b", 5), decide("c", nil), decide("d", Limiter.unlimited)]
    #expect(others == [.accept, .accept, .accept])
    #expect(Set(limiter.cells.keys) == ["a", "b"])
    // A second later the whole burst is back.
    let later = start + .seconds(2)
    let refilled = (0..<6).map { _ in decide("a", 5, at: later) }
    #expect(refilled.prefix(5).allSatisfy { $0 == .accept } && refilled[5] != .accept)
    // At 1/s: one, then one per second.
    let slow = [decide("e", 1), decide("e", 1)]
    #expect(slow == [.accept, .throttle(.seconds(1))])
  }

  @Test func theBrokerWideRateDelaysInsteadOfRefusing() {
    let start = ContinuousClock.now
    var limiter = Limiter(brokerRate: 10)
    let decisions = (0..<13).map { _ in limiter.decide(address: "a", quota: nil, now: start) }
    #expect(decisions.prefix(10).allSatisfy { $0 == .accept })
    #expect(
      decisions.suffix(3) == [
        .delay(.milliseconds(100)), .delay(.milliseconds(200)), .delay(.milliseconds(300)),
      ])
    // An address over its quota is refused before it is charged the broker-wide rate.
    var both = Limiter(brokerRate: 10)
    let storm = (0..<50).map { _ in both.decide(address: "x", quota: 1, now: start) }
    #expect(storm.first == .accept && storm.dropFirst().allSatisfy { $0 == .throttle(.seconds(1)) })
    let others = (0..<9).map { _ in both.decide(address: "y", quota: nil, now: start) }
    #expect(others.allSatisfy { $0 == .accept })
    #expect(Limiter(brokerRate: Double(Int.max)).brokerRate == nil)
  }

  @Test func trackedAddressesAreBoundedAndIdleOnesPruned() {
    var limiter = Limiter()
    limiter.maximumAddresses = 100
    let start = ContinuousClock.now
    let first = (0..<100).map { limiter.decide(address: "10.0.0.\($0)", quota: 1, now: start) }
    #expect(first.allSatisfy { $0 == .accept } && limiter.cells.count == 100)
    // Full of live cells: new addresses share one cell, so the table does not grow.
    let spray = (0..<50).map { limiter.decide(address: "10.0.1.\($0)", quota: 1, now: start) }
    #expect(spray.first == .accept && spray.dropFirst().allSatisfy { $0 == .throttle(.seconds(1)) })
    #expect(limiter.cells.count == 101 && limiter.cells[Limiter.sharedKey] != nil)
    // Once the cells are idle they are pruned and a new address gets its own again.
    let later = limiter.decide(address: "10.0.2.0", quota: 1, now: start + .seconds(2))
    #expect(later == .accept && limiter.cells.count == 1 && limiter.cells["10.0.2.0"] != nil)
    // Warnings: once per address per interval.
    let warnings = [
      limiter.shouldWarn(about: "10.0.0.1", now: start),
      limiter.shouldWarn(about: "10.0.0.1", now: start + .seconds(1)),
      limiter.shouldWarn(about: "10.0.0.1", now: start + Limiter.warningInterval),
    ]
    #expect(warnings == [true, false, true])
  }

  // MARK: The listener

  static func setQuota(_ broker: Broker, ip: String?, _ rate: Double?) async {
    let request = AlterClientQuotasRequest(entries: [
      .init(
        entity: [.init(entityType: "ip", entityName: ip)],
        ops: [.init(key: ClientQuotas.connectionCreationRate, value: rate ?? 0, remove: rate == nil)])
    ])
    let reply = await broker.handle(
      KafkaRequest(correlationId: 1, clientId: "t", apiVersion: 1, body: .alterClientQuotas(request)))
    guard case .alterClientQuotas(let response) = reply else {
      Issue.record("no AlterClientQuotas reply")
      return
    }
    #expect(response.entries.first?.errorCode == 0)
  }

  /// Opens `count` connections from `source` at once, sends ApiVersions v0 on each, and
  /// returns how many were answered (the others are closed without an answer).
  static func storm(port: Int, from source: String, count: Int, timeoutSeconds: Int = 5) async -> Int {
    await withCheckedContinuation { continuation in
      DispatchQueue.global().async {
        continuation.resume(
          returning: blockingStorm(port: port, from: source, count: count, timeout: timeoutSeconds))
      }
    }
  }

  static func blockingStorm(port: Int, from source: String, count: Int, timeout: Int) -> Int {
    var sockets: [Int32] = []
    defer { for fd in sockets { close(fd) } }
    for _ in 0..<count {
      let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
      sockets.append(fd)
      _ = LoopbackSocket.withSockaddr(LoopbackSocket.address(source, 0)) { bind(fd, $0, $1) }
      var wait = timeval(tv_sec: timeout, tv_usec: 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
      guard
        LoopbackSocket.withSockaddr(LoopbackSocket.address("127.0.0.1", port), { connect(fd, $0, $1) }) == 0
      else { return -1 }
    }
    // ApiVersions v0: size, api key 18, version 0, correlation id, client id "storm".
    let request: [UInt8] = [0, 0, 0, 15, 0, 18, 0, 0, 0, 0, 0, 1, 0, 5] + Array("storm".utf8)
    var answered = 0
    for fd in sockets {
      _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
    for fd in sockets {
      var size = [UInt8](repeating: 0, count: 4)
      if recv(fd, &size, 4, Int32(MSG_WAITALL)) == 4 { answered += 1 }
    }
    return answered
  }

  @Test func aStormFromOneAddressIsHeldToItsQuotaWhileOthersConnect() async throws {
    try await InProcessBroker.with { b in
      await Self.setQuota(b.broker, ip: nil, 5)
      await Self.setQuota(b.broker, ip: "127.0.0.2", 20)
      // The default quota: the first second's burst of 5 (perhaps one more as time passes).
      let answered = await Self.storm(port: b.port, from: "127.0.0.1", count: 30)
      #expect((5...7).contains(answered), "\(answered) of 30 answered under a 5/s quota")
      let refused = 30 - answered
      #expect(b.server.connectionRates.throttledConnections == refused)
      // The named quota overrides the default for its address; a third has its own bucket.
      let named = await Self.storm(port: b.port, from: "127.0.0.2", count: 30)
      #expect((20...23).contains(named), "\(named) of 30 answered under a 20/s quota")
      let other = await Self.storm(port: b.port, from: "127.0.0.3", count: 10)
      #expect((5...7).contains(other), "\(other) of 10 answered under a 5/s quota")
      // A second later the bucket has refilled.
      try await Task.sleep(for: .milliseconds(1100))
      #expect(await Self.storm(port: b.port, from: "127.0.0.1", count: 4) == 4)
      // Without quotas, every connection is served.
      await Self.setQuota(b.broker, ip: nil, nil)
      await Self.setQuota(b.broker, ip: "127.0.0.2", nil)
      #expect(await Self.storm(port: b.port, from: "127.0.0.1", count: 30) == 30)
      #expect(b.server.connectionRates.delayedConnections == 0)
    }
  }

  @Test func theBrokerWideRateDelaysConnectionsWithoutRefusingThem() async throws {
    let broker = try await InProcessBroker { $0.maximumConnectionCreationRate = 10 }
    let started = ContinuousClock.now
    // 10 at once, the other 20 at 10/s.
    let answered = await Self.storm(port: broker.port, from: "127.0.0.1", count: 30)
    let elapsed = ContinuousClock.now - started
    await broker.stop()
    #expect(answered == 30)
    #expect(elapsed >= .milliseconds(1700), "30 connections at 10/s took \(elapsed)")
    #expect(broker.server.connectionRates.delayedConnections >= 18)
    #expect(broker.server.connectionRates.throttledConnections == 0)
  }
}
