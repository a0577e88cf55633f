public import NIOCore
public import NIOHTTP1
public import NIOPosix

/// An `http://` URL as the webhook client takes it.
public struct HTTPURL: Sendable, Hashable, CustomStringConvertible {
  public var host: String
  public var port: Int
  /// Path and query, starting with `/`.
  public var target: String

  /// Parses `http://HOST[:PORT][/PATH][?QUERY]` (no user info, no fragment); nil otherwise.
  public init?(_ text: String) {
    guard text.utf8.count <= 2048, text.lowercased().hasPrefix("http://") else { return nil }
    let rest = text.dropFirst("http://".count)
    let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
    let authority = rest[..<authorityEnd]
    var target = String(rest[authorityEnd...])
    if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
    guard !authority.isEmpty, !authority.contains("@"), !target.contains("#"),
      !target.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" })
    else { return nil }
    var host = String(authority)
    var port = 80
    if authority.hasPrefix("[") {
      guard let close = authority.firstIndex(of: "]") else { return nil }
      host = String(authority[authority.index(after: authority.startIndex)..<close])
      let after = authority[authority.index(after: close)...]
      if !after.isEmpty {
        guard after.hasPrefix(":"), let number = Int(after.dropFirst()) else { return nil }
        port = number
      }
    } else if let colon = authority.lastIndex(of: ":") {
      host = String(authority[..<colon])
      guard let number = Int(authority[authority.index(after: colon)...]) else { return nil }
      port = number
    }
    // A name or IPv4 address (letters, digits, `-._~`), or inside brackets an IPv6 address.
    let bracketed = authority.hasPrefix("[")
    guard !host.isEmpty, (1...65535).contains(port),
      host.unicodeScalars.allSatisfy({ scalar in
        guard scalar.isASCII else { return false }
        let c = Character(scalar)
        if c.isLetter || c.isNumber { return true }
        return bracketed ? c == ":" || c == "." : c == "-" || c == "." || c == "_" || c == "~"
      }),
      !bracketed || host.contains(":")
    else { return nil }
    self.host = host
    self.port = port
    self.target = target
  }

  public var description: String {
    let shownHost = host.contains(":") ? "[\(host)]" : host
    return "http://\(shownHost)\(port == 80 ? "" : ":\(port)")\(target)"
  }

  var hostHeader: String {
    let shownHost = host.contains(":") ? "[\(host)]" : host
    return port == 80 ? shownHost : "\(shownHost):\(port)"
  }
}

/// A response as the webhook client keeps it: status, headers, and at most
/// ``HTTPClient/maxResponseBytes`` of body.
public struct HTTPClientResponse: Sendable {
  public var status: Int
  public var headers: HTTPHeaders
  public var body: ByteBuffer
}

/// Why a request got no response.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
  public var description: String
}

/// A small HTTP/1.1 client on SwiftNIO: one connection per request (`Connection: close`),
/// a deadline over connect, send and receive, and the response body kept up to a bound.
/// Used to deliver webhooks and by the `sluice webhook` commands.
public enum HTTPClient {
  public static let maxResponseBytes = 64 * 1024

  public static func request(
    _ method: HTTPMethod, _ url: HTTPURL, headers: [(String, String)] = [], body: ByteBuffer? = nil,
    timeoutMs: Int64, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) async throws(HTTPClientError) -> HTTPClientResponse {
    do {
      return try await withThrowingTaskGroup(of: HTTPClientResponse?.self) { tasks in
        tasks.addTask { try await exchange(method, url, headers, body, timeoutMs, group) }
        tasks.addTask {
          try await Task.sleep(for: .milliseconds(timeoutMs))
          return nil
        }
        defer { tasks.cancelAll() }
        guard let first = try await tasks.next(), let response = first else {
          throw HTTPClientError(description: "timed out after \(timeoutMs) ms")
        }
        return response
      }
    } catch let error as HTTPClientError {
      throw error
    } catch {
      throw HTTPClientError(description: "\(error)")
    }
  }

  private static func exchange(
    _ method: HTTPMethod, _ url: HTTPURL, _ extra: [(String, String)], _ body: ByteBuffer?,
    _ timeoutMs: Int64,
    _ group: any EventLoopGroup
  ) async throws -> HTTPClientResponse {
    let channel = try await ClientBootstrap(group: group)
      .connectTimeout(.milliseconds(min(timeoutMs, 10_000)))
      .connect(host: url.host, port: url.port) { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHTTPClientHandlers()
          return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
            wrappingChannelSynchronously: channel)
        }
      }
    return try await withTaskCancellationHandler {
      try await channel.executeThenClose { inbound, outbound in
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: url.hostHeader)
        headers.add(name: "Connection", value: "close")
        headers.add(name: "User-Agent", value: "Sluice")
        for (name, value) in extra { headers.add(name: name, value: value) }
        if let body { headers.add(name: "Content-Length", value: String(body.readableBytes)) }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: url.target, headers: headers)
        try await outbound.write(.head(head))
        if let body { try await outbound.write(.body(.byteBuffer(body))) }
        try await outbound.write(.end(nil))
        var status = 0
        var responseHeaders = HTTPHeaders()
        var responseBody = ByteBuffer()
        for try await part in inbound {
          switch part {
          case .head(let head):
            status = Int(head.status.code)
            responseHeaders = head.headers
          case .body(var chunk):
            let room = maxResponseBytes - responseBody.readableBytes
            if room > 0, let kept = chunk.readSlice(length: min(room, chunk.readableBytes)) {
              responseBody.writeImmutableBuffer(kept)
            }
          case .end:
            return HTTPClientResponse(status: status, headers: responseHeaders, body: responseBody)
          }
        }
        throw HTTPClientError(
          description: status == 0 ? "connection closed before a response" : "response cut short")
      }
    } onCancel: {
      channel.channel.close(promise: nil)
    }
  }
}
