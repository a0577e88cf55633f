import Foundation
import KafkaProtocol
import NIOCore
import NIOPosix
import SluiceStorage
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A fresh directory under /tmp for one test; removed when `body` returns.
func withTemporaryDirectory<R>(_ body: (String) async throws -> R) async throws -> R {
  var template = Array("/tmp/sluice-storage-test-XXXXXX".utf8CString)
  let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
  guard made != nil else { throw StorageError(.io, "mkdtemp failed: errno \(errno)") }
  let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  defer { try? FileManager.default.removeItem(atPath: path) }
  return try await body(path)
}

let pool = NIOThreadPool.singleton

func segmentName(_ base: Int64, _ suffix: String = ".log") -> String {
  let digits = String(base)
  return String(repeating: "0", count: 20 - digits.count) + digits + suffix
}

func fileSize(_ path: String) -> Int? {
  var info = stat()
  return stat(path, &info) == 0 ? Int(info.st_size) : nil
}

func fileBytes(_ path: String) -> [UInt8]? {
  FileManager.default.contents(atPath: path).map { Array($0) }
}

/// The number in a log's number file (`recovery-point`, `log-start-offset`: zero-padded
/// digits and a newline), or nil if there is none.
func storedNumber(_ path: String) -> Int64? {
  fileBytes(path).flatMap { Int64(String(decoding: $0, as: UTF8.self).filter { !$0.isWhitespace }) }
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
  _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

func truncateFile(_ path: String, to size: Int) {
  #expect(truncate(path, off_t(size)) == 0, "truncate \(path)")
}

func listLogFiles(_ directory: String, suffix: String = ".log") -> [String] {
  ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(suffix) }
    .sorted()
}

func copyDirectory(_ from: String, _ to: String) throws {
  try? FileManager.default.removeItem(atPath: to)
  try FileManager.default.copyItem(atPath: from, toPath: to)
}

/// Flips bit `bit` of the byte at `position` of a file.
func flipBit(_ path: String, at position: Int, bit: Int) {
  var bytes = fileBytes(path)!
  bytes[position] ^= UInt8(1 << bit)
  writeFile(path, bytes)
}

/// One v2 batch holding `values`, with the given record timestamps (default 1000, 1001, …).
func makeBatch(_ values: [String], timestamps: [Int64]? = nil) -> ByteBuffer {
  var builder = RecordBatchBuilder()
  for (index, value) in values.enumerated() {
    builder.append(key: nil, value: Array(value.utf8), timestamp: timestamps?[index] ?? 1000 + Int64(index))
  }
  return try! builder.build().buffer
}

/// A batch of `count` records named `prefix-i`, padded to `valueSize` bytes each.
func makeBatch(prefix: String, count: Int, valueSize: Int = 0, timestamp: Int64 = 1000) -> ByteBuffer {
  let values = (0..<count).map { index -> String in
    let name = "\(prefix)-\(index)"
    return name.count >= valueSize ? name : name + String(repeating: ".", count: valueSize - name.count)
  }
  return makeBatch(values, timestamps: Array(repeating: timestamp, count: count))
}

/// A decoded record: its offset and value text.
struct Stored: Equatable, CustomStringConvertible {
  var offset: Int64
  var value: String
  var description: String { "\(offset):\(value)" }
}

/// Splits read bytes into batches, checking each is whole and has a good CRC.
func batches(in bytes: ByteBuffer, sourceLocation: SourceLocation = #_sourceLocation) throws -> [RecordBatch]
{
  let (batches, tail) = try RecordBatchSplitter.split(bytes)
  #expect(tail == nil, "read returned a partial batch", sourceLocation: sourceLocation)
  for batch in batches {
    #expect(
      batch.verifyCRC(), "batch at offset \(batch.baseOffset) has a bad CRC", sourceLocation: sourceLocation)
  }
  return batches
}

func records(in bytes: ByteBuffer, sourceLocation: SourceLocation = #_sourceLocation) throws -> [Stored] {
  try batches(in: bytes, sourceLocation: sourceLocation).flatMap { batch in
    try batch.records(maxDecompressedSize: 1 << 26).map {
      Stored(offset: $0.offset, value: $0.value.map { String(buffer: $0) } ?? "<null>")
    }
  }
}

/// Every record from the log start to the log end, read in whole batches.
func readAll(_ log: any PartitionLog, sourceLocation: SourceLocation = #_sourceLocation) throws -> [Stored] {
  var result: [Stored] = []
  var offset = log.logStartOffset
  let end = log.logEndOffset
  while offset < end {
    let read = try log.read(from: offset, maxBytes: 1 << 20, upTo: nil, minOneBatch: true)
    let found = try batches(in: try read.loadBytes(), sourceLocation: sourceLocation)
    guard let last = found.last else {
      Issue.record(
        "read from \(offset) returned nothing before the log end \(end)", sourceLocation: sourceLocation)
      break
    }
    for batch in found {
      for record in try batch.records(maxDecompressedSize: 1 << 26) where record.offset >= offset {
        result.append(
          Stored(offset: record.offset, value: record.value.map { String(buffer: $0) } ?? "<null>"))
      }
    }
    offset = last.nextOffset
  }
  return result
}

/// What `readAll` should return for batches of values appended from `firstOffset` on.
func expected(_ batches: [[String]], from firstOffset: Int64 = 0) -> [Stored] {
  var offset = firstOffset
  var result: [Stored] = []
  for batch in batches {
    for value in batch {
      result.append(Stored(offset: offset, value: value))
      offset += 1
    }
  }
  return result
}

/// An append result as [first, last, logAppendTime, logStart].
func fields(_ result: AppendResult) -> [Int64] {
  [result.firstOffset, result.lastOffset, result.logAppendTime, result.logStartOffset]
}

func values(_ prefix: String, _ count: Int) -> [String] { (0..<count).map { "\(prefix)-\($0)" } }

func config(_ change: (inout LogConfig) -> Void = { _ in }) -> LogConfig {
  var config = LogConfig()
  change(&config)
  return config
}

/// Expects `body` to throw a `StorageError` with `code`; returns it.
@discardableResult
func expectStorageError<R>(
  _ code: StorageError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> R
) -> StorageError? {
  do {
    _ = try body()
    Issue.record("expected StorageError(\(code)), got success", sourceLocation: sourceLocation)
    return nil
  } catch let error as StorageError {
    #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    return error
  } catch {
    Issue.record("expected StorageError(\(code)), got \(error)", sourceLocation: sourceLocation)
    return nil
  }
}

@discardableResult
func expectStorageErrorAsync<R>(
  _ code: StorageError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> R
) async -> StorageError? {
  do {
    _ = try await body()
    Issue.record("expected StorageError(\(code)), got success", sourceLocation: sourceLocation)
    return nil
  } catch let error as StorageError {
    #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    return error
  } catch {
    Issue.record("expected StorageError(\(code)), got \(error)", sourceLocation: sourceLocation)
    return nil
  }
}

/// Runs a program; returns its exit status and combined output.
/// Runs a command to completion off Swift Concurrency's cooperative pool: the wait blocks
/// a thread for the child's whole life, and on a 2-core machine a blocked pool thread
/// starves every other test running in parallel.
func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) async throws -> (
  status: Int32, output: String
) {
  try await withCheckedThrowingContinuation { continuation in
    DispatchQueue.global().async {
      continuation.resume(with: Result { try runBlocking(executable, arguments, environment: environment) })
    }
  }
}

func runBlocking(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws
  -> (
    status: Int32, output: String
  )
{
  let process = Process()
  process.executableURL = URL(fileURLWithPath: executable)
  process.arguments = arguments
  if let environment {
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
  }
  let pipe = Pipe()
  process.standardOutput = pipe
  process.standardError = pipe
  try process.run()
  let data = pipe.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

func findExecutable(_ name: String) -> String? {
  for directory in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
    let path = directory + "/" + name
    if FileManager.default.isExecutableFile(atPath: path) { return path }
  }
  return nil
}

/// OS-level fault-injection tests (mount) need root on Linux; elsewhere they are skipped
/// with this visible reason.
#if os(Linux)
  let isRootOnLinux = getuid() == 0
#else
  let isRootOnLinux = false
#endif
