public import NIOCore

/// A JSON value as the HTTP front door needs it: parsed strictly (RFC 8259), bounded (depth,
/// bytes), and keeping, for every value, the exact bytes it was written with, so that a
/// record's JSON key or value is stored as the client wrote it (REST Proxy's json format).
public indirect enum JSON: Hashable, Sendable {
  case null
  case bool(Bool)
  /// The number's text, as written (validated, not converted: no precision is lost).
  case number(String)
  case string(String)
  case array([JSONValue])
  /// Members in the order written (a repeated name keeps its last value on lookup).
  case object([(String, JSONValue)])

  public static func == (lhs: JSON, rhs: JSON) -> Bool {
    switch (lhs, rhs) {
    case (.null, .null): true
    case (.bool(let a), .bool(let b)): a == b
    case (.number(let a), .number(let b)): a == b
    case (.string(let a), .string(let b)): a == b
    case (.array(let a), .array(let b)): a == b
    case (.object(let a), .object(let b)): a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
    default: false
    }
  }

  public func hash(into hasher: inout Hasher) {
    switch self {
    case .null: hasher.combine(0)
    case .bool(let value): hasher.combine(value)
    case .number(let text): hasher.combine(text)
    case .string(let text): hasher.combine(text)
    case .array(let values): hasher.combine(values)
    case .object(let members):
      for (name, value) in members {
        hasher.combine(name)
        hasher.combine(value)
      }
    }
  }
}

/// A parsed value and the bytes it was parsed from.
public struct JSONValue: Hashable, Sendable {
  public var json: JSON
  /// The value's text in the input, without surrounding whitespace.
  public var raw: ByteBuffer

  public subscript(_ name: String) -> JSONValue? {
    guard case .object(let members) = json else { return nil }
    return members.last { $0.0 == name }?.1
  }

  public var string: String? { if case .string(let text) = json { text } else { nil } }
  public var isNull: Bool { if case .null = json { true } else { false } }
  public var array: [JSONValue]? { if case .array(let values) = json { values } else { nil } }

  /// An integer number that fits `T` (no fraction, no exponent).
  public func integer<T: FixedWidthInteger>(_: T.Type = T.self) -> T? {
    guard case .number(let text) = json else { return nil }
    return T(text)
  }
}

/// Why a JSON text was refused, with the byte offset.
public struct JSONError: Error, Hashable, Sendable, CustomStringConvertible {
  public var message: String
  public var offset: Int
  public var description: String { "\(message) at byte \(offset)" }
}

/// The parser. Limits: `maxDepth` nested arrays and objects; the input is the caller's
/// bounded request body. Strings must be valid UTF-8 with valid escapes (surrogates paired).
public struct JSONParser {
  public static let defaultMaxDepth = 64

  let bytes: [UInt8]
  let source: ByteBuffer
  let maxDepth: Int
  var position = 0

  init(_ source: ByteBuffer, maxDepth: Int) {
    self.source = source
    self.bytes = Array(source.readableBytesView)
    self.maxDepth = maxDepth
  }

  /// Parses one JSON text (whitespace around it allowed, nothing else).
  public static func parse(_ source: ByteBuffer, maxDepth: Int = defaultMaxDepth) throws(JSONError)
    -> JSONValue
  {
    var parser = JSONParser(source, maxDepth: maxDepth)
    parser.skipWhitespace()
    let value = try parser.value(depth: 0)
    parser.skipWhitespace()
    guard parser.position == parser.bytes.count else {
      throw parser.error("unexpected bytes after the JSON value")
    }
    return value
  }

  func error(_ message: String) -> JSONError { JSONError(message: message, offset: position) }

  mutating func skipWhitespace() {
    while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
  }

  mutating func value(depth: Int) throws(JSONError) -> JSONValue {
    guard position < bytes.count else { throw error("unexpected end of input") }
    let start = position
    let json: JSON
    switch bytes[position] {
    case UInt8(ascii: "{"): json = try object(depth: depth + 1)
    case UInt8(ascii: "["): json = try array(depth: depth + 1)
    case UInt8(ascii: "\""): json = .string(try string())
    case UInt8(ascii: "t"): json = try literal("true", .bool(true))
    case UInt8(ascii: "f"): json = try literal("false", .bool(false))
    case UInt8(ascii: "n"): json = try literal("null", .null)
    default: json = .number(try number())
    }
    let raw = source.getSlice(at: source.readerIndex + start, length: position - start)!
    return JSONValue(json: json, raw: raw)
  }

  mutating func literal(_ text: String, _ value: JSON) throws(JSONError) -> JSON {
    let expected = Array(text.utf8)
    guard bytes.count - position >= expected.count,
      Array(bytes[position..<position + expected.count]) == expected
    else { throw error("invalid literal") }
    position += expected.count
    return value
  }

  mutating func object(depth: Int) throws(JSONError) -> JSON {
    guard depth <= maxDepth else { throw error("nested deeper than \(maxDepth)") }
    position += 1
    var members: [(String, JSONValue)] = []
    skipWhitespace()
    if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
      position += 1
      return .object(members)
    }
    while true {
      skipWhitespace()
      guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
        throw error("expected a member name")
      }
      let name = try string()
      skipWhitespace()
      guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw error("expected ':'") }
      position += 1
      skipWhitespace()
      members.append((name, try value(depth: depth)))
      skipWhitespace()
      guard position < bytes.count else { throw error("unterminated object") }
      if bytes[position] == UInt8(ascii: ",") {
        position += 1
      } else if bytes[position] == UInt8(ascii: "}") {
        position += 1
        return .object(members)
      } else {
        throw error("expected ',' or '}'")
      }
    }
  }

  mutating func array(depth: Int) throws(JSONError) -> JSON {
    guard depth <= maxDepth else { throw error("nested deeper than \(maxDepth)") }
    position += 1
    var values: [JSONValue] = []
    skipWhitespace()
    if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
      position += 1
      return .array(values)
    }
    while true {
      skipWhitespace()
      values.append(try value(depth: depth))
      skipWhitespace()
      guard position < bytes.count else { throw error("unterminated array") }
      if bytes[position] == UInt8(ascii: ",") {
        position += 1
      } else if bytes[position] == UInt8(ascii: "]") {
        position += 1
        return .array(values)
      } else {
        throw error("expected ',' or ']'")
      }
    }
  }

  /// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
  mutating func number() throws(JSONError) -> String {
    let start = position
    func digits() -> Int {
      let from = position
      while position < bytes.count, (0x30...0x39).contains(bytes[position]) { position += 1 }
      return position - from
    }
    if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
    guard position < bytes.count, (0x30...0x39).contains(bytes[position]) else {
      throw error("invalid value")
    }
    if bytes[position] == UInt8(ascii: "0") {
      position += 1
    } else {
      _ = digits()
    }
    if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
      position += 1
      guard digits() > 0 else { throw error("a fraction needs digits") }
    }
    if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
      position += 1
      if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-")
      {
        position += 1
      }
      guard digits() > 0 else { throw error("an exponent needs digits") }
    }
    return String(decoding: bytes[start..<position], as: UTF8.self)
  }

  mutating func string() throws(JSONError) -> String {
    position += 1  // the opening quote
    var scalars: [UInt8] = []
    while true {
      guard position < bytes.count else { throw error("unterminated string") }
      let byte = bytes[position]
      switch byte {
      case UInt8(ascii: "\""):
        position += 1
        guard let text = String(validating: scalars, as: UTF8.self) else {
          throw error("invalid UTF-8 in a string")
        }
        return text
      case UInt8(ascii: "\\"):
        position += 1
        guard position < bytes.count else { throw error("unterminated escape") }
        let escaped = bytes[position]
        position += 1
        switch escaped {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(escaped)
        case UInt8(ascii: "b"): scalars.append(0x08)
        case UInt8(ascii: "f"): scalars.append(0x0C)
        case UInt8(ascii: "n"): scalars.append(0x0A)
        case UInt8(ascii: "r"): scalars.append(0x0D)
        case UInt8(ascii: "t"): scalars.append(0x09)
        case UInt8(ascii: "u"):
          var code = try hex4()
          if (0xD800...0xDBFF).contains(code) {
            guard bytes.count - position >= 6, bytes[position] == UInt8(ascii: "\\"),
              bytes[position + 1] == UInt8(ascii: "u")
            else { throw error("unpaired surrogate") }
            position += 2
            let low = try hex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate") }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
          } else if (0xDC00...0xDFFF).contains(code) {
            throw error("unpaired surrogate")
          }
          guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
          scalars.append(contentsOf: Array(String(Character(scalar)).utf8))
        default:
          throw error("invalid escape")
        }
      case 0x00...0x1F:
        throw error("control character in a string")
      default:
        scalars.append(byte)
        position += 1
      }
    }
  }

  mutating func hex4() throws(JSONError) -> UInt32 {
    guard bytes.count - position >= 4 else { throw error("short \\u escape") }
    var value: UInt32 = 0
    for _ in 0..<4 {
      let byte = bytes[position]
      let digit: UInt32
      switch byte {
      case 0x30...0x39: digit = UInt32(byte - 0x30)
      case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
      case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
      default: throw error("invalid \\u escape")
      }
      value = value << 4 | digit
      position += 1
    }
    return value
  }
}

/// Writes JSON text: strings escaped as RFC 8259 requires.
public struct JSONWriter {
  public private(set) var buffer = ByteBuffer()

  public init() {}

  public mutating func string(_ text: String) {
    buffer.writeInteger(UInt8(ascii: "\""))
    var text = text
    text.withUTF8 { utf8 in
      // Runs of bytes that need no escape are written at once.
      var start = 0
      for (index, byte) in utf8.enumerated()
      where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[start..<index]))
        escape(byte)
        start = index + 1
      }
      buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[start...]))
    }
    buffer.writeInteger(UInt8(ascii: "\""))
  }

  mutating func escape(_ byte: UInt8) {
    switch byte {
    case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
    case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
    case 0x0A: buffer.writeStaticString("\\n")
    case 0x0D: buffer.writeStaticString("\\r")
    case 0x09: buffer.writeStaticString("\\t")
    default:
      let hex = String(byte, radix: 16)
      buffer.writeString("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
    }
  }

  /// A parsed value, written compactly (no whitespace; numbers as written; strings
  /// re-escaped minimally).
  public mutating func value(_ value: JSONValue) {
    switch value.json {
    case .null: null()
    case .bool(let flag): bool(flag)
    case .number(let text): raw(text)
    case .string(let text): string(text)
    case .array(let values): array(values) { $0.value($1) }
    case .object(let members):
      object { writer in
        for (name, member) in members { writer.member(name) { $0.value(member) } }
      }
    }
  }

  public mutating func raw(_ text: String) { buffer.writeString(text) }
  public mutating func raw(_ bytes: ByteBuffer) { buffer.writeImmutableBuffer(bytes) }
  public mutating func number<T: BinaryInteger>(_ value: T) { buffer.writeString(String(value)) }
  public mutating func null() { buffer.writeStaticString("null") }
  public mutating func bool(_ value: Bool) { buffer.writeStaticString(value ? "true" : "false") }

  /// `{ "name": …, … }`, each member written by `body`'s `member` calls.
  public mutating func object(_ body: (inout ObjectWriter) -> Void) {
    buffer.writeInteger(UInt8(ascii: "{"))
    // The buffer moves into the member writer and back (a copy would copy its bytes).
    var members = ObjectWriter(writer: JSONWriter())
    swap(&self, &members.writer)
    body(&members)
    swap(&self, &members.writer)
    buffer.writeInteger(UInt8(ascii: "}"))
  }

  public mutating func array<C: Collection>(_ items: C, _ element: (inout JSONWriter, C.Element) -> Void) {
    buffer.writeInteger(UInt8(ascii: "["))
    var first = true
    for item in items {
      if !first { buffer.writeInteger(UInt8(ascii: ",")) }
      first = false
      element(&self, item)
    }
    buffer.writeInteger(UInt8(ascii: "]"))
  }

  public struct ObjectWriter {
    var writer: JSONWriter
    var first = true

    public mutating func member(_ name: String, _ value: (inout JSONWriter) -> Void) {
      if !first { writer.buffer.writeInteger(UInt8(ascii: ",")) }
      first = false
      writer.string(name)
      writer.buffer.writeInteger(UInt8(ascii: ":"))
      value(&writer)
    }
  }
}
