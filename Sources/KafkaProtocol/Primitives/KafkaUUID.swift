/// A Kafka UUID (topic ids, directory ids): 16 bytes, written big-endian as two int64s.
///
/// Kafka's `Uuid.ZERO` is the "no id" value; ``zero`` mirrors it.
public struct KafkaUUID: Hashable, Sendable, CustomStringConvertible {
  public var high: UInt64
  public var low: UInt64

  public init(high: UInt64, low: UInt64) {
    self.high = high
    self.low = low
  }

  public static let zero = KafkaUUID(high: 0, low: 0)

  /// A random version-4 UUID.
  public static func random() -> KafkaUUID {
    var generator = SystemRandomNumberGenerator()
    return random(using: &generator)
  }

  public static func random<G: RandomNumberGenerator>(using generator: inout G) -> KafkaUUID {
    var high = generator.next() as UInt64
    var low = generator.next() as UInt64
    high = (high & ~0xF000) | 0x4000  // version 4
    low = (low & ~(UInt64(0xC) << 60)) | (UInt64(0x8) << 60)  // IETF variant
    return KafkaUUID(high: high, low: low)
  }

  /// Canonical 8-4-4-4-12 lowercase hex form.
  public var description: String {
    func hex(_ value: UInt64, _ digits: Int) -> String {
      let s = String(value, radix: 16)
      return String(repeating: "0", count: digits - s.count) + s
    }
    return hex(high >> 32, 8) + "-" + hex((high >> 16) & 0xFFFF, 4) + "-" + hex(high & 0xFFFF, 4)
      + "-" + hex(low >> 48, 4) + "-" + hex(low & 0xFFFF_FFFF_FFFF, 12)
  }
}
