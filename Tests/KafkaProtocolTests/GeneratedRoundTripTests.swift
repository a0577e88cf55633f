import KafkaProtocol
import NIOCore
import Testing

/// Every generated message, at every valid version, survives encode → decode → encode with
/// the same value and the same bytes, and consumes exactly the bytes it wrote.
@Suite struct GeneratedRoundTripTests {
  static let seeds: [UInt64] = [1, 2, 3, 4, 5, 6]

  @Test(arguments: allGeneratedMessageTypes.map { MessageTypeCase(type: $0) })
  func roundTripEveryVersion(_ testCase: MessageTypeCase) throws {
    try roundTrip(testCase.type)
  }

  func roundTrip<M: KafkaMessage & Sampleable>(_ type: M.Type) throws {
    for version in M.validVersions {
      for seed in Self.seeds {
        var rng = SampleRNG(seed: seed &+ UInt64(version) &* 1000)
        let value = M.sample(version: version, rng: &rng)
        let bytes = try value.encoded(version: version)
        let decoded = try M.decodeWhole(bytes, version: version)
        #expect(decoded == value, "\(M.self) v\(version) seed \(seed)")
        let again = try decoded.encoded(version: version)
        #expect(again == bytes, "\(M.self) v\(version) seed \(seed): re-encoding changed the bytes")
      }
    }
  }

  /// Every strict prefix of an encoded message fails with a typed error, never a crash.
  @Test(arguments: allGeneratedMessageTypes.map { MessageTypeCase(type: $0) })
  func truncatedInputThrows(_ testCase: MessageTypeCase) throws {
    try truncations(testCase.type)
  }

  func truncations<M: KafkaMessage & Sampleable>(_ type: M.Type) throws {
    for version in [M.validVersions.lowerBound, M.validVersions.upperBound] {
      var rng = SampleRNG(seed: 77)
      let bytes = try M.sample(version: version, rng: &rng).encoded(version: version)
      for length in 0..<bytes.readableBytes {
        let prefix = bytes.getSlice(at: bytes.readerIndex, length: length)!
        do throws(KafkaProtocolError) {
          _ = try M.decodeWhole(prefix, version: version)
          // A prefix can only decode if the message ends with nothing that was required;
          // a whole decode must then not have consumed everything — impossible — so fail.
          Issue.record("\(M.self) v\(version): \(length)-byte prefix of \(bytes.readableBytes) decoded")
        } catch {
          #expect(
            [.truncated, .invalidLength, .nullNotAllowed, .invalidVarint].contains(error.code),
            "\(M.self) v\(version) prefix \(length): \(error)")
        }
      }
    }
  }
}

struct MessageTypeCase: CustomTestStringConvertible, Sendable {
  let type: any (KafkaMessage & Sampleable).Type
  var testDescription: String { "\(type)" }
}
