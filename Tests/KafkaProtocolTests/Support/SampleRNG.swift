import KafkaProtocol
import NIOCore
import SluiceTestSupport

/// A message type that can make a pseudo-random value holding only fields that exist in a
/// given version (the generated `MessageSamples.swift` conforms every schema struct).
protocol Sampleable {
  static func sample(version: Int16, rng: inout SampleRNG) -> Self
}

/// The suites' seeded generator (`SplitMix64`) with helpers for sample values, so failures
/// reproduce from the seed.
struct SampleRNG: RandomNumberGenerator {
  var base: SplitMix64

  init(seed: UInt64) { base = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ 1) }

  mutating func next() -> UInt64 { base.next() }

  mutating func oneIn(_ n: UInt64) -> Bool { next() % n == 0 }
  mutating func bool() -> Bool { next() & 1 == 1 }
  mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T {
    // Mix small values (common on the wire, short varints) with full-width ones.
    oneIn(2) ? T(truncatingIfNeeded: next() % 300) : T(truncatingIfNeeded: next())
  }
  mutating func double() -> Double { Double(next() % 1_000_000) / 7.0 }
  mutating func uuid() -> KafkaUUID { KafkaUUID(high: next(), low: next()) }
  mutating func string() -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789._-é€")
    let length = Int(next() % 12)
    return String((0..<length).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] })
  }
  mutating func bytes() -> ByteBuffer {
    let length = Int(next() % 40)
    return ByteBuffer(bytes: (0..<length).map { _ in UInt8(truncatingIfNeeded: next()) })
  }
  mutating func array<T>(_ element: (inout SampleRNG) -> T) -> [T] {
    let count = Int(next() % 3)
    var result: [T] = []
    for _ in 0..<count { result.append(element(&self)) }
    return result
  }
  mutating func unknownTaggedFields() -> [TaggedField] {
    [TaggedField(tag: 1000 + UInt32(next() % 50), data: bytes())]
  }
}
