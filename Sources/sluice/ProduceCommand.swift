import ArgumentParser
import KafkaClient
import KafkaProtocol
import NIOCore

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif
#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// `sluice produce TOPIC`: each input line is one record.
struct ProduceCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "produce",
    abstract: "Produce records: each line of stdin (or --file) is one record value.",
    discussion: "With --key-separator SEP a line is KEY SEP VALUE (split at the first SEP; lines without it "
      + "have no key). Exits 0 once every record is acknowledged, 2 on a Kafka error.")

  @OptionGroup var options: ClientOptions
  @Argument(help: "Topic name.") var topic: String
  @Option(help: "Split each line into key and value at the first occurrence of this string.")
  var keySeparator: String?
  @Option(name: .customLong("header"), help: "Header KEY=VALUE added to every record; repeatable.")
  var headers: [String] = []
  @Option(help: "Partition (default: by key, sticky random without one).") var partition: Int?
  @Option(help: "none, gzip, snappy, lz4 or zstd.") var compression: String = "none"
  @Option(help: "0, 1 or all.") var acks: String = "all"
  @Option(help: "Read lines from this file instead of stdin.") var file: String?
  @Option(help: "Linger time of a batch, in milliseconds.") var lingerMs: Int = 5
  @Flag(help: "Disable the idempotent producer.") var noIdempotence = false

  func run() async throws {
    try await runClientCommand {
      var configuration = KafkaProducerConfiguration(bootstrapAddresses: try options.addresses())
      configuration.connection = try options.connection()
      configuration.compression = try parseCompression(compression)
      configuration.acks = try parseAcks(acks)
      configuration.enableIdempotence = !noIdempotence
      configuration.linger = .milliseconds(lingerMs)
      if let separator = keySeparator, separator.isEmpty {
        throw ValidationError("--key-separator must not be empty")
      }
      if let partition, partition < 0 { throw ValidationError("--partition must be ≥ 0") }
      let recordHeaders = try headers.map { text -> KafkaHeader in
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
          throw ValidationError("--header expects KEY=VALUE, got \"\(text)\"")
        }
        return KafkaHeader(
          key: String(text[..<equals]), value: ByteBuffer(string: String(text[text.index(after: equals)...])))
      }
      let fd: Int32
      if let file {
        fd = open(file, O_RDONLY)
        guard fd >= 0 else { throw UsageError("cannot open \(file): \(String(cString: strerror(errno)))") }
      } else {
        fd = 0
      }
      defer { if fd != 0 { close(fd) } }
      let producer = try KafkaProducer(configuration: configuration, logger: try options.logger())
      let target = partition.map { KafkaPartition(rawValue: $0) } ?? .unassigned
      let separator = keySeparator.map { Array($0.utf8) }
      var reader = LineReader(fd: fd)
      do {
        while let line = try reader.next() {
          var key: ByteBuffer?
          var value = line
          if let separator, let at = find(separator, in: line) {
            key = line.getSlice(at: line.readerIndex, length: at)
            value = line.getSlice(
              at: line.readerIndex + at + separator.count, length: line.readableBytes - at - separator.count)!
          }
          try await producer.enqueue(
            KafkaProducerMessage(
              topic: topic, partition: target, headers: recordHeaders, key: key, value: value))
        }
        try await producer.close()
      } catch {
        try? await producer.close()
        throw error
      }
    }
  }
}

/// Position of `needle` in `line`'s readable bytes.
private func find(_ needle: [UInt8], in line: ByteBuffer) -> Int? {
  line.withUnsafeReadableBytes { raw in
    guard raw.count >= needle.count else { return nil }
    var i = 0
    while i + needle.count <= raw.count {
      if raw[i] == needle[0] {
        var match = true
        for j in 1..<needle.count where raw[i + j] != needle[j] {
          match = false
          break
        }
        if match { return i }
      }
      i += 1
    }
    return nil
  }
}

/// Reads newline-separated lines from a file descriptor in large chunks. A final line
/// without a newline is returned too; "\n" is stripped (a "\r" before it is kept).
struct LineReader {
  let fd: Int32
  private var buffer = ByteBuffer()
  private var eof = false

  init(fd: Int32) { self.fd = fd }

  /// The next line if it is already buffered, without reading.
  mutating func nextBuffered() -> ByteBuffer? {
    guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
    let line = buffer.readSlice(length: newline - buffer.readerIndex)!
    buffer.moveReaderIndex(forwardBy: 1)
    return line
  }

  /// The lines one read gives (at least one, waiting for it); nil at the end.
  mutating func nextBatch(max: Int = 1024) throws -> [ByteBuffer]? {
    guard let first = try next() else { return nil }
    var lines = [first]
    while lines.count < max, let line = nextBuffered() { lines.append(line) }
    return lines
  }

  mutating func next() throws -> ByteBuffer? {
    while true {
      if let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
        let length = newline - buffer.readerIndex
        let line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        return line
      }
      if eof {
        guard buffer.readableBytes > 0 else { return nil }
        return buffer.readSlice(length: buffer.readableBytes)
      }
      buffer.discardReadBytes()
      let count = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 1 << 16) { raw in
        var n: Int
        repeat { n = read(fd, raw.baseAddress, raw.count) } while n < 0 && errno == EINTR
        return max(n, 0)
      }
      if count == 0 { eof = true }
    }
  }
}
