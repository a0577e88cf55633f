import KafkaProtocol
import NIOCore
import SluiceStorage
import Synchronization

extension Broker {
  /// A parked fetch wakes at least this often to see whether its client is still connected
  /// and the broker still running: MaxWaitMs is the client's (up to 24 days), and a fetch
  /// parked for a client that has gone would hold its connection's task and counts.
  static let parkSliceSeconds: Int64 = 5

  /// Fetch (CLIENTS.md §3): whole batches from each requested partition in request order,
  /// KIP-74 soft limits, and long polling that parks until MinBytes arrive or MaxWaitMs
  /// passes — woken by appends, not by polling.
  func fetch(
    _ request: FetchRequest, version: Int16, zeroCopy: Bool, eventLoop: (any EventLoop)? = nil,
    connectionOpen: @escaping @Sendable () -> Bool = { true }, fileRecords: inout [UInt64: [LogChunk]]
  ) async -> FetchResponse {
    let wait = Int64(max(0, request.maxWaitMs))
    let deadline = ContinuousClock.now + .milliseconds(wait)
    while true {
      let waiter = FetchWaiter(eventLoop: eventLoop)
      fileRecords.removeAll()
      let (response, bytes, hasError, partitions) = fetchOnce(
        request, version: version, waiter: waiter, zeroCopy: zeroCopy, fileRecords: &fileRecords)
      let done =
        hasError || bytes >= Int(request.minBytes) || request.maxWaitMs <= 0
        || ContinuousClock.now >= deadline || stopping.load(ordering: .relaxed) || !connectionOpen()
      if done {
        for partition in partitions { partition.removeWaiter(waiter) }
        return response
      }
      // Park: woken by an append to any requested partition, by the deadline, or after a
      // slice (to look at the connection and the broker again).
      let slice = min(deadline - ContinuousClock.now, .seconds(Self.parkSliceSeconds))
      if let eventLoop {
        let timer = eventLoop.scheduleTask(in: TimeAmount(slice)) { waiter.wake() }
        await waiter.wait()
        timer.cancel()
      } else {
        let timer = Task {
          try? await Task.sleep(for: slice)
          waiter.wake()
        }
        await waiter.wait()
        timer.cancel()
      }
      for partition in partitions { partition.removeWaiter(waiter) }
    }
  }

  /// One pass over the requested partitions. Registers `waiter` on every partition it
  /// reads before reading it, so an append that lands between the read and the park still
  /// wakes the fetch.
  func fetchOnce(
    _ request: FetchRequest, version: Int16, waiter: FetchWaiter, zeroCopy: Bool,
    fileRecords: inout [UInt64: [LogChunk]]
  ) -> (FetchResponse, Int, Bool, [Partition]) {
    var response = FetchResponse()
    if version >= 7 { response.sessionId = 0 }  // fetch sessions declined: full fetches
    var total = 0
    var hasError = false
    var registered: [Partition] = []
    var copied = 0  // record bytes loaded into memory for this response
    let maxBytes = version >= 3 ? Int(request.maxBytes) : Int(Int32.max)
    for requested in request.topics {
      let topic = version >= 13 ? self.topic(id: requested.topicId) : self.topic(requested.topic)
      var topicResponse = FetchResponse.FetchableTopicResponse()
      if version >= 13 {
        topicResponse.topicId = requested.topicId
      } else {
        topicResponse.topic = requested.topic
      }
      for wanted in requested.partitions {
        var data = FetchResponse.PartitionData(partitionIndex: wanted.partition, highWatermark: -1)
        if version >= 4 { data.lastStableOffset = -1 }
        if version >= 5 { data.logStartOffset = -1 }
        if version >= 4 && request.isolationLevel == 1 { data.abortedTransactions = [] }
        guard let topic, let partition = topic.partition(wanted.partition) else {
          data.errorCode = (version >= 13 ? ErrorCode.unknownTopicId : .unknownTopicOrPartition).rawValue
          hasError = true
          topicResponse.partitions.append(data)
          continue
        }
        partition.addWaiter(waiter)
        registered.append(partition)
        let highWatermark = partition.highWatermark
        let logStart = partition.log.logStartOffset
        data.highWatermark = highWatermark
        if version >= 4 { data.lastStableOffset = highWatermark }
        if version >= 5 { data.logStartOffset = logStart }
        if wanted.fetchOffset < logStart || wanted.fetchOffset > highWatermark {
          data.errorCode = ErrorCode.offsetOutOfRange.rawValue
          hasError = true
        } else if wanted.fetchOffset < highWatermark && total < maxBytes {
          let limit = min(Int(max(0, wanted.partitionMaxBytes)), maxBytes - total)
          do {
            let read = try partition.log.read(
              from: wanted.fetchOffset, maxBytes: limit, upTo: highWatermark, minOneBatch: total == 0)
            total += read.byteCount
            if zeroCopy && version >= 10
              && (read.byteCount > Self.copyBelowBytes || copied + read.byteCount > Self.copyBudgetBytes)
              && read.chunks.contains(where: { if case .file = $0 { true } else { false } })
            {
              // Leave the bytes in the segment file: an 8-byte marker stands in for them.
              var marker = FetchMarkers.next()
              while fileRecords[marker] != nil { marker = FetchMarkers.next() }
              fileRecords[marker] = read.chunks
              var placeholder = ByteBuffer()
              placeholder.writeInteger(marker)
              data.records = placeholder
            } else {
              // Small reads are copied: one pread and the response goes out in one write,
              // where sendfile would cost a dup, a writev, a sendfile, a write and a close
              // (and three TCP segments) per partition. A tailing consumer's fetches are
              // nearly all small.
              var records = try read.loadBytes()
              copied += records.readableBytes
              if version < 10, containsZstd(records) {
                data.errorCode = ErrorCode.unsupportedCompressionType.rawValue
                total -= records.readableBytes
                records = ByteBuffer()
              }
              data.records = records
            }
          } catch {
            data.errorCode = ErrorCode.from(error).rawValue
            hasError = true
          }
        }
        if data.records == nil { data.records = ByteBuffer() }
        topicResponse.partitions.append(data)
      }
      response.responses.append(topicResponse)
    }
    return (response, total, hasError, registered)
  }

  /// Zero-copy fetches still copy a partition's records when they are at most this many
  /// bytes, up to `copyBudgetBytes` per response.
  static let copyBelowBytes = 32 * 1024
  static let copyBudgetBytes = 1024 * 1024

  func containsZstd(_ records: ByteBuffer) -> Bool {
    var splitter = RecordBatchSplitter(records)
    while let batch = try? splitter.next() {
      if batch.compression == .zstd { return true }
    }
    return false
  }
}

/// Placeholders for zero-copy record data: a counter run through the SplitMix64 finalizer
/// from a random start, so a fetch does not pay a getrandom system call per partition.
/// Unpredictable enough that response bytes a client controls (topic names) will not
/// contain one by accident; `KafkaServer.splice` also checks the length prefix before it.
enum FetchMarkers {
  static let counter = Atomic<UInt64>(UInt64.random(in: 1...UInt64.max))

  static func next() -> UInt64 {
    var z = counter.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    return z == 0 ? 1 : z
  }
}
