import Foundation
public import KafkaProtocol
public import NIOCore
public import SluiceBroker
public import SluiceKafka

extension Broker {
  /// Handles a Kafka request through the Kafka front door, records in memory (what the
  /// broker tests send).
  public func handle(_ request: KafkaRequest, context: RequestContext = RequestContext()) async
    -> KafkaResponseBody?
  {
    await KafkaFrontDoor(broker: self).handle(request, context: context)
  }

  /// A broker on a fresh temporary data directory.
  public static func makeForTest(
    clock: any BrokerClock = SystemClock(), directory: String? = nil,
    _ configure: (inout BrokerConfig) -> Void = { _ in }
  ) throws -> (Broker, String) {
    let directory = directory ?? NSTemporaryDirectory() + "sluice-test-\(UUID().uuidString)"
    var config = BrokerConfig()
    config.dataDirectory = directory
    configure(&config)
    return (try Broker(config: config, clock: clock), directory)
  }
}

/// Record batches built by hand, for tests that need exact bytes.
public enum TestBatches {
  /// One v2 batch holding `values`, with the given record timestamps (default 1000, 1001, …).
  public static func batch(_ values: [String], timestamps: [Int64]? = nil, codec: CompressionCodec = .none)
    -> ByteBuffer
  {
    var builder = RecordBatchBuilder(compression: codec)
    for (index, value) in values.enumerated() {
      builder.append(key: nil, value: Array(value.utf8), timestamp: timestamps?[index] ?? 1000 + Int64(index))
    }
    return try! builder.build().buffer
  }

  /// A batch around a hand-written records section (already compressed when `codec` is not
  /// none), with a correct CRC: what a client could send, whatever its records say.
  public static func raw(_ section: [UInt8], count: Int32, codec: CompressionCodec = .none) throws
    -> ByteBuffer
  {
    var body = ByteBuffer(bytes: section)
    var buffer = ByteBuffer()
    buffer.writeInteger(Int64(0))  // base offset
    buffer.writeInteger(
      Int32(RecordBatch.Layout.headerSize - RecordBatch.Layout.logOverhead + body.readableBytes))
    buffer.writeInteger(Int32(-1))  // partition leader epoch
    buffer.writeInteger(Int8(2))  // magic
    buffer.writeInteger(UInt32(0))  // CRC, set below
    buffer.writeInteger(Int16(codec.rawValue))
    buffer.writeInteger(count - 1)  // last offset delta
    buffer.writeInteger(Int64(1000))  // base timestamp
    buffer.writeInteger(Int64(1000))  // max timestamp
    buffer.writeInteger(Int64(-1))  // producer id
    buffer.writeInteger(Int16(-1))  // producer epoch
    buffer.writeInteger(Int32(-1))  // base sequence
    buffer.writeInteger(count)
    buffer.writeBuffer(&body)
    var batch = try RecordBatch(buffer)
    batch.updateCRC()
    return batch.buffer
  }
}

/// The values of the records in `records` (whole v2 batches), a null value as `<null>`.
public func recordValues(_ records: ByteBuffer?) throws -> [String] {
  guard let records else { return [] }
  var splitter = RecordBatchSplitter(records)
  var values: [String] = []
  while let batch = try splitter.next() {
    values += try batch.records(maxDecompressedSize: 1 << 20).map {
      $0.value.map { String(buffer: $0) } ?? "<null>"
    }
  }
  return values
}
