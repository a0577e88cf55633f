import Crypto
import Foundation
import KafkaProtocol
import Logging
import SluiceBroker
import Synchronization

/// What the console keeps between requests: when it started, the token its forms carry,
/// and recent samples of the traffic totals, from which it shows rates.
final class ConsoleState: Sendable {
  let started = ContinuousClock.now
  /// A key drawn at start; each user's form token is an HMAC of their name with it, so a
  /// page from another site cannot know it (and cannot post a form), and one user's token
  /// does not work for another.
  let tokenKey: [UInt8] = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }

  func csrfToken(for principal: String?) -> String {
    let mac = HMAC<SHA256>.authenticationCode(
      for: Data((principal ?? "").utf8), using: SymmetricKey(data: tokenKey))
    return Data(mac).base64EncodedString()
      .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
      .replacingOccurrences(of: "=", with: "")
  }

  /// The overview's figures, computed at most once a second whoever asks (pages and live
  /// streams share them).
  let overview = Mutex<(at: ContinuousClock.Instant, figures: Console.Overview)?>(nil)

  func overviewFigures(_ compute: () -> Console.Overview) -> Console.Overview {
    let now = ContinuousClock.now
    if let cached = overview.withLock({ $0 }), now - cached.at < .seconds(1) { return cached.figures }
    let figures = compute()
    overview.withLock { $0 = (now, figures) }
    return figures
  }

  /// Open `/ui/live` streams, at most `maxLiveStreams`.
  let liveStreams = Atomic<Int>(0)
  static let maxLiveStreams = 64

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
    let seconds = (now - oldest.at).inSeconds
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
        "action": .string(action), "resources": .array([.string(printableForLog(target))]),
        "principal": .string(printableForLog(viewer.principal ?? "User:ANONYMOUS")),
        "client_host": .string(viewer.host),
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
