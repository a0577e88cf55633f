// libFuzzer target for the ZMTP 3.1 decoder and connection state machine (SluiceDirect): the
// bytes a ZeroMQ peer controls, from its greeting on.
//
// Input: one control byte, then the bytes the peer sends.
//   bits 0-1  our socket type: PUB, SUB, PUSH, PULL
//   bit 2     put a valid greeting in front (so that most inputs reach the frame decoder)
//   bit 3     and a READY from a compatible peer (so that most inputs reach the ready phase)
//   bits 4-7  the bytes arrive in chunks of 1 + 7 × this value
//
// Checked on every input: no crash or sanitizer report, and
// - the outputs do not depend on how the bytes were split into reads (whole vs. chunks);
// - nothing follows a close;
// - every message delivered respects the limits (size of all frames, frame count), and
//   encodes and decodes back to the same frames;
// - subscriptions only come out of a PUB, messages only out of a SUB or PULL.
//
// Build and run: scripts/fuzz.sh FuzzZMTP

import NIOCore
import SluiceDirect

let limits = ZMTPLimits(maxMessageSize: 4096, maxFrames: 16, maxCommandSize: 512)
let types: [ZMQSocketType] = [.pub, .sub, .push, .pull]
let peers = ["SUB", "PUB", "PULL", "PUSH"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard size > 0 else { return 0 }
  let control = data[0]
  let type = types[Int(control & 3)]
  var input = ByteBuffer()
  if control & 4 != 0 { input.writeImmutableBuffer(ZMTP.greeting()) }
  if control & 8 != 0 {
    ZMTP.writeCommand(
      "READY", data: ZMTP.properties([("Socket-Type", Array(peers[Int(control & 3)].utf8))]), into: &input)
  }
  input.writeBytes(UnsafeBufferPointer(start: data + 1, count: size - 1))
  let chunk = 1 + 7 * Int(control >> 4)

  var whole = ZMTPSession(socketType: type, limits: limits, nowMs: 0)
  var all = input
  let expected = whole.receive(&all, nowMs: 0)

  var split = ZMTPSession(socketType: type, limits: limits, nowMs: 0)
  var received = ByteBuffer()
  var outputs: [ZMTPSession.Output] = []
  var rest = input
  while rest.readableBytes > 0 {
    var piece = rest.readSlice(length: min(chunk, rest.readableBytes))!
    received.writeBuffer(&piece)
    outputs += split.receive(&received, nowMs: 0)
  }
  precondition(outputs == expected, "outputs depend on how the input was split")

  for (index, output) in expected.enumerated() {
    switch output {
    case .close:
      precondition(index == expected.count - 1, "output after close")
    case .message(let frames):
      precondition(type == .sub || type == .pull, "\(type) delivered a message")
      precondition(frames.count <= limits.maxFrames)
      precondition(frames.reduce(0) { $0 + $1.readableBytes } <= limits.maxMessageSize)
      var encoded = ZMTP.greeting()
      ZMTP.writeMessage(frames, into: &encoded)
      var decoder = ZMTPDecoder(limits: limits)
      _ = try! decoder.next(&encoded)
      precondition(try! decoder.next(&encoded) == .message(frames), "message does not round-trip")
    case .subscribe, .cancel:
      precondition(type == .pub, "\(type) got a subscription")
    case .write, .ready:
      break
    }
  }
  return 0
}
