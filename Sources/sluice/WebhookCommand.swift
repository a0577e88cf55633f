import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import SluiceHTTP

/// `sluice webhook create|list|describe|pause|resume|delete`: the `/v1/webhooks` API of a
/// running broker's HTTP front door.
struct WebhookCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "webhook",
    abstract: "Create, list, describe, pause, resume and delete webhook subscriptions (over the HTTP API).",
    subcommands: [Create.self, List.self, Describe.self, Pause.self, Resume.self, Delete.self])

  struct Options: ParsableArguments {
    @Option(
      help: "The broker's HTTP address, http://HOST:PORT (env SLUICE_HTTP; default http://127.0.0.1:8082).")
    var http: String?

    @Option(name: .customLong("timeout-ms"), help: "Request timeout in milliseconds.")
    var timeoutMs: Int64 = 30_000

    /// Sends a request to `path`; prints the body (JSON) and fails on a non-2xx answer.
    func call(_ method: HTTPMethod, _ path: String, body: String? = nil) async throws {
      let base = http ?? ProcessInfo.processInfo.environment["SLUICE_HTTP"] ?? "http://127.0.0.1:8082"
      let trimmed = base.hasSuffix("/") ? String(base.dropLast()) : base
      guard let url = HTTPURL(trimmed + path) else {
        throw ValidationError("--http: \"\(base)\" is not an http://HOST:PORT address")
      }
      let response: HTTPClientResponse
      do {
        response = try await HTTPClient.request(
          method, url, headers: body == nil ? [] : [("Content-Type", "application/json")],
          body: body.map { ByteBuffer(string: $0) }, timeoutMs: timeoutMs)
      } catch {
        FileHandle.standardError.write(Data("error: \(url): \(error)\n".utf8))
        throw ExitCode(2)
      }
      let text = String(buffer: response.body)
      guard (200..<300).contains(response.status) else {
        FileHandle.standardError.write(Data("error: HTTP \(response.status): \(text)\n".utf8))
        throw ExitCode(1)
      }
      if !text.isEmpty { print(text) }
    }
  }

  static func segment(_ name: String) -> String {
    name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name
  }

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Subscribe a URL to a topic: each record is POSTed to it, signed, in order per partition.")
    @OptionGroup var options: Options
    @Argument(help: "Subscription name ([A-Za-z0-9._-], at most 200).") var name: String
    @Option(help: "Topic whose records are delivered.") var topic: String
    @Option(help: "http:// URL to POST each record to.") var url: String
    @Option(help: "Standard Webhooks secret (whsec_ + base64 key) to sign with.") var secret: String?
    @Option(
      name: .customLong("max-attempts"), help: "Attempts per record before dead-lettering (default 10).")
    var maxAttempts: Int?
    @Option(
      name: .customLong("dead-letter-topic"), help: "Where undeliverable records go (default NAME.dlq).")
    var deadLetterTopic: String?
    @Option(help: "Where a new subscription starts: beginning or end (default end).") var from: String?
    @Option(name: .customLong("request-timeout-ms"), help: "Per-attempt timeout (default 10000).")
    var requestTimeoutMs: Int?
    @Option(
      name: .customLong("retry-backoff-ms"), help: "First retry delay, doubled per attempt (default 1000).")
    var retryBackoffMs: Int?
    @Option(name: .customLong("max-backoff-ms"), help: "Longest retry delay (default 60000).")
    var maxBackoffMs: Int?

    func run() async throws {
      var fields: [String: Any] = ["name": name, "topic": topic, "url": url]
      if let secret { fields["secret"] = secret }
      if let maxAttempts { fields["max_attempts"] = maxAttempts }
      if let deadLetterTopic { fields["dead_letter_topic"] = deadLetterTopic }
      if let from { fields["from"] = from }
      if let requestTimeoutMs { fields["timeout_ms"] = requestTimeoutMs }
      if let retryBackoffMs { fields["retry_backoff_ms"] = retryBackoffMs }
      if let maxBackoffMs { fields["max_backoff_ms"] = maxBackoffMs }
      let body = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
      try await options.call(.POST, "/v1/webhooks", body: String(decoding: body, as: UTF8.self))
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Every subscription, as JSON.")
    @OptionGroup var options: Options
    func run() async throws { try await options.call(.GET, "/v1/webhooks") }
  }

  struct Describe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "One subscription: state, delivered offsets, lag, counts, last error (JSON).")
    @OptionGroup var options: Options
    @Argument(help: "Subscription name.") var name: String
    func run() async throws { try await options.call(.GET, "/v1/webhooks/\(WebhookCommand.segment(name))") }
  }

  struct Pause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop delivering (kept across restarts).")
    @OptionGroup var options: Options
    @Argument(help: "Subscription name.") var name: String
    func run() async throws {
      try await options.call(.POST, "/v1/webhooks/\(WebhookCommand.segment(name))/pause")
    }
  }

  struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Deliver again from where it stopped.")
    @OptionGroup var options: Options
    @Argument(help: "Subscription name.") var name: String
    func run() async throws {
      try await options.call(.POST, "/v1/webhooks/\(WebhookCommand.segment(name))/resume")
    }
  }

  struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a subscription.")
    @OptionGroup var options: Options
    @Argument(help: "Subscription name.") var name: String
    func run() async throws {
      try await options.call(.DELETE, "/v1/webhooks/\(WebhookCommand.segment(name))")
    }
  }
}
