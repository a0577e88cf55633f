import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import SluiceDirect

/// `sluice direct pub|sub|push|pull`: brokerless messaging with ZeroMQ peers (ZMTP 3.1), so
/// that two shells, or a shell and any libzmq program, can talk with no broker in between.
struct DirectCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "direct",
    abstract: "Brokerless ZeroMQ-compatible messaging (ZMTP 3.1 over TCP): pub, sub, push, pull.",
    discussion: "Each stdin line is one message; received messages print their last frame, one per line. "
      + "PUB drops messages for a subscriber that falls behind; PUSH waits for a peer with room "
      + "(docs/direct.md).",
    subcommands: [Pub.self, Sub.self, Push.self, Pull.self])

  struct Endpoints: ParsableArguments {
    @Option(
      help: "Listen at tcp://HOST:PORT (HOST * for every interface, PORT * for a free one); repeatable.")
    var bind: [String] = []

    @Option(help: "Connect to tcp://HOST:PORT, reconnecting whenever the connection drops; repeatable.")
    var connect: [String] = []

    @Option(help: "High-water mark: messages queued per peer (send) or unread (receive).")
    var hwm: Int = 1000

    @Option(name: .customLong("heartbeat-ms"), help: "Send ZMTP PINGs this often; 0: none.")
    var heartbeatMs: Int64 = 0

    func validate() throws {
      if bind.isEmpty && connect.isEmpty { throw ValidationError("give --bind or --connect (or both)") }
      if hwm < 1 { throw ValidationError("--hwm must be at least 1") }
      for endpoint in bind + connect {
        if case .failure(let error) = ZMQEndpoint.parse(endpoint) { throw ValidationError(error.message) }
      }
      for endpoint in connect
      where endpoint.contains("*") || (try? ZMQEndpoint.parse(endpoint).get().port) == 0 {
        throw ValidationError("--connect \(endpoint): give a host and a port (* is for --bind)")
      }
    }

    /// A socket bound and connected as asked; bound endpoints are reported on stderr.
    func open(_ type: ZMQSocketType) async throws -> ZMQSocket {
      var options = ZMQSocketOptions()
      options.sendHighWaterMark = hwm
      options.receiveHighWaterMark = hwm
      if heartbeatMs > 0 { options.heartbeatInterval = .milliseconds(heartbeatMs) }
      let socket = ZMQSocket(type, options: options)
      for endpoint in bind {
        do {
          let bound = try await socket.bind(endpoint)
          FileHandle.standardError.write(Data("sluice direct: \(type.rawValue) bound to \(bound)\n".utf8))
        } catch {
          throw UsageError("cannot bind \(endpoint): \(error)")
        }
      }
      for endpoint in connect { try socket.connect(endpoint) }
      return socket
    }
  }

  struct Pub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Publish each stdin line as a message (a PUB socket).")
    @OptionGroup var endpoints: Endpoints
    @Option(help: "Send each line as a two-frame message [PREFIX, line]; subscribers filter on PREFIX.")
    var topic: String?
    @Option(
      name: .customLong("wait-subscribers"),
      help: ArgumentHelp(
        "Before reading stdin, wait until this many subscribers are connected and subscribed "
          + "(PUB drops what no one subscribed to yet); 0: do not wait."))
    var waitSubscribers: Int = 1
    @Option(name: .customLong("wait-timeout-ms"), help: "Give up waiting for subscribers after this long.")
    var waitTimeoutMs: Int64 = 30_000

    func run() async throws {
      try await runClientCommand {
        let socket = try await endpoints.open(.pub)
        if waitSubscribers > 0,
          !(await socket.waitForPeers(
            waitSubscribers, subscribed: true, timeout: .milliseconds(waitTimeoutMs)))
        {
          await socket.close(linger: .zero)
          throw UsageError("no \(waitSubscribers) subscriber(s) after \(waitTimeoutMs) ms")
        }
        try await sendLines(socket, prefix: topic.map { ByteBuffer(string: $0) })
      }
    }
  }

  struct Push: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Push each stdin line to one peer in turn (a PUSH socket); waits while no peer has room.")
    @OptionGroup var endpoints: Endpoints

    func run() async throws {
      try await runClientCommand {
        let socket = try await endpoints.open(.push)
        try await sendLines(socket, prefix: nil)
      }
    }
  }

  struct Sub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Print the last frame of each message received (a SUB socket).")
    @OptionGroup var endpoints: Endpoints
    @Option(help: "Receive messages whose first frame starts with PREFIX; repeatable; default: everything.")
    var subscribe: [String] = []
    @Option(help: "Exit after this many messages.") var count: Int?

    func run() async throws {
      try await runClientCommand {
        let socket = try await endpoints.open(.sub)
        if subscribe.isEmpty {
          socket.subscribe("")
        } else {
          for prefix in subscribe { socket.subscribe(prefix) }
        }
        try await printMessages(socket, count: count)
      }
    }
  }

  struct Pull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Print the last frame of each message received (a PULL socket).")
    @OptionGroup var endpoints: Endpoints
    @Option(help: "Exit after this many messages.") var count: Int?

    func run() async throws {
      try await runClientCommand {
        let socket = try await endpoints.open(.pull)
        try await printMessages(socket, count: count)
      }
    }
  }
}

/// Reads stdin off the event loops (a blocking read must not stall the socket's I/O) and
/// sends each line; at the end, waits for queued messages to go out (up to 10 s).
private func sendLines(_ socket: ZMQSocket, prefix: ByteBuffer?) async throws {
  let reader = StdinLines()
  // Batches well under the high-water mark: a PUB drops what does not fit below it.
  let most = max(1, min(1024, socket.options.sendHighWaterMark / 2))
  while let lines = try await NIOThreadPool.singleton.runIfActive({ try reader.next(max: most) }) {
    try await socket.send(contentsOf: lines.map { line in ZMQMessage(prefix.map { [$0, line] } ?? [line]) })
  }
  await socket.close(linger: .seconds(10))
}

/// Prints the last frame of each message; output is flushed whenever no message is waiting,
/// so a line appears as soon as its message arrives.
private func printMessages(_ socket: ZMQSocket, count: Int?) async throws {
  var out = OutputBuffer()
  var printed = 0
  while count.map({ printed < $0 }) ?? true {
    var message = socket.tryReceive()
    if message == nil {
      out.flush()
      if out.broken { break }  // the reader is gone (`| head`): stop, as SIGPIPE would
      message = try await socket.receive()
    }
    if let last = message?.frames.last { out.append(last.readableBytesView) }
    out.append("\n")
    out.flushIfLarge()
    if out.broken { break }
    printed += 1
  }
  out.flush()
  await socket.close(linger: .zero)
}

/// Standard input as batches of lines, for the thread pool.
private final class StdinLines: @unchecked Sendable {
  // Used by one thread-pool job at a time: each `next` is awaited before the next starts.
  private var reader = LineReader(fd: 0)

  func next(max: Int) throws -> [ByteBuffer]? { try reader.nextBatch(max: max) }
}
