public import NIOCore

/// The partition a keyed record goes to with the Java client's default partitioner (and
/// librdkafka's `murmur2_random`): the positive murmur2 hash of the key, modulo the count.
public func kafkaKeyPartition(_ key: ByteBuffer, count: Int32) -> Int32 {
  let hash = key.withUnsafeReadableBytes { kafkaMurmur2($0) }
  return (hash & 0x7fff_ffff) % count
}

/// Kafka's murmur2 hash (the Java client's `Utils.murmur2`): MurmurHash2, 32-bit, seed
/// 0x9747b28c, reading the data as little-endian 32-bit words. Producers hash keys with it
/// to choose partitions (the Java client's default partitioner, librdkafka's `murmur2`).
public func kafkaMurmur2(_ bytes: UnsafeRawBufferPointer) -> Int32 {
  let m: UInt32 = 0x5bd1_e995
  let length = bytes.count
  var h: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: length)
  let words = length / 4
  for i in 0..<words {
    let base = i * 4
    var k =
      UInt32(bytes[base]) | UInt32(bytes[base + 1]) << 8 | UInt32(bytes[base + 2]) << 16 | UInt32(
        bytes[base + 3]) << 24
    k &*= m
    k ^= k >> 24
    k &*= m
    h &*= m
    h ^= k
  }
  let tail = words * 4
  switch length % 4 {
  case 3:
    h ^= UInt32(bytes[tail + 2]) << 16
    h ^= UInt32(bytes[tail + 1]) << 8
    h ^= UInt32(bytes[tail])
    h &*= m
  case 2:
    h ^= UInt32(bytes[tail + 1]) << 8
    h ^= UInt32(bytes[tail])
    h &*= m
  case 1:
    h ^= UInt32(bytes[tail])
    h &*= m
  default: break
  }
  h ^= h >> 13
  h &*= m
  h ^= h >> 15
  return Int32(bitPattern: h)
}
