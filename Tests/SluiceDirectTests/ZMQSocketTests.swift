import NIOCore
import NIOPosix
import SluiceTestSupport
import Testing

@testable import SluiceDirect

/// Sockets talking to each other over loopback (libzmq interop is in compat/test_direct.py).
@Suite struct ZMQSocketTests {
  /// Receives with a deadline, so a lost message fails the test instead of hanging it.
  func receive(_ socket: ZMQSocket, within: Duration = .seconds(10)) async throws -> ZMQMessage {
    try await withThrowingTaskGroup(of: ZMQMessage?.self) { group in
      group.addTask { try await socket.receive() }
      group.addTask {
        try await Task.sleep(for: within)
        return nil
      }
      defer { group.cancelAll() }
      guard let message = try await group.next()! else {
        throw ZMTPError("nothing received within \(within)")
      }
      return message
    }
  }

  func eventually(_ condition: () -> Bool, within: Duration = .seconds(10)) async -> Bool {
    let deadline = ContinuousClock.now + within
    while !condition() {
      if ContinuousClock.now > deadline { return false }
      try? await Task.sleep(for: .milliseconds(5))
    }
    return true
  }

  @Test func pubFiltersByPrefixOnThePublisherSide() async throws {
    let pub = ZMQSocket(.pub)
    let endpoint = try await pub.bind("tcp://127.0.0.1:*")
    let weather = ZMQSocket(.sub)
    let all = ZMQSocket(.sub)
    weather.subscribe("weather.")
    all.subscribe("")
    try weather.connect("tcp://127.0.0.1:\(endpoint.port)")
    try all.connect("tcp://127.0.0.1:\(endpoint.port)")
    #expect(await pub.waitForPeers(2, subscribed: true, timeout: .seconds(10)))
    try await pub.send("sports.", "1-0")
    try await pub.send("weather.", "rain")
    #expect(try await receive(weather) == ZMQMessage(strings: ["weather.", "rain"]))
    #expect(try await receive(all) == ZMQMessage(strings: ["sports.", "1-0"]))
    #expect(try await receive(all) == ZMQMessage(strings: ["weather.", "rain"]))
    // Unsubscribed and subscribed anew: once a probe on the new prefix arrives, the CANCEL
    // sent before it on the same connection has reached the publisher too.
    weather.unsubscribe("weather.")
    weather.subscribe("x")
    var probe: ZMQMessage?
    while probe == nil {
      try await pub.send("x", "probe")
      probe = try? await receive(weather, within: .milliseconds(200))
    }
    try await pub.send("weather.", "sun")
    try await pub.send("x", "last")
    var next = try await receive(weather)
    while next == ZMQMessage(strings: ["x", "probe"]) { next = try await receive(weather) }
    #expect(next == ZMQMessage(strings: ["x", "last"]))
    for socket in [pub, weather, all] { await socket.close() }
  }

  @Test func pushRoundRobinsAndPullFairQueues() async throws {
    let push = ZMQSocket(.push)
    let endpoint = try await push.bind("tcp://127.0.0.1:*")
    let pulls = [ZMQSocket(.pull), ZMQSocket(.pull)]
    for pull in pulls { try pull.connect("tcp://127.0.0.1:\(endpoint.port)") }
    #expect(await push.waitForPeers(2, timeout: .seconds(10)))
    for index in 0..<100 { try await push.send("\(index)") }
    var got: [[Int]] = [[], []]
    for (at, pull) in pulls.enumerated() {
      for _ in 0..<50 { got[at].append(Int(try await receive(pull).strings[0])!) }
    }
    // Each got half, in order.
    #expect(got[0] == got[0].sorted() && got[1] == got[1].sorted())
    #expect(Set(got[0] + got[1]) == Set(0..<100))
    // A batch is handed out the same way, message by message, in one write per peer.
    try await push.send(contentsOf: (100..<200).map { ZMQMessage(strings: ["\($0)"]) })
    var batch: [[Int]] = [[], []]
    for (at, pull) in pulls.enumerated() {
      for _ in 0..<50 { batch[at].append(Int(try await receive(pull).strings[0])!) }
    }
    #expect(batch[0] == batch[0].sorted() && batch[1] == batch[1].sorted())
    #expect(Set(batch[0].map { $0 % 2 }).count == 1 && Set(batch[1].map { $0 % 2 }).count == 1)
    #expect(Set(batch[0] + batch[1]) == Set(100..<200))
    for socket in [push] + pulls { await socket.close() }
  }

  @Test func pushWaitsForAPeerAndConnectRetriesUntilTheBind() async throws {
    // Pick a free port, release it, then connect before anyone listens there.
    let probe = ZMQSocket(.pull)
    let port = try await probe.bind("tcp://127.0.0.1:*").port
    await probe.close()
    let push = ZMQSocket(.push)
    try push.connect("tcp://127.0.0.1:\(port)")
    let sent = Task { try await push.send("held") }
    try await Task.sleep(for: .milliseconds(300))
    #expect(push.statistics.sent == 0)  // waiting: no peer yet
    let pull = ZMQSocket(.pull)
    try await pull.bind("tcp://127.0.0.1:\(port)")
    try await sent.value
    #expect(try await receive(pull) == ZMQMessage(strings: ["held"]))
    for socket in [push, pull] { await socket.close() }
  }

  @Test func pushBlocksAtTheHighWaterMarkWhenThePullerStopsReading() async throws {
    var options = ZMQSocketOptions()
    options.sendHighWaterMark = 10
    options.receiveHighWaterMark = 10
    let pull = ZMQSocket(.pull, options: options)
    let endpoint = try await pull.bind("tcp://127.0.0.1:*")
    let push = ZMQSocket(.push, options: options)
    try push.connect("tcp://127.0.0.1:\(endpoint.port)")
    #expect(await push.waitForPeers(1, timeout: .seconds(10)))
    let payload = ByteBuffer(repeating: 1, count: 64 << 10)
    let sender = Task {
      var sent = 0
      while !Task.isCancelled {
        try await push.send(ZMQMessage([payload]))
        sent += 1
      }
      return sent
    }
    // No one reads: queues and TCP buffers fill, and send waits.
    var last = -1
    #expect(
      await eventually(
        {
          let now = push.statistics.sent
          defer { last = now }
          return now == last && now > 0
        }, within: .seconds(20)))
    try await Task.sleep(for: .milliseconds(200))
    let stalled = push.statistics.sent
    #expect(stalled < 10_000)  // bounded by HWMs and socket buffers, not by memory
    // Reading again lets it go on; nothing was lost.
    for _ in 0..<(stalled + 5) { _ = try await receive(pull) }
    sender.cancel()
    #expect(push.statistics.dropped == 0)
    for socket in [push, pull] { await socket.close(linger: .zero) }
  }

  @Test func pubDropsForASlowSubscriberAndNeverWaits() async throws {
    var options = ZMQSocketOptions()
    options.sendHighWaterMark = 10
    options.receiveHighWaterMark = 10
    let pub = ZMQSocket(.pub, options: options)
    let endpoint = try await pub.bind("tcp://127.0.0.1:*")
    let sub = ZMQSocket(.sub, options: options)
    sub.subscribe("")
    try sub.connect("tcp://127.0.0.1:\(endpoint.port)")
    #expect(await pub.waitForPeers(1, subscribed: true, timeout: .seconds(10)))
    let payload = ByteBuffer(repeating: 2, count: 64 << 10)
    let start = ContinuousClock.now
    for _ in 0..<3000 { try await pub.send(ZMQMessage([payload])) }
    #expect(ContinuousClock.now - start < .seconds(30))
    #expect(await eventually({ pub.statistics.dropped > 0 }))
    #expect(pub.statistics.sent == 3000)
    // The subscriber holds its HWM (plus what was left of the read that filled it) and reads
    // no further; the rest waits in TCP buffers or was dropped at the publisher.
    #expect(await eventually { sub.state.withLock { $0.inbound.count } >= 10 })
    try await Task.sleep(for: .milliseconds(100))
    #expect(sub.state.withLock { $0.inbound.count } <= 10 + 1)
    for socket in [pub, sub] { await socket.close(linger: .zero) }
  }

  /// With NIO as the global executor (the sluice binary), a sender can run on its
  /// connection's own event loop, where a PUB, which never suspends, would keep the flush
  /// from ever running and drop everything past the high-water mark.
  @Test func aPublisherOnItsConnectionsEventLoopStillWrites() async throws {
    let loop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let pub = ZMQSocket(.pub, group: loop)
    let endpoint = try await pub.bind("tcp://127.0.0.1:*")
    let sub = ZMQSocket(.sub)
    sub.subscribe("")
    try sub.connect("tcp://127.0.0.1:\(endpoint.port)")
    #expect(await pub.waitForPeers(1, subscribed: true, timeout: .seconds(10)))
    let total = 20_000
    let counted = Task {
      var received = 0
      while received < total, (try? await receive(sub, within: .seconds(2))) != nil { received += 1 }
      return received
    }
    let payload = ZMQMessage([ByteBuffer(repeating: 7, count: 100)])
    try await Task(executorPreference: EventLoopTaskExecutor(loop.next())) {
      precondition(loop.next().inEventLoop)
      for _ in 0..<total { try await pub.send(payload) }
    }.value
    let received = await counted.value
    #expect(received > 3 * pub.options.sendHighWaterMark, "received \(received) of \(total)")
    await pub.close()
    await sub.close()
    try await loop.shutdownGracefully()
  }

  @Test func subReconnectsAndResubscribesAfterThePublisherRestarts() async throws {
    var options = ZMQSocketOptions()
    options.reconnectIntervalMax = .milliseconds(200)
    let first = ZMQSocket(.pub)
    let port = try await first.bind("tcp://127.0.0.1:*").port
    let sub = ZMQSocket(.sub, options: options)
    sub.subscribe("a")
    try sub.connect("tcp://127.0.0.1:\(port)")
    #expect(await first.waitForPeers(1, subscribed: true, timeout: .seconds(10)))
    try await first.send("a", "before")
    #expect(try await receive(sub).strings == ["a", "before"])
    await first.close()
    let second = ZMQSocket(.pub)
    try await second.bind("tcp://127.0.0.1:\(port)")
    #expect(await second.waitForPeers(1, subscribed: true, timeout: .seconds(10)))
    try await second.send("b", "filtered")
    try await second.send("a", "after")
    #expect(try await receive(sub).strings == ["a", "after"])
    for socket in [second, sub] { await socket.close() }
  }

  @Test func boundsPeersAndSubscriptions() async throws {
    var options = ZMQSocketOptions()
    options.maxPeers = 1
    options.maxSubscriptionsPerPeer = 2
    let pub = ZMQSocket(.pub, options: options)
    let port = try await pub.bind("tcp://127.0.0.1:*").port
    let sub = ZMQSocket(.sub)
    for prefix in ["a", "b", "c"] { sub.subscribe(prefix) }
    try sub.connect("tcp://127.0.0.1:\(port)")
    #expect(await eventually({ pub.statistics.refusedSubscriptions == 1 }))
    let extra = ZMQSocket(.sub)
    extra.subscribe("")
    try extra.connect("tcp://127.0.0.1:\(port)")
    #expect(await eventually({ pub.statistics.refusedPeers >= 1 }))
    #expect(pub.statistics.peers == 1)
    for socket in [pub, sub, extra] { await socket.close(linger: .zero) }
  }

  @Test func incompatibleSocketTypesDoNotTalk() async throws {
    let sub = ZMQSocket(.sub)
    sub.subscribe("")
    let port = try await sub.bind("tcp://127.0.0.1:*").port
    let push = ZMQSocket(.push)
    try push.connect("tcp://127.0.0.1:\(port)")
    #expect(await eventually({ sub.statistics.protocolErrors >= 1 }))
    #expect(sub.statistics.peers == 0)
    for socket in [sub, push] { await socket.close(linger: .zero) }
  }

  @Test func subscriptionsCountAtTheSubscriberAndAreASetAtThePublisher() async throws {
    let pub = ZMQSocket(.pub)
    let port = try await pub.bind("tcp://127.0.0.1:*").port
    let sub = ZMQSocket(.sub)
    sub.subscribe("a")
    sub.subscribe("a")
    try sub.connect("tcp://127.0.0.1:\(port)")
    #expect(await pub.waitForPeers(1, subscribed: true, timeout: .seconds(10)))
    // One of two subscriptions undone: still subscribed (no CANCEL went out).
    sub.unsubscribe("a")
    sub.subscribe("probe")
    var probe: ZMQMessage?
    while probe == nil {
      try await pub.send("probe")
      probe = try? await receive(sub, within: .milliseconds(200))
    }
    try await pub.send("a", "still")
    var next = try await receive(sub)
    while next.strings == ["probe"] { next = try await receive(sub) }
    #expect(next.strings == ["a", "still"])
    // The last one undone: the publisher stops sending "a" (its set lost the prefix).
    sub.unsubscribe("a")
    #expect(
      await eventually {
        pub.state.withLock { state in state.peers.allSatisfy { !$0.isSubscribed(ByteBuffer(string: "a")) } }
      })
    for socket in [pub, sub] { await socket.close(linger: .zero) }
  }

  @Test func failedConnectsAndClosedConnectionsAreForgotten() async throws {
    let probe = ZMQSocket(.pull)
    let port = try await probe.bind("tcp://127.0.0.1:*").port
    await probe.close()
    var options = ZMQSocketOptions()
    options.reconnectInterval = .milliseconds(5)
    options.reconnectIntervalMax = .milliseconds(5)
    let push = ZMQSocket(.push, options: options)
    try push.connect("tcp://127.0.0.1:\(port)")  // refused, again and again
    try await Task.sleep(for: .milliseconds(300))
    #expect(push.state.withLock { $0.connections.count } <= 1)
    // A connection that closes lets go of its handler (no cycle keeps either alive).
    let pull = ZMQSocket(.pull)
    try await pull.bind("tcp://127.0.0.1:\(port)")
    #expect(await push.waitForPeers(1, timeout: .seconds(10)))
    weak let connection = pull.state.withLock { $0.connections.values.first }
    #expect(connection != nil)
    await pull.close(linger: .zero)
    #expect(await eventually { connection == nil })
    #expect(pull.state.withLock { $0.connections.isEmpty })
    await push.close(linger: .zero)
  }

  @Test func aFullReceiveQueueStopsDecodingTinyMessages() async throws {
    var options = ZMQSocketOptions()
    options.receiveHighWaterMark = 100
    let pull = ZMQSocket(.pull, options: options)
    let port = try await pull.bind("tcp://127.0.0.1:*").port
    let push = ZMQSocket(.push)
    try push.connect("tcp://127.0.0.1:\(port)")
    #expect(await push.waitForPeers(1, timeout: .seconds(10)))
    // 20,000 one-byte messages fit in a few reads; the queue still stops near its mark.
    let tiny = ZMQMessage([ByteBuffer(bytes: [1])])
    let sending = Task { try await push.send(contentsOf: Array(repeating: tiny, count: 20_000)) }
    #expect(await eventually { pull.state.withLock { $0.inbound.count } >= 100 })
    try await Task.sleep(for: .milliseconds(200))
    #expect(pull.state.withLock { $0.inbound.count } <= 100 + 64)
    #expect(pull.state.withLock { $0.paused.count } == 1)
    var received = 0
    while received < 20_000 {
      _ = try await receive(pull)
      received += 1
    }
    try await sending.value
    for socket in [pull, push] { await socket.close(linger: .zero) }
  }

  /// What a paused receiver had read when its peer left is still delivered (found by
  /// bench-direct: `sluice direct push` into a slower `pull` lost the tail of 200k lines).
  @Test func messagesReadBeforeThePeerLeftAreNotLost() async throws {
    var options = ZMQSocketOptions()
    options.receiveHighWaterMark = 10
    let pull = ZMQSocket(.pull, options: options)
    let port = try await pull.bind("tcp://127.0.0.1:*").port
    let push = ZMQSocket(.push)
    try push.connect("tcp://127.0.0.1:\(port)")
    #expect(await push.waitForPeers(1, timeout: .seconds(10)))
    let total = 5000
    try await push.send(contentsOf: (0..<total).map { ZMQMessage(strings: ["\($0)"]) })
    #expect(await eventually { pull.state.withLock { $0.inbound.count } >= 10 })
    await push.close(linger: .seconds(10))
    #expect(await eventually { pull.statistics.peers == 0 })
    for expected in 0..<total {
      let message = try await receive(pull, within: .seconds(5))
      #expect(message.strings == ["\(expected)"])
      if message.strings != ["\(expected)"] { break }
    }
    await pull.close(linger: .zero)
  }

  @Test func cancelledWaitsLeaveNothingBehind() async throws {
    let pull = ZMQSocket(.pull)
    let port = try await pull.bind("tcp://127.0.0.1:*").port
    let push = ZMQSocket(.push)
    try push.connect("tcp://127.0.0.1:\(port)")
    #expect(await push.waitForPeers(1, timeout: .seconds(10)))
    // Cancelled before, while and after waiting, with messages arriving meanwhile.
    for round in 0..<300 {
      let waiting = Task { try await pull.receive() }
      if round % 3 == 1 { try await Task.sleep(for: .milliseconds(1)) }
      if round % 3 == 2 { try await push.send("\(round)") }
      waiting.cancel()
      _ = try? await waiting.value
    }
    while pull.tryReceive() != nil {}
    #expect(pull.state.withLock { $0.issued.isEmpty && $0.cancelled.isEmpty && $0.receivers.isEmpty })
    for socket in [pull, push] { await socket.close(linger: .zero) }
  }

  @Test func receiveAndSendWaitersEndOnClose() async throws {
    let pull = ZMQSocket(.pull)
    try await pull.bind("tcp://127.0.0.1:*")
    let waiting = Task { try await pull.receive() }
    try await Task.sleep(for: .milliseconds(50))
    await pull.close()
    await #expect(throws: ZMQSocketClosed.self) { try await waiting.value }
    let push = ZMQSocket(.push)
    let cancelled = Task { try await push.send("nobody") }
    try await Task.sleep(for: .milliseconds(50))
    cancelled.cancel()
    await #expect(throws: CancellationError.self) { try await cancelled.value }
    await push.close()
  }
}
