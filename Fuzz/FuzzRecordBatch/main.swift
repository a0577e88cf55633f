// libFuzzer target for the RecordBatch v2 view: split the input into batches, validate each
// under both policies, rewrite header fields in place, and decode every record (compressed
// batches decompressed with a 1 MiB limit). Thrown errors are expected; any trap, sanitizer
// report or unbounded allocation is a bug.
//
// Build: swift build -c debug --sanitize=fuzzer --sanitize=address --product FuzzRecordBatch \
//          --scratch-path .build-fuzz
// Run:   SWIFT_BACKTRACE=enable=no .build-fuzz/debug/FuzzRecordBatch Fuzz/corpus/FuzzRecordBatch

import KafkaProtocol
import NIOCore

private let maxDecompressedSize = 1 << 20

private func exercise(_ original: RecordBatch) {
  var batch = original
  _ = try? batch.validate(.clientProduce)
  _ = try? batch.validate(.stored)
  _ = batch.verifyCRC()
  _ = (batch.attributes, batch.lastOffset, batch.nextOffset, batch.compression, batch.producerId)
  if let iterator = try? batch.makeRecordIterator(maxDecompressedSize: maxDecompressedSize) {
    var records = iterator
    var decoded = 0
    while true {
      guard let record = try? records.next() else { break }
      decoded += 1
      if batch.isControl { _ = try? ControlRecord(record) }
    }
    precondition(decoded <= Int(batch.recordsCount))
  }
  batch.setBaseOffset(42)
  batch.setPartitionLeaderEpoch(7)
  batch.setMaxTimestamp(1, timestampType: .logAppendTime)
  precondition(batch.verifyCRC())
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let input = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
  var splitter = RecordBatchSplitter(input)
  var consumed = 0
  while true {
    let next: RecordBatch?
    do {
      next = try splitter.next()
    } catch {
      break
    }
    guard let batch = next else {
      consumed += splitter.partialTail?.readableBytes ?? 0
      precondition(consumed == size)
      break
    }
    consumed += batch.size
    exercise(batch)
  }
  // The same bytes as one batch, whatever their declared length.
  if let whole = try? RecordBatch(input) { exercise(whole) }
  return 0
}
