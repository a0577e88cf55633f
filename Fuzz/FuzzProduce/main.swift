// libFuzzer target for the broker's produce path: arbitrary bytes as the records of a
// Produce request, handled in-process by a `Broker` (the real handler: batch validation,
// idempotent-producer checks, append to a memory log or a file log in a temporary
// directory), then read back and decoded with bounded decompression.
//
// Input: one control byte, then the records field.
//   bit 0     0: a `sluice.storage=memory` topic, 1: a disk topic (FileLog)
//   bit 1     recompute each batch's CRC first (so mutations get past the CRC check)
//   bits 2-3  acks: -1, 1, 0, or an invalid value (5)
//   bits 4-5  Produce version: 10, 9, 7, 3 (zstd needs v7+)
//   bit 6     the same records also go to a partition the topic does not have (without
//             bit 7); with bit 7, a topic with compression.type=zstd instead
//   bit 7     the topic uses LogAppendTime and max.message.bytes=2048
//
// Checked on every input: no crash or sanitizer report; the response's shape; a rejected
// batch leaves the log unchanged (same end offset, nothing readable past it); an accepted
// one advances the log end by exactly its offsets, is stored byte for byte (bar the base
// offset and, for LogAppendTime, the stamped timestamp), passes stored-batch validation,
// and its records decode: exactly recordsCount of them, at consecutive offsets (the broker
// recomputes a CreateTime batch's max timestamp from its records, and recompresses batches
// for a compression.type=zstd topic: the stored records must then equal the produced ones
// walks every record before appending; its decompression limit is 1 MiB here). Every 256
// inputs the whole log is read back and must hold exactly the accepted batches. The seed
// corpus (Fuzz/corpus/FuzzProduce) holds batches captured from real clients in every codec
// (none, gzip, snappy, lz4, zstd).
//
// Build and run: scripts/fuzz.sh FuzzProduce

import Dispatch
import Foundation
import KafkaProtocol
import NIOCore
import SluiceBroker
import SluiceKafka
import SluiceStorage

private let maxDecompressedSize = 1 << 20
/// Topics are deleted and created afresh this often, so logs and producer tables stay small.
private let recreateEvery = 2000

/// One topic flavour with what the target expects its partition 0 to hold.
private final class Flavour: @unchecked Sendable {
  let name: String
  let configs: [String: String]
  var expectedBatches = 0
  var expectedBytes = 0
  init(name: String, configs: [String: String]) {
    self.name = name
    self.configs = configs
  }
}

private final class Harness: @unchecked Sendable {
  let broker: Broker
  let flavours: [Flavour]
  var runs = 0
  var accepted = 0
  var duplicates = 0

  init() {
    let directory = NSTemporaryDirectory() + "sluice-fuzz-produce-\(getpid())"
    try? FileManager.default.removeItem(atPath: directory)
    var config = BrokerConfig()
    config.dataDirectory = directory
    config.autoCreateTopics = false
    config.maxDecompressedBatchBytes = maxDecompressedSize
    do {
      broker = try Broker(config: config)
    } catch {
      fatalError("cannot open a broker in \(directory): \(error)")
    }
    let lat = ["message.timestamp.type": "LogAppendTime", "max.message.bytes": "2048"]
    flavours = [
      Flavour(name: "mem", configs: ["sluice.storage": "memory"]),
      Flavour(name: "disk", configs: [:]),
      Flavour(name: "mem-lat", configs: lat.merging(["sluice.storage": "memory"]) { $1 }),
      Flavour(name: "disk-lat", configs: lat),
      Flavour(name: "mem-zstd", configs: ["sluice.storage": "memory", "compression.type": "zstd"]),
      Flavour(name: "disk-zstd", configs: ["compression.type": "zstd"]),
    ]
    for flavour in flavours { create(flavour) }
    harnessDirectory = directory
    atexit {
      try? FileManager.default.removeItem(atPath: harnessDirectory)
      // How much got past validation, so a run shows the append path was reached.
      let summary =
        "FuzzProduce: \(harness.runs) inputs, \(harness.accepted) appended, "
        + "\(harness.duplicates) idempotent duplicates, the rest rejected\n"
      FileHandle.standardError.write(Data(summary.utf8))
    }
  }

  func create(_ flavour: Flavour) {
    let broker = self.broker
    let (name, configs) = (flavour.name, flavour.configs)
    let created: Result<Void, TopicError> = runBlocking {
      do throws(TopicError) {
        try await broker.createTopic(name: name, partitions: 1, configs: configs)
        return .success(())
      } catch {
        return .failure(error)
      }
    }
    if case .failure(let error) = created {
      fatalError("cannot create topic \(flavour.name): \(error)")
    }
    flavour.expectedBatches = 0
    flavour.expectedBytes = 0
  }

  func recreateAll() {
    for flavour in flavours {
      verifyWholeLog(flavour)
      let (broker, name) = (self.broker, flavour.name)
      _ = runBlocking { try? await broker.deleteTopic(name) }
      create(flavour)
    }
  }

  func log(_ flavour: Flavour) -> any PartitionLog {
    guard let log = broker.topic(flavour.name)?.partition(0)?.log else {
      fatalError("topic \(flavour.name) has no partition 0")
    }
    return log
  }

  /// Every batch from the log start to the end, loaded into memory.
  func readAll(_ log: any PartitionLog, from start: Int64) -> [RecordBatch] {
    var batches: [RecordBatch] = []
    var offset = start
    let end = log.logEndOffset
    while offset < end {
      let bytes: ByteBuffer
      do {
        bytes = try log.read(from: offset, maxBytes: 1 << 20, upTo: nil, minOneBatch: true).loadBytes()
      } catch {
        fatalError("reading \(offset) of [\(log.logStartOffset), \(end)) failed: \(error)")
      }
      precondition(bytes.readableBytes > 0, "no data at offset \(offset) below the log end \(end)")
      var splitter = RecordBatchSplitter(bytes)
      var next = offset
      while true {
        let batch: RecordBatch?
        do {
          batch = try splitter.next()
        } catch {
          fatalError("stored bytes at offset \(next) do not split into batches: \(error)")
        }
        guard let batch else { break }
        batches.append(batch)
        next = batch.nextOffset
      }
      precondition(splitter.partialTail == nil, "a read ended inside a batch")
      precondition(next > offset, "a read at \(offset) made no progress")
      offset = next
    }
    return batches
  }

  func verifyWholeLog(_ flavour: Flavour) {
    let log = log(flavour)
    let batches = readAll(log, from: log.logStartOffset)
    precondition(
      batches.count == flavour.expectedBatches,
      "\(flavour.name): \(batches.count) batches stored, \(flavour.expectedBatches) accepted")
    let bytes = batches.reduce(0) { $0 + $1.size }
    precondition(
      bytes == flavour.expectedBytes,
      "\(flavour.name): \(bytes) bytes stored, \(flavour.expectedBytes) accepted")
    var expectedOffset = log.logStartOffset
    for batch in batches {
      precondition(batch.baseOffset == expectedOffset, "\(flavour.name): offsets are not dense")
      expectedOffset = batch.nextOffset
    }
    precondition(expectedOffset == log.logEndOffset)
  }
}

nonisolated(unsafe) private var harnessDirectory = ""
private let harness = Harness()

/// A result handed from a task to the thread waiting for it (the semaphore orders the accesses).
private final class ResultBox<T>: @unchecked Sendable {
  var value: T?
}

/// Runs async work to completion from libFuzzer's (non-async) thread.
private func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
  let box = ResultBox<T>()
  let done = DispatchSemaphore(value: 0)
  Task {
    box.value = await body()
    done.signal()
  }
  done.wait()
  return box.value!
}

/// Recomputes the CRC of every whole batch in `records` (a partial tail is left as is).
private func fixCRCs(_ records: inout ByteBuffer) {
  var position = records.readerIndex
  while records.writerIndex - position >= RecordBatch.Layout.headerSize {
    guard let length = records.getInteger(at: position + 8, as: Int32.self), length >= 0 else { return }
    let size = Int(length) + RecordBatch.Layout.logOverhead
    guard size >= RecordBatch.Layout.headerSize, position + size <= records.writerIndex,
      var batch = try? RecordBatch(records.getSlice(at: position, length: size)!)
    else { return }
    batch.updateCRC()
    records.setBuffer(batch.buffer, at: position)
    position += size
  }
}

/// An appended batch: its records pass the walk and decode, exactly `recordsCount` of them
/// at consecutive offsets.
private func expectSoundRecords(_ batch: RecordBatch) {
  do throws(KafkaProtocolError) {
    try batch.validateRecords(.clientProduce, maxDecompressedSize: maxDecompressedSize)
    var records = try batch.makeRecordIterator(maxDecompressedSize: maxDecompressedSize)
    var expected = batch.baseOffset
    while let record = try records.next() {
      precondition(record.offset == expected, "record at \(record.offset), expected \(expected)")
      expected &+= 1
    }
    precondition(expected == batch.nextOffset, "records end at \(expected), batch at \(batch.nextOffset)")
  } catch {
    fatalError("an appended batch has undecodable records: \(error)")
  }
}

/// Decodes every record of a batch (bounded decompression); errors are fine, traps are not.
private func decodeRecords(_ batch: RecordBatch) {
  guard var records = try? batch.makeRecordIterator(maxDecompressedSize: maxDecompressedSize) else {
    return
  }
  var decoded = 0
  while let record = try? records.next() {
    decoded += 1
    _ = (record.offset, record.timestamp, record.key?.readableBytes, record.value?.readableBytes)
  }
  precondition(decoded <= Int(batch.recordsCount), "more records decoded than the batch declares")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard size > 0 else { return 0 }
  let control = data[0]
  var records = ByteBuffer(bytes: UnsafeBufferPointer(start: data + 1, count: size - 1))
  if control & 0x02 != 0 { fixCRCs(&records) }
  let recompressing = control & 0xC0 == 0xC0
  let flavour = harness.flavours[Int(control & 0x01) | (recompressing ? 4 : Int(control >> 7) << 1)]
  let acks: Int16 = [-1, 1, 0, 5][Int(control >> 2) & 0x03]
  let version: Int16 = [10, 9, 7, 3][Int(control >> 4) & 0x03]
  let alsoUnknownPartition = control & 0xC0 == 0x40

  // The input's own batches, for the checks below (and decoded, like a consumer would).
  var inputBatches: [RecordBatch] = []
  var splitter = RecordBatchSplitter(records)
  while let batch = try? splitter.next() {
    inputBatches.append(batch)
    decodeRecords(batch)
  }
  let wholeInput = splitter.partialTail == nil && !inputBatches.isEmpty

  let log = harness.log(flavour)
  let endBefore = log.logEndOffset
  let startBefore = log.logStartOffset

  var partitions = [ProduceRequest.PartitionProduceData(index: 0, records: records)]
  if alsoUnknownPartition { partitions.append(.init(index: 7, records: records)) }
  var body = ProduceRequest()
  body.acks = acks
  body.timeoutMs = 5000
  body.topicData = [.init(name: flavour.name, partitionData: partitions)]
  let request = KafkaRequest(correlationId: 1, clientId: "fuzz", apiVersion: version, body: .produce(body))
  let broker = harness.broker
  let reply = runBlocking { await KafkaFrontDoor(broker: broker).handle(request) }

  // The response: one per partition asked, none at all for acks=0.
  var errorCode: Int16?
  var baseOffset: Int64 = -1
  if acks == 0 {
    precondition(reply == nil, "acks=0 got a response")
  } else {
    guard case .produce(let response)? = reply else { fatalError("no Produce response for acks=\(acks)") }
    precondition(response.responses.count == 1 && response.responses[0].name == flavour.name)
    let answers = response.responses[0].partitionResponses
    precondition(answers.map(\.index) == partitions.map(\.index), "answers for \(answers.map(\.index))")
    errorCode = answers[0].errorCode
    baseOffset = answers[0].baseOffset
    if alsoUnknownPartition {
      precondition(answers[1].errorCode != 0, "a partition the topic does not have accepted records")
    }
    if acks == 5 { precondition(errorCode != 0, "acks=5 accepted") }
  }

  let endAfter = log.logEndOffset
  if endAfter == endBefore {
    // Rejected (or an idempotent duplicate): nothing changed, nothing readable at the end.
    precondition(log.logStartOffset == startBefore, "a rejected produce moved the log start")
    if let errorCode, errorCode == 0 {
      precondition(
        baseOffset >= 0 && baseOffset < endBefore, "accepted without appending, baseOffset \(baseOffset)")
      harness.duplicates += 1
    }
    if let read = try? log.read(from: endBefore, maxBytes: 1 << 20, upTo: nil, minOneBatch: true) {
      precondition(read.chunks.isEmpty, "bytes readable past the log end after a rejected produce")
    }
  } else {
    // Accepted: exactly the input's batches, at the old end, stored verbatim.
    harness.accepted += 1
    precondition(errorCode == nil || errorCode == 0, "error \(errorCode!) but the log grew")
    precondition(wholeInput, "a partial or empty records field was appended")
    let expectedEnd = inputBatches.reduce(endBefore) { $0 + Int64($1.lastOffsetDelta) + 1 }
    precondition(endAfter == expectedEnd, "log end \(endBefore) -> \(endAfter), expected \(expectedEnd)")
    if errorCode != nil {
      precondition(baseOffset == endBefore, "baseOffset \(baseOffset), log end was \(endBefore)")
    }
    let stored = harness.readAll(log, from: endBefore)
    precondition(
      stored.count == inputBatches.count, "\(stored.count) batches stored of \(inputBatches.count)")
    for (input, output) in zip(inputBatches, stored) {
      var expected = input
      expected.setBaseOffset(output.baseOffset)
      if flavour.configs["message.timestamp.type"] == "LogAppendTime" {
        expected.setMaxTimestamp(output.maxTimestamp, timestampType: .logAppendTime)
      } else {
        // The max timestamp is the records' (Kafka's rule), whatever the header said.
        guard let summary = try? input.validateRecords(maxDecompressedSize: maxDecompressedSize) else {
          fatalError("an appended batch does not pass the record walk")
        }
        precondition(
          output.maxTimestamp == summary.maxTimestamp,
          "stored max timestamp \(output.maxTimestamp), records say \(summary.maxTimestamp)")
        if input.maxTimestamp != summary.maxTimestamp {
          expected.setMaxTimestamp(summary.maxTimestamp, timestampType: .createTime)
        }
      }
      if flavour.configs["compression.type"] == "zstd" && input.compression != .zstd {
        precondition(output.compression == .zstd, "a batch was not recompressed to the topic's codec")
        let same =
          (try? output.records(maxDecompressedSize: maxDecompressedSize))
          == (try? expected.records(maxDecompressedSize: maxDecompressedSize))
        precondition(same, "recompression changed the records")
        precondition(
          output.producerId == input.producerId && output.baseSequence == input.baseSequence
            && output.baseTimestamp == input.baseTimestamp && output.recordsCount == input.recordsCount,
          "recompression changed the header")
      } else {
        precondition(expected.buffer == output.buffer, "a stored batch differs from the one produced")
      }
      do {
        try output.validate(.stored)
      } catch {
        fatalError("a stored batch fails validation: \(error)")
      }
      expectSoundRecords(output)
      flavour.expectedBatches += 1
      flavour.expectedBytes += output.size
    }
  }

  harness.runs += 1
  if harness.runs % 256 == 0 { harness.verifyWholeLog(flavour) }
  if harness.runs % recreateEvery == 0 { harness.recreateAll() }
  return 0
}
