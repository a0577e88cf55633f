import NIOCore
import SluiceBroker

// libFuzzer target for share groups' state: the first byte picks
//  - even: the bytes are one share-state journal record (`ShareStore.decode`, what the broker
//    reads back from `share-groups/state.log` after a crash or a damaged disk): a record that
//    decodes must encode and decode to the same value;
//  - odd: the bytes are a program of operations on one `SharePartitionState` (acquire,
//    acknowledge with arbitrary offsets and types, release, lock expiry, start moves, a
//    persist-and-restore), whose invariants are checked after every step.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = UnsafeBufferPointer(start: data, count: size)
  guard let mode = bytes.first else { return 0 }
  if mode % 2 == 0 {
    var buffer = ByteBuffer(bytes: bytes.dropFirst())
    guard let change = ShareStore.decode(&buffer) else { return 0 }
    var encoded = ShareStore.encode(change)
    let copy = encoded
    guard let again = ShareStore.decode(&encoded) else { fatalError("an encoded record does not decode") }
    precondition(again == change, "record round trip changed the value")
    precondition(ShareStore.encode(again) == copy, "record round trip changed the bytes")
    return 0
  }
  var input = bytes.dropFirst().makeIterator()
  func next() -> UInt8? { input.next() }
  func offset() -> Int64? {
    guard let byte = next() else { return nil }
    switch byte {
    case 0xFF: return .max
    case 0xFE: return .min
    default: return Int64(byte % 80)
    }
  }
  let limits = SharePartitionState.Limits(
    lockDurationMs: 10, deliveryCountLimit: Int16(mode / 2 % 5 + 1), maxInFlight: Int(mode / 10 % 40 + 1))
  var share = SharePartitionState(startOffset: 0, limits: limits)
  var now: Int64 = 0
  var steps = 0
  while steps < 256, let op = next() {
    steps += 1
    now += Int64(op % 7)
    let member = "m\(op / 64)"
    switch op % 6 {
    case 0:
      guard let low = offset(), let high = offset(), let count = next(), low <= high else { continue }
      // Odd counts: batches of 8 offsets, whose ends acquisition may run on to.
      let aligned = count % 2 == 1 && low >= 0 && high < 1_000
      let ends: [Int64] = aligned ? Array(stride(from: low + 7, to: high, by: 8)) + [high] : []
      let acquired = share.acquire(
        member: member, offsets: low...high, maxRecords: Int(count % 50), now: now, batchEnds: ends)
      var taken = 0
      for range in acquired {
        precondition(range.first <= range.last && range.first >= low && range.last <= high)
        precondition(range.deliveryCount >= 1 && range.deliveryCount <= limits.deliveryCountLimit)
        taken += Int(range.last - range.first + 1)
      }
      // Past maxRecords only to the end of the batch it stopped in (at most 7 more, and
      // never more than maxRecords more).
      precondition(taken <= Int(count % 50) + (aligned ? min(7, Int(count % 50)) : 0))
    case 1:
      guard let first = offset(), let last = offset(), let typeCount = next() else { continue }
      var types: [ShareAcknowledgeType] = []
      for _ in 0..<(typeCount % 4 + 1) {
        types.append(ShareAcknowledgeType(rawValue: Int8((next() ?? 1) % 4)) ?? .accept)
      }
      let before = share
      if case .failure = share.acknowledge(member: member, first: first, last: last, types: types) {
        precondition(share == before, "a refused acknowledgement changed the state")
      }
    case 2:
      _ = share.releaseAll(member: member)
      _ = share.archiveExhausted()
    case 3:
      _ = share.expireLocks(now: now)
    case 4:
      guard let target = offset(), target >= 0, target < 1_000 else { continue }
      share.moveStart(to: target)
    default:
      let restored = SharePartitionState(
        startOffset: share.startOffset, endOffset: share.endOffset, runs: share.runs, limits: limits)
      precondition(restored.startOffset >= share.startOffset && restored.endOffset == share.endOffset)
      precondition(restored.acquiredCount == 0)
      share = restored
    }
    // Invariants: the window is bounded, starts with an unsettled record, and locks have owners.
    precondition(share.entries.count <= limits.maxInFlight)
    if let head = share.entries.first { precondition(head.state == .available || head.state == .acquired) }
    for entry in share.entries {
      precondition((entry.state == .acquired) == (share.owner(of: entry) != nil))
      precondition(entry.deliveryCount >= 0 && entry.deliveryCount <= limits.deliveryCountLimit)
    }
  }
  return 0
}
