import ArgumentParser
import KafkaClient
import KafkaProtocol
import Logging

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif
#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Options shared by the client commands (`topic`, `produce`, `consume`, `bench`).
struct ClientOptions: ParsableArguments {
  @Option(help: "Broker address(es), HOST:PORT[,HOST:PORT…] (env SLUICE_BOOTSTRAP; default 127.0.0.1:9092).")
  var bootstrap: String?

  @Option(name: .customLong("timeout-ms"), help: "Request timeout in milliseconds.")
  var timeoutMs: Int = 30_000

  @Option(name: .customLong("client-log-level"), help: "Client log level on stderr (trace … critical).")
  var logLevel: String = "warning"

  @Option(
    name: .customShort("X"),
    help: ArgumentHelp(
      "A client setting under librdkafka's name, KEY=VALUE; repeatable: security.protocol, sasl.mechanism, "
        + "sasl.username, sasl.password, ssl.ca.location, ssl.certificate.location, ssl.key.location, "
        + "ssl.endpoint.identification.algorithm (docs/security.md)."))
  var settings: [String] = []

  @Option(
    name: .customLong("command-config"),
    help: "A Java-properties file of such settings (the same file kcat -F or Kafka's tools read).")
  var commandConfig: String?

  /// The -X settings and the --command-config file (-X wins), as TLS and SASL settings.
  func security() throws -> KafkaConfiguration.Security {
    var security = KafkaConfiguration.Security()
    var pairs: [(String, String)] = []
    if let commandConfig {
      // Settings the Swift client has no use for (bootstrap.servers, sasl.jaas.config, …)
      // are skipped in a shared file; only -X insists on known keys.
      for (key, value) in try readProperties(commandConfig).sorted(by: { $0.key < $1.key })
      where KafkaConfiguration.Security.keys.contains(key) {
        pairs.append((key, value))
      }
    }
    for setting in settings {
      guard let equals = setting.firstIndex(of: "="), equals != setting.startIndex else {
        throw ValidationError("-X expects KEY=VALUE, got \"\(setting)\"")
      }
      pairs.append((String(setting[..<equals]), String(setting[setting.index(after: equals)...])))
    }
    for (key, value) in pairs {
      do {
        try security.set(key, value)
      } catch {
        throw ValidationError(error.message)
      }
    }
    return security
  }

  func addresses() throws -> [KafkaConfiguration.BrokerAddress] {
    let text = bootstrap ?? ProcessInfo.processInfo.environment["SLUICE_BOOTSTRAP"] ?? "127.0.0.1:9092"
    let parts = text.split(separator: ",").map { $0.trimmed() }.filter {
      !$0.isEmpty
    }
    guard !parts.isEmpty else { throw ValidationError("--bootstrap: no address given") }
    return try parts.map {
      guard let address = KafkaConfiguration.BrokerAddress($0) else {
        throw ValidationError("--bootstrap: \"\($0)\" is not HOST:PORT")
      }
      return address
    }
  }

  func connection() throws -> KafkaConfiguration.Connection {
    guard timeoutMs > 0 else { throw ValidationError("--timeout-ms must be positive") }
    var connection = KafkaConfiguration.Connection()
    connection.clientId = "sluice-cli"
    connection.requestTimeout = .milliseconds(timeoutMs)
    connection.connectTimeout = .milliseconds(min(timeoutMs, 10_000))
    connection.security = try security()
    return connection
  }

  func logger() throws -> Logger {
    guard let level = Logger.Level(rawValue: logLevel) else {
      throw ValidationError("unknown log level \(logLevel)")
    }
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = level
      return handler
    }
    return Logger(label: "sluice")
  }
}

/// Runs a client command body: Kafka errors go to stderr with exit status 2, bad
/// arguments or configuration with exit status 1.
func runClientCommand(_ body: () async throws -> Void) async throws {
  do {
    try await body()
  } catch let error as KafkaError {
    if error.code == .config {
      printError("error: \(error.message)")
      throw ExitCode(1)
    }
    printError("error: \(error.message)")
    throw ExitCode(2)
  } catch let error as ValidationError {
    printError("error: \(error.message)")
    throw ExitCode(1)
  } catch let error as UsageError {
    printError("error: \(error.message)")
    throw ExitCode(1)
  }
}

/// A usage or configuration error found while running (exit status 1).
struct UsageError: Error {
  var message: String
  init(_ message: String) { self.message = message }
}

func printError(_ text: String) {
  var bytes = Array((text + "\n").utf8)
  var done = 0
  while done < bytes.count {
    let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + done, $0.count - done) }
    if n < 0 && errno == EINTR { continue }
    if n <= 0 { return }
    done += n
  }
}

extension StringProtocol {
  /// Without leading and trailing spaces, tabs and line breaks.
  func trimmed() -> String {
    let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
    guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) })
    else {
      return ""
    }
    return String(self[first...last])
  }
}

/// `value` with `digits` decimals (what `String(format: "%.Nf")` printed).
func fixed(_ value: Double, _ digits: Int) -> String {
  guard value.isFinite else { return String(value) }
  var scale = 1.0
  for _ in 0..<digits { scale *= 10 }
  let scaled = (abs(value) * scale).rounded()
  guard scaled < 9e18 else { return String(value) }
  let units = Int64(scaled)
  let whole = units / Int64(scale)
  let sign = value < 0 && units != 0 ? "-" : ""
  guard digits > 0 else { return sign + String(whole) }
  let fraction = String(units % Int64(scale))
  return sign + String(whole) + "." + String(repeating: "0", count: digits - fraction.count) + fraction
}

func parseCompression(_ name: String) throws -> CompressionCodec {
  guard let codec = CompressionCodec(name: name) else {
    throw ValidationError("--compression must be one of none, gzip, snappy, lz4, zstd")
  }
  return codec
}

func parseAcks(_ text: String) throws -> KafkaConfiguration.Acks {
  switch text.lowercased() {
  case "0", "none": return .none
  case "1", "leader": return .leader
  case "-1", "all": return .all
  default: throw ValidationError("--acks must be 0, 1 or all")
  }
}

/// Buffered writes to stdout (a `print` per record is far too slow for large topics).
struct OutputBuffer {
  private var bytes: [UInt8] = []
  /// A write failed (the reader went away: EPIPE, SIGPIPE being ignored); callers stop.
  private(set) var broken = false
  init() { bytes.reserveCapacity(1 << 16) }
  mutating func append(_ string: String) { bytes.append(contentsOf: string.utf8) }
  mutating func append(_ data: some Sequence<UInt8>) { bytes.append(contentsOf: data) }
  mutating func flushIfLarge() { if bytes.count >= 1 << 16 { flush() } }
  mutating func flush() {
    guard !bytes.isEmpty else { return }
    if !bytes.withUnsafeBytes({ writeAll(1, $0) }) { broken = true }
    bytes.removeAll(keepingCapacity: true)
  }
}

extension Sluice {
  /// Exit statuses: 0 success, 1 usage or configuration error, 2 Kafka error. (The default
  /// ArgumentParser status for usage errors is 64; scripts get one rule for every command.)
  static func main() async {
    do {
      var command = try parseAsRoot()
      if var asyncCommand = command as? any AsyncParsableCommand {
        try await asyncCommand.run()
      } else {
        try command.run()
      }
    } catch {
      let code = exitCode(for: error)
      if code == .validationFailure {
        printError(fullMessage(for: error))
        Glibc.exit(1)
      }
      exit(withError: error)
    }
  }
}

/// Writes all of `bytes` to `descriptor` (retrying short writes and EINTR); false when a
/// write fails (the reader went away).
func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
  var offset = 0
  while offset < bytes.count {
    let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
    if written <= 0 {
      if written < 0 && errno == EINTR { continue }
      return false
    }
    offset += written
  }
  return true
}
