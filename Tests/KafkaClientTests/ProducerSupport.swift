import KafkaClient

extension KafkaProducer {
  /// `sendAndAwait`, with a delivery failure thrown: the acknowledged message.
  @discardableResult
  func sendAcked<Key, Value>(_ message: KafkaProducerMessage<Key, Value>) async throws
    -> KafkaAcknowledgedMessage
  {
    try await sendAndAwait(message).get()
  }
}
