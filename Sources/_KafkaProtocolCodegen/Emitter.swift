/// Turns one parsed definition into Swift source: a struct per schema struct, each with a
/// defaulted memberwise init, a decoder and an encoder that branch on the version.
struct Emitter {
  let message: MessageDef
  let header: String
  var valid: ClosedRange<Int> { message.validVersions }

  static let keywords: Set<String> = [
    "associatedtype", "class", "deinit", "enum", "extension", "func", "import", "init", "inout",
    "internal", "let", "operator", "private", "protocol", "public", "static", "struct",
    "subscript", "typealias", "var", "break", "case", "continue", "default", "defer", "do",
    "else", "fallthrough", "for", "guard", "if", "in", "repeat", "return", "switch", "where",
    "while", "as", "catch", "false", "is", "nil", "rethrows", "super", "self", "Self", "throw",
    "throws", "true", "try", "Type", "Protocol", "any", "some", "package",
  ]

  static func propertyName(_ name: String) -> String {
    let lowered = name.prefix(1).lowercased() + name.dropFirst()
    return keywords.contains(lowered) ? "`\(lowered)`" : lowered
  }

  static func bareName(_ name: String) -> String {
    name.prefix(1).lowercased() + name.dropFirst()
  }

  // MARK: Conditions

  func cond(_ versions: Versions) -> String { versions.condition(within: valid) }

  /// Versions in which the field is written in the regular (non-tagged) position.
  func regularCond(_ field: Field) -> String {
    conditionFor { field.versions.contains($0) && !field.taggedVersions.contains($0) }
  }

  func taggedCond(_ field: Field) -> String {
    conditionFor { field.versions.contains($0) && field.taggedVersions.contains($0) }
  }

  func conditionFor(_ predicate: (Int) -> Bool) -> String {
    let inside = valid.filter(predicate)
    if inside.isEmpty { return "false" }
    if inside.count == valid.count { return "true" }
    let lo = inside.first!
    let hi = inside.last!
    if inside.count == hi - lo + 1 {
      var parts: [String] = []
      if lo > valid.lowerBound { parts.append("version >= \(lo)") }
      if hi < valid.upperBound { parts.append("version <= \(hi)") }
      return parts.joined(separator: " && ")
    }
    return "[\(inside.map(String.init).joined(separator: ", "))].contains(version)"
  }

  /// The expression telling whether strings/bytes/arrays of this field are compact.
  func compactExpr(_ field: Field) -> String {
    guard message.isFlexibleEver else { return "false" }
    if let override = field.flexibleOverride {
      return conditionFor { message.flexibleVersions.contains($0) && override.contains($0) }
    }
    return "flexible"
  }

  var flexibleCond: String { cond(message.flexibleVersions) }

  // MARK: Types and defaults

  func swiftType(_ field: Field) -> String {
    field.type.swiftName + (field.isNullable ? "?" : "")
  }

  func defaultExpr(_ field: Field) throws -> String {
    let text = field.defaultText
    if field.isNullable && text == "null" { return "nil" }
    if text == "null" {
      throw CodegenError("\(message.name).\(field.name): null default on a non-nullable field")
    }
    switch field.type {
    case .bool:
      return text == "true" ? "true" : "false"
    case .int8, .int16, .uint16, .int32, .uint32, .int64:
      guard let text, !text.isEmpty else { return "0" }
      return text.trimmingCharacters(in: .whitespaces)
    case .float64:
      guard let text, !text.isEmpty else { return "0" }
      return text
    case .string:
      return "\"\(escape(text ?? ""))\""
    case .uuid:
      return ".zero"
    case .bytes, .records:
      return field.isNullable ? "nil" : "ByteBuffer()"
    case .array:
      return "[]"
    case .structure(let name):
      return "\(name)()"
    }
  }

  func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
  }

  // MARK: Reading

  func readExpr(_ field: Field, on b: String) -> String {
    let compact = compactExpr(field)
    let nullable = field.isNullable ? cond(field.nullableVersions) : "false"
    func pick(_ nullableRead: String, _ plainRead: String) -> String {
      switch nullable {
      case "true": return "try \(nullableRead)"
      case "false": return "try \(plainRead)"
      default: return "try (\(nullable)) ? \(nullableRead) : \(plainRead)"
      }
    }
    switch field.type {
    case .string:
      return pick(
        "\(b).kafkaReadNullableString(compact: \(compact))", "\(b).kafkaReadString(compact: \(compact))")
    case .bytes, .records:
      return pick(
        "\(b).kafkaReadNullableBytes(compact: \(compact))", "\(b).kafkaReadBytes(compact: \(compact))")
    case .array(let element):
      let closure =
        "{ (e: inout ByteBuffer) throws(KafkaProtocolError) in \(elementRead(element, on: "e", compact: compact)) }"
      return pick(
        "\(b).kafkaReadNullableArray(compact: \(compact)) \(closure)",
        "\(b).kafkaReadArray(compact: \(compact)) \(closure)")
    case .structure(let name):
      return pick(
        "\(b).kafkaReadInt(Int8.self) < 0 ? nil : \(name)(from: &\(b), version: version)",
        "\(name)(from: &\(b), version: version)")
    default:
      return elementRead(field.type, on: b, compact: compact)
    }
  }

  func elementRead(_ type: FieldType, on b: String, compact: String) -> String {
    switch type {
    case .bool: return "try \(b).kafkaReadBool()"
    case .float64: return "try \(b).kafkaReadFloat64()"
    case .uuid: return "try \(b).kafkaReadUUID()"
    case .string: return "try \(b).kafkaReadString(compact: \(compact))"
    case .bytes, .records: return "try \(b).kafkaReadBytes(compact: \(compact))"
    case .structure(let name): return "try \(name)(from: &\(b), version: version)"
    case .array: return "/* nested arrays do not occur */ []"
    default: return "try \(b).kafkaReadInt(\(type.swiftName).self)"
    }
  }

  // MARK: Writing

  /// `sink`: whether a `records` writer is in scope (see `containsRecords`): records fields
  /// and structs holding them are then written through it.
  func writeStatements(_ field: Field, value v: String, on b: String, indent: String, sink: Bool = false)
    -> [String]
  {
    let compact = compactExpr(field)
    let nullable = field.isNullable ? cond(field.nullableVersions) : "false"
    let fieldName = "\(message.name).\(field.name)"
    if field.isNullable {
      switch field.type {
      case .string:
        return [
          "\(indent)try \(b).kafkaWriteNullableString(\(v), compact: \(compact), nullable: \(nullable))"
        ]
      case .records where sink:
        return [
          "\(indent)try records.writeRecords(\(v), compact: \(compact), nullable: \(nullable), into: &\(b))"
        ]
      case .bytes, .records:
        return ["\(indent)try \(b).kafkaWriteNullableBytes(\(v), compact: \(compact), nullable: \(nullable))"]
      case .array(let element):
        return [
          "\(indent)try \(b).kafkaWriteNullableArray(\(v), compact: \(compact), nullable: \(nullable)) {",
          "\(indent)  (e: inout ByteBuffer, x: \(element.swiftName)) throws(KafkaProtocolError) in",
          "\(indent)  \(elementWrite(element, value: "x", on: "e", compact: compact, sink: sink))",
          "\(indent)}",
        ]
      case .structure:
        var lines = ["\(indent)if let present = \(v) {"]
        if nullable == "true" {
          lines.append("\(indent)  \(b).writeInteger(Int8(1))")
        } else if nullable != "false" {
          lines.append("\(indent)  if \(nullable) { \(b).writeInteger(Int8(1)) }")
        }
        lines.append(
          "\(indent)  \(elementWrite(field.type, value: "present", on: b, compact: compact, sink: sink))")
        lines.append("\(indent)} else {")
        if nullable == "true" {
          lines.append("\(indent)  \(b).writeInteger(Int8(-1))")
        } else {
          lines.append(
            "\(indent)  guard \(nullable) else { throw KafkaProtocolError(.nullNotAllowed, \"\(fieldName) is null in version \\(version)\") }"
          )
          lines.append("\(indent)  \(b).writeInteger(Int8(-1))")
        }
        lines.append("\(indent)}")
        return lines
      default:
        break
      }
    }
    switch field.type {
    case .array(let element):
      return [
        "\(indent)try \(b).kafkaWriteArray(\(v), compact: \(compact)) {",
        "\(indent)  (e: inout ByteBuffer, x: \(element.swiftName)) throws(KafkaProtocolError) in",
        "\(indent)  \(elementWrite(element, value: "x", on: "e", compact: compact, sink: sink))",
        "\(indent)}",
      ]
    default:
      return ["\(indent)\(elementWrite(field.type, value: v, on: b, compact: compact, sink: sink))"]
    }
  }

  func elementWrite(_ type: FieldType, value v: String, on b: String, compact: String, sink: Bool = false)
    -> String
  {
    switch type {
    case .records where sink:
      return "try records.writeRecords(\(v), compact: \(compact), nullable: false, into: &\(b))"
    case .structure(let name) where sink && structContainsRecords(name):
      return "try \(v).encode(to: &\(b), version: version, records: &records)"
    case .bool: return "\(b).kafkaWriteBool(\(v))"
    case .float64: return "\(b).kafkaWriteFloat64(\(v))"
    case .uuid: return "\(b).kafkaWriteUUID(\(v))"
    case .string: return "try \(b).kafkaWriteString(\(v), compact: \(compact))"
    case .bytes, .records: return "\(b).kafkaWriteBytes(\(v), compact: \(compact))"
    case .structure: return "try \(v).encode(to: &\(b), version: version)"
    case .array: return "/* nested arrays do not occur */"
    default: return "\(b).writeInteger(\(v))"
    }
  }

  // MARK: Structs

  func docLines(_ text: String?, indent: String) -> [String] {
    guard let text, !text.isEmpty else { return [] }
    return text.split(separator: "\n").map { "\(indent)/// \($0.trimmingCharacters(in: .whitespaces))" }
  }

  func emitStruct(name: String, fields: [Field], isTop: Bool, indent: String) throws -> [String] {
    var out: [String] = []
    let conformance = isTop ? "KafkaMessage" : "KafkaStruct"
    out.append("\(indent)public struct \(name): \(conformance) {")
    let i1 = indent + "  "
    let i2 = i1 + "  "
    let i3 = i2 + "  "
    let i4 = i3 + "  "
    let flexibleEver = message.isFlexibleEver

    if isTop {
      if let key = message.apiKey {
        out.append("\(i1)public static let apiKey: ApiKey? = ApiKey(rawValue: \(key))")
      } else {
        out.append("\(i1)public static let apiKey: ApiKey? = nil")
      }
      let kind: String
      switch message.kind {
      case "request": kind = ".request"
      case "response": kind = ".response"
      case "header": kind = ".header"
      default: kind = ".data"
      }
      out.append("\(i1)public static let kind: KafkaMessageKind = \(kind)")
      out.append(
        "\(i1)public static let validVersions: ClosedRange<Int16> = \(valid.lowerBound)...\(valid.upperBound)"
      )
      let first = message.firstFlexibleVersion.map(String.init) ?? "nil"
      out.append("\(i1)public static let firstFlexibleVersion: Int16? = \(first)")
      out.append("")
      for nested in message.structs {
        out.append(
          contentsOf: try emitStruct(name: nested.name, fields: nested.fields, isTop: false, indent: i1))
        out.append("")
      }
    }

    // Properties.
    for field in fields {
      out.append(contentsOf: docLines(field.about, indent: i1))
      out.append(
        "\(i1)public var \(Self.propertyName(field.name)): \(swiftType(field)) = \(try defaultExpr(field))")
    }
    if flexibleEver {
      out.append("\(i1)/// Tagged fields this schema does not know, kept so they survive a round trip.")
      out.append("\(i1)public var unknownTaggedFields: [TaggedField] = []")
    }
    out.append("")

    // Memberwise init with defaults.
    var params: [String] = []
    for field in fields {
      params.append("\(Self.bareName(field.name)): \(swiftType(field)) = \(try defaultExpr(field))")
    }
    if flexibleEver { params.append("unknownTaggedFields: [TaggedField] = []") }
    out.append("\(i1)/// Every field at its schema default.")
    out.append("\(i1)public init() {}")
    if !params.isEmpty {
      out.append("")
      out.append("\(i1)public init(")
      for (index, param) in params.enumerated() {
        out.append("\(i2)\(param)\(index == params.count - 1 ? "" : ",")")
      }
      out.append("\(i1)) {")
      for field in fields {
        let bare = Self.bareName(field.name)
        out.append(
          "\(i2)self.\(Self.propertyName(field.name)) = \(Self.keywords.contains(bare) ? "`\(bare)`" : bare)")
      }
      if flexibleEver { out.append("\(i2)self.unknownTaggedFields = unknownTaggedFields") }
      out.append("\(i1)}")
    }
    out.append("")

    // Decoder.
    let taggedFields = fields.filter { taggedCond($0) != "false" }
    out.append("\(i1)public init(from buffer: inout ByteBuffer, version: Int16) throws(KafkaProtocolError) {")
    out.append("\(i2)self.init()")
    if flexibleEver { out.append("\(i2)let flexible = \(flexibleCond)") }
    for field in fields {
      let regular = regularCond(field)
      if regular == "false" { continue }
      let assign = "self.\(Self.propertyName(field.name)) = \(readExpr(field, on: "buffer"))"
      if regular == "true" {
        out.append("\(i2)\(assign)")
      } else {
        out.append("\(i2)if \(regular) {")
        out.append("\(i3)\(assign)")
        out.append("\(i2)}")
      }
    }
    if flexibleEver {
      out.append("\(i2)if flexible {")
      out.append("\(i3)var tagged = try TaggedFieldsReader(&buffer)")
      if taggedFields.isEmpty {
        out.append("\(i3)while let field = try tagged.next(&buffer) {")
        out.append("\(i4)self.unknownTaggedFields.append(field)")
      } else {
        out.append("\(i3)while var field = try tagged.next(&buffer) {")
        out.append("\(i4)switch field.tag {")
        for field in taggedFields {
          guard let tag = field.tag else {
            throw CodegenError("\(message.name).\(field.name): tagged without tag")
          }
          let tc = taggedCond(field)
          out.append("\(i4)case \(tag)\(tc == "true" ? "" : " where \(tc)"):")
          out.append("\(i4)  self.\(Self.propertyName(field.name)) = \(readExpr(field, on: "field.data"))")
          out.append("\(i4)  try kafkaExpectConsumed(field.data, tag: field.tag)")
        }
        out.append("\(i4)default:")
        out.append("\(i4)  self.unknownTaggedFields.append(field)")
        out.append("\(i4)}")
      }
      out.append("\(i3)}")
      out.append("\(i2)}")
    }
    out.append("\(i1)}")
    out.append("")

    // Encoder. A struct that holds records fields (at any depth) also gets an encoder that
    // writes them through a `KafkaRecordsWriter`, which may leave their bytes out of the
    // buffer (a front door that sends record data from files); the plain one uses the
    // inline writer.
    let sink = containsRecords(fields)
    if sink {
      out.append(
        "\(i1)public func encode(to buffer: inout ByteBuffer, version: Int16) throws(KafkaProtocolError) {")
      out.append("\(i2)var records = InlineRecordsWriter()")
      out.append("\(i2)try encode(to: &buffer, version: version, records: &records)")
      out.append("\(i1)}")
      out.append("")
      out.append("\(i1)/// Encodes with every records field written by `records`, in encoding order.")
      out.append(
        "\(i1)public func encode<Writer: KafkaRecordsWriter>(to buffer: inout ByteBuffer, version: Int16, records: inout Writer) throws(KafkaProtocolError) {"
      )
    } else {
      out.append(
        "\(i1)public func encode(to buffer: inout ByteBuffer, version: Int16) throws(KafkaProtocolError) {")
    }
    if flexibleEver { out.append("\(i2)let flexible = \(flexibleCond)") }
    for field in fields {
      let property = "self.\(Self.propertyName(field.name))"
      let present = conditionFor { field.versions.contains($0) }
      if present != "true" && !field.ignorable {
        let check = present == "false" ? "" : "!(\(present)) && "
        out.append("\(i2)if \(check)\(property) != \(try defaultExpr(field)) {")
        out.append(
          "\(i3)throw KafkaProtocolError(.fieldNotSupportedInVersion, \"\(message.name).\(field.name) is not in version \\(version)\")"
        )
        out.append("\(i2)}")
      }
      let regular = regularCond(field)
      if regular == "false" { continue }
      if regular == "true" {
        out.append(contentsOf: writeStatements(field, value: property, on: "buffer", indent: i2, sink: sink))
      } else {
        out.append("\(i2)if \(regular) {")
        out.append(contentsOf: writeStatements(field, value: property, on: "buffer", indent: i3, sink: sink))
        out.append("\(i2)}")
      }
    }
    if flexibleEver {
      out.append("\(i2)if flexible {")
      if taggedFields.isEmpty {
        out.append("\(i3)buffer.kafkaWriteTaggedFields(self.unknownTaggedFields)")
      } else {
        out.append("\(i3)var tagged = self.unknownTaggedFields")
        for field in taggedFields {
          let property = "self.\(Self.propertyName(field.name))"
          let tc = taggedCond(field)
          let guardText = tc == "true" ? "" : "\(tc) && "
          out.append("\(i3)if \(guardText)\(property) != \(try defaultExpr(field)) {")
          out.append("\(i4)var field = ByteBuffer()")
          out.append(contentsOf: writeStatements(field, value: property, on: "field", indent: i4))
          out.append("\(i4)tagged.append(TaggedField(tag: \(field.tag!), data: field))")
          out.append("\(i3)}")
        }
        out.append("\(i3)buffer.kafkaWriteTaggedFields(tagged)")
      }
      out.append("\(i2)}")
    }
    out.append("\(i1)}")
    out.append("\(indent)}")
    return out
  }

  /// Whether these fields hold a records field outside tagged fields, directly or in a
  /// nested struct.
  func containsRecords(_ fields: [Field]) -> Bool {
    fields.contains { field in
      guard field.taggedVersions.isEmpty else { return false }
      switch field.type {
      case .records: return true
      case .structure(let name), .array(.structure(let name)): return structContainsRecords(name)
      default: return false
      }
    }
  }

  func structContainsRecords(_ name: String) -> Bool {
    guard let nested = message.structs.first(where: { $0.name == name }) else { return false }
    return containsRecords(nested.fields)
  }

  func emitFile(sourceFile: String) throws -> String {
    var out: [String] = [header.replacingOccurrences(of: "$FILE", with: sourceFile), ""]
    out.append("public import NIOCore")
    out.append("")
    let kindText =
      message.kind == "request" || message.kind == "response" ? message.kind : message.kind + " schema"
    out.append(
      "/// \(message.name): Kafka \(kindText)" + (message.apiKey.map { ", API key \($0)" } ?? "") + ".")
    out.append("///")
    out.append(
      "/// Valid versions \(valid.lowerBound)-\(valid.upperBound); flexible versions: "
        + (message.firstFlexibleVersion.map { "\($0)+" } ?? "none") + "."
        + (message.latestVersionUnstable ? " The latest version is marked unstable upstream." : ""))
    if !message.leadingComments.isEmpty {
      out.append("///")
      for line in message.leadingComments {
        out.append(line.isEmpty ? "///" : "/// \(line)")
      }
    }
    out.append(
      contentsOf: try emitStruct(name: message.name, fields: message.fields, isTop: true, indent: ""))
    return out.joined(separator: "\n") + "\n"
  }

  // MARK: Test samples

  func sampleExpr(_ field: Field) -> String {
    let nullable = field.isNullable ? cond(field.nullableVersions) : "false"
    let base = elementSample(field.type)
    switch nullable {
    case "false": return base
    case "true": return "rng.oneIn(4) ? nil : \(base)"
    default: return "(\(nullable)) && rng.oneIn(4) ? nil : \(base)"
    }
  }

  func elementSample(_ type: FieldType) -> String {
    switch type {
    case .bool: return "rng.bool()"
    case .float64: return "rng.double()"
    case .uuid: return "rng.uuid()"
    case .string: return "rng.string()"
    case .bytes, .records: return "rng.bytes()"
    case .structure(let name): return "\(message.name).\(name).sample(version: version, rng: &rng)"
    case .array(let element): return "rng.array { (rng: inout SampleRNG) in \(elementSample(element)) }"
    default: return "rng.integer(\(type.swiftName).self)"
    }
  }

  func emitSamples() -> [String] {
    var out: [String] = []
    var all: [(String, [Field])] = [(message.name, message.fields)]
    all += message.structs.map { ("\(message.name).\($0.name)", $0.fields) }
    for (qualified, fields) in all {
      out.append("extension \(qualified): Sampleable {")
      out.append("  static func sample(version: Int16, rng: inout SampleRNG) -> Self {")
      let hasAssignments =
        message.isFlexibleEver || fields.contains { f in conditionFor { f.versions.contains($0) } != "false" }
      out.append(hasAssignments ? "    var value = Self()" : "    let value = Self()")
      for field in fields {
        let present = conditionFor { field.versions.contains($0) }
        if present == "false" { continue }
        let assign = "value.\(Self.propertyName(field.name)) = \(sampleExpr(field))"
        if present == "true" {
          out.append("    \(assign)")
        } else {
          out.append("    if \(present) { \(assign) }")
        }
      }
      if message.isFlexibleEver {
        let fc = flexibleCond
        out.append(
          "    if \(fc == "true" ? "" : "(\(fc)) && ")rng.oneIn(3) { value.unknownTaggedFields = rng.unknownTaggedFields() }"
        )
      }
      out.append("    return value")
      out.append("  }")
      out.append("}")
      out.append("")
    }
    return out
  }
}
