import KafkaProtocol

/// The partition for a key: `(murmur2(key) & 0x7fffffff) % partitionCount`, as the Java
/// client's default partitioner and librdkafka's `murmur2` / `murmur2_random` compute it.
public func kafkaPartition(forKey key: some KafkaContiguousBytes, partitionCount: Int) -> KafkaPartition {
  precondition(partitionCount > 0)
  let hash = key.withUnsafeBytes { kafkaMurmur2($0) }
  return KafkaPartition(rawValue: Int(hash & 0x7fff_ffff) % partitionCount)
}
