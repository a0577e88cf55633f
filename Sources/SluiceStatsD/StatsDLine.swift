/// One StatsD line: `name:value[:value…]|type[|@rate][|#tag:value,tag…][|other…]`.
public struct StatsDLine: Sendable, Equatable {
  public enum MetricType: String, Sendable, Hashable, CaseIterable {
    case counter = "c"
    case gauge = "g"
    case timer = "ms"
    case histogram = "h"
    case set = "s"

    public var name: String {
      switch self {
      case .counter: "counter"
      case .gauge: "gauge"
      case .timer: "timer"
      case .histogram: "histogram"
      case .set: "set"
      }
    }
  }

  public enum Value: Sendable, Equatable {
    case number(Double)
    /// A gauge's `+N` or `-N`.
    case delta(Double)
    /// A set member.
    case member(String)
  }

  public var name: String
  public var type: MetricType
  public var values: [Value]
  public var sampleRate: Double
  /// Sorted by name; a tag without `:value` has the value "".
  public var tags: [Tag]

  public struct Tag: Sendable, Hashable, Comparable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
      self.name = name
      self.value = value
    }

    public static func < (lhs: Tag, rhs: Tag) -> Bool { (lhs.name, lhs.value) < (rhs.name, rhs.value) }
  }

  public static let maxNameBytes = 1024
  /// A tag (`name:value`) or a set member at most.
  public static let maxTagBytes = 1024
  public static let maxTags = 64
  public static let maxValues = 1024

  public enum ParseError: Error, Equatable, CustomStringConvertible {
    case noValue
    case noType
    case badName
    case nameTooLong
    case badValue
    case badType
    case badSampleRate
    case badTags
    case tooMany

    public var description: String {
      switch self {
      case .noValue: "no ':' between name and value"
      case .noType: "no '|type'"
      case .badName: "empty name, or a name that is not UTF-8 or holds spaces"
      case .nameTooLong: "name longer than \(StatsDLine.maxNameBytes) bytes"
      case .badValue: "value is not a finite number (or a set member is empty or too long)"
      case .badType: "type is not c, g, ms, h or s"
      case .badSampleRate: "sample rate is not a number in (0, 1]"
      case .badTags: "a tag is not UTF-8 or longer than \(StatsDLine.maxTagBytes) bytes"
      case .tooMany: "more than \(StatsDLine.maxTags) tags or \(StatsDLine.maxValues) values"
      }
    }
  }

  public init(name: String, type: MetricType, values: [Value], sampleRate: Double = 1, tags: [Tag] = []) {
    self.name = name
    self.type = type
    self.values = values
    self.sampleRate = sampleRate
    self.tags = tags
  }

  /// Parses one line (without its newline).
  public init(parsing line: some Collection<UInt8>) throws(ParseError) {
    let bytes = Array(line)
    guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { throw .noValue }
    let nameBytes = bytes[..<colon]
    guard !nameBytes.isEmpty else { throw .badName }
    guard nameBytes.count <= Self.maxNameBytes else { throw .nameTooLong }
    guard !nameBytes.contains(where: { $0 <= 0x20 || $0 == UInt8(ascii: "|") || $0 == 0x7F }),
      let name = String(validating: nameBytes, as: UTF8.self)
    else { throw .badName }
    let fields = bytes[(colon + 1)...].split(separator: UInt8(ascii: "|"), omittingEmptySubsequences: false)
    guard fields.count >= 2 else { throw .noType }
    guard let type = MetricType(rawValue: String(decoding: fields[1], as: UTF8.self)) else { throw .badType }
    var sampleRate = 1.0
    var tags: [Tag] = []
    for field in fields.dropFirst(2) {
      if field.first == UInt8(ascii: "@") {
        guard let rate = Double(String(decoding: field.dropFirst(), as: UTF8.self)), rate > 0, rate <= 1
        else {
          throw .badSampleRate
        }
        sampleRate = rate
      } else if field.first == UInt8(ascii: "#") {
        for tag in field.dropFirst().split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) {
          guard tags.count < Self.maxTags else { throw .tooMany }
          guard tag.count <= Self.maxTagBytes, let text = String(validating: tag, as: UTF8.self) else {
            throw .badTags
          }
          if let split = text.firstIndex(of: ":") {
            tags.append(Tag(name: String(text[..<split]), value: String(text[text.index(after: split)...])))
          } else {
            tags.append(Tag(name: text, value: ""))
          }
        }
      }
      // Other DogStatsD fields (|c:container, |T timestamp, …) are accepted and ignored.
    }
    let valueFields = fields[0].split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
    guard valueFields.count <= Self.maxValues else { throw .tooMany }
    var values: [Value] = []
    values.reserveCapacity(valueFields.count)
    for field in valueFields {
      if type == .set {
        guard !field.isEmpty, field.count <= Self.maxTagBytes,
          let member = String(validating: field, as: UTF8.self)
        else { throw .badValue }
        values.append(.member(member))
        continue
      }
      let text = String(decoding: field, as: UTF8.self)
      guard let number = Double(text), number.isFinite, !text.isEmpty else { throw .badValue }
      let signed = field.first == UInt8(ascii: "+") || field.first == UInt8(ascii: "-")
      values.append(type == .gauge && signed ? .delta(number) : .number(number))
    }
    // One value per tag name: the last given wins (JSON objects need unique keys).
    var byName: [String: String] = [:]
    for tag in tags { byName[tag.name] = tag.value }
    if byName.count < tags.count { tags = byName.map { Tag(name: $0.key, value: $0.value) } }
    tags.sort()
    self.init(name: name, type: type, values: values, sampleRate: sampleRate, tags: tags)
  }

  /// Splits a datagram into lines (`\n`, with an optional `\r` before it); empty lines are
  /// skipped.
  public static func lines(_ datagram: some Collection<UInt8>) -> [Array<UInt8>.SubSequence] {
    let bytes = Array(datagram)
    return bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).compactMap { line in
      let trimmed = line.last == UInt8(ascii: "\r") ? line.dropLast() : line
      return trimmed.isEmpty ? nil : trimmed
    }
  }
}
