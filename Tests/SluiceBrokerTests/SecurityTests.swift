import Foundation
import KafkaProtocol
import NIOCore
import SluiceBroker
import SluiceKafka
import SluiceSASL
import SluiceStorage
import SluiceTestSupport
import Testing

/// SCRAM and PLAIN exchanges, the authorizer's rules, ACL and credential persistence, the
/// per-connection SASL state machine, and authorization through the Kafka front door.
@Suite struct SCRAMTests {
  /// RFC 7677 section 3's example exchange, byte for byte.
  @Test func rfc7677Example() throws {
    let salt = try #require(SCRAM.unbase64("W22ZaJ0SNY7soEsUEjb6gQ=="))
    let credential = SCRAMCredential(mechanism: .sha256, password: "pencil", salt: salt, iterations: 4096)
    var client = SCRAMClientExchange(
      mechanism: .sha256, username: "user", password: "pencil", nonce: "rOprNGfwEbeRWgbNEkqO")
    var server = SCRAMServerExchange(mechanism: .sha256, serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0") {
      $0 == "user" ? credential : nil
    }
    let first = client.first()
    #expect(String(decoding: first, as: UTF8.self) == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    guard case .challenge(let serverFirst) = server.respond(to: first) else {
      Issue.record("no challenge")
      return
    }
    #expect(
      String(decoding: serverFirst, as: UTF8.self)
        == "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    let final = try client.final(answering: serverFirst)
    #expect(
      String(decoding: final, as: UTF8.self)
        == "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    guard case .success(let serverFinal, let username) = server.respond(to: final) else {
      Issue.record("not authenticated")
      return
    }
    #expect(username == "user")
    #expect(String(decoding: serverFinal, as: UTF8.self) == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    try client.verify(serverFinal: serverFinal)
    #expect(credential.matches(password: "pencil"))
    #expect(!credential.matches(password: "pencil2"))
  }

  static func run(_ mechanism: SCRAMMechanism, user: String, password: String, stored: SCRAMCredential?)
    -> SCRAMServerExchange.Step
  {
    var client = SCRAMClientExchange(mechanism: mechanism, username: user, password: password)
    var server = SCRAMServerExchange(mechanism: mechanism) { _ in stored }
    guard case .challenge(let serverFirst) = server.respond(to: client.first()),
      let final = try? client.final(answering: serverFirst)
    else { return .failure(SASLError("no challenge")) }
    return server.respond(to: final)
  }

  @Test(arguments: SCRAMMechanism.allCases)
  func wrongPasswordAndUnknownUserFailAlike(_ mechanism: SCRAMMechanism) {
    let credential = SCRAMCredential(mechanism: mechanism, password: "right")
    guard case .success = Self.run(mechanism, user: "a,b=c", password: "right", stored: credential) else {
      Issue.record("right password refused")
      return
    }
    let wrong = Self.run(mechanism, user: "alice", password: "wrong", stored: credential)
    let unknown = Self.run(mechanism, user: "nobody", password: "right", stored: nil)
    #expect(wrong == .failure(SCRAMServerExchange.invalidCredentials))
    #expect(unknown == .failure(SCRAMServerExchange.invalidCredentials))
  }

  @Test func malformedMessagesAreRefused() {
    let credential = SCRAMCredential(mechanism: .sha256, password: "p")
    for message in [
      "", "n,,", "p=tls-unique,,n=u,r=x", "n,,r=x,n=u", "n,,n=,r=x", "n,a=other,n=u,r=x", "n,,n=a=zz,r=x",
    ] {
      var server = SCRAMServerExchange(mechanism: .sha256) { _ in credential }
      guard case .failure = server.respond(to: Array(message.utf8)) else {
        Issue.record("accepted \(message)")
        continue
      }
    }
    // A client-final that changes the nonce fails.
    var server = SCRAMServerExchange(mechanism: .sha256) { _ in credential }
    _ = server.respond(to: Array("n,,n=u,r=abc".utf8))
    let step = server.respond(to: Array("c=biws,r=abcX,p=AAAA".utf8))
    #expect(step == .failure(SASLError("SCRAM nonce mismatch")))
  }

  @Test func escapingRoundTrips() {
    #expect(SCRAM.escape("a,b=c") == "a=2Cb=3Dc")
    #expect(SCRAM.unescape("a=2Cb=3Dc") == "a,b=c")
    #expect(SCRAM.unescape("a=4Fb") == nil)
  }

  @Test func plainMessages() {
    #expect(PlainSASL.parse(PlainSASL.message(username: "u", password: "p"))! == ("u", "p"))
    #expect(PlainSASL.parse(Array("u\0u\0p".utf8))! == ("u", "p"))
    #expect(PlainSASL.parse(Array("x\0u\0p".utf8)) == nil)
    #expect(PlainSASL.parse(Array("\0\0p".utf8)) == nil)
    #expect(PlainSASL.parse(Array("u\0p".utf8)) == nil)
  }
}

@Suite struct AuthorizerTests {
  func acl(
    _ name: String, _ pattern: AclPatternType, _ principal: String, _ operation: AclOperation,
    _ permission: AclPermission = .allow, type: AclResourceType = .topic, host: String = "*"
  ) -> AclBinding {
    AclBinding(
      resourceType: type, resourceName: name, patternType: pattern, principal: principal, host: host,
      operation: operation, permission: permission)
  }

  @Test func rules() {
    let authorizer = Authorizer(
      acls: [
        acl("orders", .literal, "User:alice", .write),
        acl("logs-", .prefixed, "User:alice", .read),
        acl("logs-secret", .literal, "User:alice", .read, .deny),
        acl("*", .literal, "User:*", .describe),
        acl("g", .literal, "User:bob", .all, type: .group),
        acl("hosted", .literal, "User:alice", .read, host: "10.0.0.1"),
      ], superUsers: ["User:admin"], allowEveryoneIfNoAclFound: false)
    func may(
      _ principal: String, _ operation: AclOperation, _ type: AclResourceType, _ name: String,
      host: String = "1.2.3.4"
    )
      -> Bool
    {
      authorizer.authorize(
        principal: principal, host: host, operation: operation, resourceType: type, name: name)
    }
    #expect(may("User:alice", .write, .topic, "orders"))
    #expect(!may("User:alice", .read, .topic, "orders"))
    #expect(may("User:alice", .describe, .topic, "orders"))  // WRITE implies DESCRIBE
    #expect(may("User:alice", .read, .topic, "logs-app"))  // prefix
    #expect(!may("User:alice", .read, .topic, "logs-secret"))  // DENY wins
    #expect(may("User:alice", .describe, .topic, "logs-secret"))  // a DENY of READ leaves DESCRIBE
    #expect(may("User:carol", .describe, .topic, "anything"))  // User:* and "*"
    #expect(!may("User:carol", .read, .topic, "anything"))
    #expect(may("User:bob", .read, .group, "g") && may("User:bob", .delete, .group, "g"))  // ALL
    #expect(!may("User:alice", .read, .group, "g"))
    #expect(!may("User:alice", .read, .group, "other"))  // no ACL, not allow-everyone
    #expect(may("User:admin", .alter, .cluster, "kafka-cluster"))  // super user
    #expect(may("User:alice", .read, .topic, "hosted", host: "10.0.0.1"))
    #expect(!may("User:alice", .read, .topic, "hosted", host: "10.0.0.2"))
    #expect(
      authorizer.authorizeAny(principal: "User:alice", host: "h", operation: .write, resourceType: .topic))
    #expect(
      !authorizer.authorizeAny(principal: "User:bob", host: "h", operation: .write, resourceType: .topic))

    // allow.everyone.if.no.acl.found applies only where no ACL covers the resource.
    let open = Authorizer(
      acls: [acl("orders", .literal, "User:alice", .write)], superUsers: [], allowEveryoneIfNoAclFound: true)
    #expect(
      open.authorize(principal: "User:bob", host: "h", operation: .read, resourceType: .topic, name: "free"))
    #expect(
      !open.authorize(
        principal: "User:bob", host: "h", operation: .read, resourceType: .topic, name: "orders"))
  }

  @Test func filters() {
    let literal = acl("orders", .literal, "User:alice", .write)
    let prefixed = acl("ord", .prefixed, "User:alice", .read)
    let wildcard = acl("*", .literal, "User:bob", .read)
    let match = AclFilter(resourceType: .topic, resourceName: "orders", patternType: .match)
    #expect([literal, prefixed, wildcard].filter(match.matches) == [literal, prefixed, wildcard])
    let exact = AclFilter(resourceType: .topic, resourceName: "orders", patternType: .literal)
    #expect([literal, prefixed, wildcard].filter(exact.matches) == [literal])
    #expect([literal, prefixed, wildcard].filter(AclFilter(principal: "User:bob").matches) == [wildcard])
    #expect(
      AclBinding(resourceType: .cluster, resourceName: "x", principal: "User:a", operation: .alter).problem
        != nil)
    #expect(
      AclBinding(resourceType: .topic, resourceName: "t", principal: "alice", operation: .read).problem != nil
    )
    #expect(
      AclBinding(resourceType: .topic, resourceName: "t", principal: "User:a", operation: .any).problem != nil
    )
  }
}

@Suite struct SecurityStoreTests {
  @Test func credentialsAndAclsSurviveARestart() async throws {
    let (broker, directory) = try Broker.makeForTest()
    let credential = SCRAMCredential(mechanism: .sha512, password: "secret")
    try await broker.alterCredentials([.init(user: "alice", mechanism: .sha512, credential: credential)])
    let binding = AclBinding(
      resourceType: .topic, resourceName: "t", principal: "User:alice", operation: .read)
    try await broker.createAcls([binding])
    await broker.shutdown()

    let (reopened, _) = try Broker.makeForTest(directory: directory)
    #expect(reopened.security.credential(user: "alice", mechanism: .sha512) == credential)
    #expect(reopened.security.verify(user: "alice", password: "secret"))
    #expect(!reopened.security.verify(user: "alice", password: "nope"))
    #expect(reopened.security.acls == [binding])
    let removed = try await reopened.deleteAcls([AclFilter(principal: "User:alice")])
    #expect(removed == [[binding]])
    try await reopened.alterCredentials([.init(user: "alice", mechanism: .sha512, credential: nil)])
    #expect(reopened.security.users.isEmpty)
    await reopened.shutdown()
    // The password itself is nowhere in the metadata file.
    let text = try String(contentsOfFile: directory + "/meta.json", encoding: .utf8)
    #expect(!text.contains("secret"))
  }
}

@Suite struct SaslSessionTests {
  func session(reauthMs: Int64 = 0) throws -> (SaslSession, Broker) {
    let (broker, _) = try Broker.makeForTest()
    return (
      SaslSession(
        mechanisms: ["SCRAM-SHA-256", "PLAIN"], security: broker.security, reauthenticationMs: reauthMs),
      broker
    )
  }

  @Test func onlyHandshakeBeforeAuthentication() async throws {
    var (session, broker) = try session()
    #expect(session.refusal(of: .metadata, nowMs: 0) != nil)
    #expect(session.refusal(of: .apiVersions, nowMs: 0) == nil)
    let (response, outcome) = session.handshake(SaslHandshakeRequest(mechanism: "GSSAPI"), version: 1)
    #expect(response.errorCode == ErrorCode.unsupportedSaslMechanism.rawValue)
    #expect(response.mechanisms == ["SCRAM-SHA-256", "PLAIN"])
    guard case .replyThenClose = outcome else {
      Issue.record("connection kept after an unsupported mechanism")
      return
    }
    await broker.shutdown()
  }

  @Test func scramThroughTheSessionThenExpiry() async throws {
    var (session, broker) = try session(reauthMs: 1000)
    try await broker.alterCredentials([
      .init(
        user: "alice", mechanism: .sha256, credential: SCRAMCredential(mechanism: .sha256, password: "pw"))
    ])
    #expect(session.handshake(SaslHandshakeRequest(mechanism: "SCRAM-SHA-256"), version: 1).1 == .reply)
    var client = SCRAMClientExchange(mechanism: .sha256, username: "alice", password: "pw")
    func round(_ bytes: [UInt8], now: Int64 = 100) -> SaslAuthenticateResponse {
      session.authenticate(
        SaslAuthenticateRequest(authBytes: ByteBuffer(bytes: bytes)), version: 2, nowMs: now
      ).0
    }
    let first = round(client.first())
    #expect(first.errorCode == 0)
    let final = round(try client.final(answering: Array(first.authBytes.readableBytesView)))
    #expect(final.errorCode == 0)
    #expect(final.sessionLifetimeMs == 1000)
    try client.verify(serverFinal: Array(final.authBytes.readableBytesView))
    #expect(session.principal == "User:alice")
    #expect(session.refusal(of: .produce, nowMs: 500) == nil)
    #expect(session.refusal(of: .produce, nowMs: 1100) != nil)  // expired: re-authenticate first

    // Re-authentication as someone else is refused.
    try await broker.alterCredentials([
      .init(user: "bob", mechanism: .sha256, credential: SCRAMCredential(mechanism: .sha256, password: "pw"))
    ])
    #expect(session.handshake(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1).1 == .reply)
    let (refused, outcome) = session.authenticate(
      SaslAuthenticateRequest(
        authBytes: ByteBuffer(bytes: PlainSASL.message(username: "bob", password: "pw"))),
      version: 2, nowMs: 1200)
    #expect(refused.errorCode == ErrorCode.saslAuthenticationFailed.rawValue)
    guard case .replyThenClose = outcome else {
      Issue.record("connection kept")
      return
    }
    await broker.shutdown()
  }

  @Test func rawTokensAfterAVersion0Handshake() async throws {
    var (session, broker) = try session()
    try await broker.alterCredentials([
      .init(user: "u", mechanism: .sha256, credential: SCRAMCredential(mechanism: .sha256, password: "pw"))
    ])
    _ = session.handshake(SaslHandshakeRequest(mechanism: "PLAIN"), version: 0)
    #expect(session.expectsRawToken)
    #expect(try session.rawToken(PlainSASL.message(username: "u", password: "pw"), nowMs: 0).get() == [])
    #expect(session.principal == "User:u")
    #expect(!session.expectsRawToken)
    await broker.shutdown()
  }
}

@Suite struct AuthorizationTests {
  @Test func produceMetadataAndAdminFollowAcls() async throws {
    let (broker, _) = try Broker.makeForTest { $0.allowEveryoneIfNoAclFound = false }
    try await broker.createTopic(name: "open", partitions: 1, configs: [:])
    try await broker.createTopic(name: "closed", partitions: 1, configs: [:])
    try await broker.createAcls([
      AclBinding(resourceType: .topic, resourceName: "open", principal: "User:alice", operation: .write)
    ])
    let alice = RequestContext(principal: "User:alice")
    var produce = ProduceRequest(acks: -1, timeoutMs: 1000)
    produce.topicData = ["open", "closed"].map {
      .init(name: $0, partitionData: [.init(index: 0, records: TestBatches.batch(["x"]))])
    }
    guard
      case .produce(let produced)? = await broker.handle(
        KafkaRequest(correlationId: 1, clientId: "t", apiVersion: 9, body: .produce(produce)), context: alice)
    else {
      Issue.record("no produce response")
      return
    }
    let codes = Dictionary(
      uniqueKeysWithValues: produced.responses.map { ($0.name, $0.partitionResponses[0].errorCode) })
    #expect(codes == ["open": 0, "closed": ErrorCode.topicAuthorizationFailed.rawValue])

    guard
      case .metadata(let metadata)? = await broker.handle(
        KafkaRequest(
          correlationId: 1, clientId: "t", apiVersion: 12, body: .metadata(MetadataRequest(topics: nil))),
        context: alice)
    else {
      Issue.record("no metadata response")
      return
    }
    #expect(metadata.topics.map(\.name) == ["open"])

    guard
      case .createAcls(let created)? = await broker.handle(
        KafkaRequest(
          correlationId: 1, clientId: "t", apiVersion: 3,
          body: .createAcls(
            CreateAclsRequest(creations: [
              .init(
                resourceType: 2, resourceName: "closed", resourcePatternType: 3, principal: "User:alice",
                host: "*", operation: 3, permissionType: 3)
            ]))), context: alice)
    else {
      Issue.record("no CreateAcls response")
      return
    }
    #expect(created.results.map(\.errorCode) == [ErrorCode.clusterAuthorizationFailed.rawValue])
    #expect(broker.security.acls.count == 1)
    await broker.shutdown()
  }
}

@Suite struct UserQuotaTests {
  @Test func aUserQuotaComesBeforeTheClientIdsAndIsSharedByTheUsersClients() async throws {
    let (broker, directory) = try Broker.makeForTest()
    let user = [AlterClientQuotasRequest.EntityData(entityType: "user", entityName: "alice")]
    let client = [AlterClientQuotasRequest.EntityData(entityType: "client-id", entityName: nil)]
    #expect(
      await ConnectionQuotaTests.alter(broker, user, 1000, key: ClientQuotas.producerByteRate)?.errorCode == 0
    )
    #expect(
      await ConnectionQuotaTests.alter(broker, client, 1_000_000_000, key: ClientQuotas.producerByteRate)?
        .errorCode
        == 0)
    // The combined user + client-id entity is not supported.
    let combined = user + [.init(entityType: "client-id", entityName: "x")]
    #expect(
      await ConnectionQuotaTests.alter(broker, combined, 5, key: ClientQuotas.producerByteRate)?.errorCode
        == ErrorCode.invalidRequest.rawValue)
    // Two of alice's clients share her 1000 B/s: 1000 bytes each put her 2 s ahead.
    #expect(broker.quotas.record(clientId: "a", user: "alice", kind: .produce, bytes: 1000) > 0)
    #expect(broker.quotas.record(clientId: "b", user: "alice", kind: .produce, bytes: 1000) > 1000)
    // Anyone else falls to the default client-id quota.
    #expect(broker.quotas.record(clientId: "a", user: "bob", kind: .produce, bytes: 1000) == 0)
    #expect(broker.quotas.record(clientId: "a", user: nil, kind: .produce, bytes: 1000) == 0)
    #expect(broker.quotas.throttleTotals().contains { $0.user == "alice" && $0.clientId.isEmpty })
    #expect(
      await ConnectionQuotaTests.describe(broker, [("user", 0, "alice")])
        == ["user=alice": [ClientQuotas.producerByteRate: 1000]])
    await broker.shutdown()
    let (reopened, _) = try Broker.makeForTest(directory: directory)
    #expect(reopened.quotas.record(clientId: "z", user: "alice", kind: .produce, bytes: 3000) > 0)
    await reopened.shutdown()
  }
}
