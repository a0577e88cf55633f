import ArgumentParser
import Dispatch
import NIOCore
import NIOPosix
import SluiceFeed

#if canImport(Glibc)
  import Glibc
#endif

/// `sluice feed listen`: receives a MoldUDP64 multicast feed (docs/udp.md), recovering lost
/// datagrams from the retransmission server, and prints each record in order.
struct FeedCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "feed",
    abstract: "Multicast feeds (MoldUDP64 over UDP, with retransmission).",
    subcommands: [Listen.self])

  struct Listen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Join a feed's multicast group and print each record's value, one per line, in order.",
      discussion: "Gaps (lost datagrams) are asked of the retransmission server and filled before later "
        + "records are printed. Stops after --count records or on SIGINT/SIGTERM, then prints the gap "
        + "statistics to standard error.")

    @Argument(help: "The feed's IPv4 multicast GROUP:PORT.") var address: String
    @Option(help: "The retransmission server, HOST:PORT.") var retransmit: String?
    @Option(help: "Start every session at this sequence number (offset + 1), catching up from the server.")
    var from: UInt64?
    @Option(help: "Exit after this many records.") var count: Int?
    @Flag(
      help:
        "One JSON object per record: session, partition, sequence, offset, timestamp, key, value, headers.")
    var json = false
    @Option(help: "IPv4 address or name of the interface to join the group on.") var interface: String?
    @Option(name: .customLong("request-timeout-ms"), help: "Ask again for a gap unanswered this long.")
    var requestTimeoutMs: Int64 = 100

    func run() async throws {
      try await runClientCommand {
        let (group, port) = try parseHostPort(address, option: "GROUP:PORT")
        var configuration = FeedReceiverConfiguration(
          group: group, port: port, interface: interface, from: from)
        if let retransmit {
          let (host, port) = try parseHostPort(retransmit, option: "--retransmit")
          configuration.retransmit = (host, port)
        }
        if let from, from < 1 {
          throw ValidationError("--from must be at least 1 (sequence numbers start at 1)")
        }
        configuration.requestTimeout = .milliseconds(min(max(1, requestTimeoutMs), 3_600_000))
        let receiver: FeedReceiver
        do {
          receiver = try await FeedReceiver.start(configuration)
        } catch let error as FeedReceiverError {
          throw UsageError(error.description)
        }
        // SIGINT/SIGTERM end the listing (statistics still printed) instead of killing it.
        let signals = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
          signal(number, SIG_IGN)
          let source = DispatchSource.makeSignalSource(signal: number)
          source.setEventHandler { Task { await receiver.close() } }
          source.resume()
          return source
        }
        defer { for source in signals { source.cancel() } }
        var out = OutputBuffer()
        var printed = 0
        while count.map({ printed < $0 }) ?? true {
          var message = receiver.tryNext()
          if message == nil {
            out.flush()
            if out.broken { break }
            message = try await receiver.next()
          }
          guard let message else { break }
          if json {
            out.append(jsonLine(message))
          } else {
            let value: ByteBuffer? = if let record = message.record { record.value } else { message.payload }
            if let value { out.append(value.readableBytesView) }
          }
          out.append("\n")
          out.flushIfLarge()
          if out.broken { break }
          printed += 1
        }
        out.flush()
        await receiver.close()
        printError(receiver.statistics.description)
      }
    }
  }
}

private func jsonLine(_ message: FeedMessage) -> String {
  var fields = [
    "\"session\":" + jsonString(message.session.description),
    "\"partition\":" + (message.partition.map(String.init) ?? "null"),
    "\"sequence\":\(message.sequence)", "\"offset\":\(message.offset)",
  ]
  if let record = message.record {
    fields.append("\"timestamp\":\(record.timestamp)")
    fields.append(jsonBytes("key", record.key))
    fields.append(jsonBytes("value", record.value))
    fields.append(
      "\"headers\":["
        + record.headers.map { "{\"key\":" + jsonString($0.name) + "," + jsonBytes("value", $0.value) + "}" }
        .joined(separator: ",") + "]")
  } else {
    fields.append(jsonBytes("value", message.payload))
  }
  return "{" + fields.joined(separator: ",") + "}"
}
