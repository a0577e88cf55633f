import NIOCore
import SluiceFeed

/// Feeds arbitrary datagrams to the MoldUDP64 decoders (packets, requests, record envelopes)
/// and the receiver's sequencer: nothing may crash, and what decodes re-encodes to the same
/// bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
  if let request = try? MoldUDP64.decodeRequest(bytes) {
    precondition(MoldUDP64.request(request) == bytes, "request does not round-trip")
  }
  if let packet = try? MoldUDP64.decodePacket(bytes) {
    if !packet.messages.isEmpty {
      var builder = MoldUDP64.PacketBuilder(
        session: packet.session, sequence: packet.sequence, capacity: MoldUDP64.maxDatagram)
      for message in packet.messages { builder.append(message) }
      precondition(builder.finish() == bytes, "packet does not round-trip")
    }
    var sequencer = FeedSequencer(configuration: FeedSequencer.Configuration(from: size % 2 == 0 ? 1 : nil))
    _ = sequencer.receive(packet, retransmitted: false, nowMs: 0)
    _ = sequencer.receive(packet, retransmitted: true, nowMs: 200)
    _ = sequencer.tick(nowMs: 400)
    for message in packet.messages { _ = try? FeedRecord(decoding: message) }
  }
  _ = try? FeedRecord(decoding: bytes)
  return 0
}
