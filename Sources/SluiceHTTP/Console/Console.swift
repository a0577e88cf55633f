import Foundation
import KafkaProtocol
public import NIOCore
import NIOHTTP1
import SluiceBroker
import Synchronization

/// The web console at `/ui`: server-rendered pages (Mustache templates) over the broker's
/// domain API: an overview, topics (create, alter configs, delete), a record browser,
/// consumer and share groups (lag, offset reset), webhooks (pause, resume), UDP feeds and
/// the StatsD intake, client quotas. Reading needs no JavaScript. With HTTP authentication
/// on, the same users sign in (HTTP Basic) and the same ACLs decide what each one sees and
/// may change. Actions are POST forms carrying a per-process token (no cross-site posts),
/// answered with a redirect.
struct Console: Sendable {
  let broker: Broker
  let webhooks: Webhooks
  let metrics: MetricsExporter
  let state: ConsoleState

  /// Records shown per page of the record browser, and bytes of a value shown at most.
  static let pageRecords = 50
  static let maxShownBytes = 64 * 1024
  /// Records a key search looks through at most per page.
  static let searchLimit = 10_000
  /// Characters of keys, values and headers shown per page at most (the page ends after
  /// the record that crosses it), headers shown per record, and reads per page.
  static let maxPageBytes = 4 * 1024 * 1024
  static let maxHeadersShown = 32
  static let maxReadsPerPage = 64

  /// The route templates (metrics labels): from a fixed set, whatever the path.
  static let routes: Set<String> = [
    "/ui", "/ui/style.css", "/ui/console.js", "/ui/live", "/ui/topics", "/ui/groups", "/ui/webhooks",
    "/ui/udp",
    "/ui/quotas", "/ui/topics/{name}", "/ui/groups/{name}", "/ui/topics/{name}/records",
    "/ui/topics/{name}/delete", "/ui/topics/{name}/configs", "/ui/groups/{name}/reset",
    "/ui/webhooks/{name}/pause", "/ui/webhooks/{name}/resume",
  ]

  static func route(_ segments: [String]) -> String {
    let template: String
    switch segments.count {
    case 1: template = "/ui"
    case 2: template = "/ui/" + segments[1]
    case 3: template = "/ui/\(segments[1])/{name}"
    case 4: template = "/ui/\(segments[1])/{name}/" + segments[3]
    default: template = ""
    }
    return routes.contains(template) ? template : "/ui/unmatched"
  }

  struct Viewer {
    /// nil: authentication is off (everything is allowed).
    var principal: String?
    var host: String
  }

  func handle(_ request: HTTPRequest, principal: String?, host: String) async -> HTTPResponse {
    let segments = request.segments
    let route = Self.route(segments)
    let viewer = Viewer(principal: principal, host: host)
    let method = request.method == .HEAD ? HTTPMethod.GET : request.method
    if method == .POST {
      if let refusal = checkForm(request, viewer: viewer, route: route) { return refusal }
      return await act(request, segments: segments, viewer: viewer, route: route)
    }
    guard method == .GET else { return page("Method not allowed", status: .methodNotAllowed, route: route) }
    switch segments.count {
    case 1: return overview(viewer, request, route: route)
    case 2:
      switch segments[1] {
      case "style.css": return asset(ConsoleTemplates.css, "text/css; charset=utf-8", route: route)
      case "console.js": return asset(ConsoleTemplates.script, "text/javascript; charset=utf-8", route: route)
      case "live": return liveFigures(viewer, route: route)
      case "topics": return topics(viewer, request, route: route)
      case "groups": return groups(viewer, request, route: route)
      case "webhooks": return webhookList(viewer, request, route: route)
      case "udp": return udp(viewer, request, route: route)
      case "quotas": return quotas(viewer, request, route: route)
      default: break
      }
    case 3 where segments[1] == "topics": return topic(segments[2], viewer, request, route: route)
    case 3 where segments[1] == "groups": return group(segments[2], viewer, request, route: route)
    case 4 where segments[1] == "topics" && segments[3] == "records":
      return await records(segments[2], viewer, request, route: route)
    default: break
    }
    return page("Not found", status: .notFound, problem: "No console page at this address.", route: route)
  }

  // MARK: Authorization

  func may(_ viewer: Viewer, _ operation: AclOperation, _ type: AclResourceType, _ name: String) -> Bool {
    guard let principal = viewer.principal else { return true }
    return broker.authorize(principal, host: viewer.host, operation, type, name)
  }

  func mayCluster(_ viewer: Viewer, _ operation: AclOperation) -> Bool {
    may(viewer, operation, .cluster, "kafka-cluster")
  }

  func denied(_ what: String, route: String) -> HTTPResponse {
    page("Not authorized", status: .forbidden, problem: "Not authorized: \(what).", route: route)
  }

  // MARK: Rendering

  static let sections: [(href: String, label: String)] = [
    ("/ui", "Overview"), ("/ui/topics", "Topics"), ("/ui/groups", "Groups"), ("/ui/webhooks", "Webhooks"),
    ("/ui/udp", "UDP and StatsD"), ("/ui/quotas", "Quotas"),
  ]

  func page(
    _ title: String, status: HTTPResponseStatus = .ok, template: String = "error",
    _ context: [String: Any] = [:], viewer: Viewer? = nil,
    request: HTTPRequest? = nil, problem: String? = nil, section: String? = nil, route: String
  ) -> HTTPResponse {
    var context = context
    context["csrf"] = state.csrfToken(for: viewer?.principal)
    for (key, value) in context {
      if let list = value as? [Any] {
        context["has" + key.prefix(1).uppercased() + key.dropFirst()] = !list.isEmpty
      }
    }
    let body = ConsoleTemplates.render(context, template)
    var layout: [String: Any] = [
      "title": title, "body": body,
      "nav": Self.sections.map { ["href": $0.href, "label": $0.label, "current": $0.href == section] },
    ]
    if let notice = request?.query["notice"], !notice.isEmpty {
      layout["notice"] = String(notice.prefix(500))
    }
    if let problem = problem ?? request?.query["problem"].map({ String($0.prefix(500)) }) {
      layout["problem"] = problem
    }
    var headers = HTTPHeaders()
    headers.add(name: "Content-Type", value: "text/html; charset=utf-8")
    headers.add(name: "Cache-Control", value: "no-store")
    headers.add(name: "X-Content-Type-Options", value: "nosniff")
    headers.add(name: "X-Frame-Options", value: "DENY")
    headers.add(
      name: "Content-Security-Policy",
      value:
        "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
    )
    return HTTPResponse(
      status: status, headers: headers, body: ByteBuffer(string: ConsoleTemplates.render(layout, "layout")),
      stream: nil, route: route)
  }

  func asset(_ text: String, _ contentType: String, route: String) -> HTTPResponse {
    var headers = HTTPHeaders()
    headers.add(name: "Content-Type", value: contentType)
    headers.add(name: "Cache-Control", value: "max-age=300")
    headers.add(name: "X-Content-Type-Options", value: "nosniff")
    return HTTPResponse(
      status: .ok, headers: headers, body: ByteBuffer(string: text), stream: nil, route: route)
  }

  static func redirect(_ location: String, route: String) -> HTTPResponse {
    var headers = HTTPHeaders()
    headers.add(name: "Location", value: location)
    headers.add(name: "Content-Length", value: "0")
    return HTTPResponse(status: .seeOther, headers: headers, body: ByteBuffer(), stream: nil, route: route)
  }

  /// A path segment, percent-encoded.
  static func path(_ name: String) -> String {
    // "." and ".." would be folded away by a browser as path steps.
    if name == "." || name == ".." { return String(repeating: "%2E", count: name.count) }
    return name.addingPercentEncoding(
      withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#")))
      ?? name
  }

  static func query(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
  }

  static func bytes(_ count: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(count)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
      value /= 1024
      unit += 1
    }
    return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
  }

  static func rate(_ value: Double?) -> String {
    guard let value else { return "–" }
    return value >= 100 ? String(Int(value.rounded())) : String(format: "%.1f", value)
  }

  // MARK: Overview

  struct Overview: Sendable {
    var connections = 0
    var listeners: [(name: String, count: Int)] = []
    var topics = 0
    var partitions = 0
    var offline: [String] = []
    var groups = 0
    var webhooks = 0
    var recordsIn: Double?
    var recordsOut: Double?
    var uptime = ""
  }

  func overviewFigures() -> Overview {
    state.overviewFigures { computeOverview() }
  }

  func computeOverview() -> Overview {
    var figures = Overview()
    let collected = metrics.collectFigures()
    for figure in collected["sluice_connections"] ?? [] {
      figures.connections += Int(figure.value)
      figures.listeners.append((figure.label("listener") ?? "", Int(figure.value)))
    }
    for topic in broker.allTopics {
      figures.topics += 1
      for partition in topic.partitions {
        figures.partitions += 1
        if partition.offlineReason != nil { figures.offline.append("\(topic.name)-\(partition.index)") }
      }
    }
    figures.groups = broker.groups.list().count
    figures.webhooks = webhooks.specs().count
    let rates = state.rates(broker)
    figures.recordsIn = rates.total.recordsIn
    figures.recordsOut = rates.total.recordsOut
    let seconds = Int((ContinuousClock.now - state.started).components.seconds)
    figures.uptime = Self.duration(seconds)
    return figures
  }

  static func duration(_ seconds: Int) -> String {
    let days = seconds / 86400
    let hours = seconds % 86400 / 3600
    let minutes = seconds % 3600 / 60
    if days > 0 { return "\(days) d \(hours) h" }
    if hours > 0 { return "\(hours) h \(minutes) min" }
    return minutes > 0 ? "\(minutes) min \(seconds % 60) s" : "\(seconds) s"
  }

  func overview(_ viewer: Viewer, _ request: HTTPRequest, route: String) -> HTTPResponse {
    guard mayCluster(viewer, .describe) else { return denied("DESCRIBE on the cluster", route: route) }
    let figures = overviewFigures()
    let context: [String: Any] = [
      "clusterId": broker.clusterId, "uptime": figures.uptime, "connections": figures.connections,
      "recordsInRate": Self.rate(figures.recordsIn), "recordsOutRate": Self.rate(figures.recordsOut),
      "topics": figures.topics, "partitions": figures.partitions, "offline": figures.offline.count,
      "offlineList": figures.offline, "groups": figures.groups, "webhooks": figures.webhooks,
      "listeners": figures.listeners.map { ["name": $0.name, "count": $0.count] },
    ]
    return page("Overview", template: "overview", context, request: request, section: "/ui", route: route)
  }

  /// `/ui/live`: the overview's figures as Server-Sent Events, one `figures` event a second.
  func liveFigures(_ viewer: Viewer, route: String) -> HTTPResponse {
    guard mayCluster(viewer, .describe) else { return denied("DESCRIBE on the cluster", route: route) }
    var headers = HTTPHeaders()
    headers.add(name: "Content-Type", value: "text/event-stream")
    headers.add(name: "Cache-Control", value: "no-store")
    let console = self
    return HTTPResponse(
      status: .ok, headers: headers, body: ByteBuffer(),
      stream: { writer, context in
        // At most `maxLiveStreams` at once: one beyond ends at once (the browser retries).
        let state = console.state
        defer { state.liveStreams.subtract(1, ordering: .relaxed) }
        guard state.liveStreams.add(1, ordering: .relaxed).newValue <= ConsoleState.maxLiveStreams else {
          return
        }
        while context.isOpen() && !Task.isCancelled {
          let figures = await offLoop { console.overviewFigures() }
          var json = JSONWriter()
          json.object { object in
            object.member("uptime") { $0.string(figures.uptime) }
            object.member("connections") { $0.number(figures.connections) }
            object.member("recordsInRate") { $0.string(Self.rate(figures.recordsIn)) }
            object.member("recordsOutRate") { $0.string(Self.rate(figures.recordsOut)) }
            object.member("topics") { $0.number(figures.topics) }
            object.member("partitions") { $0.number(figures.partitions) }
            object.member("offline") { $0.number(figures.offline.count) }
            object.member("groups") { $0.number(figures.groups) }
            object.member("webhooks") { $0.number(figures.webhooks) }
          }
          var chunk = ByteBuffer(string: "event: figures\ndata: ")
          chunk.writeImmutableBuffer(json.buffer)
          chunk.writeString("\n\n")
          try await writer.write(.body(.byteBuffer(chunk)))
          try await Task.sleep(for: .seconds(1))
        }
      }, route: route)
  }

  // MARK: Topics

  func topics(_ viewer: Viewer, _ request: HTTPRequest, route: String) -> HTTPResponse {
    let rates = state.rates(broker)
    var rows: [[String: Any]] = []
    for topic in broker.allTopics where may(viewer, .describe, .topic, topic.name) {
      var records: Int64 = 0
      var size: Int64 = 0
      let partitions = topic.partitions
      for partition in partitions {
        records += max(0, partition.highWatermark - partition.logStartOffset)
        size += partition.retainedBytes(from: partition.logStartOffset)
      }
      let rate = rates.topics[topic.name]
      rows.append([
        "name": topic.name, "path": Self.path(topic.name), "partitions": partitions.count, "records": records,
        "size": Self.bytes(size), "inRate": Self.rate(rate?.recordsIn),
        "outRate": Self.rate(rate?.recordsOut),
        "storage": topic.config.log.storage == .memory ? "memory" : "disk",
      ])
    }
    let context: [String: Any] = [
      "topics": rows, "count": rows.count,
      "canCreate": mayCluster(viewer, .create) || viewer.principal == nil,
    ]
    return page(
      "Topics", template: "topics", context, viewer: viewer, request: request, section: "/ui/topics",
      route: route)
  }

  func topic(_ name: String, _ viewer: Viewer, _ request: HTTPRequest, route: String) -> HTTPResponse {
    guard let topic = broker.topic(name), may(viewer, .describe, .topic, name) else {
      return page(
        "Not found", status: .notFound, problem: "No topic \(name).", section: "/ui/topics", route: route)
    }
    let partitions: [[String: Any]] = topic.partitions.map { partition in
      [
        "index": partition.index, "path": Self.path(name), "start": partition.logStartOffset,
        "highWatermark": partition.highWatermark, "end": partition.logEndOffset,
        "size": Self.bytes(partition.retainedBytes(from: partition.logStartOffset)),
        "state": partition.offlineReason.map { "offline: \($0)" } ?? "online",
      ]
    }
    let configs = topic.config.overrides.sorted { $0.key < $1.key }.map {
      ["key": $0.key, "value": $0.value]
    }
    let context: [String: Any] = [
      "name": name, "path": Self.path(name), "partitions": partitions, "configs": configs,
      "canAlter": may(viewer, .alterConfigs, .topic, name), "canDelete": may(viewer, .delete, .topic, name),
    ]
    return page(
      "Topic \(name)", template: "topic", context, viewer: viewer, request: request, section: "/ui/topics",
      route: route)
  }

  // MARK: Records

  func records(_ name: String, _ viewer: Viewer, _ request: HTTPRequest, route: String) async -> HTTPResponse
  {
    guard let topic = broker.topic(name), may(viewer, .describe, .topic, name) else {
      return page(
        "Not found", status: .notFound, problem: "No topic \(name).", section: "/ui/topics", route: route)
    }
    guard may(viewer, .read, .topic, name) else { return denied("READ on topic \(name)", route: route) }
    let partitions = topic.partitions
    let index = Int32(request.query["partition"] ?? "") ?? 0
    guard let partition = partitions.first(where: { $0.index == index }) else {
      return page(
        "Not found", status: .notFound, problem: "Topic \(name) has no partition \(index).", route: route)
    }
    let start = partition.logStartOffset
    let highWatermark = partition.highWatermark
    let keyFilter = request.query["key"].flatMap { $0.isEmpty ? nil : String($0.prefix(256)) }
    let hex = request.query["binary"] != "base64"
    let timeText = request.query["time"] ?? ""
    var offset: Int64
    var problem: String?
    if !timeText.isEmpty {
      if let time = Self.parseTime(timeText) {
        switch Result(catching: { () throws(BrokerError) in try partition.offset(for: .timestamp(time)) }) {
        case .success(let found): offset = found?.offset ?? highWatermark
        case .failure(let error):
          return page("Error", status: .internalServerError, problem: error.message, route: route)
        }
      } else {
        offset = start
        problem = "\"\(timeText)\" is not a time: use milliseconds since the epoch or 2026-12-08T10:00:00Z."
      }
    } else if let asked = request.query["offset"].flatMap({ Int64($0) }) {
      offset = asked
    } else {
      offset = max(start, highWatermark - Int64(Self.pageRecords))
    }
    offset = min(max(offset, start), highWatermark)
    var shown: [[String: Any]] = []
    var position = offset
    var scanned = 0
    var shownBytes = 0
    var reads = 0
    var lastShown: Int64?
    let limit = keyFilter == nil ? Self.pageRecords : Self.searchLimit
    // Bounded: records shown, records looked at, characters shown, and reads (batches
    // without records to show, such as control batches, still end the page).
    while position < highWatermark && shown.count < Self.pageRecords && scanned < limit
      && shownBytes < Self.maxPageBytes && reads < Self.maxReadsPerPage
    {
      reads += 1
      let results = await broker.read(
        [PartitionRead(topic: name, partition: index, offset: position, maxBytes: 1 << 20)],
        options: ReadOptions(maxBytes: 1 << 20, minBytes: 0, maxWaitMs: 0), context: CallContext())
      guard let result = results.first else { break }
      if let failure = result.error {
        problem = "Reading partition \(index): \(failure.code.name) \(failure.message)"
        break
      }
      guard result.records.count > 0, let bytes = try? result.records.load() else { break }
      let before = position
      do {
        position = try RecordWalk.walk(
          bytes, from: position, maxDecompressedSize: broker.config.maxDecompressedBatchBytes
        ) { record in
          scanned += 1
          if let keyFilter {
            let key = record.key.map { String(decoding: $0.readableBytesView, as: UTF8.self) } ?? ""
            if !key.contains(keyFilter) { return scanned < limit }
          }
          let context = Self.recordContext(record, hex: hex)
          shown.append(context)
          shownBytes += context["shownBytes"] as? Int ?? 0
          lastShown = record.offset
          return shown.count < Self.pageRecords && scanned < limit && shownBytes < Self.maxPageBytes
        }
      } catch {
        problem = "Batch at offset \(error.baseOffset) cannot be read: \(error.message)"
        break
      }
      if position <= before { break }
    }
    var context: [String: Any] = [
      "name": name, "path": Self.path(name), "partition": index, "start": start,
      "highWatermark": highWatermark,
      "offset": offset, "time": timeText, "key": keyFilter ?? "", "hex": hex, "records": shown,
      "partitionOptions": partitions.map { ["index": $0.index, "selected": $0.index == index] },
      "summary": keyFilter.map {
        "\(shown.count) records with a key containing \"\($0)\" among \(scanned) read."
      }
        ?? "\(shown.count) records from offset \(offset).",
    ]
    // The walk stops at the record it declined, which is the last one shown when the page
    // filled up: the next page starts after it.
    if let lastShown { position = max(position, lastShown + 1) }
    if position < highWatermark {
      var next = "/ui/topics/\(Self.path(name))/records?partition=\(index)&offset=\(position)"
      if let keyFilter { next += "&key=\(Self.query(keyFilter))" }
      if !hex { next += "&binary=base64" }
      context["next"] = next
    }
    return page(
      "Records of \(name)", template: "records", context, request: request, problem: problem,
      section: "/ui/topics", route: route)
  }

  static func parseTime(_ text: String) -> Int64? {
    if let millis = Int64(text) { return millis }
    let formatter = ISO8601DateFormatter()
    for options: ISO8601DateFormatter.Options in [
      [.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds],
    ] {
      formatter.formatOptions = options
      if let date = formatter.date(from: text) { return Int64(date.timeIntervalSince1970 * 1000) }
    }
    return nil
  }

  /// How a record's key, value and headers are shown: JSON pretty-printed, UTF-8 text as
  /// is, anything else as hex or base64; at most `maxShownBytes` of each.
  static func recordContext(_ record: Record, hex: Bool) -> [String: Any] {
    var context: [String: Any] = ["offset": record.offset]
    let time = Date(timeIntervalSince1970: Double(record.timestamp) / 1000)
    context["time"] =
      record.timestamp >= 0
      ? time.ISO8601Format(.iso8601.time(includingFractionalSeconds: true).year().month().day()) : ""
    if let key = record.key {
      let shown = show(key, hex: hex, prettyJSON: false)
      context["keyText"] = shown.text
      context["keyKind"] = shown.kind == "text" ? "" : shown.kind
    }
    if let value = record.value {
      let shown = show(value, hex: hex, prettyJSON: true)
      context["valueText"] = shown.text
      context["valueKind"] = shown.kind
    } else {
      context["valueText"] = "(null: a tombstone)"
      context["valueKind"] = "null"
    }
    let headers: [[String: Any]] = record.headers.prefix(maxHeadersShown).map { header in
      [
        "name": header.key,
        "value": header.value.map { show($0, hex: hex, prettyJSON: false).text } ?? "(null)",
      ]
    }
    var headersShown = headers
    if record.headers.count > maxHeadersShown {
      headersShown.append([
        "name": "…", "value": "\(record.headers.count - maxHeadersShown) more headers not shown",
      ])
    }
    context["headers"] = headersShown
    context["shownBytes"] =
      ((context["keyText"] as? String)?.utf8.count ?? 0)
      + ((context["valueText"] as? String)?.utf8.count ?? 0)
      + headers.reduce(0) { $0 + (($1["value"] as? String)?.utf8.count ?? 0) }
    context["hasHeaders"] = !headers.isEmpty
    return context
  }

  static func show(_ buffer: ByteBuffer, hex: Bool, prettyJSON: Bool) -> (text: String, kind: String) {
    let total = buffer.readableBytes
    let bytes = Array(buffer.readableBytesView.prefix(maxShownBytes))
    let cut = total > bytes.count ? "\n… (\(total - bytes.count) more bytes)" : ""
    if total <= maxShownBytes, prettyJSON, let first = bytes.first(where: { $0 > 0x20 }),
      first == UInt8(ascii: "{") || first == UInt8(ascii: "["),
      let object = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]),
      let pretty = try? JSONSerialization.data(
        withJSONObject: object, options: [.prettyPrinted, .sortedKeys]),
      let text = String(data: pretty, encoding: .utf8)
    {
      return (text, "JSON")
    }
    if let text = String(validating: bytes, as: UTF8.self),
      !text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" && $0 != "\t" && $0 != "\r" })
    {
      return (text + cut, "text")
    }
    if hex {
      let digits = Array("0123456789abcdef")
      var text = ""
      text.reserveCapacity(bytes.count * 3)
      for (i, byte) in bytes.enumerated() {
        if i > 0 { text.append(i % 32 == 0 ? "\n" : " ") }
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 15)])
      }
      return (text + cut, "binary, hex")
    }
    return (Data(bytes).base64EncodedString() + cut, "binary, base64")
  }

  // MARK: Groups

  /// A group's committed offsets and lag, on the topics `viewer` may describe (as Kafka's
  /// OffsetFetch hides the others).
  func lag(group: String, _ viewer: Viewer) -> [(
    topic: String, index: Int32, committed: Int64, highWatermark: Int64
  )] {
    var rows: [(topic: String, index: Int32, committed: Int64, highWatermark: Int64)] = []
    for entry in broker.committedOffsets(group: group, topics: nil)
    where may(viewer, .describe, .topic, entry.name) {
      guard let topic = broker.topic(entry.name) else { continue }
      for partition in entry.partitions {
        guard let committed = partition.committed, let live = topic.partition(partition.index) else {
          continue
        }
        rows.append((entry.name, partition.index, committed.offset, live.highWatermark))
      }
    }
    return rows.sorted { ($0.topic, $0.index) < ($1.topic, $1.index) }
  }

  func groups(_ viewer: Viewer, _ request: HTTPRequest, route: String) -> HTTPResponse {
    let rows: [[String: Any]] = broker.groups.list().filter { may(viewer, .describe, .group, $0.groupId) }
      .sorted { $0.groupId < $1.groupId }
      .map { summary in
        let lag = lag(group: summary.groupId, viewer).reduce(Int64(0)) {
          $0 + max(0, $1.highWatermark - $1.committed)
        }
        return [
          "name": summary.groupId, "path": Self.path(summary.groupId), "state": summary.state.rawValue,
          "members": summary.members.count, "lag": lag,
        ]
      }
    let shares: [[String: Any]] = broker.shareGroupSummaries().filter {
      may(viewer, .describe, .group, $0.groupId)
    }
    .map {
      ["name": $0.groupId, "members": $0.members, "partitions": $0.partitions, "inFlight": $0.inFlight]
    }
    return page(
      "Groups", template: "groups", ["groups": rows, "shares": shares], request: request,
      section: "/ui/groups",
      route: route)
  }

  func group(_ name: String, _ viewer: Viewer, _ request: HTTPRequest, route: String) -> HTTPResponse {
    guard may(viewer, .describe, .group, name), let summary = broker.groups.describe(name) else {
      return page(
        "Not found", status: .notFound, problem: "No group \(name).", section: "/ui/groups", route: route)
    }
    let rows = lag(group: name, viewer)
    let members: [[String: Any]] = summary.members.map { member in
      var assignment = member.assignment
      var text = ""
      if let version = assignment.readInteger(as: Int16.self), version >= 0,
        let decoded = try? ConsumerProtocolAssignment(from: &assignment, version: min(version, 3))
      {
        text = decoded.assignedPartitions.map {
          "\($0.topic) \($0.partitions.map(String.init).joined(separator: ","))"
        }
        .joined(separator: "; ")
      }
      return [
        "id": member.groupInstanceId ?? member.memberId, "clientId": member.clientId,
        "host": member.clientHost,
        "assignment": text,
      ]
    }
    let total = rows.reduce(Int64(0)) { $0 + max(0, $1.highWatermark - $1.committed) }
    let topics = Array(Set(rows.map(\.topic))).sorted()
    let protocolName = summary.protocolName.flatMap { $0.isEmpty ? nil : $0 } ?? summary.protocolType
    var context: [String: Any] = [
      "name": name, "path": Self.path(name), "state": summary.state.rawValue, "lag": total,
      "members": members,
      "partitions": rows.map {
        [
          "topic": $0.topic, "index": $0.index, "committed": $0.committed, "highWatermark": $0.highWatermark,
          "lag": max(0, $0.highWatermark - $0.committed),
        ] as [String: Any]
      },
      "chart": Self.lagChart(rows), "idle": summary.members.isEmpty, "topics": topics,
      "canReset": may(viewer, .read, .group, name) && !topics.isEmpty,
    ]
    if !protocolName.isEmpty { context["protocol"] = protocolName }
    return page(
      "Group \(name)", template: "group", context, viewer: viewer, request: request, section: "/ui/groups",
      route: route)
  }

  /// The lag per partition as an SVG bar chart (no script), with a text alternative: each
  /// partition's name above its bar, the lag after it; the first 200 partitions.
  static func lagChart(_ rows: [(topic: String, index: Int32, committed: Int64, highWatermark: Int64)])
    -> String
  {
    guard !rows.isEmpty else { return "" }
    let shown = rows.prefix(200)
    let lags = shown.map { max(0, $0.highWatermark - $0.committed) }
    let top = max(1, lags.max() ?? 1)
    let rowHeight = 34
    let width = 640
    let height = shown.count * rowHeight + 4
    func escape(_ text: String) -> String {
      text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: "\"", with: "&quot;")
    }
    var svg =
      "<svg class=\"chart\" id=\"lag-chart\" role=\"img\" aria-labelledby=\"lag-chart-title\" "
      + "width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\">"
    svg += "<title id=\"lag-chart-title\">Lag per partition; the largest is \(top) records</title>"
    for (i, (row, lag)) in zip(shown, lags).enumerated() {
      let y = 2 + i * rowHeight
      let bar = Int(Double(width - 80) * Double(lag) / Double(top))
      svg +=
        "<text x=\"0\" y=\"\(y + 11)\" font-size=\"12\" fill=\"#5a6470\">\(escape("\(row.topic) [\(row.index)]"))</text>"
      svg +=
        "<rect x=\"0\" y=\"\(y + 15)\" width=\"\(max(bar, lag > 0 ? 2 : 1))\" height=\"14\" fill=\"#0b57d0\"></rect>"
      svg += "<text x=\"\(max(bar, 1) + 6)\" y=\"\(y + 27)\" font-size=\"12\">\(lag)</text>"
    }
    return svg + "</svg>"
  }

  // MARK: Webhooks, UDP, quotas

  func webhookList(_ viewer: Viewer, _ request: HTTPRequest, route: String) -> HTTPResponse {
    guard mayCluster(viewer, .describe) else { return denied("DESCRIBE on the cluster", route: route) }
    let canAlter = mayCluster(viewer, .alter)
    let rows: [[String: Any]] = webhooks.specs().compactMap { spec in
      guard let (_, stats) = webhooks.describe(spec.name) else { return nil }
      let paused = stats.paused.load(ordering: .relaxed)
      let positions = stats.positions.withLock { $0 }
      var lag: Int64 = 0
      for partition in broker.topic(spec.topic)?.partitions ?? [] {
        lag += max(0, partition.highWatermark - (positions[partition.index] ?? partition.highWatermark))
      }
      let last = stats.last.withLock { $0 }
      return [
        "name": spec.name, "path": Self.path(spec.name), "topic": spec.topic, "url": spec.url,
        "state": paused ? "paused" : "running", "lag": lag,
        "delivered": stats.delivered.load(ordering: .relaxed),
        "failures": stats.failures.load(ordering: .relaxed),
        "deadLettered": stats.deadLettered.load(ordering: .relaxed),
        "lastError": last.error.map { error in last.status.map { "\($0): \(error)" } ?? error } ?? "",
        "action": paused ? "resume" : "pause", "actionLabel": paused ? "Resume" : "Pause",
        "canAlter": canAlter,
        "csrf": state.csrfToken(for: viewer.principal),
      ]
    }
    return page(
      "Webhooks", template: "webhooks", ["webhooks": rows], request: request, section: "/ui/webhooks",
      route: route)
  }

  static let feedFamilies: [(name: String, label: String)] = [
    ("sluice_feed_records_total", "Records"), ("sluice_feed_datagrams_total", "Datagrams"),
    ("sluice_feed_heartbeats_total", "Heartbeats"), ("sluice_feed_oversize_total", "Oversize"),
    ("sluice_feed_retransmit_requests_total", "Retransmit requests"),
    ("sluice_feed_retransmit_datagrams_total", "Retransmitted"),
    ("sluice_feed_retransmit_limited_total", "Rate-limited"),
    ("sluice_feed_retransmit_malformed_total", "Malformed requests"),
  ]

  func udp(_ viewer: Viewer, _ request: HTTPRequest, route: String) -> HTTPResponse {
    guard mayCluster(viewer, .describe) else { return denied("DESCRIBE on the cluster", route: route) }
    let figures = metrics.collectFigures()
    var byTopic: [String: [String: Double]] = [:]
    for family in Self.feedFamilies {
      for figure in figures[family.name] ?? [] {
        byTopic[figure.label("topic") ?? "", default: [:]][family.name] = figure.value
      }
    }
    let feeds: [[String: Any]] = byTopic.keys.sorted().map { topic in
      ["topic": topic, "values": Self.feedFamilies.map { String(Int(byTopic[topic]?[$0.name] ?? 0)) }]
    }
    let statsd: [[String: Any]] = figures.keys.filter { $0.hasPrefix("sluice_statsd_") }.sorted().map {
      name in
      ["name": name, "value": Int(figures[name]?.first?.value ?? 0)]
    }
    let context: [String: Any] = [
      "feeds": feeds, "feedColumns": Self.feedFamilies.map(\.label), "statsd": statsd,
    ]
    return page(
      "UDP and StatsD", template: "udp", context, request: request, section: "/ui/udp", route: route)
  }

  func quotas(_ viewer: Viewer, _ request: HTTPRequest, route: String) -> HTTPResponse {
    guard mayCluster(viewer, .describeConfigs) else {
      return denied("DESCRIBE_CONFIGS on the cluster", route: route)
    }
    let described = (try? broker.quotas.describe([], strict: false)) ?? []
    var rows: [[String: Any]] = []
    for entry in described {
      let entity = entry.entity.map { "\($0.type)=\($0.name ?? "<default>")" }.joined(separator: ", ")
      for value in entry.values.sorted(by: { $0.key < $1.key }) {
        rows.append(["entity": entity, "key": value.key, "value": String(format: "%g", value.value)])
      }
    }
    return page(
      "Client quotas", template: "quotas", ["quotas": rows], request: request, section: "/ui/quotas",
      route: route)
  }

  // MARK: Actions

  /// A POST form must carry this process's token, and come from this origin when the
  /// browser says where it came from.
  func checkForm(_ request: HTTPRequest, viewer: Viewer, route: String) -> HTTPResponse? {
    let form = Self.form(request.body)
    // A browser names where a form comes from: another site (or an opaque "null" origin, as
    // from a sandboxed frame or a page that hides its referrer) is refused.
    if let origin = request.headers.first(name: "Origin") {
      let host = request.headers.first(name: "Host") ?? ""
      guard origin == "http://\(host)" || origin == "https://\(host)" else {
        return page(
          "Refused", status: .forbidden, problem: "A form from another site (\(origin)) was refused.",
          route: route)
      }
    }
    if let site = request.headers.first(name: "Sec-Fetch-Site"), site == "cross-site" || site == "same-site" {
      return page(
        "Refused", status: .forbidden, problem: "A form from another site was refused.", route: route)
    }
    guard form["csrf"] == state.csrfToken(for: viewer.principal) else {
      return page(
        "Refused", status: .forbidden, problem: "The form is stale: reload the page and try again.",
        route: route)
    }
    return nil
  }

  /// An `application/x-www-form-urlencoded` body.
  static func form(_ body: ByteBuffer) -> [String: String] {
    var fields: [String: String] = [:]
    let text = String(decoding: body.readableBytesView, as: UTF8.self)
    for pair in text.split(separator: "&") {
      let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
      let name = HTTPRequest.percentDecoded(String(kv[0]), plusIsSpace: true) ?? ""
      let value = kv.count > 1 ? HTTPRequest.percentDecoded(String(kv[1]), plusIsSpace: true) ?? "" : ""
      if fields[name] == nil { fields[name] = value }
    }
    return fields
  }

  func act(_ request: HTTPRequest, segments: [String], viewer: Viewer, route: String) async -> HTTPResponse {
    let form = Self.form(request.body)
    func back(_ location: String, notice: String? = nil, problem: String? = nil) -> HTTPResponse {
      var target = location
      if let notice { target += (target.contains("?") ? "&" : "?") + "notice=" + Self.query(notice) }
      if let problem { target += (target.contains("?") ? "&" : "?") + "problem=" + Self.query(problem) }
      return Self.redirect(target, route: route)
    }
    switch (segments.count, segments.count > 1 ? segments[1] : "") {
    case (2, "topics"):
      let name = (form["name"] ?? "").trimmingCharacters(in: .whitespaces)
      guard mayCluster(viewer, .create) || may(viewer, .create, .topic, name) else {
        return denied("CREATE on topic \(name)", route: route)
      }
      guard let count = Int32(form["partitions"] ?? ""), count >= 1 else {
        return back("/ui/topics", problem: "Partitions must be a number of at least 1.")
      }
      var configs: [String: String] = [:]
      for line in (form["configs"] ?? "").split(whereSeparator: \.isNewline) {
        let parts = line.split(separator: "=", maxSplits: 1)
        guard parts.count == 2 else { return back("/ui/topics", problem: "\"\(line)\" is not key=value.") }
        configs[parts[0].trimmingCharacters(in: .whitespaces)] = parts[1].trimmingCharacters(in: .whitespaces)
      }
      do {
        try await broker.createTopic(name: name, partitions: count, configs: configs)
        ConsoleState.audit(viewer, "create topic", name)
        return back(
          "/ui/topics/\(Self.path(name))", notice: "Topic \(name) created with \(count) partitions.")
      } catch {
        return back("/ui/topics", problem: "Topic \(name) was not created: \(error)")
      }
    case (4, "topics") where segments[3] == "delete":
      let name = segments[2]
      guard may(viewer, .delete, .topic, name) else { return denied("DELETE on topic \(name)", route: route) }
      guard form["confirm"] == name else {
        return back(
          "/ui/topics/\(Self.path(name))", problem: "The name typed did not match: nothing was deleted.")
      }
      do {
        let deleted = try await broker.deleteTopic(name)
        ConsoleState.audit(viewer, "delete topic", name)
        return deleted
          ? back("/ui/topics", notice: "Topic \(name) deleted.")
          : back("/ui/topics", problem: "No topic \(name).")
      } catch {
        return back("/ui/topics/\(Self.path(name))", problem: "Topic \(name) was not deleted: \(error)")
      }
    case (4, "topics") where segments[3] == "configs":
      let name = segments[2]
      guard may(viewer, .alterConfigs, .topic, name) else {
        return denied("ALTER_CONFIGS on topic \(name)", route: route)
      }
      let key = (form["key"] ?? "").trimmingCharacters(in: .whitespaces)
      let value = (form["value"] ?? "").trimmingCharacters(in: .whitespaces)
      guard !key.isEmpty else { return back("/ui/topics/\(Self.path(name))", problem: "Name a config.") }
      do {
        try await broker.topics.alterConfigs(
          name, [value.isEmpty ? .delete(key) : .set(key, value)], validateOnly: false)
        ConsoleState.audit(viewer, "alter topic config", "\(name) \(key)=\(value)")
        return back(
          "/ui/topics/\(Self.path(name))",
          notice: value.isEmpty ? "\(key) is back to its default." : "\(key) set to \(value).")
      } catch {
        return back("/ui/topics/\(Self.path(name))", problem: "\(key) was not changed: \(error)")
      }
    case (4, "groups") where segments[3] == "reset":
      let name = segments[2]
      let topicName = form["topic"] ?? ""
      guard may(viewer, .read, .group, name), may(viewer, .read, .topic, topicName) else {
        return denied("READ on group \(name) and topic \(topicName)", route: route)
      }
      let location = "/ui/groups/\(Self.path(name))"
      guard let summary = broker.groups.describe(name) else {
        return back("/ui/groups", problem: "No group \(name).")
      }
      guard summary.members.isEmpty else {
        return back(location, problem: "The group has members: stop them before resetting its offsets.")
      }
      guard let topic = broker.topic(topicName) else {
        return back(location, problem: "No topic \(topicName).")
      }
      var entries: [(topic: String, partition: Int32, offset: CommittedOffset)] = []
      for partition in topic.partitions {
        let offset: Int64
        switch form["to"] {
        case "earliest": offset = partition.logStartOffset
        case "latest": offset = partition.highWatermark
        default:
          guard let asked = Int64(form["offset"] ?? ""), asked >= 0 else {
            return back(location, problem: "Give the offset to reset to.")
          }
          offset = min(max(asked, partition.logStartOffset), partition.highWatermark)
        }
        entries.append((topicName, partition.index, CommittedOffset(offset: offset)))
      }
      let codes = await broker.commitOffsets(GroupMemberRef(groupId: name), entries)
      if let failure = codes.first(where: { $0 != .none }) {
        return back(location, problem: "Offsets were not reset: \(failure.name).")
      }
      ConsoleState.audit(viewer, "reset group offsets", "\(name) \(topicName) to \(form["to"] ?? "")")
      return back(location, notice: "Offsets of \(name) on \(topicName) reset to \(form["to"] ?? "").")
    case (4, "webhooks") where segments[3] == "pause" || segments[3] == "resume":
      guard mayCluster(viewer, .alter) else { return denied("ALTER on the cluster", route: route) }
      let name = segments[2]
      let pause = segments[3] == "pause"
      if let failure = await webhooks.setPaused(name, pause) {
        return back("/ui/webhooks", problem: "Webhook \(name) was not changed: \(failure).")
      }
      ConsoleState.audit(viewer, pause ? "pause webhook" : "resume webhook", name)
      return back("/ui/webhooks", notice: "Webhook \(name) \(pause ? "paused" : "resumed").")
    default:
      return page("Not found", status: .notFound, problem: "No console action at this address.", route: route)
    }
  }
}

/// The console's parsers of what a browser (or anyone) sends, and its record rendering, for
/// the fuzz target (`Fuzz/FuzzHTTP`).
public enum ConsoleInput {
  /// An `application/x-www-form-urlencoded` body: the first value of each field.
  public static func form(_ body: ByteBuffer) -> [String: String] { Console.form(body) }

  /// A record's bytes as the record browser shows them, and how (JSON, text, hex, base64).
  public static func shown(_ bytes: ByteBuffer, hex: Bool, prettyJSON: Bool) -> (text: String, kind: String) {
    Console.show(bytes, hex: hex, prettyJSON: prettyJSON)
  }

  /// A time the record browser accepts: milliseconds, or an ISO 8601 instant.
  public static func time(_ text: String) -> Int64? { Console.parseTime(text) }
}
