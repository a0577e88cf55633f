/// A Kafka API key (the int16 at the start of every request header).
///
/// A struct rather than an enum so that keys this codec does not know can still be carried
/// (and answered with an error) instead of failing to decode. The known keys, their names,
/// versions and body types are generated (`Generated/_ApiRegistry.swift`).
public struct ApiKey: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
  public var rawValue: Int16

  public init(rawValue: Int16) {
    self.rawValue = rawValue
  }

  public var description: String { "\(name)(\(rawValue))" }

  /// The request header version a request of this API at `apiVersion` uses: 2 for flexible
  /// versions, 1 otherwise (0 for ControlledShutdown v0, the one API older than client ids).
  public func requestHeaderVersion(apiVersion: Int16) -> Int16 {
    if self == .controlledShutdown && apiVersion == 0 { return 0 }
    if let first = firstFlexibleRequestVersion, apiVersion >= first { return 2 }
    return 1
  }

  /// The response header version: 1 for flexible versions, 0 otherwise — and always 0 for
  /// ApiVersions, so a client that does not yet know the broker's versions can parse it.
  public func responseHeaderVersion(apiVersion: Int16) -> Int16 {
    if self == .apiVersions { return 0 }
    if let first = firstFlexibleResponseVersion, apiVersion >= first { return 1 }
    return 0
  }
}
