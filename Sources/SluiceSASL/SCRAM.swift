import Crypto

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif

/// A SASL exchange that failed: the reason, fit for a log line and for the client.
public struct SASLError: Error, Sendable, Equatable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// The SCRAM mechanisms Kafka offers (RFC 5802 with the hashes of RFC 7677 and RFC 5802's
/// SHA-512 variant), named and numbered as Kafka names and numbers them.
public enum SCRAMMechanism: String, Sendable, CaseIterable, Codable, Hashable {
  case sha256 = "SCRAM-SHA-256"
  case sha512 = "SCRAM-SHA-512"

  /// Kafka's `ScramMechanism` code (AlterUserScramCredentials, DescribeUserScramCredentials).
  public var kafkaType: Int8 { self == .sha256 ? 1 : 2 }

  public init?(kafkaType: Int8) {
    switch kafkaType {
    case 1: self = .sha256
    case 2: self = .sha512
    default: return nil
    }
  }

  /// Kafka's bounds on the iteration count (ScramMechanism.minIterations/maxIterations).
  public static let minIterations = 4096
  public static let maxIterations = 16384
  /// What `sluice user add` and the Swift admin client use, and what an unknown user is
  /// answered with.
  public static let defaultIterations = 8192

  /// The hash's output length in bytes.
  public var hashLength: Int { self == .sha256 ? 32 : 64 }

  public func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
    let key = SymmetricKey(data: key)
    switch self {
    case .sha256: return Array(HMAC<SHA256>.authenticationCode(for: data, using: key))
    case .sha512: return Array(HMAC<SHA512>.authenticationCode(for: data, using: key))
    }
  }

  public func hash(_ data: [UInt8]) -> [UInt8] {
    switch self {
    case .sha256: return Array(SHA256.hash(data: data))
    case .sha512: return Array(SHA512.hash(data: data))
    }
  }

  /// RFC 5802's Hi(): PBKDF2 with this mechanism's HMAC and one output block.
  public func saltedPassword(_ password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
    let key = SymmetricKey(data: password)
    func mac(_ data: [UInt8]) -> [UInt8] {
      switch self {
      case .sha256: return Array(HMAC<SHA256>.authenticationCode(for: data, using: key))
      case .sha512: return Array(HMAC<SHA512>.authenticationCode(for: data, using: key))
      }
    }
    var block = mac(salt + [0, 0, 0, 1])
    var result = block
    for _ in 1..<max(iterations, 1) {
      block = mac(block)
      for index in result.indices { result[index] ^= block[index] }
    }
    return result
  }
}

/// What a server keeps of a SCRAM password (RFC 5802 section 3): never the password, only
/// the salt, the iteration count, StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
/// ServerKey = HMAC(SaltedPassword, "Server Key").
public struct SCRAMCredential: Sendable, Hashable, Codable {
  public var mechanism: SCRAMMechanism
  public var salt: [UInt8]
  public var iterations: Int
  public var storedKey: [UInt8]
  public var serverKey: [UInt8]

  public init(
    mechanism: SCRAMMechanism, salt: [UInt8], iterations: Int, storedKey: [UInt8], serverKey: [UInt8]
  ) {
    self.mechanism = mechanism
    self.salt = salt
    self.iterations = iterations
    self.storedKey = storedKey
    self.serverKey = serverKey
  }

  /// From a salted password (what AlterUserScramCredentials carries: clients hash).
  public init(mechanism: SCRAMMechanism, saltedPassword: [UInt8], salt: [UInt8], iterations: Int) {
    let clientKey = mechanism.hmac(key: saltedPassword, Array("Client Key".utf8))
    self.init(
      mechanism: mechanism, salt: salt, iterations: iterations, storedKey: mechanism.hash(clientKey),
      serverKey: mechanism.hmac(key: saltedPassword, Array("Server Key".utf8)))
  }

  /// From a password, with a fresh random salt unless one is given.
  public init(
    mechanism: SCRAMMechanism, password: String, salt: [UInt8]? = nil,
    iterations: Int = SCRAMMechanism.minIterations
  ) {
    let salt = salt ?? SCRAM.randomBytes(16)
    self.init(
      mechanism: mechanism,
      saltedPassword: mechanism.saltedPassword(Array(password.utf8), salt: salt, iterations: iterations),
      salt: salt, iterations: iterations)
  }

  /// Whether `password` is the one this credential was made from (PLAIN and HTTP Basic
  /// check against SCRAM credentials this way; it costs `iterations` HMACs).
  public func matches(password: String) -> Bool {
    let salted = mechanism.saltedPassword(Array(password.utf8), salt: salt, iterations: iterations)
    let candidate = SCRAMCredential(
      mechanism: mechanism, saltedPassword: salted, salt: salt, iterations: iterations)
    return SCRAM.constantTimeEqual(candidate.storedKey, storedKey)
  }
}

/// Helpers shared by both sides of a SCRAM exchange.
public enum SCRAM {
  public static func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
  }

  /// A printable nonce without commas (base64 of random bytes).
  public static func nonce() -> String { base64(randomBytes(24)) }

  /// A random key for this process: unknown users' fake salts are derived with it.
  public static let processSecret = randomBytes(32)

  public static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

  public static func unbase64(_ text: Substring) -> [UInt8]? {
    Data(base64Encoded: String(text)).map { Array($0) }
  }

  public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in a.indices { difference |= a[index] ^ b[index] }
    return difference == 0
  }

  /// RFC 5802's saslname escaping: "," as "=2C" and "=" as "=3D".
  public static func escape(_ name: String) -> String {
    name.replacing("=", with: "=3D").replacing(",", with: "=2C")
  }

  /// The reverse of `escape`; nil if a "=" starts anything else.
  public static func unescape(_ name: Substring) -> String? {
    var result = ""
    var rest = name[...]
    while let equals = rest.firstIndex(of: "=") {
      result += rest[..<equals]
      let code = rest[rest.index(after: equals)...].prefix(2)
      switch code {
      case "2C": result += ","
      case "3D": result += "="
      default: return nil
      }
      rest = rest[rest.index(equals, offsetBy: 3)...]
    }
    return result + rest
  }

  /// The `k=value` attributes of a SCRAM message, in order; nil if one is malformed.
  static func attributes(_ text: Substring) -> [(key: Character, value: Substring)]? {
    var result: [(key: Character, value: Substring)] = []
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
      guard part.count >= 2, let key = part.first, key.isLetter,
        part[part.index(after: part.startIndex)] == "="
      else { return nil }
      result.append((key, part.dropFirst(2)))
    }
    return result
  }

  static func xor(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] { zip(a, b).map { $0 ^ $1 } }
}

/// The server side of one SCRAM exchange (RFC 5802 without channel binding, as Kafka):
/// client-first → server-first, client-final → server-final. Messages are bounded by the
/// caller (the Kafka frame limit); every field is checked before use.
public struct SCRAMServerExchange: Sendable {
  public enum Step: Sendable, Equatable {
    /// Send this and wait for the next client message.
    case challenge([UInt8])
    /// Authenticated as `username`; send `final` (the server signature).
    case success(final: [UInt8], username: String)
    case failure(SASLError)
  }

  enum State: Sendable {
    case initial
    case sentFirst(
      username: String, credential: SCRAMCredential?, nonce: String, gs2: Substring, first: String,
      bare: String)
    case done
  }

  public let mechanism: SCRAMMechanism
  let lookup: @Sendable (String) -> SCRAMCredential?
  let serverNonce: String
  var state = State.initial

  /// `lookup` finds a user's credential for this mechanism; `serverNonce` is random unless a
  /// test fixes it.
  public init(
    mechanism: SCRAMMechanism, serverNonce: String = SCRAM.nonce(),
    lookup: @escaping @Sendable (String) -> SCRAMCredential?
  ) {
    self.mechanism = mechanism
    self.serverNonce = serverNonce
    self.lookup = lookup
  }

  public static let invalidCredentials = SASLError(
    "Authentication failed during authentication due to invalid credentials with SASL mechanism")

  public mutating func respond(to message: [UInt8]) -> Step {
    guard let text = String(validating: message, as: UTF8.self) else {
      state = .done
      return .failure(SASLError("SCRAM message is not UTF-8"))
    }
    switch state {
    case .initial:
      return clientFirst(Substring(text))
    case .sentFirst(let username, let credential, let nonce, let gs2, let first, let bare):
      state = .done
      return clientFinal(
        Substring(text), username: username, credential: credential, nonce: nonce, gs2: gs2, first: first,
        bare: bare)
    case .done:
      return .failure(SASLError("SCRAM exchange already finished"))
    }
  }

  mutating func clientFirst(_ text: Substring) -> Step {
    state = .done
    // gs2-header: "n,," or "y,," (no channel binding), optionally "n,a=authzid,".
    let parts = text.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false)
    guard parts.count == 3 else { return .failure(SASLError("invalid SCRAM client-first message")) }
    guard parts[0] == "n" || parts[0] == "y" else {
      return .failure(SASLError("SCRAM channel binding is not supported"))
    }
    let bare = parts[2]
    guard let attributes = SCRAM.attributes(bare), attributes.count >= 2, attributes[0].key == "n",
      attributes[1].key == "r", !attributes[1].value.isEmpty,
      let username = SCRAM.unescape(attributes[0].value), !username.isEmpty
    else { return .failure(SASLError("invalid SCRAM client-first message")) }
    if !parts[1].isEmpty {
      guard parts[1].hasPrefix("a="), SCRAM.unescape(parts[1].dropFirst(2)) == username else {
        return .failure(SASLError("SCRAM authorization id must be empty or the user name"))
      }
    }
    for extra in attributes.dropFirst(2) {
      // Kafka's one extension is `tokenauth` (delegation tokens), which Sluice does not issue.
      if extra.key == "m" { return .failure(SASLError("SCRAM mandatory extensions are not supported")) }
    }
    if bare.contains("tokenauth=true") {
      return .failure(SASLError("delegation tokens are not supported"))
    }
    let credential = lookup(username).flatMap { $0.mechanism == mechanism ? $0 : nil }
    // An unknown user gets a challenge like any other (a salt derived from the name with
    // this process's secret, the default iteration count) and fails at the proof, so that
    // the exchange does not tell which users exist.
    let salt =
      credential?.salt ?? Array(mechanism.hmac(key: SCRAM.processSecret, Array(username.utf8)).prefix(16))
    let iterations = credential?.iterations ?? SCRAMMechanism.defaultIterations
    let nonce = String(attributes[1].value) + serverNonce
    let first = "r=\(nonce),s=\(SCRAM.base64(salt)),i=\(iterations)"
    state = .sentFirst(
      username: username, credential: credential, nonce: nonce, gs2: text[..<bare.startIndex], first: first,
      bare: String(bare))
    return .challenge(Array(first.utf8))
  }

  func clientFinal(
    _ text: Substring, username: String, credential: SCRAMCredential?, nonce: String, gs2: Substring,
    first: String, bare: String
  ) -> Step {
    guard let attributes = SCRAM.attributes(text), attributes.count >= 3, attributes[0].key == "c",
      attributes[1].key == "r", let last = attributes.last, last.key == "p",
      let proof = SCRAM.unbase64(last.value), let binding = SCRAM.unbase64(attributes[0].value)
    else { return .failure(SASLError("invalid SCRAM client-final message")) }
    guard binding == Array(gs2.utf8) else { return .failure(SASLError("SCRAM channel binding mismatch")) }
    // The nonce must end with the server-first nonce (client's + server's), as Kafka checks
    // it: librdkafka 2.0.x (Debian's kcat) sends the client nonce once more in front.
    guard attributes[1].value.hasSuffix(nonce) else { return .failure(SASLError("SCRAM nonce mismatch")) }
    guard let credential, proof.count == mechanism.hashLength else {
      return .failure(Self.invalidCredentials)
    }
    // AuthMessage = client-first-bare "," server-first "," client-final-without-proof.
    let withoutProof = text[..<text.index(last.value.startIndex, offsetBy: -3)]
    let authMessage = Array((bare + "," + first + "," + withoutProof).utf8)
    let clientSignature = mechanism.hmac(key: credential.storedKey, authMessage)
    let clientKey = SCRAM.xor(proof, clientSignature)
    guard SCRAM.constantTimeEqual(mechanism.hash(clientKey), credential.storedKey) else {
      return .failure(Self.invalidCredentials)
    }
    let serverSignature = mechanism.hmac(key: credential.serverKey, authMessage)
    return .success(final: Array("v=\(SCRAM.base64(serverSignature))".utf8), username: username)
  }
}

/// The client side of one SCRAM exchange.
public struct SCRAMClientExchange: Sendable {
  public let mechanism: SCRAMMechanism
  let username: String
  let password: String
  let clientNonce: String
  var bare = ""
  var expectedServerSignature: [UInt8] = []

  public init(mechanism: SCRAMMechanism, username: String, password: String, nonce: String = SCRAM.nonce()) {
    self.mechanism = mechanism
    self.username = username
    self.password = password
    self.clientNonce = nonce
  }

  /// The client-first message.
  public mutating func first() -> [UInt8] {
    bare = "n=\(SCRAM.escape(username)),r=\(clientNonce)"
    return Array(("n,," + bare).utf8)
  }

  /// What a server-first message says: the combined nonce, the salt and the iteration count
  /// (checked: the nonce extends the client's, the count is within Kafka's bounds).
  public static func parseServerFirst(_ serverFirst: [UInt8], clientNonce: String) throws(SASLError)
    -> (text: String, nonce: Substring, salt: [UInt8], iterations: Int)
  {
    guard let text = String(validating: serverFirst, as: UTF8.self),
      let attributes = SCRAM.attributes(text[...]),
      attributes.count >= 3, attributes[0].key == "r", attributes[1].key == "s", attributes[2].key == "i",
      let salt = SCRAM.unbase64(attributes[1].value), let iterations = Int(attributes[2].value)
    else { throw SASLError("invalid SCRAM server-first message") }
    let nonce = attributes[0].value
    guard nonce.hasPrefix(clientNonce), nonce.count > clientNonce.count else {
      throw SASLError("SCRAM server nonce does not extend the client's")
    }
    guard (SCRAMMechanism.minIterations...SCRAMMechanism.maxIterations).contains(iterations) else {
      throw SASLError("SCRAM iteration count \(iterations) out of range")
    }
    return (text, nonce, salt, iterations)
  }

  /// The client-final message answering the server-first message.
  public mutating func final(answering serverFirst: [UInt8]) throws(SASLError) -> [UInt8] {
    let (text, nonce, salt, iterations) = try Self.parseServerFirst(serverFirst, clientNonce: clientNonce)
    let salted = mechanism.saltedPassword(Array(password.utf8), salt: salt, iterations: iterations)
    let withoutProof = "c=biws,r=\(nonce)"
    let authMessage = Array((bare + "," + text + "," + withoutProof).utf8)
    let clientKey = mechanism.hmac(key: salted, Array("Client Key".utf8))
    let clientSignature = mechanism.hmac(key: mechanism.hash(clientKey), authMessage)
    let serverKey = mechanism.hmac(key: salted, Array("Server Key".utf8))
    expectedServerSignature = mechanism.hmac(key: serverKey, authMessage)
    return Array((withoutProof + ",p=" + SCRAM.base64(SCRAM.xor(clientKey, clientSignature))).utf8)
  }

  /// Checks the server-final message (the server proves it knows the credential).
  public func verify(serverFinal: [UInt8]) throws(SASLError) {
    guard let text = String(validating: serverFinal, as: UTF8.self) else {
      throw SASLError("invalid SCRAM server-final message")
    }
    if text.hasPrefix("e=") { throw SASLError("SCRAM authentication failed: \(text.dropFirst(2))") }
    guard text.hasPrefix("v="), let signature = SCRAM.unbase64(text.dropFirst(2)),
      SCRAM.constantTimeEqual(signature, expectedServerSignature)
    else { throw SASLError("SCRAM server signature does not verify") }
  }
}

/// SASL PLAIN (RFC 4616): authzid NUL authcid NUL passwd.
public enum PlainSASL {
  /// The user name and password; nil if malformed, or if an authorization id other than
  /// the user name is asked for (Kafka allows none other).
  public static func parse(_ message: [UInt8]) -> (username: String, password: String)? {
    let parts = message.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
    guard parts.count == 3, let authzid = String(validating: parts[0], as: UTF8.self),
      let username = String(validating: parts[1], as: UTF8.self),
      let password = String(validating: parts[2], as: UTF8.self), !username.isEmpty
    else { return nil }
    guard authzid.isEmpty || authzid == username else { return nil }
    return (username, password)
  }

  public static func message(username: String, password: String) -> [UInt8] {
    [0] + Array(username.utf8) + [0] + Array(password.utf8)
  }
}
