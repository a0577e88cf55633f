public import KafkaProtocol
import SluiceSASL
import SluiceStorage

extension Broker {
  /// Creates, replaces and deletes SCRAM credentials together (AlterUserScramCredentials,
  /// `sluice user`); persisted before they count.
  public func alterCredentials(_ changes: [SecurityStore.CredentialChange]) async throws(BrokerError) {
    let topics = self.topics
    do {
      try await security.alterCredentials(changes) { work throws(StorageError) in
        try await topics.offLoop(work)
      }
    } catch {
      throw BrokerError(.kafkaStorageError, error.message)
    }
  }

  public func createAcls(_ bindings: [AclBinding]) async throws(BrokerError) {
    let topics = self.topics
    do {
      try await security.createAcls(bindings) { work throws(StorageError) in try await topics.offLoop(work) }
    } catch {
      throw BrokerError(.kafkaStorageError, error.message)
    }
  }

  public func deleteAcls(_ filters: [AclFilter]) async throws(BrokerError) -> [[AclBinding]] {
    let topics = self.topics
    do {
      return try await security.deleteAcls(filters) { work throws(StorageError) in
        try await topics.offLoop(work)
      }
    } catch {
      throw BrokerError(.kafkaStorageError, error.message)
    }
  }

  /// Whether `principal` connected from `host` may do `operation` on the resource.
  public func authorize(
    _ principal: String, host: String, _ operation: AclOperation, _ resourceType: AclResourceType,
    _ name: String
  ) -> Bool {
    security.authorizer.authorize(
      principal: principal, host: host, operation: operation, resourceType: resourceType, name: name)
  }
}
