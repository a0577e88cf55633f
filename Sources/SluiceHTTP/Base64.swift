public import NIOCore

/// Standard base64 (RFC 4648 §4, `+` and `/`), as REST Proxy's binary format uses it: the
/// decoder takes padding or none, and refuses whitespace, the URL-safe alphabet and `=`
/// anywhere but the end (bits past the data are ignored, as Guava's and Java's decoders do); the encoder always pads.
public enum Base64 {
  static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

  static let values: [UInt8] = {
    var table = [UInt8](repeating: 0xFF, count: 256)
    for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
    return table
  }()

  /// The bytes `text` encodes, or nil when it is not standard base64. The output is at
  /// most three quarters of the input.
  public static func decode(_ text: some StringProtocol) -> ByteBuffer? {
    var string = String(text)
    return string.withUTF8 { utf8 -> ByteBuffer? in
      // Padding: none, or what completes the last quantum.
      var count = utf8.count
      var padding = 0
      while count > 0 && utf8[count - 1] == UInt8(ascii: "=") && padding < 2 {
        count -= 1
        padding += 1
      }
      if padding > 0 && (count + padding) % 4 != 0 { return nil }
      let remainder = count % 4
      if remainder == 1 { return nil }
      var out = ByteBuffer()
      var valid = true
      // Written straight into the buffer's storage (one write, no per-byte bookkeeping).
      out.writeWithUnsafeMutableBytes(minimumWritableBytes: count / 4 * 3 + 2) { raw in
        values.withUnsafeBufferPointer { table in
          var index = 0
          var at = 0
          while index + 4 <= count {
            let a = table[Int(utf8[index])]
            let b = table[Int(utf8[index + 1])]
            let c = table[Int(utf8[index + 2])]
            let d = table[Int(utf8[index + 3])]
            if (a | b | c | d) & 0xC0 != 0 {
              valid = false
              return 0
            }
            let word = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
            raw[at] = UInt8(truncatingIfNeeded: word >> 16)
            raw[at + 1] = UInt8(truncatingIfNeeded: word >> 8)
            raw[at + 2] = UInt8(truncatingIfNeeded: word)
            at += 3
            index += 4
          }
          switch remainder {
          case 2:
            let a = table[Int(utf8[index])]
            let b = table[Int(utf8[index + 1])]
            if (a | b) & 0xC0 != 0 {
              valid = false
              return 0
            }
            raw[at] = a << 2 | b >> 4
            at += 1
          case 3:
            let a = table[Int(utf8[index])]
            let b = table[Int(utf8[index + 1])]
            let c = table[Int(utf8[index + 2])]
            if (a | b | c) & 0xC0 != 0 {
              valid = false
              return 0
            }
            raw[at] = a << 2 | b >> 4
            raw[at + 1] = (b & 0x0F) << 4 | c >> 2
            at += 2
          default:
            break
          }
          return at
        }
      }
      return valid ? out : nil
    }
  }

  /// Padded standard base64 of the readable bytes.
  public static func encode(_ bytes: ByteBuffer) -> String {
    bytes.withUnsafeReadableBytes { raw in
      let count = raw.count
      return String(unsafeUninitializedCapacity: (count + 2) / 3 * 4) { out in
        var at = 0
        var index = 0
        while index + 3 <= count {
          let word = UInt32(raw[index]) << 16 | UInt32(raw[index + 1]) << 8 | UInt32(raw[index + 2])
          out[at] = alphabet[Int(word >> 18 & 0x3F)]
          out[at + 1] = alphabet[Int(word >> 12 & 0x3F)]
          out[at + 2] = alphabet[Int(word >> 6 & 0x3F)]
          out[at + 3] = alphabet[Int(word & 0x3F)]
          at += 4
          index += 3
        }
        if count - index == 1 {
          let word = UInt32(raw[index]) << 16
          out[at] = alphabet[Int(word >> 18 & 0x3F)]
          out[at + 1] = alphabet[Int(word >> 12 & 0x3F)]
          out[at + 2] = UInt8(ascii: "=")
          out[at + 3] = UInt8(ascii: "=")
          at += 4
        } else if count - index == 2 {
          let word = UInt32(raw[index]) << 16 | UInt32(raw[index + 1]) << 8
          out[at] = alphabet[Int(word >> 18 & 0x3F)]
          out[at + 1] = alphabet[Int(word >> 12 & 0x3F)]
          out[at + 2] = alphabet[Int(word >> 6 & 0x3F)]
          out[at + 3] = UInt8(ascii: "=")
          at += 4
        }
        return at
      }
    }
  }
}
