import KafkaProtocol
import NIOCore

// libFuzzer target for the compression codecs. The first byte picks the codec (byte % 5)
// and the mode:
// - bit 7 clear: decompress the rest with a 1 MiB limit. Thrown KafkaProtocolErrors are
//   expected; a result over the limit, a crash, a hang or a sanitizer report is a bug.
//   A successful result is compressed again and must round-trip.
// - bit 7 set: compress the rest, then decompress it; the bytes must come back unchanged.
private let limit = 1 << 20

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard size > 0 else { return 0 }
  let selector = data[0]
  guard let codec = CompressionCodec(rawValue: Int8(selector % 5)) else { return 0 }
  let rest = ByteBuffer(bytes: UnsafeBufferPointer(start: data + 1, count: size - 1))

  if selector & 0x80 != 0 {
    roundTrip(codec, rest)
    return 0
  }
  guard let plain = try? codec.decompress(rest, maxDecompressedSize: limit) else { return 0 }
  precondition(plain.readableBytes <= limit, "\(codec.name): \(plain.readableBytes) bytes over the limit")
  if plain.readableBytes <= 64 << 10 {
    roundTrip(codec, plain)
  }
  return 0
}

private func roundTrip(_ codec: CompressionCodec, _ plain: ByteBuffer) {
  let packed: ByteBuffer
  do {
    packed = try codec.compress(plain)
  } catch {
    fatalError("\(codec.name): compress failed: \(error)")
  }
  do {
    let back = try codec.decompress(packed, maxDecompressedSize: plain.readableBytes)
    precondition(back == plain, "\(codec.name): round trip changed the data")
  } catch {
    fatalError("\(codec.name): own output does not decompress: \(error)")
  }
}
