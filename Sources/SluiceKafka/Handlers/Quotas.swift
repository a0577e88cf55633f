import KafkaProtocol
import SluiceBroker

/// DescribeClientQuotas, AlterClientQuotas over ``ClientQuotas``.
extension KafkaFrontDoor {
  func describeClientQuotas(_ request: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    var response = DescribeClientQuotasResponse()
    response.errorMessage = nil
    var components: [ClientQuotas.FilterComponent] = []
    for component in request.components {
      let match: ClientQuotas.FilterComponent.Match
      switch component.matchType {
      case 0: match = .exact(component.match)
      case 1: match = .defaultEntity
      case 2: match = .any
      default: match = .unknown(component.matchType)
      }
      components.append(.init(entityType: component.entityType, match: match))
    }
    do throws(BrokerError) {
      response.entries = try broker.quotas.describe(components, strict: request.strict).map { described in
        .init(
          entity: described.entity.map { .init(entityType: $0.type, entityName: $0.name) },
          values: described.values.map { .init(key: $0.key, value: $0.value) })
      }
    } catch {
      response.errorCode = error.code.rawValue
      response.errorMessage = error.message
      response.entries = nil
    }
    return response
  }

  func alterClientQuotas(_ request: AlterClientQuotasRequest) async -> AlterClientQuotasResponse {
    let entries = request.entries.map { entry in
      (
        entity: entry.entity.map { (type: $0.entityType, name: $0.entityName) },
        ops: entry.ops.map { ClientQuotas.Operation(key: $0.key, value: $0.value, remove: $0.remove) }
      )
    }
    let results = await broker.alterClientQuotas(entries, validateOnly: request.validateOnly)
    var response = AlterClientQuotasResponse()
    for (entry, error) in zip(request.entries, results) {
      var result = AlterClientQuotasResponse.EntryData(
        entity: entry.entity.map { .init(entityType: $0.entityType, entityName: $0.entityName) })
      result.errorMessage = nil
      if let error {
        result.errorCode = error.code.rawValue
        result.errorMessage = error.message
      }
      response.entries.append(result)
    }
    return response
  }
}
