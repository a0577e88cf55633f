public import Foundation

/// Blocking loopback sockets for tests that talk to a listener byte by byte.
public enum LoopbackSocket {
  /// A TCP port free on 127.0.0.1 right now (bound, read back, released).
  public static func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = self.address("127.0.0.1", 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withSockaddr(address) { bind(fd, $0, $1) }
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
  }

  /// An IPv4 address.
  public static func address(_ host: String, _ port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr(host)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    return address
  }

  public static func withSockaddr<T>(
    _ address: sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T
  ) -> T {
    withUnsafePointer(to: address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
  }

  /// A blocking connection to 127.0.0.1:`port` (from `source`, when given), reads timing
  /// out after `timeout` seconds; nil if it could not connect.
  public static func connect(_ port: Int, from source: String? = nil, timeout: Int = 5) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    if let source { _ = withSockaddr(address(source, 0)) { bind(fd, $0, $1) } }
    var wait = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
    guard withSockaddr(address("127.0.0.1", port), { Foundation.connect(fd, $0, $1) }) == 0 else {
      close(fd)
      return nil
    }
    return fd
  }
}
