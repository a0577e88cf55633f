import Foundation
import KafkaProtocol
import NIOCore
import Testing

/// Inputs the fuzzers found, kept so the fixes stay fixed.
@Suite struct FuzzRegressionTests {
  /// A decoded request re-encodes to bytes that decode and encode to the same bytes. (The
  /// first input: AlterClientQuotas with a NaN float64 — equal bytes, unequal values.)
  @Test(arguments: [
    "AAAAYAAxAAAAAEAAAAAAAAABAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAD///+JdAAAYwAAAAAAAAAAAAAtYwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB0AABjAAAAAAAAAAAAAC1jQWFwdP////8BAA=="
  ])
  func requestRoundTrip(_ base64: String) throws {
    var buffer = ByteBuffer(bytes: Data(base64Encoded: base64)!)
    guard let frame = try KafkaFrameDecoder.nextFrame(from: &buffer, maximumFrameSize: 1 << 20),
      let request = try? KafkaRequest.decode(frame: frame)
    else { return }
    var wire = ByteBuffer()
    guard (try? request.encodeFrame(into: &wire)) != nil else { return }
    let again = try #require(try KafkaFrameDecoder.nextFrame(from: &wire, maximumFrameSize: Int.max))
    let reparsed = try KafkaRequest.decode(frame: again)
    var first = ByteBuffer()
    try request.encodeFrame(into: &first)
    var second = ByteBuffer()
    try reparsed.encodeFrame(into: &second)
    #expect(first == second)
  }
}
