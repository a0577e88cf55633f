import NIOCore
import NIOPosix
import SluiceBroker
import Synchronization
import Testing

/// SystemClock's timers (one heap per event loop, one NIO task armed for the earliest):
/// order, cancellation, an earlier timer scheduled after a later one, re-arming once empty.
@Suite struct LoopTimersTests {
  @Test func timersFireInDeadlineOrderAndCancelledOnesNever() async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let loop = group.next()
    let clock = SystemClock()
    let fired = Mutex<[String]>([])
    func timer(_ name: String, _ ms: Int64) -> ClockTimer {
      clock.schedule(afterMs: ms, on: loop) {
        #expect(loop.inEventLoop)
        fired.withLock { $0.append(name) }
      }
    }
    _ = timer("a", 400)
    _ = timer("b", 150)  // earlier than the armed one: armed anew
    let c = timer("c", 250)
    _ = timer("d", 50)
    let e = timer("e", 50)
    c.cancel()
    e.cancel()
    try await Task.sleep(for: .milliseconds(700))
    #expect(fired.withLock { $0 } == ["d", "b", "a"])
    // Empty again: a new timer arms a new task.
    _ = timer("f", 10)
    try await Task.sleep(for: .milliseconds(300))
    #expect(fired.withLock { $0 } == ["d", "b", "a", "f"])
    // Many parked-fetch-like timers, nearly all cancelled: the rest fire, once each.
    var timers: [ClockTimer] = []
    for index in 0..<2000 { timers.append(timer("x\(index)", 100 + Int64(index % 7))) }
    for (index, timer) in timers.enumerated() where index % 100 != 0 { timer.cancel() }
    try await Task.sleep(for: .milliseconds(600))
    let late = fired.withLock { $0.dropFirst(4) }
    #expect(late.sorted() == (0..<20).map { "x\($0 * 100)" }.sorted())
    try await group.shutdownGracefully()
  }
}
