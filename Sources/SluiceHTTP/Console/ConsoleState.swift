import Crypto
import Foundation
import Logging
import SluiceBroker
import Synchronization

/// What the console keeps between requests: when it started, the token its forms carry,
/// and recent samples of the traffic totals, from which it shows rates.
final class ConsoleState: Sendable {
  let started = ContinuousClock.now
  /// Random per process: a page from another site cannot know it, so cannot post a form.
  let csrfToken: String = {
    let key = SymmetricKey(size: .bits128)
    return key.withUnsafeBytes { Data($0).base64EncodedString() }
      .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
      .replacingOccurrences(of: "=", with: "")
  }()

  struct Sample {
    var at: ContinuousClock.Instant
    var totals: [String: (recordsIn: Int64, recordsOut: Int64)]
  }

  /// Samples at least a second apart, over the last ten seconds at most.
  let samples = Mutex<[Sample]>([])

  struct Rates {
    var total: (recordsIn: Double?, recordsOut: Double?) = (nil, nil)
    var topics: [String: (recordsIn: Double, recordsOut: Double)] = [:]
  }

  /// Records per second in and out, overall and per topic, between the oldest kept sample
  /// and now (unknown until a second sample, a second later).
  func rates(_ broker: Broker) -> Rates {
    let now = ContinuousClock.now
    let totals = broker.trafficTotals()
    let oldest = samples.withLock { samples -> Sample? in
      samples.removeAll { now - $0.at > .seconds(10) }
      if samples.last.map({ now - $0.at >= .seconds(1) }) ?? true {
        samples.append(Sample(at: now, totals: totals))
      }
      return samples.first
    }
    var rates = Rates()
    guard let oldest, now - oldest.at >= .milliseconds(500) else { return rates }
    let seconds =
      Double((now - oldest.at).components.seconds)
      + Double((now - oldest.at).components.attoseconds) / 1e18
    var totalIn = 0.0
    var totalOut = 0.0
    for (topic, current) in totals {
      let before = oldest.totals[topic] ?? (0, 0)
      let recordsIn = Double(max(0, current.recordsIn - before.recordsIn)) / seconds
      let recordsOut = Double(max(0, current.recordsOut - before.recordsOut)) / seconds
      rates.topics[topic] = (recordsIn, recordsOut)
      totalIn += recordsIn
      totalOut += recordsOut
    }
    rates.total = (totalIn, totalOut)
    return rates
  }

  static let auditLogger = Logger(label: "sluice.audit")

  /// Console actions go to the audit log, as the Kafka admin requests do.
  static func audit(_ viewer: Console.Viewer, _ action: String, _ target: String) {
    auditLogger.info(
      "console action",
      metadata: [
        "action": .string(action), "resources": .array([.string(target)]),
        "principal": .string(viewer.principal ?? "User:ANONYMOUS"), "client_host": .string(viewer.host),
        "front_door": "console",
      ])
  }
}

extension Broker {
  /// Share groups for the console: members, partitions with state, records in flight.
  package func shareGroupSummaries() -> [(groupId: String, members: Int, partitions: Int, inFlight: Int)] {
    shares.groupIds.map { groupId in
      let partitions = shares.partitionStates(groupId)
      return (
        groupId, shares.group(groupId)?.members.count ?? 0, partitions.count,
        partitions.reduce(0) { $0 + $1.1.acquiredCount }
      )
    }
  }
}
