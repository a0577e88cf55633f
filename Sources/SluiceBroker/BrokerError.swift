public import KafkaProtocol

/// Why the broker refused or failed an operation: a code from Kafka's error catalogue (the
/// vocabulary every Kafka client already understands, and one the other front doors map to
/// their own: HTTP statuses, log lines) and a message for people.
public struct BrokerError: Error, Hashable, Sendable, CustomStringConvertible {
  public var code: ErrorCode
  public var message: String
  /// The records at fault, by index within their batch, when the error is about records
  /// (Produce v8+ `record_errors`, KIP-467).
  public var recordErrors: [RecordError]

  public struct RecordError: Hashable, Sendable {
    public var index: Int32
    public var message: String
    public init(index: Int32, message: String) {
      self.index = index
      self.message = message
    }
  }

  public init(_ code: ErrorCode, _ message: String, recordErrors: [RecordError] = []) {
    self.code = code
    self.message = message
    self.recordErrors = recordErrors
  }

  public var description: String { "\(code): \(message)" }

  static func unknownPartition(_ topic: String, _ partition: Int32) -> BrokerError {
    BrokerError(
      .unknownTopicOrPartition, "This server does not host this topic-partition (\(topic)-\(partition)).")
  }
}
