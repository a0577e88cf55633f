extension Duration {
  /// Whole milliseconds (truncated), for the protocol's `*_ms` fields and the package's
  /// timers.
  package var milliseconds: Int64 {
    components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
  }
}
