// Micro-benchmarks for the RecordBatch hot paths: CRC-32C (hardware and table paths),
// batch validation, record iteration and batch building. Not a test: run
// `scripts/bench-codec.sh` (release build) and read the figures.

import KafkaProtocol
import NIOCore

#if canImport(Glibc)
  import Glibc
#endif

let runs = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 7
nonisolated(unsafe) var sink: UInt64 = 0

/// Runs `body` (which performs `iterations` operations) `runs` times; median seconds per run.
func median(iterations: Int, _ body: (Int) -> Void) -> Double {
  body(Swift.max(1, iterations / 10))  // warm-up
  var times: [Double] = []
  let clock = ContinuousClock()
  for _ in 0..<runs {
    let elapsed = clock.measure { body(iterations) }
    times.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
  }
  times.sort()
  return times[times.count / 2]
}

func pad(_ text: String, _ width: Int) -> String {
  text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

func fmt(_ value: Double, _ digits: Int = 2) -> String {
  var scaled = value
  for _ in 0..<digits { scaled *= 10 }
  let rounded = scaled.rounded()
  var text = String(Int(rounded))
  if digits > 0 {
    while text.count <= digits { text = "0" + text }
    text.insert(".", at: text.index(text.endIndex, offsetBy: -digits))
  }
  return text
}

func report(_ label: String, _ figures: String) {
  print(pad(label, 64) + figures)
}

print("CodecBench — median of \(runs) runs; CRC-32C hardware: \(CRC32C.isHardwareAccelerated)")
print("")

// MARK: CRC-32C

let crcInput: [UInt8] = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
crcInput.withUnsafeBytes { all in
  for size in [1024, 1 << 20] {
    let slice = UnsafeRawBufferPointer(rebasing: all[0..<size])
    let hwIterations = (512 << 20) / size
    let hw = median(iterations: hwIterations) { n in
      var crc: UInt32 = 0
      for _ in 0..<n { crc = CRC32C.update(crc, slice) }
      sink &+= UInt64(crc)
    }
    let swIterations = (64 << 20) / size
    let sw = median(iterations: swIterations) { n in
      var crc: UInt32 = 0
      for _ in 0..<n { crc = CRC32C.portableUpdate(crc, slice) }
      sink &+= UInt64(crc)
    }
    let label = size == 1024 ? "1 KiB" : "1 MiB"
    report("crc32c \(label) dispatch (hardware)", "\(fmt(Double(hwIterations * size) / hw / 1e9)) GB/s")
    report("crc32c \(label) portable slicing-by-8", "\(fmt(Double(swIterations * size) / sw / 1e9)) GB/s")
  }
}
print("")

// MARK: Batches

func makeBatch(targetSize: Int, recordValueSize: Int = 100, compression: CompressionCodec = .none) throws
  -> RecordBatch
{
  let value = ByteBuffer(repeating: UInt8(ascii: "x"), count: recordValueSize)
  // 100 B value + ~15 B of record framing and a 4-byte key.
  let perRecord = recordValueSize + 15
  let count = Swift.max(1, (targetSize - RecordBatch.Layout.headerSize) / perRecord)
  let keys = (0..<count).map { ByteBuffer(integer: UInt32($0)) }
  return try makeBatch(keys: keys, value: value, compression: compression, capacity: targetSize + 256)
}

func makeBatch(keys: [ByteBuffer], value: ByteBuffer, compression: CompressionCodec = .none, capacity: Int)
  throws
  -> RecordBatch
{
  var builder = RecordBatchBuilder(
    producerId: 1, producerEpoch: 0, baseSequence: 0, compression: compression, capacity: capacity)
  for (i, key) in keys.enumerated() {
    builder.append(key: key, value: value, timestamp: 1_700_000_000_000 + Int64(i))
  }
  return try builder.build()
}

for target in [1024, 16 * 1024] {
  let batch = try makeBatch(targetSize: target)
  let records = Int(batch.recordsCount)
  let iterations = (256 << 20) / batch.size
  let validate = median(iterations: iterations) { n in
    for _ in 0..<n {
      do { try batch.validate() } catch { fatalError("\(error)") }
    }
  }
  let label = "\(target / 1024) KiB batch (\(records) x 100 B records, \(batch.size) B)"
  report(
    "validate \(label)",
    "\(fmt(Double(iterations) / validate / 1e6)) M batches/s, \(fmt(Double(iterations * batch.size) / validate / 1e9)) GB/s"
  )

  let iterate = median(iterations: iterations / 4) { n in
    var total = 0
    for _ in 0..<n {
      do {
        var iterator = try batch.makeRecordIterator(maxDecompressedSize: 1 << 20)
        while let record = try iterator.next() { total &+= record.value?.readableBytes ?? 0 }
      } catch { fatalError("\(error)") }
    }
    sink &+= UInt64(total)
  }
  report("iterate records, \(label)", "\(fmt(Double(iterations / 4 * records) / iterate / 1e6)) M records/s")

  let walk = median(iterations: iterations / 4) { n in
    for _ in 0..<n {
      do { try batch.validateRecords(maxDecompressedSize: 1 << 20) } catch { fatalError("\(error)") }
    }
  }
  report(
    "walk records, \(label)",
    "\(fmt(Double(iterations / 4 * records) / walk / 1e6)) M records/s")

  let keys = (0..<records).map { ByteBuffer(integer: UInt32($0)) }
  let value = ByteBuffer(repeating: UInt8(ascii: "x"), count: 100)
  let build = median(iterations: iterations / 4) { n in
    for _ in 0..<n {
      do {
        sink &+= UInt64(try makeBatch(keys: keys, value: value, capacity: batch.size).size)
      } catch { fatalError("\(error)") }
    }
  }
  report("build, \(label)", "\(fmt(Double(iterations / 4 * records) / build / 1e6)) M records/s")
}
print("")

for codec in [CompressionCodec.gzip, .snappy, .lz4, .zstd] {
  guard let batch = try? makeBatch(targetSize: 16 * 1024, compression: codec) else {
    report("iterate \(codec) 16 KiB batch", "codec unavailable")
    continue
  }
  let records = Int(batch.recordsCount)
  let iterations = 2000
  let iterate = median(iterations: iterations) { n in
    var total = 0
    for _ in 0..<n {
      do {
        var iterator = try batch.makeRecordIterator(maxDecompressedSize: 1 << 20)
        while let record = try iterator.next() { total &+= record.value?.readableBytes ?? 0 }
      } catch { fatalError("\(error)") }
    }
    sink &+= UInt64(total)
  }
  report(
    "iterate \(codec) 16 KiB batch (\(batch.size) B wire)",
    "\(fmt(Double(iterations * records) / iterate / 1e6)) M records/s")
}

if sink == 42 { print("") }  // keep results observable
