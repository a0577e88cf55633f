// libFuzzer target for the HTTP front door's parsers: the bytes an HTTP client controls in a
// request body or header, decoded as the server decodes them.
//
// Input: one control byte, then the text.
//   bits 0-1  0: a JSON text; 1: a REST Proxy produce body in the json format; 2: the same
//             in the binary format (base64 keys and values); 3: base64 text, with bit 2
//             set an SSE `Last-Event-ID` instead, with bit 3 set an ISO-8601 instant (a REST
//             consumer's seek by time), with bit 4 set a webhook URL, with bit 5 set a
//             `POST /v1/webhooks` body
//   bit 6     (overrides the above) the web console: a form body (bit 7 clear) or a record's
//             bytes as the record browser shows them (bit 7 set)
//
// Checked on every input: no crash or sanitizer report, and
// - JSON: an accepted text, written compactly, parses again to an equal value, and writing
//   that value gives the same bytes (the writer is a fixed point); the parser's depth limit
//   holds (a refused text says why with an offset inside the input);
// - produce bodies: an accepted body has at least one record; in the json format every key
//   and value stored is itself valid JSON; in the binary format each is the base64 decoding
//   of the string given;
// - base64: decoded bytes re-encode to text that decodes to the same bytes, and the output is
//   at most three quarters of the input;
// - event ids: an accepted id, formatted, parses to the same positions;
// - instants: one accepted with `Z` names the same millisecond with `+00:00`;
// - URLs: an accepted URL, written back, parses to the same URL;
// - webhook bodies: an accepted body names a valid subscription (its URL parses, its secret
//   gives a key, its numbers are in range);
// - console forms: the fields, percent-encoded again and parsed, are the same fields;
// - console records: text is shown as is, binary as hex that decodes to the bytes (or
//   base64), JSON only when it parses; never more than 64 KiB of input is shown.
//
// Build and run: scripts/fuzz.sh FuzzHTTP

import NIOCore
import SluiceHTTP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard size > 0 else { return 0 }
  let control = data[0]
  let body = ByteBuffer(bytes: UnsafeBufferPointer(start: data + 1, count: size - 1))
  if control & 0x40 != 0 {
    if control & 0x80 == 0 { checkConsoleForm(body) } else { checkConsoleRecord(body, hex: control & 1 == 0) }
    return 0
  }
  switch control & 3 {
  case 0: checkJSON(body)
  case 1: checkProduce(body, format: .json)
  case 2: checkProduce(body, format: .binary)
  default:
    let text = String(decoding: body.readableBytesView, as: UTF8.self)
    if control & 0x20 != 0 {
      checkWebhook(body)
    } else if control & 0x10 != 0 {
      checkURL(text)
    } else if control & 8 != 0 {
      checkInstant(text)
    } else if control & 4 == 0 {
      checkBase64(text)
    } else {
      checkEventID(text)
    }
  }
  return 0
}

/// Equal as JSON values (the raw text of nested values may differ: escapes, whitespace).
private func same(_ a: JSON, _ b: JSON) -> Bool {
  switch (a, b) {
  case (.array(let x), .array(let y)):
    return x.count == y.count && zip(x, y).allSatisfy { same($0.json, $1.json) }
  case (.object(let x), .object(let y)):
    return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && same($0.1.json, $1.1.json) }
  default:
    return a == b
  }
}

private func compact(_ value: JSONValue) -> ByteBuffer {
  var writer = JSONWriter()
  writer.value(value)
  return writer.buffer
}

private func checkJSON(_ body: ByteBuffer) {
  let value: JSONValue
  do {
    value = try JSONParser.parse(body)
  } catch {
    precondition(
      error.offset >= 0 && error.offset <= body.readableBytes, "error offset \(error.offset) outside input")
    return
  }
  let written = compact(value)
  guard let again = try? JSONParser.parse(written) else {
    preconditionFailure("compact output does not parse: \(String(buffer: written))")
  }
  precondition(same(again.json, value.json), "round trip changed the value")
  precondition(compact(again) == written, "the writer is not a fixed point")
}

private func checkProduce(_ body: ByteBuffer, format: EmbeddedFormat) {
  guard case .success(let request) = RestProduceRequest.parse(body, format: format) else { return }
  precondition(!request.records.isEmpty, "accepted an empty records array")
  guard let root = try? JSONParser.parse(body), let records = root["records"]?.array else {
    preconditionFailure("accepted a body that is not an object with records")
  }
  precondition(records.count == request.records.count, "record count changed")
  for (given, stored) in zip(records, request.records) {
    for (field, bytes) in [("key", stored.key), ("value", stored.value)] {
      guard let bytes else {
        precondition(given[field] == nil || given[field]!.isNull, "\(field) became null")
        continue
      }
      switch format {
      case .json:
        guard let parsed = try? JSONParser.parse(bytes) else {
          preconditionFailure("stored json \(field) does not parse")
        }
        precondition(same(parsed.json, given[field]!.json), "stored json \(field) differs")
      case .binary:
        guard let text = given[field]?.string, let decoded = Base64.decode(text) else {
          preconditionFailure("binary \(field) accepted without a base64 string")
        }
        precondition(decoded == bytes, "stored binary \(field) differs from its decoding")
      }
    }
  }
}

private func checkBase64(_ text: String) {
  guard let decoded = Base64.decode(text) else { return }
  precondition(
    decoded.readableBytes <= text.utf8.count * 3 / 4, "decoded output larger than 3/4 of the input")
  let encoded = Base64.encode(decoded)
  precondition(Base64.decode(encoded) == decoded, "re-encoding does not round trip")
}

private func checkEventID(_ text: String) {
  guard let positions = EventID.parse(text) else { return }
  precondition(EventID.parse(EventID.format(positions)) == positions, "event id does not round trip")
}

private func checkInstant(_ text: String) {
  guard let ms = ISO8601.milliseconds(text), text.hasSuffix("Z") else { return }
  precondition(ISO8601.milliseconds(text.dropLast() + "+00:00") == ms, "Z and +00:00 differ")
}

private func checkURL(_ text: String) {
  guard let url = HTTPURL(text) else { return }
  precondition(HTTPURL(url.description) == url, "URL does not round trip: \(url)")
}

private func checkWebhook(_ body: ByteBuffer) {
  guard case .success(let spec) = WebhookSpec.parse(body) else { return }
  precondition(HTTPURL(spec.url) != nil, "accepted a URL that does not parse")
  precondition((1...100).contains(spec.maxAttempts), "max_attempts out of range")
  precondition(spec.retryBackoffMs <= spec.maxBackoffMs, "backoff above its maximum")
  if let secret = spec.secret {
    precondition(
      WebhookSignature.sign(secret: secret, id: "m", timestamp: 0, body: ByteBuffer()) != nil,
      "unusable secret")
  }
}

private func checkConsoleForm(_ body: ByteBuffer) {
  let fields = ConsoleInput.form(body)
  func encode(_ text: String) -> String {
    var out = ""
    for byte in text.utf8 {
      switch byte {
      case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"):
        out.unicodeScalars.append(Unicode.Scalar(byte))
      default:
        let digits = Array("0123456789ABCDEF")
        out += "%" + String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 15)])
      }
    }
    return out
  }
  let again = fields.map { encode($0.key) + "=" + encode($0.value) }.joined(separator: "&")
  let reparsed = ConsoleInput.form(ByteBuffer(string: again))
  precondition(reparsed == fields, "form fields changed on a round trip: \(fields) -> \(reparsed)")
}

private func checkConsoleRecord(_ body: ByteBuffer, hex: Bool) {
  let shown = ConsoleInput.shown(body, hex: hex, prettyJSON: true)
  let bytes = Array(body.readableBytesView)
  switch shown.kind {
  case "text":
    precondition(bytes.count > 65536 || shown.text == String(decoding: bytes, as: UTF8.self), "text altered")
  case "binary, hex":
    let tokens: [Substring] = shown.text.split(whereSeparator: { $0 == " " || $0 == "\n" })
    let decoded = tokens.prefix(while: { $0.count == 2 }).compactMap { UInt8(String($0), radix: 16) }
    precondition(decoded == Array(bytes.prefix(65536)), "hex does not decode to the bytes")
  case "binary, base64":
    precondition(!shown.text.isEmpty || bytes.isEmpty, "empty base64 for bytes")
  case "JSON":
    precondition(bytes.count <= 65536, "JSON shown for a value over the limit")
  default:
    preconditionFailure("unknown kind \(shown.kind)")
  }
  _ = ConsoleInput.time(String(decoding: bytes.prefix(64), as: UTF8.self))
}
