// libFuzzer target for the RecordBatch v2 view: split the input into batches, validate each
// under both policies, rewrite header fields in place, and decode every record (compressed
// batches decompressed with a 1 MiB limit); the record walk (`validateRecords`) must pass
// exactly when decoding does. Thrown errors are expected; any trap, sanitizer report or
// unbounded allocation is a bug.
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
  // The record walk passes exactly when every record decodes, recordsCount of them, with
  // offset deltas increasing within 0...lastOffsetDelta (the stored-data rule).
  let walked = (try? batch.validateRecords(.stored, maxDecompressedSize: maxDecompressedSize)) != nil
  var decodedAll = false
  if let iterator = try? batch.makeRecordIterator(maxDecompressedSize: maxDecompressedSize) {
    var records = iterator
    var decoded = 0
    var previous: Int64 = -1
    var ordered = true
    do {
      while let record = try records.next() {
        decoded += 1
        let delta = record.offset &- batch.baseOffset
        ordered = ordered && delta > previous && delta <= Int64(batch.lastOffsetDelta)
        previous = delta
        if batch.isControl { _ = try? ControlRecord(record) }
      }
      decodedAll = ordered && decoded == Int(batch.recordsCount)
    } catch {}
    precondition(decoded <= Int(batch.recordsCount))
  }
  precondition(walked == decodedAll, "validateRecords \(walked ? "passed" : "failed"), decoding disagrees")
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
