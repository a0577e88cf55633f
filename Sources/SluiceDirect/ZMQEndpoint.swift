/// A `tcp://HOST:PORT` address as ZeroMQ writes it. For `bind`, HOST may be `*` (every
/// interface) and PORT may be `*` or 0 (a free port, which `bind` returns).
public struct ZMQEndpoint: Sendable, Hashable, CustomStringConvertible {
  public var host: String
  public var port: Int

  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  /// Parses `tcp://HOST:PORT` (IPv6 hosts in brackets); nil with a reason otherwise.
  public static func parse(_ text: String) -> Result<ZMQEndpoint, ZMTPError> {
    guard text.hasPrefix("tcp://") else {
      return .failure(ZMTPError("\"\(text)\": only tcp://HOST:PORT endpoints are supported"))
    }
    let rest = text.dropFirst("tcp://".count)
    guard let colon = rest.lastIndex(of: ":") else {
      return .failure(ZMTPError("\"\(text)\": expected tcp://HOST:PORT"))
    }
    var host = String(rest[..<colon])
    let portText = rest[rest.index(after: colon)...]
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    if host == "*" { host = "0.0.0.0" }
    let port: Int
    if portText == "*" {
      port = 0
    } else {
      guard let number = Int(portText), (0...65535).contains(number) else {
        return .failure(ZMTPError("\"\(text)\": the port must be a number from 0 to 65535 or *"))
      }
      port = number
    }
    guard !host.isEmpty, host.utf8.count <= 253, !host.contains("/") else {
      return .failure(ZMTPError("\"\(text)\": bad host"))
    }
    return .success(ZMQEndpoint(host: host, port: port))
  }

  public var description: String { host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)" }
}
