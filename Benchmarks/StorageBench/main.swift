// Storage benchmark: FileLog append throughput (page cache, and fsync per append with group
// commit), read throughput, recovery time after an unclean stop. Not a test: run
// `scripts/bench-storage.sh` (release build), which also measures the disk's raw speed with dd.
//
//   StorageBench --dir DIR [--runs N] [--mb MB] [--seconds S] [--recovery-mb MB] [--raw-mbps X]
//                [--only NAME]

import KafkaProtocol
import NIOCore
import NIOPosix
import SluiceStorage

#if canImport(Glibc)
  import Glibc
#endif

// MARK: Options

var options: [String: String] = [:]
do {
  var arguments = CommandLine.arguments.dropFirst()
  while let name = arguments.popFirst() {
    guard name.hasPrefix("--"), let value = arguments.popFirst() else {
      print(
        "usage: StorageBench --dir DIR [--runs N] [--mb MB] [--seconds S] [--recovery-mb MB] [--raw-mbps X] [--only NAME]"
      )
      exit(2)
    }
    options[String(name.dropFirst(2))] = value
  }
}
let baseDirectory = options["dir"] ?? "/tmp/sluice-storage-bench"
let runs = Int(options["runs"] ?? "") ?? 3
let volumeMB = Int(options["mb"] ?? "") ?? 512
let secondsPerRun = Double(options["seconds"] ?? "") ?? 5
let recoveryMB = Int(options["recovery-mb"] ?? "") ?? 1024
let rawMBps = Double(options["raw-mbps"] ?? "")
let only = options["only"]
let verbose = options["verbose"] != nil

// MARK: Helpers

let clock = ContinuousClock()
func seconds(_ duration: Duration) -> Double {
  Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}

func median(_ values: [Double]) -> Double {
  let sorted = values.sorted()
  return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
}

func fmt(_ value: Double, _ digits: Int = 1) -> String {
  var scale = 1.0
  for _ in 0..<digits { scale *= 10 }
  let rounded = (value * scale).rounded() / scale
  var text = "\(rounded)"
  if let dot = text.firstIndex(of: ".") {
    let decimals = text.distance(from: dot, to: text.endIndex) - 1
    if digits == 0 {
      text = String(text[..<dot])
    } else if decimals < digits {
      text += String(repeating: "0", count: digits - decimals)
    }
  }
  return text
}

func pad(_ text: String, _ width: Int) -> String {
  text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

func removeTree(_ path: String) {
  guard let dir = opendir(path) else { return }
  while let entry = readdir(dir) {
    let name = withUnsafePointer(to: entry.pointee.d_name) {
      $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
    }
    if name == "." || name == ".." { continue }
    let child = path + "/" + name
    var info = stat()
    if lstat(child, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
      removeTree(child)
    } else {
      unlink(child)
    }
  }
  closedir(dir)
  rmdir(path)
}

/// A v2 batch of `size` bytes (within a few bytes): 1 KiB records, at least one.
func makeBatch(size: Int) -> ByteBuffer {
  let records = max(1, size / 1024)
  var valueSize = size / records - 20
  for _ in 0..<4 {
    var builder = RecordBatchBuilder(capacity: size + 64)
    let value = [UInt8](repeating: 0x61, count: valueSize)
    for index in 0..<records {
      builder.append(key: Array("key-\(index)".utf8), value: value, timestamp: 1_700_000_000_000)
    }
    let batch = try! builder.build().buffer
    if batch.readableBytes == size { return batch }
    valueSize += (size - batch.readableBytes) / records
    if (size - batch.readableBytes) / records == 0 { return batch }
  }
  var builder = RecordBatchBuilder(capacity: size + 64)
  builder.append(key: nil, value: [UInt8](repeating: 0x61, count: valueSize), timestamp: 1_700_000_000_000)
  return try! builder.build().buffer
}

func freshDirectory() -> String {
  let path = baseDirectory + "/run-\(UInt32.random(in: 0...UInt32.max))"
  removeTree(path)
  return path
}

/// Evicts the (clean) cached pages of every file in `path`, so the next read comes from disk
/// (per file: nothing else on the machine is affected).
func dropCachedPages(_ path: String) {
  guard let dir = opendir(path) else { return }
  defer { closedir(dir) }
  while let entry = readdir(dir) {
    let name = withUnsafePointer(to: entry.pointee.d_name) {
      $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
    }
    let fd = open(path + "/" + name, O_RDONLY)
    if fd >= 0 {
      fdatasync(fd)
      posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
      close(fd)
    }
  }
}

func countSegments(_ path: String) -> Int {
  guard let dir = opendir(path) else { return 0 }
  defer { closedir(dir) }
  var count = 0
  while let entry = readdir(dir) {
    let name = withUnsafePointer(to: entry.pointee.d_name) {
      $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
    }
    if name.hasSuffix(".log") { count += 1 }
  }
  return count
}

/// A flag set once, read from other tasks.
final class ManagedAtomicFlag: @unchecked Sendable {
  private var value = false
  private let lock = NIOLockedFlag()
  var isSet: Bool { lock.read { value } }
  func set() { lock.write { value = true } }
}

/// A tiny pthread-mutex wrapper (the bench has no other synchronisation needs).
final class NIOLockedFlag: @unchecked Sendable {
  private var mutex = pthread_mutex_t()
  init() { pthread_mutex_init(&mutex, nil) }
  deinit { pthread_mutex_destroy(&mutex) }
  func read<T>(_ body: () -> T) -> T {
    pthread_mutex_lock(&mutex)
    defer { pthread_mutex_unlock(&mutex) }
    return body()
  }
  func write(_ body: () -> Void) {
    pthread_mutex_lock(&mutex)
    defer { pthread_mutex_unlock(&mutex) }
    body()
  }
}

struct AppendFigures {
  var mbps: Double
  var appends: Int
  var fsyncs: Int
  var flushedMBps: Double
}

/// Appends copies of `batch` from `appenders` concurrent tasks until `bytes` are written or
/// the time budget is spent. Returns MiB/s of the appends alone and including a final flush.
func appendRun(
  batch: ByteBuffer, appenders: Int, fsyncEveryAppend: Bool, bytes: Int, budget: Double,
  tailReader: Bool = false
) async throws -> AppendFigures {
  let directory = freshDirectory()
  defer { removeTree(directory) }
  var config = LogConfig()
  if fsyncEveryAppend { config.flushMessages = 1 }
  let log = try FileLog(directory: directory, config: config, threadPool: .singleton, now: 0)
  let perAppender = max(1, bytes / batch.readableBytes / appenders)
  let start = clock.now
  let deadline = start + .milliseconds(Int64(budget * 1000))
  let reading = ManagedAtomicFlag()
  let appended = try await withThrowingTaskGroup(of: Int.self) { group in
    if tailReader {
      // A consumer following the log end: reads the newest batches over and over.
      group.addTask {
        var reads = 0
        while !reading.isSet {
          let end = log.logEndOffset
          if end > 0 {
            _ = try log.read(from: max(0, end - 1), maxBytes: 1 << 20, upTo: nil, minOneBatch: true)
              .loadBytes()
          }
          reads += 1
          if reads & 15 == 0 { await Task.yield() }
        }
        if verbose { print("  tail reader: \(reads) reads") }
        return 0
      }
    }
    for _ in 0..<appenders {
      group.addTask {
        var count = 0
        while count < perAppender {
          _ = try await log.append(batch, now: 0)
          count += 1
          if count & 63 == 0 && clock.now > deadline { break }
        }
        return count
      }
    }
    var total = 0
    var writers = appenders
    while writers > 0, let count = try await group.next() {
      if count > 0 || !tailReader { writers -= 1 }
      total += count
    }
    reading.set()
    try await group.waitForAll()
    return total
  }
  let appendTime = seconds(clock.now - start)
  try await log.flush()
  let flushedTime = seconds(clock.now - start)
  let fsyncs = log.flushCount
  try log.close()
  let megabytes = Double(appended * batch.readableBytes) / 1_048_576
  return AppendFigures(
    mbps: megabytes / appendTime, appends: appended, fsyncs: fsyncs, flushedMBps: megabytes / flushedTime)
}

/// Writes `megabytes` of 16 KiB batches, then reads the whole log back (whole batches up to
/// 1 MiB per read, loaded into memory). Page cache warm.
func readRun(megabytes: Int) async throws -> Double {
  let directory = freshDirectory()
  defer { removeTree(directory) }
  let log = try FileLog(directory: directory, config: LogConfig(), threadPool: .singleton, now: 0)
  let batch = makeBatch(size: 16384)
  for _ in 0..<(megabytes * 1_048_576 / batch.readableBytes) { _ = try await log.append(batch, now: 0) }
  try await log.flush()
  var total = 0
  let start = clock.now
  var offset: Int64 = 0
  let end = log.logEndOffset
  while offset < end {
    let result = try log.read(from: offset, maxBytes: 1 << 20, upTo: nil, minOneBatch: true)
    let bytes = try result.loadBytes()
    total += bytes.readableBytes
    // The next offset: after the last batch read (walk the batch headers).
    var position = bytes.readerIndex
    var next = offset
    while position + 12 <= bytes.writerIndex {
      let base = bytes.getInteger(at: position, as: Int64.self)!
      let length = Int(bytes.getInteger(at: position + 8, as: Int32.self)!)
      let delta = Int64(bytes.getInteger(at: position + 23, as: Int32.self)!)
      next = base + delta + 1
      position += length + 12
    }
    offset = next
  }
  let elapsed = seconds(clock.now - start)
  try log.close()
  return Double(total) / 1_048_576 / elapsed
}

/// Writes `megabytes` (16 KiB batches, 256 MiB segments), drops the log without closing it
/// (an unclean stop), and times the reopen: a full CRC scan with index rebuild.
func recoveryRun(megabytes: Int, cold: Bool) async throws -> (seconds: Double, segments: Int) {
  let directory = freshDirectory()
  defer { removeTree(directory) }
  var config = LogConfig()
  config.segmentBytes = 256 * 1_048_576
  var end: Int64 = 0
  do {
    let log = try FileLog(directory: directory, config: config, threadPool: .singleton, now: 0)
    let batch = makeBatch(size: 16384)
    for _ in 0..<(megabytes * 1_048_576 / batch.readableBytes) { _ = try await log.append(batch, now: 0) }
    try await log.flush()  // data on disk; the clean-shutdown marker is not written
    end = log.logEndOffset
  }
  if cold { dropCachedPages(directory) }
  let start = clock.now
  let log = try FileLog(directory: directory, config: config, threadPool: .singleton, now: 0)
  let elapsed = seconds(clock.now - start)
  if log.logEndOffset != end { print("recovery: found log end \(log.logEndOffset), expected \(end)") }
  let segments = countSegments(directory)
  if let error = log.offlineError { print("recovery: offline: \(error)") }
  try log.close()
  return (elapsed, segments)
}

// MARK: Main

removeTree(baseDirectory)
mkdir(baseDirectory, 0o755)
print("StorageBench: \(runs) runs per figure (median), data in \(baseDirectory)")
print("  page-cache runs write \(volumeMB) MiB; fsync runs stop after \(fmt(secondsPerRun, 0)) s")
print("")

var figures: [String: Double] = [:]
func wanted(_ name: String) -> Bool { only == nil || name.contains(only!) }

for size in [1024, 16384] {
  let batch = makeBatch(size: size)
  let label = size == 1024 ? "1 KiB" : "16 KiB"
  for (mode, appenders) in [("page-cache", 1), ("page-cache", 8), ("fsync", 1), ("fsync", 8)] {
    let name = "append \(mode) \(label) x\(appenders)"
    guard wanted(name) else { continue }
    var results: [AppendFigures] = []
    for _ in 0..<runs {
      results.append(
        try await appendRun(
          batch: batch, appenders: appenders, fsyncEveryAppend: mode == "fsync", bytes: volumeMB * 1_048_576,
          budget: mode == "fsync" ? secondsPerRun : 60))
    }
    let mbps = median(results.map(\.mbps))
    figures[name] = mbps
    figures[name + " flushed"] = median(results.map(\.flushedMBps))
    let appends = results.map(\.appends).reduce(0, +)
    let fsyncs = results.map(\.fsyncs).reduce(0, +)
    var line = pad(name, 38) + pad(fmt(mbps) + " MiB/s", 14)
    if verbose { print("  runs: " + results.map { fmt($0.mbps) }.joined(separator: ", ")) }
    line += pad(fmt(mbps * 1_048_576 / Double(batch.readableBytes) / 1000) + " k appends/s", 22)
    if mode == "fsync" {
      let perRound = Double(appends) / Double(max(fsyncs, 1))
      let appendsPerSecond = mbps * 1_048_576 / Double(batch.readableBytes)
      line +=
        "\(fmt(perRound, 1)) appends per fsync round, \(fmt(1e6 * perRound / appendsPerSecond, 0)) µs per round"
    } else {
      line += "with final flush \(fmt(figures[name + " flushed"]!)) MiB/s"
    }
    print(line)
  }
}

if wanted("tail") {
  // The same 1 KiB page-cache append while a consumer reads the log end continuously.
  let batch = makeBatch(size: 1024)
  var results: [Double] = []
  for _ in 0..<runs {
    results.append(
      try await appendRun(
        batch: batch, appenders: 1, fsyncEveryAppend: false, bytes: volumeMB * 1_048_576, budget: 60,
        tailReader: true
      ).mbps)
  }
  figures["tail"] = median(results)
  print(pad("append page-cache 1 KiB + tail reader", 38) + "\(fmt(median(results))) MiB/s")
}

if wanted("read") {
  var results: [Double] = []
  for _ in 0..<runs { results.append(try await readRun(megabytes: volumeMB)) }
  figures["read"] = median(results)
  print(pad("read 16 KiB batches, warm cache", 38) + "\(fmt(median(results))) MiB/s")
}

for cold in [false, true] where wanted("recovery") {
  var results: [Double] = []
  var segments = 0
  for _ in 0..<runs {
    let (elapsed, count) = try await recoveryRun(megabytes: recoveryMB, cold: cold)
    results.append(elapsed)
    segments = count
  }
  print(
    pad("recovery of \(recoveryMB) MiB, unclean, \(cold ? "cold" : "warm")", 38)
      + "\(fmt(median(results), 2)) s  (\(segments) segments: full CRC scan + index rebuild; "
      + "\(cold ? "pages evicted first" : "page cache warm"))")
}

if let raw = rawMBps {
  print("")
  print(pad("raw dd (1 MiB blocks, fdatasync)", 38) + "\(fmt(raw)) MiB/s")
  for label in ["1 KiB", "16 KiB"] {
    if let page = figures["append page-cache \(label) x1"] {
      print(
        pad("page-cache append / dd, \(label)", 38)
          + "\(fmt(100 * page / raw, 0)) %   (aim ≥ 80 %; with final flush "
          + "\(fmt(100 * figures["append page-cache \(label) x1 flushed"]! / raw, 0)) %)")
    }
    if let page = figures["append page-cache \(label) x1"], let fsync = figures["append fsync \(label) x8"] {
      let page8 = figures["append page-cache \(label) x8"] ?? page
      print(
        pad("fsync x8 / page-cache, \(label)", 38)
          + "\(fmt(100 * fsync / page, 0)) %   (aim ≥ 50 %; vs page-cache x8 "
          + "\(fmt(100 * fsync / page8, 0)) %)")
    }
  }
}
removeTree(baseDirectory)
