/// Where a log keeps its data.
public enum StorageKind: String, Hashable, Sendable, Codable {
  /// Segment files on local disk (Kafka's layout).
  case disk
  /// In memory only, bounded by retention; gone after a restart, by design.
  case memory
}

/// Per-log settings with Kafka's names and meanings (topic-level configs).
public struct LogConfig: Hashable, Sendable, Codable {
  /// `segment.bytes`: roll the active segment when it would exceed this size.
  public var segmentBytes: Int = 1_073_741_824
  /// `segment.ms`: roll the active segment when its first batch is older than this.
  public var segmentMs: Int64 = 604_800_000
  /// `segment.jitter.ms`: each segment rolls a random time in [0, min(this, segment.ms))
  /// early, so that partitions created together do not all roll at once.
  public var segmentJitterMs: Int64 = 0
  /// `retention.ms`: delete segments whose newest record is older than this, counted from
  /// the newer of its timestamp and when it was appended; -1 keeps forever.
  public var retentionMs: Int64 = 604_800_000
  /// `retention.bytes`: delete oldest segments while the log is larger than this; -1: no limit.
  public var retentionBytes: Int64 = -1
  /// Whether `retention.ms` and `retention.bytes` apply at all: false for topics whose
  /// `cleanup.policy` lacks "delete" (compact-only topics keep everything, as in Kafka).
  public var retentionApplies = true
  /// `flush.messages`: fsync after this many records; 1 makes every append durable before it
  /// is acknowledged (with group commit). `Int64.max` leaves it to `flush.ms` and the OS.
  public var flushMessages: Int64 = Int64.max
  /// `flush.ms`: fsync data that has been unflushed this long. Sluice's default is 1 s
  /// (Kafka's is "never, let the OS decide"): page-cache speed, bounded loss window.
  public var flushMs: Int64 = 1000
  /// `index.interval.bytes`: bytes between sparse index entries.
  public var indexIntervalBytes: Int = 4096
  /// `message.timestamp.type`: LogAppendTime makes the broker stamp batches on append.
  public var logAppendTime: Bool = false
  /// `sluice.storage`: disk or memory.
  public var storage: StorageKind = .disk
  /// For memory logs without `retention.bytes`: the size bound that applies instead.
  public var memoryDefaultMaxBytes: Int64 = 256 * 1_048_576

  public init() {}

  /// Whether an append must wait for fsync before it is acknowledged.
  var flushesEveryAppend: Bool { flushMessages <= 1 }
}
