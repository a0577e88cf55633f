import KafkaProtocol
import NIOCore
import SluiceBroker

/// Records a bridge appends to one topic, packed into batches per partition that stay under
/// the topic's `max.message.bytes` (the ZeroMQ pull bridge and the StatsD intake).
struct TopicBatches {
  let topic: String
  let maxBytes: Int
  private var builders: [Int32: [RecordBatchBuilder]] = [:]

  init(topic: String, maxBytes: Int) {
    self.topic = topic
    self.maxBytes = maxBytes
  }

  mutating func add(key: ByteBuffer?, value: ByteBuffer, timestamp: Int64, partition: Int32) {
    let size = (key?.readableBytes ?? 0) + value.readableBytes + 32
    if var last = builders[partition]?.popLast() {
      if last.uncompressedSize + size <= maxBytes {
        last.append(key: key, value: value, timestamp: timestamp)
        builders[partition]!.append(last)
        return
      }
      builders[partition]!.append(last)
    }
    var builder = RecordBatchBuilder(capacity: min(size + 128, maxBytes))
    builder.append(key: key, value: value, timestamp: timestamp)
    builders[partition, default: []].append(builder)
  }

  /// The writes with the number of records in each, and the records of batches that could
  /// not be built.
  mutating func take() -> (writes: [PartitionRecords], counts: [Int], failed: Int) {
    var writes: [PartitionRecords] = []
    var counts: [Int] = []
    var failed = 0
    for (partition, list) in builders {
      for var builder in list {
        let count = Int(builder.count)  // before build(), which empties the builder
        guard let built = try? builder.build() else {
          failed += count
          continue
        }
        writes.append(PartitionRecords(topic: topic, partition: partition, records: built.buffer))
        counts.append(count)
      }
    }
    builders = [:]
    return (writes, counts, failed)
  }
}
