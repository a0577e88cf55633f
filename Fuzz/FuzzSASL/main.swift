import SluiceSASL

/// Feeds arbitrary bytes to the SASL parsers a client reaches before it is authenticated:
/// the SCRAM server exchange (client-first, then client-final, split at the first 0x00),
/// PLAIN messages and saslname unescaping; and the client's parse of a hostile server-first.
/// Nothing may crash, and no garbage may authenticate.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  let split = bytes.firstIndex(of: 0) ?? bytes.count
  let first = Array(bytes[..<split])
  let final = split < bytes.count ? Array(bytes[(split + 1)...]) : []
  for mechanism in SCRAMMechanism.allCases {
    let credential = SCRAMCredential(
      mechanism: mechanism, saltedPassword: Array(repeating: 7, count: mechanism.hashLength),
      salt: [1, 2, 3],
      iterations: 4096)
    var server = SCRAMServerExchange(mechanism: mechanism, serverNonce: "fuzz") { _ in credential }
    if case .challenge = server.respond(to: first) {
      if case .success = server.respond(to: final) {
        preconditionFailure("a fuzzed proof authenticated")
      }
    }
  }
  // The client's parse of a hostile server-first (the PBKDF2 after it is not fuzzed: it
  // costs thousands of HMACs and sees only checked values).
  if let parsed = try? SCRAMClientExchange.parseServerFirst(first, clientNonce: "n") {
    precondition(parsed.nonce.hasPrefix("n") && parsed.iterations >= SCRAMMechanism.minIterations)
  }
  let client = SCRAMClientExchange(mechanism: .sha256, username: "u", password: "p", nonce: "n")
  _ = try? client.verify(serverFinal: final)
  _ = PlainSASL.parse(bytes)
  if let text = String(validating: first, as: UTF8.self) { _ = SCRAM.unescape(Substring(text)) }
  return 0
}
