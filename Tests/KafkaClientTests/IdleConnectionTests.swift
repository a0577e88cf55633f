import Foundation
import SluiceServer
import SluiceTestSupport
import Testing

/// `connections.max.idle.ms` over real sockets: silent connections and slow senders are
/// closed after the limit, a connection completing requests is not.
@Suite(.serialized) struct IdleConnectionTests {
  /// A blocking loopback connection to `port`, reads timing out after `timeout` seconds.
  static func connect(_ port: Int, timeout: Int = 5) -> Int32? {
    LoopbackSocket.connect(port, timeout: timeout)
  }

  /// ApiVersions v0 with correlation id `id`.
  static func apiVersions(_ id: UInt8) -> [UInt8] {
    [0, 0, 0, 14, 0, 18, 0, 0, 0, 0, 0, id, 0, 4] + Array("idle".utf8)
  }

  /// Waits for the broker to close `fd`: the seconds until end of stream, nil if the read
  /// timed out or returned data instead.
  static func secondsUntilClosed(_ fd: Int32, since start: ContinuousClock.Instant) -> Double? {
    var byte: UInt8 = 0
    let read = recv(fd, &byte, 1, 0)
    guard read == 0 || (read < 0 && errno == ECONNRESET) else { return nil }
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
  }

  /// Runs blocking socket code on a thread of its own (the global dispatch queue runs only
  /// as many blocking items at once as there are cores).
  static func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
      Thread { continuation.resume(returning: body()) }.start()
    }
  }

  @Test func silentAndTricklingConnectionsCloseAfterTheLimitAndActiveOnesStay() async throws {
    let broker = try await InProcessBroker { $0.maximumIdleMs = 2000 }
    let port = broker.port
    let start = ContinuousClock.now

    // 50 connections that never send a byte.
    async let silent: [Double?] = Self.onThread {
      let sockets = (0..<50).compactMap { _ in Self.connect(port) }
      defer { for fd in sockets { close(fd) } }
      return sockets.map { Self.secondsUntilClosed($0, since: start) }
    }
    // One that trickles a frame a byte every 100 ms: a frame is never completed.
    async let trickled: (bytes: Int, closedAfter: Double?) = Self.onThread {
      guard let fd = Self.connect(port) else { return (0, nil) }
      defer { close(fd) }
      var sent = 0
      for byte in [0, 0, 0, 100] + [UInt8](repeating: 7, count: 96) {
        var one = byte
        guard send(fd, &one, 1, Int32(MSG_NOSIGNAL)) == 1 else { break }
        sent += 1
        usleep(100_000)
      }
      return (sent, Self.secondsUntilClosed(fd, since: start))
    }
    // One completing a request every 200 ms for 2.4 s: more than the limit (2 s), and
    // a request at most every 200 ms leaves 1.8 s for a thread held up on a loaded machine.
    async let active: (answered: Int, stopped: String) = Self.onThread {
      guard let fd = Self.connect(port) else { return (0, "connect failed") }
      defer { close(fd) }
      var answered = 0
      for id in 1...12 {
        let request = Self.apiVersions(UInt8(id))
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var size = [UInt8](repeating: 0, count: 4)
        let got = recv(fd, &size, 4, Int32(MSG_WAITALL))
        guard got == 4 else {
          return (answered, "read \(got), errno \(errno), at \(ContinuousClock.now - start)")
        }
        let length = Int(size[0]) << 24 | Int(size[1]) << 16 | Int(size[2]) << 8 | Int(size[3])
        var body = [UInt8](repeating: 0, count: length)
        guard recv(fd, &body, length, Int32(MSG_WAITALL)) == length, body[3] == UInt8(id) else {
          return (answered, "bad answer to request \(id)")
        }
        answered += 1
        usleep(200_000)
      }
      return (answered, "")
    }

    let (closedSilent, trickler, answered) = await (silent, trickled, active)
    #expect(closedSilent.count == 50)
    // Closed after the limit (2 s), and not much later (a sweep's slack is 100 ms).
    // Not before the limit; the upper bound only catches a sweeper that never fires (the suites
    // run in parallel on two cores).
    #expect(closedSilent.allSatisfy { $0.map { (1.95...10).contains($0) } == true }, "\(closedSilent)")
    // A byte every 100 ms: under 100 bytes is closed within the same 10 s as the bound above
    // (a sweep late on a loaded machine lets a few more bytes through).
    #expect(trickler.bytes < 100, "the trickler sent \(trickler.bytes) bytes before it was closed")
    #expect(trickler.closedAfter.map { (1.95...10).contains($0) } == true, "\(String(describing: trickler))")
    #expect(answered.answered == 12, "\(answered.stopped)")
    // Everything has ended: the broker's connection count is back to zero.
    let deadline = ContinuousClock.now + .seconds(3)
    while broker.server.connectionCount > 0, ContinuousClock.now < deadline {
      try await Task.sleep(for: .milliseconds(20))
    }
    #expect(broker.server.connectionCount == 0)
    await broker.stop()
  }
}
