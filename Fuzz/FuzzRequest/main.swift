import KafkaProtocol
import NIOCore

// libFuzzer target: arbitrary bytes as a stream of request frames. Each frame goes through
// the frame decoder (1 MiB limit), the header and the generated body decoder of whatever
// API and version the header names; a decoded request is re-encoded, decoded again and
// re-encoded, and both encodings must be identical (bytes, not values: a float64 field may
// hold NaN, which is not equal to itself). Thrown KafkaProtocolErrors are expected; crashes, hangs and
// assertion failures are bugs.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  var buffer = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
  var frames = 0
  while frames < 64 {
    let frame: ByteBuffer?
    do {
      frame = try KafkaFrameDecoder.nextFrame(from: &buffer, maximumFrameSize: 1 << 20)
    } catch {
      break
    }
    guard let frame else { break }
    frames += 1
    guard let request = try? KafkaRequest.decode(frame: frame) else { continue }
    var wire = ByteBuffer()
    do {
      try request.encodeFrame(into: &wire)
    } catch {
      // Some decoded values cannot be re-encoded at the same version (e.g. a string longer
      // than int16 from a compact form) — fine, but decoding what we encoded must work.
      continue
    }
    guard let again = try? KafkaFrameDecoder.nextFrame(from: &wire, maximumFrameSize: Int.max),
      let reparsed = try? KafkaRequest.decode(frame: again)
    else {
      fatalError("re-encoded request does not decode: \(request.apiKey) v\(request.apiVersion)")
    }
    var rewire = ByteBuffer()
    guard (try? reparsed.encodeFrame(into: &rewire)) != nil else {
      fatalError("a decoded re-encoding does not encode: \(request.apiKey) v\(request.apiVersion)")
    }
    var first = ByteBuffer()
    try? request.encodeFrame(into: &first)
    precondition(rewire == first, "round trip changed \(request.apiKey) v\(request.apiVersion)")
  }
  return 0
}
