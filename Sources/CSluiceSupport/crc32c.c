// CRC-32C (Castagnoli) for RecordBatch v2 checksums.
//
// Three implementations behind one entry point, chosen once per process:
// - x86_64 with SSE4.2: the `crc32` instruction, 8 bytes at a time;
// - aarch64 with the CRC extension: `crc32cx` (via __crc32cd), 8 bytes at a time;
// - anything else: slicing-by-8 tables.
// The hardware instruction has a latency of several cycles but a throughput of one per
// cycle, so long inputs are cut into three equal blocks processed as three independent
// streams in one loop; the three partial CRCs are then joined with "shift" tables that
// advance a CRC register over a block of zero bytes (the CRC is linear over GF(2), so
// crc(A ++ B) = shift_|B|(crc(A)) ^ crc_from_zero(B)).
//
// Internally all functions work on the raw register (already inverted); the public entry
// points apply the pre/post inversion so that checksums chain.

#include "sluice_crc32c.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  #define SLUICE_CRC_X86 1
  #include <nmmintrin.h>
  #define SLUICE_HW_TARGET __attribute__((target("sse4.2")))
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
  #define SLUICE_CRC_ARM 1
  #include <arm_acle.h>
  #define SLUICE_HW_TARGET
#elif defined(__aarch64__) && defined(__linux__) && defined(__clang__)
  #define SLUICE_CRC_ARM 1
  #define SLUICE_CRC_ARM_RUNTIME 1
  #include <arm_acle.h>
  #include <sys/auxv.h>
  #ifndef HWCAP_CRC32
    #define HWCAP_CRC32 (1 << 7)
  #endif
  #define SLUICE_HW_TARGET __attribute__((target("crc")))
#endif

#define SLUICE_CRC32C_POLY 0x82F63B78u

// Block sizes of the three-stream loops: LONG for big inputs, SHORT for the rest.
#define SLUICE_CRC_LONG 8192
#define SLUICE_CRC_SHORT 256

static uint32_t sluice_crc_table[8][256];
#if defined(SLUICE_CRC_X86) || defined(SLUICE_CRC_ARM)
static uint32_t sluice_crc_shift_long[4][256];
static uint32_t sluice_crc_shift_short[4][256];
#endif
static int sluice_crc_hw;
static pthread_once_t sluice_crc_once = PTHREAD_ONCE_INIT;

static inline uint64_t sluice_load64_le(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

// MARK: Portable slicing-by-8

static uint32_t sluice_crc_portable_raw(uint32_t crc, const unsigned char *p, size_t len) {
  while (len > 0 && ((uintptr_t)p & 7) != 0) {
    crc = sluice_crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    len--;
  }
  while (len >= 8) {
    uint64_t word = sluice_load64_le(p) ^ crc;
    uint32_t lo = (uint32_t)word;
    uint32_t hi = (uint32_t)(word >> 32);
    crc = sluice_crc_table[7][lo & 0xff] ^ sluice_crc_table[6][(lo >> 8) & 0xff] ^
          sluice_crc_table[5][(lo >> 16) & 0xff] ^ sluice_crc_table[4][lo >> 24] ^
          sluice_crc_table[3][hi & 0xff] ^ sluice_crc_table[2][(hi >> 8) & 0xff] ^
          sluice_crc_table[1][(hi >> 16) & 0xff] ^ sluice_crc_table[0][hi >> 24];
    p += 8;
    len -= 8;
  }
  while (len > 0) {
    crc = sluice_crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    len--;
  }
  return crc;
}

// MARK: Hardware

#if defined(SLUICE_CRC_X86) || defined(SLUICE_CRC_ARM)

  #if defined(SLUICE_CRC_X86)
SLUICE_HW_TARGET static inline uint32_t sluice_hw_u8(uint32_t crc, unsigned char b) {
  return _mm_crc32_u8(crc, b);
}
SLUICE_HW_TARGET static inline uint64_t sluice_hw_u64(uint64_t crc, uint64_t v) {
  return _mm_crc32_u64(crc, v);
}
  #else
SLUICE_HW_TARGET static inline uint32_t sluice_hw_u8(uint32_t crc, unsigned char b) {
  return __crc32cb(crc, b);
}
SLUICE_HW_TARGET static inline uint64_t sluice_hw_u64(uint64_t crc, uint64_t v) {
  return __crc32cd((uint32_t)crc, v);
}
  #endif

// Advances a raw CRC register over a block of zero bytes whose length the table encodes.
static inline uint32_t sluice_crc_shift(const uint32_t table[4][256], uint32_t crc) {
  return table[0][crc & 0xff] ^ table[1][(crc >> 8) & 0xff] ^ table[2][(crc >> 16) & 0xff] ^
         table[3][crc >> 24];
}

// Processes `count` blocks of 3 * block bytes as three interleaved streams.
SLUICE_HW_TARGET static inline uint32_t sluice_hw_3way(
    uint32_t crc, const unsigned char **pp, size_t blocks, size_t block,
    const uint32_t shift[4][256]) {
  const unsigned char *p = *pp;
  while (blocks-- > 0) {
    uint64_t c0 = crc, c1 = 0, c2 = 0;
    const unsigned char *end = p + block;
    do {
      c0 = sluice_hw_u64(c0, sluice_load64_le(p));
      c1 = sluice_hw_u64(c1, sluice_load64_le(p + block));
      c2 = sluice_hw_u64(c2, sluice_load64_le(p + 2 * block));
      p += 8;
    } while (p < end);
    crc = sluice_crc_shift(shift, (uint32_t)c0) ^ (uint32_t)c1;
    crc = sluice_crc_shift(shift, crc) ^ (uint32_t)c2;
    p += 2 * block;
  }
  *pp = p;
  return crc;
}

SLUICE_HW_TARGET static uint32_t sluice_crc_hw_raw(uint32_t crc, const unsigned char *p,
                                                   size_t len) {
  while (len > 0 && ((uintptr_t)p & 7) != 0) {
    crc = sluice_hw_u8(crc, *p++);
    len--;
  }
  size_t blocks = len / (3 * SLUICE_CRC_LONG);
  crc = sluice_hw_3way(crc, &p, blocks, SLUICE_CRC_LONG, sluice_crc_shift_long);
  len -= blocks * 3 * SLUICE_CRC_LONG;
  blocks = len / (3 * SLUICE_CRC_SHORT);
  crc = sluice_hw_3way(crc, &p, blocks, SLUICE_CRC_SHORT, sluice_crc_shift_short);
  len -= blocks * 3 * SLUICE_CRC_SHORT;
  uint64_t c = crc;
  while (len >= 8) {
    c = sluice_hw_u64(c, sluice_load64_le(p));
    p += 8;
    len -= 8;
  }
  crc = (uint32_t)c;
  while (len > 0) {
    crc = sluice_hw_u8(crc, *p++);
    len--;
  }
  return crc;
}

// Fills a shift table for `zeros` zero bytes. The operator is linear, so it is computed for
// the 32 single-bit registers and every byte entry is the XOR of its bits' images.
static void sluice_crc_make_shift(uint32_t table[4][256], size_t zeros) {
  uint32_t basis[32];
  for (int bit = 0; bit < 32; bit++) {
    uint32_t crc = 1u << bit;
    for (size_t i = 0; i < zeros; i++) crc = sluice_crc_table[0][crc & 0xff] ^ (crc >> 8);
    basis[bit] = crc;
  }
  for (int k = 0; k < 4; k++) {
    for (uint32_t b = 0; b < 256; b++) {
      uint32_t v = 0;
      for (int j = 0; j < 8; j++) {
        if (b & (1u << j)) v ^= basis[8 * k + j];
      }
      table[k][b] = v;
    }
  }
}

#endif  // hardware

// MARK: Setup and entry points

static void sluice_crc_init(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t crc = n;
    for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ SLUICE_CRC32C_POLY : crc >> 1;
    sluice_crc_table[0][n] = crc;
  }
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t crc = sluice_crc_table[0][n];
    for (int k = 1; k < 8; k++) {
      crc = sluice_crc_table[0][crc & 0xff] ^ (crc >> 8);
      sluice_crc_table[k][n] = crc;
    }
  }
#if defined(SLUICE_CRC_X86) || defined(SLUICE_CRC_ARM)
  sluice_crc_make_shift(sluice_crc_shift_long, SLUICE_CRC_LONG);
  sluice_crc_make_shift(sluice_crc_shift_short, SLUICE_CRC_SHORT);
#endif
#if defined(SLUICE_CRC_X86)
  __builtin_cpu_init();
  sluice_crc_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#elif defined(SLUICE_CRC_ARM_RUNTIME)
  sluice_crc_hw = (getauxval(AT_HWCAP) & HWCAP_CRC32) ? 1 : 0;
#elif defined(SLUICE_CRC_ARM)
  sluice_crc_hw = 1;
#else
  sluice_crc_hw = 0;
#endif
}

uint32_t sluice_crc32c_update(uint32_t crc, const void *data, size_t len) {
  pthread_once(&sluice_crc_once, sluice_crc_init);
  const unsigned char *p = (const unsigned char *)data;
#if defined(SLUICE_CRC_X86) || defined(SLUICE_CRC_ARM)
  if (sluice_crc_hw) return ~sluice_crc_hw_raw(~crc, p, len);
#endif
  return ~sluice_crc_portable_raw(~crc, p, len);
}

uint32_t sluice_crc32c_update_portable(uint32_t crc, const void *data, size_t len) {
  pthread_once(&sluice_crc_once, sluice_crc_init);
  return ~sluice_crc_portable_raw(~crc, (const unsigned char *)data, len);
}

int sluice_crc32c_hardware_available(void) {
  pthread_once(&sluice_crc_once, sluice_crc_init);
  return sluice_crc_hw;
}
