import Foundation

/// A version range from a definition: "0+", "3-5", "7", or "none".
struct Versions: Equatable {
  var low: Int
  var high: Int?  // nil: open-ended
  var isEmpty: Bool

  static let none = Versions(low: 0, high: -1, isEmpty: true)

  init(low: Int, high: Int?, isEmpty: Bool = false) {
    self.low = low
    self.high = high
    self.isEmpty = isEmpty
  }

  init(parsing text: String?) throws {
    guard let text = text?.trimmingCharacters(in: .whitespaces), !text.isEmpty, text != "none" else {
      self = .none
      return
    }
    if text.hasSuffix("+") {
      guard let low = Int(text.dropLast()) else { throw CodegenError("bad versions \(text)") }
      self.init(low: low, high: nil)
    } else if let dash = text.firstIndex(of: "-") {
      guard let low = Int(text[..<dash]), let high = Int(text[text.index(after: dash)...]) else {
        throw CodegenError("bad versions \(text)")
      }
      self.init(low: low, high: high)
    } else {
      guard let single = Int(text) else { throw CodegenError("bad versions \(text)") }
      self.init(low: single, high: single)
    }
  }

  func contains(_ version: Int) -> Bool {
    !isEmpty && version >= low && (high.map { version <= $0 } ?? true)
  }

  func intersects(_ range: ClosedRange<Int>) -> Bool {
    range.contains { contains($0) }
  }

  /// A Swift condition on `version` that is true exactly for the versions of this range that
  /// lie in `valid`; "true" / "false" when it is constant over `valid`.
  func condition(within valid: ClosedRange<Int>) -> String {
    let inside = valid.filter { contains($0) }
    if inside.isEmpty { return "false" }
    if inside.count == valid.count { return "true" }
    let lo = inside.first!
    let hi = inside.last!
    var parts: [String] = []
    if lo > valid.lowerBound { parts.append("version >= \(lo)") }
    if hi < valid.upperBound { parts.append("version <= \(hi)") }
    return parts.joined(separator: " && ")
  }
}

struct CodegenError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

indirect enum FieldType {
  case bool, int8, int16, uint16, int32, uint32, int64, float64, string, bytes, records, uuid
  case array(FieldType)
  case structure(String)

  init(parsing text: String) throws {
    if text.hasPrefix("[]") {
      self = .array(try FieldType(parsing: String(text.dropFirst(2))))
      return
    }
    switch text {
    case "bool": self = .bool
    case "int8": self = .int8
    case "int16": self = .int16
    case "uint16": self = .uint16
    case "int32": self = .int32
    case "uint32": self = .uint32
    case "int64": self = .int64
    case "float64": self = .float64
    case "string": self = .string
    case "bytes": self = .bytes
    case "records": self = .records
    case "uuid": self = .uuid
    default:
      guard let first = text.first, first.isUppercase else { throw CodegenError("unknown type \(text)") }
      self = .structure(text)
    }
  }

  var swiftName: String {
    switch self {
    case .bool: "Bool"
    case .int8: "Int8"
    case .int16: "Int16"
    case .uint16: "UInt16"
    case .int32: "Int32"
    case .uint32: "UInt32"
    case .int64: "Int64"
    case .float64: "Double"
    case .string: "String"
    case .bytes, .records: "ByteBuffer"
    case .uuid: "KafkaUUID"
    case .array(let element): "[\(element.swiftName)]"
    case .structure(let name): name
    }
  }

  var isInteger: Bool {
    switch self {
    case .int8, .int16, .uint16, .int32, .uint32, .int64: true
    default: false
    }
  }
}

final class Field {
  let name: String
  let type: FieldType
  let versions: Versions
  let nullableVersions: Versions
  let taggedVersions: Versions
  let tag: Int?
  let defaultText: String?
  let ignorable: Bool
  let about: String?
  /// A per-field override of the message's flexible versions (RequestHeader.ClientId: "none").
  let flexibleOverride: Versions?

  init(json: [String: Any]) throws {
    guard let name = json["name"] as? String, let type = json["type"] as? String else {
      throw CodegenError("field without name or type: \(json)")
    }
    self.name = name
    self.type = try FieldType(parsing: type)
    self.versions = try Versions(parsing: json["versions"] as? String)
    self.nullableVersions = try Versions(parsing: json["nullableVersions"] as? String)
    self.taggedVersions = try Versions(parsing: json["taggedVersions"] as? String)
    self.tag = (json["tag"] as? Int) ?? (json["tag"] as? String).flatMap { Int($0) }
    if let text = json["default"] as? String {
      self.defaultText = text
    } else if let number = json["default"] as? Int {
      self.defaultText = String(number)
    } else if let flag = json["default"] as? Bool {
      self.defaultText = flag ? "true" : "false"
    } else {
      self.defaultText = nil
    }
    self.ignorable = json["ignorable"] as? Bool ?? false
    self.about = json["about"] as? String
    if let text = json["flexibleVersions"] as? String {
      self.flexibleOverride = try Versions(parsing: text)
    } else {
      self.flexibleOverride = nil
    }
  }

  var isNullable: Bool { !nullableVersions.isEmpty }
}

struct StructDef {
  var name: String
  var fields: [Field]
}

/// One JSON definition file, parsed.
struct MessageDef {
  var name: String
  var kind: String  // request, response, header, data
  var apiKey: Int?
  var validVersions: ClosedRange<Int>
  var flexibleVersions: Versions
  var latestVersionUnstable: Bool
  var leadingComments: [String]
  var fields: [Field]
  /// Every struct of the message, flattened (commonStructs and inline ones), in first-seen order.
  var structs: [StructDef]

  init(fileText: String) throws {
    var comments: [String] = []
    var sawBrace = false
    var jsonLines: [String] = []
    for line in fileText.split(separator: "\n", omittingEmptySubsequences: false) {
      let trimmed = line.trimmingCharacters(in: .whitespaces)
      if trimmed.hasPrefix("//") {
        if sawBrace {
          comments.append(String(trimmed.dropFirst(2)).trimmingCharacters(in: .whitespaces))
        }
        continue
      }
      if trimmed.hasPrefix("{") { sawBrace = true }
      jsonLines.append(String(line))
    }
    let data = Data(jsonLines.joined(separator: "\n").utf8)
    guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
      throw CodegenError("not a JSON object")
    }
    guard let name = json["name"] as? String, let kind = json["type"] as? String else {
      throw CodegenError("definition without name/type")
    }
    self.name = name
    self.kind = kind
    self.apiKey = json["apiKey"] as? Int
    let valid = try Versions(parsing: json["validVersions"] as? String)
    guard !valid.isEmpty, let high = valid.high else { throw CodegenError("\(name): bad validVersions") }
    self.validVersions = valid.low...high
    self.flexibleVersions = try Versions(parsing: json["flexibleVersions"] as? String)
    self.latestVersionUnstable = json["latestVersionUnstable"] as? Bool ?? false
    while comments.last == "" { comments.removeLast() }
    self.leadingComments = comments

    var structs: [StructDef] = []
    var seen: Set<String> = []
    func collect(_ list: [[String: Any]]) throws -> [Field] {
      var fields: [Field] = []
      for item in list {
        let field = try Field(json: item)
        fields.append(field)
        if let nested = item["fields"] as? [[String: Any]] {
          var element = field.type
          if case .array(let inner) = element { element = inner }
          guard case .structure(let structName) = element else {
            throw CodegenError("\(name).\(field.name): fields on a non-struct type")
          }
          let nestedFields = try collect(nested)
          if !seen.contains(structName) {
            seen.insert(structName)
            structs.append(StructDef(name: structName, fields: nestedFields))
          }
        }
      }
      return fields
    }
    self.fields = try collect(json["fields"] as? [[String: Any]] ?? [])
    for common in json["commonStructs"] as? [[String: Any]] ?? [] {
      guard let structName = common["name"] as? String else {
        throw CodegenError("\(name): unnamed common struct")
      }
      let fields = try collect(common["fields"] as? [[String: Any]] ?? [])
      if !seen.contains(structName) {
        seen.insert(structName)
        structs.append(StructDef(name: structName, fields: fields))
      }
    }
    self.structs = structs
  }

  var isFlexibleEver: Bool { flexibleVersions.intersects(validVersions) }

  var firstFlexibleVersion: Int? { validVersions.first { flexibleVersions.contains($0) } }
}
