import Foundation
import KafkaProtocol
import SluiceBroker
import SluiceStorage
import Testing

/// KIP-612 connection creation rate quotas on the `ip` entity: AlterClientQuotas validation,
/// DescribeClientQuotas filters, storage. The listener's enforcement is tested in
/// KafkaClientTests/ConnectionRateTests.swift and compat/test_connection_rate.py.
@Suite struct ConnectionQuotaTests {
  typealias Entity = AlterClientQuotasRequest.EntityData
  static let rate = ClientQuotas.connectionCreationRate

  static func alter(
    _ broker: Broker, _ entity: [Entity], _ value: Double?, key: String = rate, validateOnly: Bool = false
  ) async -> AlterClientQuotasResponse.EntryData? {
    let request = AlterClientQuotasRequest(
      entries: [.init(entity: entity, ops: [.init(key: key, value: value ?? 0, remove: value == nil)])],
      validateOnly: validateOnly)
    let reply = await broker.handle(
      KafkaRequest(correlationId: 1, clientId: "t", apiVersion: 1, body: .alterClientQuotas(request)))
    guard case .alterClientQuotas(let response) = reply else { return nil }
    return response.entries.first
  }

  static func ip(_ name: String?) -> [Entity] { [.init(entityType: "ip", entityName: name)] }
  static func client(_ name: String?) -> [Entity] { [.init(entityType: "client-id", entityName: name)] }

  /// (entity type, name) → quotas, for a filter of (entity type, match type, match) components.
  static func describe(
    _ broker: Broker, _ components: [(String, Int8, String?)] = [], strict: Bool = false
  ) async -> [String: [String: Double]]? {
    let request = DescribeClientQuotasRequest(
      components: components.map { .init(entityType: $0.0, matchType: $0.1, match: $0.2) }, strict: strict)
    let reply = await broker.handle(
      KafkaRequest(correlationId: 2, clientId: "t", apiVersion: 1, body: .describeClientQuotas(request)))
    guard case .describeClientQuotas(let response) = reply, response.errorCode == 0 else { return nil }
    var out: [String: [String: Double]] = [:]
    for entry in response.entries ?? [] {
      let name = entry.entity.map { "\($0.entityType)=\($0.entityName ?? "<default>")" }.joined(
        separator: ",")
      out[name] = Dictionary(uniqueKeysWithValues: entry.values.map { ($0.key, $0.value) })
    }
    return out
  }

  @Test func invalidIPQuotasAreRefusedWithAReason() async throws {
    let (broker, _) = try BrokerTests.makeBroker()
    let invalid = ErrorCode.invalidRequest.rawValue
    let refused: [([Entity], String, Double?)] = [
      // ip cannot be combined with another entity type (as in Kafka).
      (
        [.init(entityType: "ip", entityName: "127.0.0.1"), .init(entityType: "client-id", entityName: "c")],
        Self.rate, 5
      ),
      // Byte rates are for client ids; connection_creation_rate is for addresses.
      (Self.ip("127.0.0.1"), ClientQuotas.producerByteRate, 1000),
      (Self.client("c"), Self.rate, 5),
      // Not an address (host names are not resolved).
      (Self.ip("localhost"), Self.rate, 5),
      (Self.ip(""), Self.rate, 5),
      // Rates: whole connections/s, at least 1.
      (Self.ip(nil), Self.rate, 0.5),
      (Self.ip(nil), Self.rate, 0),
      (Self.ip(nil), Self.rate, -3),
      (Self.ip(nil), Self.rate, 2.5),
      (Self.ip(nil), Self.rate, .infinity),
      (Self.ip(nil), Self.rate, .nan),
      (Self.ip(nil), Self.rate, 1e12),
    ]
    for (entity, key, value) in refused {
      let result = await Self.alter(broker, entity, value, key: key)
      #expect(result?.errorCode == invalid, "\(entity) \(key)=\(String(describing: value))")
      #expect(result?.errorMessage?.isEmpty == false)
    }
    let combined = await Self.alter(broker, refused[0].0, 5)
    #expect(combined?.errorMessage?.contains("cannot be combined") == true)
    let slow = await Self.alter(broker, Self.ip(nil), 0.5)
    #expect(
      slow?.errorMessage?.contains("at least one") == true || slow?.errorMessage?.contains("from 1") == true)
    #expect(await Self.describe(broker) == [:])
    #expect(broker.quotas.connectionCreationRate(ip: "127.0.0.1") == nil)
    // validateOnly checks without storing.
    #expect(await Self.alter(broker, Self.ip(nil), 5, validateOnly: true)?.errorCode == 0)
    #expect(await Self.describe(broker) == [:])
  }

  @Test func ipQuotasAreDescribedEnforcedAsConfiguredAndStored() async throws {
    let (broker, directory) = try BrokerTests.makeBroker()
    #expect(!broker.quotas.hasConnectionCreationQuotas)
    #expect(await Self.alter(broker, Self.ip(nil), 5)?.errorCode == 0)
    // Stored in canonical form, so the listener's text for the address finds it.
    #expect(await Self.alter(broker, Self.ip("::0001"), 7)?.errorCode == 0)
    #expect(await Self.alter(broker, Self.ip("127.0.0.2"), 50)?.errorCode == 0)
    // A client id that looks like an address is a client id, not an ip entity.
    #expect(
      await Self.alter(broker, Self.client("127.0.0.3"), 1000, key: ClientQuotas.producerByteRate)?.errorCode
        == 0)
    #expect(broker.quotas.hasConnectionCreationQuotas)
    #expect(broker.quotas.connectionCreationRate(ip: "127.0.0.2") == 50)  // its own
    #expect(broker.quotas.connectionCreationRate(ip: "127.0.0.3") == 5)  // the default
    #expect(broker.quotas.connectionCreationRate(ip: "::1") == 7)

    let all: [String: [String: Double]] = [
      "ip=<default>": [Self.rate: 5], "ip=::1": [Self.rate: 7], "ip=127.0.0.2": [Self.rate: 50],
      "client-id=127.0.0.3": [ClientQuotas.producerByteRate: 1000],
    ]
    #expect(await Self.describe(broker) == all)
    #expect(await Self.describe(broker, [("ip", 0, "127.0.0.2")]) == ["ip=127.0.0.2": [Self.rate: 50]])
    #expect(await Self.describe(broker, [("ip", 0, "0:0:0:0:0:0:0:1")]) == ["ip=::1": [Self.rate: 7]])
    #expect(await Self.describe(broker, [("ip", 0, "127.0.0.3")]) == [:])
    #expect(await Self.describe(broker, [("ip", 1, nil)]) == ["ip=<default>": [Self.rate: 5]])
    #expect(
      await Self.describe(broker, [("ip", 2, nil)]) == [
        "ip=::1": [Self.rate: 7], "ip=127.0.0.2": [Self.rate: 50],
      ])
    #expect(
      await Self.describe(broker, [("client-id", 2, nil)]) == [
        "client-id=127.0.0.3": [ClientQuotas.producerByteRate: 1000]
      ])
    // Every entity has one type: a filter on two types matches none, strict or not.
    #expect(await Self.describe(broker, [("ip", 2, nil), ("client-id", 2, nil)]) == [:])
    #expect(await Self.describe(broker, [("ip", 1, nil)], strict: true) == ["ip=<default>": [Self.rate: 5]])
    #expect(await Self.describe(broker, [], strict: true) == [:])

    // A broker reopened on the same directory has them all, as the right entity types.
    await broker.shutdown()
    var config = BrokerConfig()
    config.dataDirectory = directory
    let reopened = try Broker(config: config)
    #expect(await Self.describe(reopened) == all)
    #expect(reopened.quotas.connectionCreationRate(ip: "127.0.0.2") == 50)
    #expect(reopened.quotas.connectionCreationRate(ip: "10.0.0.1") == 5)
    // Removing the named quota falls back to the default; removing that, unlimited.
    #expect(await Self.alter(reopened, Self.ip("127.0.0.2"), nil)?.errorCode == 0)
    #expect(reopened.quotas.connectionCreationRate(ip: "127.0.0.2") == 5)
    #expect(await Self.alter(reopened, Self.ip(nil), nil)?.errorCode == 0)
    #expect(await Self.alter(reopened, Self.ip("::1"), nil)?.errorCode == 0)
    #expect(reopened.quotas.connectionCreationRate(ip: "127.0.0.2") == nil)
    #expect(!reopened.quotas.hasConnectionCreationQuotas)
    #expect(await Self.describe(reopened) == ["client-id=127.0.0.3": [ClientQuotas.producerByteRate: 1000]])
    await reopened.shutdown()
  }

  @Test func clientIdQuotasStoredBeforeIPQuotasExistedAreReadBack() async throws {
    // The stored encoding of client-id entities ("=ID", "default") is unchanged.
    let (broker, directory) = try BrokerTests.makeBroker()
    await broker.shutdown()
    let store = try MetadataStore(directory: directory)
    try store.update { (document: inout MetadataStore.Document) throws(StorageError) in
      document.sections["quota.producer_byte_rate"] = ["=alpha": "1000.0", "default": "5000.0"]
    }
    var config = BrokerConfig()
    config.dataDirectory = directory
    let reopened = try Broker(config: config)
    #expect(
      await Self.describe(reopened) == [
        "client-id=alpha": [ClientQuotas.producerByteRate: 1000],
        "client-id=<default>": [ClientQuotas.producerByteRate: 5000],
      ])
    #expect(!reopened.quotas.hasConnectionCreationQuotas)
    await reopened.shutdown()
  }
}
