import KafkaProtocol
import NIOCore
import Testing

@Suite struct CRC32CTests {
  /// Check values computed independently with a bit-at-a-time reference implementation.
  @Test func knownVectors() {
    #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    #expect(CRC32C.checksum([UInt8]()) == 0)
    #expect(CRC32C.checksum(Array("a".utf8)) == 0xC1D0_4330)
    #expect(CRC32C.checksum(Array("The quick brown fox jumps over the lazy dog".utf8)) == 0x2262_0404)
  }

  /// RFC 3720 (iSCSI) appendix B.4.
  @Test func rfc3720Vectors() {
    #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
    #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
    #expect(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
    let readPDU: [UInt8] = [
      0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
      0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]
    #expect(CRC32C.checksum(readPDU) == 0xD996_3A56)
  }

  @Test func portablePathMatchesVectors() {
    let digits = Array("123456789".utf8)
    #expect(digits.withUnsafeBytes { CRC32C.portableUpdate(0, $0) } == 0xE306_9283)
    let zeros = [UInt8](repeating: 0, count: 32)
    #expect(zeros.withUnsafeBytes { CRC32C.portableUpdate(0, $0) } == 0x8A91_36AA)
  }

  /// Every length 0...64 at every alignment 0...7, hardware (or dispatch) against the table.
  @Test func everyShortLengthAndAlignmentAgreesWithPortable() {
    var rng = SystemRandomNumberGenerator()
    let data = (0..<80).map { _ in UInt8.random(in: 0...255, using: &rng) }
    data.withUnsafeBytes { all in
      for start in 0..<8 {
        for length in 0...64 {
          let slice = UnsafeRawBufferPointer(rebasing: all[start..<start + length])
          #expect(
            CRC32C.checksum(slice) == CRC32C.portableUpdate(0, slice), "start \(start) length \(length)")
        }
      }
    }
  }

  /// Lengths around the three-stream block sizes (3 * 256 and 3 * 8192) and beyond.
  @Test func longInputsAgreeWithPortable() {
    var rng = SystemRandomNumberGenerator()
    let data = (0..<(200_000 + 8)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    let lengths = [
      767, 768, 769, 1023, 1024, 1536, 2303, 2304, 24_575, 24_576, 24_577, 24_576 + 768 + 7, 49_152, 65_536,
      100_003, 200_000,
    ]
    data.withUnsafeBytes { all in
      for start in [0, 1, 3, 7] {
        for length in lengths {
          let slice = UnsafeRawBufferPointer(rebasing: all[start..<start + length])
          #expect(
            CRC32C.checksum(slice) == CRC32C.portableUpdate(0, slice), "start \(start) length \(length)")
        }
      }
    }
  }

  @Test func chainingEqualsOneShot() {
    let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
    let whole = CRC32C.checksum(data)
    for cut in [0, 1, 5, 64, 777, 30_000, 99_999, 100_000] {
      let first = CRC32C.checksum(data[..<cut])
      #expect(CRC32C.update(first, data[cut...]) == whole, "cut at \(cut)")
      let portable = data.withUnsafeBytes { raw in
        CRC32C.portableUpdate(
          CRC32C.portableUpdate(0, UnsafeRawBufferPointer(rebasing: raw[..<cut])),
          UnsafeRawBufferPointer(rebasing: raw[cut...]))
      }
      #expect(portable == whole)
    }
  }

  @Test func byteBufferUsesReadableBytesOnly() {
    var buffer = ByteBuffer(bytes: Array("xx123456789".utf8))
    buffer.moveReaderIndex(forwardBy: 2)
    #expect(CRC32C.checksum(buffer) == 0xE306_9283)
    #expect(buffer.readerIndex == 2)
    let head = CRC32C.checksum(ByteBuffer(bytes: Array("1234".utf8)))
    #expect(CRC32C.update(head, ByteBuffer(bytes: Array("56789".utf8))) == 0xE306_9283)
  }

  #if arch(x86_64) || arch(arm64)
    @Test func hardwareIsUsedWhereTheCPUHasIt() {
      // Every x86_64 CPU Swift runs on in practice has SSE4.2; report rather than fail elsewhere.
      #if arch(x86_64)
        #expect(CRC32C.isHardwareAccelerated)
      #endif
    }
  #endif
}
