/// KIP-612's connection creation rates, applied by the listener to each accepted socket:
/// per client address (the `connection_creation_rate` quota of the `ip` entity, see
/// `ClientQuotas`) and broker-wide (`max.connection.creation.rate`).
///
/// Each rate is a generic cell rate algorithm (a token bucket without a refill timer): a
/// cell holds the instant by which its address will have paid, at the rate, for the
/// connections it was granted. Up to one second of the rate ahead of now (at least one
/// connection) is granted at once, as a burst. A connection over its address's quota is
/// refused, with the time until the next one would be granted (under 1 s, as rates are at
/// least 1/s); a refused connection is not charged (Kafka unrecords it too), so a storm does
/// not push its address further out. The broker-wide rate refuses nothing: it delays each
/// connection to its slot, as Kafka's acceptor waits. Addresses over their quota are refused
/// before the broker-wide rate is charged, so a storm from one address does not delay the
/// others (Kafka charges the broker-wide rate first).
///
/// Bounded: only addresses with a quota get a cell; a cell whose instant has passed is the
/// same as none and is pruned when the table is full. Past `maximumAddresses` live cells
/// (that many addresses connecting within about a second), new addresses share one cell.
package struct ConnectionRateLimiter {
  package typealias Instant = ContinuousClock.Instant

  package enum Decision: Equatable {
    /// Set the connection up now.
    case accept
    /// The broker-wide rate: set it up after this long.
    case delay(Duration)
    /// Over its address's quota: close it, and keep clients from reconnecting for this long.
    case throttle(Duration)
  }

  /// One GCRA cell.
  package struct Cell {
    package var theoretical: Instant
  }

  /// Connections/s broker-wide; nil: unlimited.
  package var brokerRate: Double?
  package var maximumAddresses = 10_000
  package private(set) var cells: [String: Cell] = [:]
  private var brokerCell: Cell?
  private var nextPrune: Instant?
  /// Addresses warned about, at most one warning per `warningInterval` each.
  private var warned: [String: Instant] = [:]
  private var nextWarnedPrune: Instant?

  /// Where new addresses go once `maximumAddresses` are live.
  package static let sharedKey = "*"
  /// Rates at or above this are unlimited (Kafka's default for them is Int32.max).
  package static let unlimited = Double(Int32.max)
  package static let warningInterval = Duration.seconds(10)
  package static let maximumWarned = 1000
  /// Full tables are pruned at most this often, so a spray of new addresses does not make
  /// each of them walk the table.
  package static let pruneInterval = Duration.milliseconds(100)

  package init(brokerRate: Double? = nil) {
    self.brokerRate = brokerRate.flatMap { $0 < Self.unlimited ? $0 : nil }
  }

  /// The time one connection costs at `rate` connections/s.
  package static func interval(_ rate: Double) -> Duration { .nanoseconds(Int64((1e9 / rate).rounded(.up))) }

  /// How far ahead of now a cell may run: one second of the rate, less the connection
  /// being granted.
  package static func tolerance(_ rate: Double) -> Duration { max(.zero, .seconds(1) - interval(rate)) }

  /// What to do with a connection accepted `now` from `address`, whose quota is `quota`
  /// connections/s (nil: none).
  package mutating func decide(address: String, quota: Double?, now: Instant) -> Decision {
    if let quota, quota < Self.unlimited {
      var key = address
      if cells[key] == nil && cells.count >= maximumAddresses {
        if nextPrune.map({ now >= $0 }) ?? true {
          cells = cells.filter { $0.value.theoretical > now }
          nextPrune = now + Self.pruneInterval
        }
        if cells.count >= maximumAddresses { key = Self.sharedKey }
      }
      let start = max(cells[key]?.theoretical ?? now, now)
      let tolerance = Self.tolerance(quota)
      if start - now > tolerance { return .throttle(start - now - tolerance) }
      cells[key] = Cell(theoretical: start + Self.interval(quota))
    }
    guard let rate = brokerRate else { return .accept }
    let start = max(brokerCell?.theoretical ?? now, now)
    brokerCell = Cell(theoretical: start + Self.interval(rate))
    let wait = start - now - Self.tolerance(rate)
    return wait > .zero ? .delay(wait) : .accept
  }

  /// Whether to log a warning about `address` being throttled: at most once per
  /// `warningInterval` per address, for at most `maximumWarned` addresses at a time.
  package mutating func shouldWarn(about address: String, now: Instant) -> Bool {
    if let last = warned[address], now - last < Self.warningInterval { return false }
    if warned[address] == nil && warned.count >= Self.maximumWarned {
      if nextWarnedPrune.map({ now >= $0 }) ?? true {
        warned = warned.filter { now - $0.value < Self.warningInterval }
        nextWarnedPrune = now + Self.pruneInterval
      }
      if warned.count >= Self.maximumWarned { return false }
    }
    warned[address] = now
    return true
  }
}
