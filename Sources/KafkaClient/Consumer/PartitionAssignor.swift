package import KafkaProtocol
import NIOCore

extension PartitionAssignment {
  /// The client's configured assignor over the shared implementations in KafkaProtocol.
  package static func assign(
    _ assignor: KafkaPartitionAssignor, members: [GroupSubscription], partitionCounts: [String: Int]
  ) -> Result {
    switch assignor {
    case .roundRobin: roundRobin(members: members, partitionCounts: partitionCounts)
    default: range(members: members, partitionCounts: partitionCounts)
    }
  }
}

/// The consumer protocol's embedded encodings (``ConsumerProtocolCodec``), with failures as
/// the client's ``KafkaError``.
enum ConsumerProtocol {
  static func encodeSubscription(topics: [String]) throws -> ByteBuffer {
    do { return try ConsumerProtocolCodec.encodeSubscription(topics: topics) } catch {
      throw KafkaError(error)
    }
  }

  static func decodeSubscription(_ metadata: ByteBuffer) throws -> ConsumerProtocolSubscription {
    do { return try ConsumerProtocolCodec.decodeSubscription(metadata) } catch { throw KafkaError(error) }
  }

  static func encodeAssignment(_ partitions: [String: [Int32]]) throws -> ByteBuffer {
    do { return try ConsumerProtocolCodec.encodeAssignment(partitions) } catch { throw KafkaError(error) }
  }

  /// Decodes the assignment from SyncGroup; empty bytes mean no partitions.
  static func decodeAssignment(_ bytes: ByteBuffer) throws -> [KafkaTopicPartition] {
    do {
      return try ConsumerProtocolCodec.decodeAssignment(bytes).map {
        KafkaTopicPartition(topic: $0.topic, partition: KafkaPartition(rawValue: Int($0.partition)))
      }
    } catch { throw KafkaError(error) }
  }
}
