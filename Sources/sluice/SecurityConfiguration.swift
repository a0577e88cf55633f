import SluiceServer

/// `sluice serve`'s security settings (docs/security.md), from the same places as the
/// others: `--set`, the environment, the config file.
let securitySettings: [(key: String, defaultValue: String, help: String)] = [
  ("ssl.certificate.location", "", "PEM certificate chain of SSL and SASL_SSL listeners."),
  ("ssl.key.location", "", "PEM private key (unencrypted) of that certificate."),
  ("ssl.ca.location", "", "PEM CA bundle that client certificates must chain to."),
  (
    "ssl.client.auth", "none",
    "Client certificates on SSL listeners: none, requested or required; a certificate's subject names the principal (User:CN=...)."
  ),
  (
    "sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
    "SASL mechanisms offered on SASL listeners."
  ),
  (
    "connections.max.reauth.ms", "0",
    "SASL session lifetime: clients re-authenticate on the connection before it ends, or it is closed (0: never)."
  ),
  ("super.users", "", "Principals every ACL check lets through, separated by ; (User:admin;User:ops)."),
  (
    "http.authentication", "",
    "HTTP Basic with broker users, and ACLs, on the HTTP API (with --http-listen https://… for TLS); default true once a Kafka listener authenticates."
  ),
  (
    "allow.everyone.if.no.acl.found", "",
    "Whether a resource no ACL covers is open to all; default true, false once a listener authenticates."
  ),
]

/// A `--listen` value: `PROTOCOL://HOST:PORT`, or `HOST:PORT` (PLAINTEXT).
func parseListener(_ text: String) throws -> (SecurityProtocol, String, Int) {
  var securityProtocol = SecurityProtocol.plaintext
  var address = text.trimmed()
  if let range = address.range(of: "://") {
    let name = address[..<range.lowerBound].uppercased()
    guard let parsed = SecurityProtocol(rawValue: name) else {
      throw ConfigurationError(
        description:
          "--listen: unknown security protocol \"\(name)\" (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)")
    }
    securityProtocol = parsed
    address = String(address[range.upperBound...])
  }
  // Kafka's `PROTOCOL://:9093` binds every interface.
  if address.hasPrefix(":") { address = "0.0.0.0" + address }
  let (host, port) = try parseHostPort(address, option: "--listen")
  return (securityProtocol, host, port)
}

/// Builds the listeners from the `--listen` and `--advertise` values and the security
/// settings. An `--advertise` value with a protocol applies to that protocol's listener;
/// one without, to the listener at the same position.
func makeListeners(
  listen: [String], advertise: [String], setting: (String) -> String?
) throws -> [ListenerConfiguration] {
  var listeners: [ListenerConfiguration] = []
  // One identity per client-certificate mode: as Kafka, ssl.client.auth applies to SSL
  // listeners; SASL_SSL listeners authenticate with SASL and ask for no certificate.
  var identities: [ClientAuthentication: TLSIdentity] = [:]
  let mechanisms = (setting("sasl.enabled.mechanisms") ?? "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN")
    .split(separator: ",").map { $0.trimmed().uppercased() }.filter { !$0.isEmpty }
  for mechanism in mechanisms where !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(mechanism) {
    throw ConfigurationError(
      description: "sasl.enabled.mechanisms: \(mechanism) is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
  }
  let reauth = try parseInt(
    "connections.max.reauth.ms", setting("connections.max.reauth.ms") ?? "0", min: Int64(0))
  for text in listen {
    let (securityProtocol, host, port) = try parseListener(text)
    if listeners.contains(where: { $0.port == port && port != 0 }) {
      throw ConfigurationError(description: "--listen: port \(port) is given twice")
    }
    var listener = ListenerConfiguration(
      securityProtocol: securityProtocol, host: host, port: port, saslMechanisms: mechanisms,
      reauthenticationMs: reauth)
    if securityProtocol.usesSASL && mechanisms.isEmpty {
      throw ConfigurationError(description: "sasl.enabled.mechanisms is empty but \(text) uses SASL")
    }
    if securityProtocol.usesTLS {
      let authText = (setting("ssl.client.auth") ?? "none").lowercased()
      guard let configured = ClientAuthentication(rawValue: authText) else {
        throw ConfigurationError(
          description: "ssl.client.auth: \"\(authText)\" is not none, requested or required")
      }
      let auth = securityProtocol == .ssl ? configured : .none
      if identities[auth] == nil {
        guard let certificate = setting("ssl.certificate.location"), !certificate.isEmpty,
          let key = setting("ssl.key.location"), !key.isEmpty
        else {
          throw ConfigurationError(
            description: "\(text) needs ssl.certificate.location and ssl.key.location (--set KEY=PATH)")
        }
        let ca = setting("ssl.ca.location").flatMap { $0.isEmpty ? nil : $0 }
        do {
          identities[auth] = try TLSIdentity(
            certificatePath: certificate, keyPath: key, caPath: ca, clientAuthentication: auth)
        } catch {
          throw ConfigurationError(description: "TLS certificate or key: \(error)")
        }
      }
      listener.tls = identities[auth]
    }
    listeners.append(listener)
  }
  for (position, text) in advertise.enumerated() {
    if text.contains("://") {
      let (securityProtocol, host, port) = try parseListener(text)
      guard let index = listeners.firstIndex(where: { $0.securityProtocol == securityProtocol }) else {
        throw ConfigurationError(description: "--advertise \(text): no \(securityProtocol.rawValue) listener")
      }
      listeners[index].advertised = (host, Int32(port))
    } else {
      guard position < listeners.count else {
        throw ConfigurationError(description: "--advertise \(text): more advertised addresses than listeners")
      }
      let (host, port) = try parseHostPort(text, option: "--advertise")
      listeners[position].advertised = (host, Int32(port))
    }
  }
  for index in listeners.indices where listeners[index].advertised == nil {
    let host = listeners[index].host
    listeners[index].advertised = (
      host == "0.0.0.0" || host == "::" ? "127.0.0.1" : host, Int32(listeners[index].port)
    )
  }
  return listeners
}

/// The HTTPS listener's identity: a Kafka listener's without client certificates, or a new
/// one from the same files.
func httpIdentity(listeners: [ListenerConfiguration], setting: (String) -> String?) throws -> TLSIdentity {
  if let shared = listeners.compactMap(\.tls).first(where: { $0.clientAuthentication == .none }) {
    return shared
  }
  guard let certificate = setting("ssl.certificate.location"), !certificate.isEmpty,
    let key = setting("ssl.key.location"), !key.isEmpty
  else {
    throw ConfigurationError(
      description: "--http-listen https://… needs ssl.certificate.location and ssl.key.location")
  }
  do {
    return try TLSIdentity(
      certificatePath: certificate, keyPath: key, caPath: nil, clientAuthentication: .none)
  } catch {
    throw ConfigurationError(description: "TLS certificate or key: \(error)")
  }
}
