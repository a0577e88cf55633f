import Logging
import Synchronization

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif
#if canImport(Glibc)
  import Glibc
#endif

/// `--log-format`: how `sluice serve` writes its log lines to stderr.
enum LogFormat: String, CaseIterable {
  /// swift-log's stream format: `2026-12-08T03:10:00+0000 info sluice : key=value message`.
  case text
  /// One logfmt line per event: `time=… level=info logger=sluice msg="…" key=value`.
  case logfmt
  /// One JSON object per line: `{"time":"…","level":"info","logger":"sluice","msg":"…",…}`.
  case json
}

/// A log handler writing logfmt or JSON lines to stderr, one `write` per line (lines from
/// several threads never interleave).
struct StructuredLogHandler: LogHandler {
  let label: String
  let format: LogFormat
  var logLevel: Logger.Level = .info
  var metadata: Logger.Metadata = [:]
  var metadataProvider: Logger.MetadataProvider?

  init(label: String, format: LogFormat) {
    self.label = label
    self.format = format
  }

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  func log(event: LogEvent) {
    var merged = metadata
    if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
    if let extra = event.metadata { merged.merge(extra) { _, new in new } }
    let time = Self.timestamp()
    let line: String
    switch format {
    case .json:
      var fields = [
        "\"time\":\(jsonString(time))", "\"level\":\(jsonString(event.level.rawValue))",
        "\"logger\":\(jsonString(label))", "\"msg\":\(jsonString(event.message.description))",
      ]
      for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
        fields.append("\(jsonString(key)):\(Self.json(value))")
      }
      line = "{" + fields.joined(separator: ",") + "}\n"
    case .logfmt, .text:
      var fields = [
        "time=\(time)", "level=\(event.level.rawValue)", "logger=\(Self.logfmtValue(label))",
        "msg=\(Self.logfmtValue(event.message.description))",
      ]
      for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
        fields.append("\(Self.logfmtKey(key))=\(Self.logfmtValue(Self.flat(value)))")
      }
      line = fields.joined(separator: " ") + "\n"
    }
    let bytes = Array(line.utf8)
    // One line at a time: a line longer than a pipe's atomic write (4 KiB) is written in
    // pieces, which must not interleave with another thread's.
    Self.writing.withLock { _ in
      _ = bytes.withUnsafeBytes { writeAll(2, $0) }
    }
  }

  static let writing = Mutex(())

  static func timestamp() -> String {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    var parts = tm()
    var seconds = now.tv_sec
    gmtime_r(&seconds, &parts)
    func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
    let millis = Int(now.tv_nsec / 1_000_000)
    let fraction = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
    return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):"
      + "\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
  }

  static func flat(_ value: Logger.Metadata.Value) -> String {
    switch value {
    case .string(let text): text
    case .stringConvertible(let convertible): convertible.description
    case .array(let values): values.map(flat).joined(separator: ",")
    case .dictionary(let entries):
      entries.sorted { $0.key < $1.key }.map { "\($0.key):\(flat($0.value))" }.joined(separator: ",")
    }
  }

  static func json(_ value: Logger.Metadata.Value) -> String {
    switch value {
    case .string(let text): jsonString(text)  // ConsumeCommand.swift's escaper
    case .stringConvertible(let convertible): jsonString(convertible.description)
    case .array(let values): "[" + values.map(json).joined(separator: ",") + "]"
    case .dictionary(let entries):
      "{"
        + entries.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(json($0.value))" }.joined(
          separator: ",")
        + "}"
    }
  }

  /// Keys are the program's own; anything but letters, digits, `_`, `.` and `-` becomes `_`.
  static func logfmtKey(_ key: String) -> String {
    String(
      key.unicodeScalars.map { scalar -> Character in
        let ok =
          (scalar.value < 128)
          && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
            || "_.-".unicodeScalars.contains(scalar))
        return ok ? Character(scalar) : "_"
      })
  }

  /// Quoted (with `"` and `\` escaped, control characters as `\n`, `\u….`) when empty or
  /// holding a space, `=`, `"` or a control character.
  static func logfmtValue(_ value: String) -> String {
    let needsQuotes =
      value.isEmpty
      || value.unicodeScalars.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0.value < 0x20 }
    guard needsQuotes else { return value }
    return jsonString(value)
  }
}
