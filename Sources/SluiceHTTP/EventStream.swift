import KafkaProtocol
import NIOCore
import NIOHTTP1
import SluiceBroker

/// Where a stream starts in partitions it has no other position for.
public enum StreamStart: Sendable, Hashable {
  case beginning
  case end
  /// The first record whose timestamp is at least this (ms since the epoch).
  case timestamp(Int64)

  /// `beginning`, `end` or `@EPOCH_MS`.
  public init?(parameter: String) {
    switch parameter {
    case "beginning": self = .beginning
    case "end": self = .end
    default:
      guard parameter.hasPrefix("@"), let ms = Int64(parameter.dropFirst()), ms >= 0 else { return nil }
      self = .timestamp(ms)
    }
  }
}

/// A resume position from `Last-Event-ID`: an event's `PARTITION:OFFSET`, or a stream
/// checkpoint `P:O,P:O,…`; each offset is the last one delivered.
public enum EventID {
  /// Bounded: at most this many partitions in one id.
  static let maxEntries = 10_000

  public static func parse(_ text: some StringProtocol) -> [Int32: Int64]? {
    var positions: [Int32: Int64] = [:]
    let entries = text.split(separator: ",", omittingEmptySubsequences: false)
    guard entries.count <= maxEntries else { return nil }
    for entry in entries {
      let parts = entry.split(separator: ":", omittingEmptySubsequences: false)
      // An offset is the last one delivered: the next (offset + 1) must exist.
      guard parts.count == 2, let partition = Int32(parts[0]), partition >= 0, let offset = Int64(parts[1]),
        offset >= -1, offset < Int64.max
      else { return nil }
      positions[partition] = offset
    }
    return positions
  }

  public static func format(_ positions: [Int32: Int64]) -> String {
    positions.keys.sorted().map { "\($0):\(positions[$0]!)" }.joined(separator: ",")
  }
}

/// One record as the JSON object that Server-Sent Events (and webhooks) carry: topic,
/// partition, offset, timestamp, key, value, headers. A key, value or header value that is
/// not UTF-8 goes as base64, with `"key_encoding"`/`"value_encoding":"base64"` beside it.
enum RecordJSON {
  static func write(_ record: Record, topic: String, partition: Int32, to writer: inout JSONWriter) {
    writer.object { object in
      object.member("topic") { $0.string(topic) }
      object.member("partition") { $0.number(partition) }
      object.member("offset") { $0.number(record.offset) }
      object.member("timestamp") { $0.number(record.timestamp) }
      bytes("key", record.key, into: &object)
      bytes("value", record.value, into: &object)
      object.member("headers") { headers in
        headers.array(record.headers) { writer, header in
          writer.object { member in
            member.member("key") { $0.string(header.key) }
            bytes("value", header.value, into: &member)
          }
        }
      }
    }
  }

  static func bytes(_ name: String, _ bytes: ByteBuffer?, into object: inout JSONWriter.ObjectWriter) {
    guard let bytes else {
      object.member(name) { $0.null() }
      return
    }
    if let text = bytes.withUnsafeReadableBytes({ String(validating: $0, as: UTF8.self) }) {
      object.member(name) { $0.string(text) }
    } else {
      object.member(name) { $0.string(Base64.encode(bytes)) }
      object.member("\(name)_encoding") { $0.string("base64") }
    }
  }
}

/// `GET /v1/topics/{topic}/events`: records as Server-Sent Events as they are appended,
/// woken like a parked fetch (no polling).
enum EventStream {
  static let route = "/v1/topics/{topic}/events"
  /// A write a reader has not taken in this long ends the stream (its socket buffers are
  /// full and it is not reading).
  static let stalledWriteMs: Int64 = 60_000
  /// How often a stream with a group commits what it has sent.
  static let commitIntervalMs: Int64 = 1000
  /// The longest a stream's read stays parked before it looks at its connection again.
  static let parkMs: Int64 = 1000

  struct Parameters: Sendable {
    var topic: String
    var start: StreamStart
    var group: String?
    var partition: Int32?
    var resume: [Int32: Int64]?
  }

  static func failure(_ status: HTTPResponseStatus, _ code: Int, _ message: String) -> HTTPResponse {
    .error(status, code: code, message, route: route)
  }

  static func response(
    _ request: HTTPRequest, topic name: String, broker: Broker, configuration: HTTPServerConfiguration,
    counters: HTTPCounters
  ) -> HTTPResponse {
    let accept = request.headers[canonicalForm: "accept"]
    if !accept.isEmpty
      && !accept.contains(where: {
        let type = $0.split(separator: ";").first.map { $0.trimmedSpaces().lowercased() }
        return type == "text/event-stream" || type == "*/*" || type == "text/*"
      })
    {
      return failure(.notAcceptable, 406, "HTTP 406 Not Acceptable: this stream is text/event-stream")
    }
    guard let topic = broker.topic(name) else { return failure(.notFound, 40401, "Topic not found.") }
    var parameters = Parameters(topic: name, start: .end)
    if let from = request.query["from"] {
      guard let start = StreamStart(parameter: from) else {
        return failure(.badRequest, 400, "from: expected beginning, end or @EPOCH_MS, got \(from.prefix(64))")
      }
      parameters.start = start
    }
    if let group = request.query["group"] {
      guard !group.isEmpty, group.utf8.count <= 249 else {
        return failure(.badRequest, 400, "group: expected a group id of 1 to 249 bytes")
      }
      parameters.group = group
    }
    if let text = request.query["partition"] {
      guard let partition = Int32(text), topic.partition(partition) != nil else {
        return failure(.notFound, 40402, "Partition not found.")
      }
      parameters.partition = partition
    }
    if let text = request.headers.first(name: "last-event-id") ?? request.query["last_event_id"],
      !text.isEmpty
    {
      guard let resume = EventID.parse(text) else {
        return failure(
          .badRequest, 400,
          "Last-Event-ID: expected PARTITION:OFFSET[,PARTITION:OFFSET…], got \(text.prefix(64))")
      }
      parameters.resume = resume
    }
    var headers = HTTPHeaders()
    headers.add(name: "Content-Type", value: "text/event-stream; charset=utf-8")
    headers.add(name: "Cache-Control", value: "no-cache")
    headers.add(name: "X-Accel-Buffering", value: "no")
    let fixed = parameters
    let stream: ResponseStream = { writer, context in
      counters.streams.wrappingAdd(1, ordering: .relaxed)
      defer { counters.streams.wrappingSubtract(1, ordering: .relaxed) }
      try await run(
        fixed, broker: broker, configuration: configuration, counters: counters, writer: writer,
        context: context)
    }
    return HTTPResponse(status: .ok, headers: headers, body: ByteBuffer(), stream: stream, route: route)
  }

  /// The first offset to send in each partition: the resume id's next, else the group's
  /// committed offset, else `from`.
  static func startPositions(_ parameters: Parameters, broker: Broker) async -> [Int32: Int64] {
    guard let topic = broker.topic(parameters.topic) else { return [:] }
    let partitions = topic.partitions.filter {
      parameters.partition == nil || $0.index == parameters.partition
    }
    var committed: [Int32: Int64] = [:]
    if let group = parameters.group {
      let offsets = broker.committedOffsets(
        group: group, topics: [(parameters.topic, partitions.map(\.index))])
      for (index, offset) in offsets.first?.partitions ?? [] {
        if let offset { committed[index] = offset.offset }
      }
    }
    let found = committed
    return await offLoop {
      var positions: [Int32: Int64] = [:]
      for partition in partitions {
        if let last = parameters.resume?[partition.index] {
          positions[partition.index] = last + 1
        } else if let offset = found[partition.index] {
          positions[partition.index] = offset
        } else {
          positions[partition.index] = position(partition, parameters.start)
        }
      }
      return positions
    }
  }

  static func position(_ partition: Partition, _ start: StreamStart) -> Int64 {
    switch start {
    case .beginning: return partition.logStartOffset
    case .end: return partition.highWatermark
    case .timestamp(let ms):
      return (try? partition.offset(for: .timestamp(ms)))??.offset ?? partition.highWatermark
    }
  }

  static func run(
    _ parameters: Parameters, broker: Broker, configuration: HTTPServerConfiguration, counters: HTTPCounters,
    writer: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, context: RequestContext
  ) async throws {
    var positions = await startPositions(parameters, broker: broker)
    var committed = positions
    var lastCommit = broker.clock.monotonicMs()
    var lastWrite = lastCommit
    var rotation = 0
    let channel = context.channel
    var opening = ByteBuffer(string: "retry: 2000\n: \(parameters.topic)\n\n")
    checkpoint(positions, into: &opening)
    try await write(opening, writer, channel)
    // What the client was sent (positions advance as a chunk is built; this, once it is
    // written): a stream that ends, however it ends, commits only this.
    var sent = positions
    do {
      try await loop()
    } catch {
      _ = await commit(parameters, sent, &committed, broker, writer, channel)
      throw error
    }
    _ = await commit(parameters, sent, &committed, broker, writer, channel)

    func loop() async throws {
      while context.isOpen() {
        // Partitions added meanwhile are read from their start.
        guard let topic = broker.topic(parameters.topic) else {
          try await write(errorEvent(404, 40401, "Topic \(parameters.topic) was deleted"), writer, channel)
          return
        }
        if parameters.partition == nil {
          for partition in topic.partitions where positions[partition.index] == nil {
            positions[partition.index] = partition.logStartOffset
          }
        }
        // Rotated so that a busy partition does not always fill the read first.
        var order = positions.keys.sorted()
        if !order.isEmpty {
          rotation = (rotation + 1) % order.count
          order = Array(order[rotation...] + order[..<rotation])
        }
        let reads = order.map {
          PartitionRead(
            topic: parameters.topic, partition: $0, offset: positions[$0]!,
            maxBytes: configuration.streamReadBytes)
        }
        // Parked at most a second: a stopping server (or a group commit) is not kept waiting
        // for the broker's 5 s park slice; a heartbeat is written only when one is due.
        let results = await broker.read(
          reads,
          options: ReadOptions(
            maxBytes: configuration.streamReadBytes, minBytes: 1,
            maxWaitMs: min(configuration.heartbeatMs, Self.parkMs)),
          context: CallContext(eventLoop: channel.eventLoop, isConnected: context.isOpen))
        var chunk = ByteBuffer()
        var events = 0
        for (read, result) in zip(reads, results) {
          if let failure = result.error {
            if failure.code == .offsetOutOfRange {
              // Retention removed records not yet sent (or the log was truncated): go on from
              // what there is, and say so.
              let next = read.offset < result.logStartOffset ? result.logStartOffset : result.highWatermark
              chunk.writeString(
                ": partition \(read.partition): offset \(read.offset) is gone, from \(next)\n\n")
              positions[read.partition] = next
              continue
            }
            chunk.writeImmutableBuffer(
              errorEvent(
                500, 50002, "Reading partition \(read.partition): \(failure.code.name) \(failure.message)"))
            try await write(chunk, writer, channel)
            return
          }
          guard result.records.count > 0 else { continue }
          let bytes: ByteBuffer
          do {
            bytes = try result.records.load()
          } catch {
            try await write(
              errorEvent(500, 50002, "Reading partition \(read.partition): \(error.message)"), writer, channel
            )
            return
          }
          do {
            positions[read.partition] = try RecordWalk.walk(
              bytes, from: positions[read.partition]!,
              maxDecompressedSize: broker.config.maxDecompressedBatchBytes
            ) { record in
              chunk.writeString("id: \(read.partition):\(record.offset)\ndata: ")
              var json = JSONWriter()
              RecordJSON.write(record, topic: parameters.topic, partition: read.partition, to: &json)
              chunk.writeImmutableBuffer(json.buffer)
              chunk.writeString("\n\n")
              events += 1
              return true
            }
          } catch {
            chunk.writeImmutableBuffer(
              errorEvent(
                500, 50002,
                "Partition \(read.partition): the batch at offset \(error.baseOffset) cannot be decoded: \(error.message)"
              ))
            try await write(chunk, writer, channel)
            return
          }
        }
        let now = broker.clock.monotonicMs()
        if events > 0 || chunk.readableBytes > 0 {
          checkpoint(positions, into: &chunk)
          try await write(chunk, writer, channel)
          counters.streamedEvents.wrappingAdd(events, ordering: .relaxed)
          lastWrite = now
        } else if now - lastWrite >= configuration.heartbeatMs {
          try await write(ByteBuffer(string: ": heartbeat\n\n"), writer, channel)
          lastWrite = now
        }
        sent = positions
        if parameters.group != nil && now - lastCommit >= commitIntervalMs {
          lastCommit = now
          if !(await commit(parameters, sent, &committed, broker, writer, channel)) { return }
        }
      }
    }
  }

  /// Commits the positions that moved as the stream's group's offsets (a standalone commit:
  /// generation -1, no member). On a refusal (the group is a Kafka consumer group with
  /// members), an error event, and false.
  static func commit(
    _ parameters: Parameters, _ positions: [Int32: Int64], _ committed: inout [Int32: Int64],
    _ broker: Broker,
    _ writer: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, _ channel: any Channel
  ) async -> Bool {
    guard let group = parameters.group, positions != committed else { return true }
    let entries = positions.filter { committed[$0.key] != $0.value }.sorted { $0.key < $1.key }.map {
      (topic: parameters.topic, partition: $0.key, offset: CommittedOffset(offset: $0.value))
    }
    let codes = await broker.commitOffsets(GroupMemberRef(groupId: group), entries)
    if let refused = codes.first(where: { $0 != .none }) {
      let message =
        "Committing offsets of group \(group) failed: \(refused.name) (a Kafka consumer group's members own it)"
      try? await write(errorEvent(409, Int(refused.rawValue), message), writer, channel)
      return false
    }
    committed = positions
    return true
  }

  /// An id-only block: the browser's last event id becomes every partition's position, so
  /// a reconnect resumes each partition exactly (no event is dispatched for it).
  static func checkpoint(_ positions: [Int32: Int64], into chunk: inout ByteBuffer) {
    guard !positions.isEmpty else { return }
    chunk.writeString("id: \(EventID.format(positions.mapValues { $0 - 1 }))\n\n")
  }

  static func errorEvent(_ status: Int, _ code: Int, _ message: String) -> ByteBuffer {
    var json = JSONWriter()
    json.object { object in
      object.member("error_code") { $0.number(code) }
      object.member("message") { $0.string(message) }
    }
    var out = ByteBuffer(string: "event: error\ndata: ")
    out.writeImmutableBuffer(json.buffer)
    out.writeString("\n\n")
    return out
  }

  /// Writes, and closes the connection when the reader has not taken the bytes in
  /// `stalledWriteMs` (a reader that stopped reading holds no more than the socket buffers
  /// and one read's worth of events).
  static func write(
    _ bytes: ByteBuffer, _ writer: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
    _ channel: any Channel
  ) async throws {
    let guardTimer = channel.eventLoop.scheduleTask(in: .milliseconds(stalledWriteMs)) {
      channel.close(promise: nil)
    }
    defer { guardTimer.cancel() }
    try await writer.write(.body(.byteBuffer(bytes)))
  }
}
