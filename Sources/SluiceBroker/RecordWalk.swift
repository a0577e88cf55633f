public import KafkaProtocol
public import NIOCore

/// Walks the record batches a read returned, as the front doors that hand out records one by
/// one (event streams, REST consumers, webhooks, ZeroMQ bridges) need them: records at or
/// after a position, control batches skipped, decompression bounded.
public enum RecordWalk {
  /// Why a batch could not be walked: its base offset and the decoder's message.
  public struct Failure: Error {
    public var baseOffset: Int64
    public var message: String

    public init(baseOffset: Int64, message: String) {
      self.baseOffset = baseOffset
      self.message = message
    }
  }

  /// Calls `visit` for each data record at or after `position`, in order, and returns the
  /// next position: past the last batch, or the offset of the record `visit` declined
  /// (returning false), where walking stops.
  public static func walk(
    _ bytes: ByteBuffer, from position: Int64, maxDecompressedSize: Int,
    _ visit: (Record) throws(Failure) -> Bool
  ) throws(Failure) -> Int64 {
    var bytes = bytes
    var position = position
    while bytes.readableBytes >= RecordBatch.Layout.logOverhead,
      let length = bytes.getInteger(at: bytes.readerIndex + RecordBatch.Layout.batchLength, as: Int32.self),
      length >= 0, bytes.readableBytes >= RecordBatch.Layout.logOverhead + Int(length),
      let slice = bytes.readSlice(length: RecordBatch.Layout.logOverhead + Int(length))
    {
      guard let batch = try? RecordBatch(slice), batch.nextOffset > position else { continue }
      if !batch.isControl {
        do {
          var iterator = try batch.makeRecordIterator(maxDecompressedSize: maxDecompressedSize)
          while let record = try iterator.next() {
            if record.offset < position { continue }
            guard try visit(record) else { return record.offset }
          }
        } catch let failure as Failure {
          throw failure
        } catch {
          throw Failure(baseOffset: batch.baseOffset, message: "\(error)")
        }
      }
      position = batch.nextOffset
    }
    return position
  }
}
