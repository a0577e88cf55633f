#pragma once
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of Kafka's
// RecordBatch v2 (bytes 21..end of a batch).
//
// The running value passed in and returned is the finished CRC (pre- and post-inversion are
// applied inside), so checksums chain: update(update(0, a), b) == update(0, a ++ b), and the
// CRC of an empty input is 0.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// CRC-32C of `len` bytes at `data`, continuing from `crc` (0 to start). Uses the CPU's CRC
/// instructions when present (x86_64 SSE4.2, aarch64 CRC32), else a slicing-by-8 table.
uint32_t sluice_crc32c_update(uint32_t crc, const void *data, size_t len);

/// The portable slicing-by-8 implementation, whatever the CPU offers (for tests and
/// benchmarks; same contract as sluice_crc32c_update).
uint32_t sluice_crc32c_update_portable(uint32_t crc, const void *data, size_t len);

/// 1 when sluice_crc32c_update uses hardware CRC instructions on this CPU, 0 otherwise.
int sluice_crc32c_hardware_available(void);

#ifdef __cplusplus
}
#endif
