import KafkaClient
import KafkaProtocol
import Testing

/// Vectors from the Java client's `Utils.murmur2` (Kafka's UtilsTest), which librdkafka's
/// `murmur2` partitioner reproduces; compat/test_swift_client.py cross-checks the resulting
/// partitions against confluent-kafka.
@Suite struct Murmur2Tests {
  @Test(arguments: [
    ("21", Int32(-973_932_308)),
    ("foobar", -790_332_482),
    ("a-little-bit-long-string", -985_981_536),
    ("a-little-bit-longer-string", -1_486_304_829),
    ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
    ("abc", 479_470_107),
  ])
  func javaVectors(key: String, expected: Int32) {
    let hash = Array(key.utf8).withUnsafeBytes { kafkaMurmur2($0) }
    #expect(hash == expected)
  }

  @Test func partitionIsPositiveModulo() {
    // murmur2("21") is negative: the sign bit is masked, not abs().
    let expected = Int((-973_932_308 as Int32) & 0x7fff_ffff) % 7
    #expect(kafkaPartition(forKey: "21", partitionCount: 7).rawValue == expected)
    #expect(
      kafkaPartition(forKey: "", partitionCount: 3).rawValue == Int(
        [UInt8]().withUnsafeBytes { kafkaMurmur2($0) } & 0x7fff_ffff) % 3)
  }
}
