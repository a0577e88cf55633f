import NIOCore
import SluiceStatsD

/// Feeds arbitrary datagrams to the StatsD line parser and aggregator, then flushes: nothing
/// may crash, and the aggregator stays within its bounds.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = UnsafeBufferPointer(start: data, count: size)
  var configuration = StatsDAggregator.Configuration()
  configuration.maxMetrics = 8
  configuration.maxSamples = 4
  var aggregator = StatsDAggregator(configuration: configuration)
  _ = aggregator.ingest(datagram: bytes)
  _ = aggregator.ingest(datagram: bytes)
  let intake = aggregator.intake
  precondition(intake.malformed <= intake.lines, "more malformed lines than lines")
  let records = aggregator.flush(timestampMs: 0, intervalMs: 1000)
  precondition(records.count <= 8 + 1, "more records than max.metrics")
  return 0
}
