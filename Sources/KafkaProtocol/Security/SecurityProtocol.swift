/// Kafka's listener and client security protocols (`security.protocol`).
public enum KafkaSecurityProtocol: String, Sendable, Hashable, CaseIterable {
  case plaintext = "PLAINTEXT"
  case ssl = "SSL"
  case saslPlaintext = "SASL_PLAINTEXT"
  case saslSSL = "SASL_SSL"

  public var usesTLS: Bool { self == .ssl || self == .saslSSL }
  public var usesSASL: Bool { self == .saslPlaintext || self == .saslSSL }
}
