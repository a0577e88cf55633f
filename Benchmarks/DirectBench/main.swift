// The Swift side of scripts/bench-direct.py: a ZeroMQ sender or receiver written against the
// SluiceDirect library, as the pyzmq side is written against libzmq, so that the figures
// compare the two implementations (the `sluice direct` CLI adds its stdin/stdout pipes).
//
//   DirectBench send --type pub|push --connect tcp://H:P --size S --hwm H
//                    (--count N | --rate R --duration D)
//       Sends warm-up messages every 10 ms until a line arrives on stdin, then the data
//       messages (one `send` each, as the pyzmq sender does), then waits for them to go out.
//   DirectBench receive --type sub|pull --bind tcp://H:P --hwm H --expected N --idle S
//       Prints `bound PORT`, then `ready` at the first message, then (after N data messages,
//       or S seconds without one) a JSON line: count, first_ns, last_ns, latencies_ns.
//
// Messages are single lines: kind (W warm-up, D data), a 10-digit sequence number, a space,
// the CLOCK_MONOTONIC send time in 20 digits, a space, padding to the size.

import Foundation
import NIOCore
import NIOPosix
import SluiceDirect
import Synchronization

final class GoSignal: Sendable {
  let flag = Atomic<Bool>(false)
}

final class LastData: Sendable {
  let ns = Atomic<Int64>(0)
}

/// Sleeps with a timer of an event loop (Task.sleep, with NIO as the global executor, arms a
/// libdispatch timer and hops threads to come back).
func sleep(nanoseconds: Int64) async throws {
  try await MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(nanoseconds)) {}
    .futureResult.get()
}

func monotonicNs() -> Int64 {
  var now = timespec()
  clock_gettime(CLOCK_MONOTONIC, &now)
  return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

func message(_ kind: UInt8, _ sequence: Int, _ sentNs: Int64, size: Int) -> ZMQMessage {
  var bytes = [UInt8](repeating: UInt8(ascii: "x"), count: max(size, 33))
  bytes[0] = kind
  digits(UInt64(sequence), into: &bytes, at: 1, width: 10)
  bytes[11] = UInt8(ascii: " ")
  digits(UInt64(max(0, sentNs)), into: &bytes, at: 12, width: 20)
  bytes[32] = UInt8(ascii: " ")
  return ZMQMessage([ByteBuffer(bytes: bytes)])
}

func digits(_ value: UInt64, into bytes: inout [UInt8], at start: Int, width: Int) {
  var value = value
  for index in stride(from: start + width - 1, through: start, by: -1) {
    bytes[index] = UInt8(ascii: "0") + UInt8(value % 10)
    value /= 10
  }
}

func option(_ name: String, _ arguments: [String]) -> String? {
  guard let at = arguments.firstIndex(of: "--" + name), at + 1 < arguments.count else { return nil }
  return arguments[at + 1]
}

func fail(_ text: String) -> Never {
  FileHandle.standardError.write(Data((text + "\n").utf8))
  exit(2)
}

func say(_ text: String) {
  FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

func send(_ arguments: [String]) async throws {
  guard let type = option("type", arguments).flatMap({ ZMQSocketType(rawValue: $0.uppercased()) }),
    let endpoint = option("connect", arguments)
  else { fail("send needs --type pub|push and --connect") }
  let size = option("size", arguments).flatMap(Int.init) ?? 100
  var options = ZMQSocketOptions()
  options.sendHighWaterMark = option("hwm", arguments).flatMap(Int.init) ?? 1000
  let socket = ZMQSocket(type, options: options)
  try socket.connect(endpoint)
  // Throughput runs send messages made beforehand, as the pyzmq sender does.
  let payloads =
    option("rate", arguments) == nil
    ? (0..<(option("count", arguments).flatMap(Int.init) ?? 200_000)).map {
      message(UInt8(ascii: "D"), $0, 0, size: size)
    } : []
  // Warm-up until the driver says go: a line on stdin, read on a thread of its own (a
  // blocking read must not hold an event loop).
  let go = GoSignal()
  Thread.detachNewThread {
    _ = readLine()
    go.flag.store(true, ordering: .releasing)
  }
  var warmups = 0
  while !go.flag.load(ordering: .acquiring) {
    try await sleep(nanoseconds: 10_000_000)
    if type == .pub || socket.statistics.peers > 0 {
      try await socket.send(message(UInt8(ascii: "W"), warmups, 0, size: size))
      warmups += 1
    }
  }
  var sent = 0
  if let rate = option("rate", arguments).flatMap(Double.init) {
    let duration = option("duration", arguments).flatMap(Double.init) ?? 5
    let total = Int(rate * duration)
    let start = monotonicNs()
    while sent < total {
      let due = min(total, Int(Double(monotonicNs() - start) / 1e9 * rate) + 1)
      while sent < due {
        try await socket.send(message(UInt8(ascii: "D"), sent, monotonicNs(), size: size))
        sent += 1
      }
      let delayNs = start + Int64(Double(sent) / rate * 1e9) - monotonicNs()
      if delayNs > 0 { try await sleep(nanoseconds: delayNs) }
    }
  } else {
    for payload in payloads { try await socket.send(payload) }
    sent = payloads.count
  }
  await socket.close(linger: .seconds(10))
  say("{\"sent\": \(sent)}")
}

func receive(_ arguments: [String]) async throws {
  guard let type = option("type", arguments).flatMap({ ZMQSocketType(rawValue: $0.uppercased()) }),
    let endpoint = option("bind", arguments)
  else { fail("receive needs --type sub|pull and --bind") }
  let expected = option("expected", arguments).flatMap(Int.init) ?? 200_000
  let idle = option("idle", arguments).flatMap(Double.init) ?? 1
  var options = ZMQSocketOptions()
  options.receiveHighWaterMark = option("hwm", arguments).flatMap(Int.init) ?? 1000
  let socket = ZMQSocket(type, options: options)
  if type == .sub { socket.subscribe("") }
  let bound = try await socket.bind(endpoint)
  say("bound \(bound.port)")
  var count = 0
  var first: Int64?
  var last: Int64 = 0
  var ready = false
  var latencies: [Int64] = []
  latencies.reserveCapacity(expected)
  // Idle after data ends the run (PUB dropped the rest): a watchdog closes the socket, so
  // the loop below waits in a plain receive().
  let lastData = LastData()
  let watchdog = Task {
    while !Task.isCancelled {
      try? await sleep(nanoseconds: 100_000_000)
      let last = lastData.ns.load(ordering: .relaxed)
      if last > 0 && Double(monotonicNs() - last) > idle * 1e9 {
        await socket.close(linger: .zero)
        return
      }
    }
  }
  while count < expected {
    guard let received = try? await socket.receive() else { break }
    let now = monotonicNs()
    if !ready {
      ready = true
      say("ready")
    }
    let bytes = received.frames.last!.readableBytesView
    guard bytes.first == UInt8(ascii: "D") else { continue }
    if first == nil { first = now }
    last = now
    lastData.ns.store(now, ordering: .relaxed)
    count += 1
    if bytes.count >= 32, let sentNs = Int64(String(decoding: bytes.dropFirst(12).prefix(20), as: UTF8.self)),
      sentNs > 0
    {
      latencies.append(now - sentNs)
    }
  }
  watchdog.cancel()
  await socket.close(linger: .zero)
  say(
    "{\"count\": \(count), \"first_ns\": \(first ?? 0), \"last_ns\": \(last), \"latencies_ns\": ["
      + latencies.map(String.init).joined(separator: ",") + "]}")
}

_ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
let arguments = Array(CommandLine.arguments.dropFirst())
// Detached: a task made at top level would run on the main actor, which dispatchMain parks.
Task.detached {
  do {
    switch arguments.first {
    case "send": try await send(arguments)
    case "receive": try await receive(arguments)
    default: fail("usage: DirectBench send|receive …")
    }
  } catch {
    fail("DirectBench: \(error)")
  }
  exit(0)
}
dispatchMain()
