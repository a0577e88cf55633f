#pragma once
// Bindings to the zstd and lz4 runtime libraries, loaded lazily with dlopen.
//
// No third-party header is included: the few functions and structs used are declared in
// codecs.c from their documented interfaces. Every entry point is safe to call when the
// library is missing; callers check sluice_*_available() first and report the reason.
// See docs/compression.md.

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Result of one streaming decompression step.
typedef enum {
  /// Progress was made; the current frame is not finished yet.
  SLUICE_STEP_CONTINUE = 0,
  /// A frame was completely decoded and flushed (more frames may follow in the input).
  SLUICE_STEP_FRAME_END = 1,
  /// The library reported an error; see the error out-parameter.
  SLUICE_STEP_ERROR = -1,
} sluice_step_result;

// MARK: zstd

/// 1 when libzstd.so.1 was loaded and every symbol needed was found, 0 otherwise.
int sluice_zstd_available(void);
/// Why zstd is unavailable (a static string), or "" when it is available.
const char *sluice_zstd_unavailable_reason(void);
/// Worst-case compressed size for `size` input bytes; 0 when unavailable.
size_t sluice_zstd_compress_bound(size_t size);
/// One-shot compression. Returns 0 and sets *written, or -1 and sets *error.
int sluice_zstd_compress(void *dst, size_t dst_capacity, const void *src, size_t src_size,
                         int level, size_t *written, const char **error);

typedef struct sluice_zstd_dstream sluice_zstd_dstream;
/// A decompression stream whose window is limited to 2^window_log_max bytes
/// (0 keeps the library default). NULL when unavailable or out of memory.
sluice_zstd_dstream *sluice_zstd_dstream_create(int window_log_max);
void sluice_zstd_dstream_free(sluice_zstd_dstream *stream);
/// Decodes from src[*src_pos..<src_size] into dst[*dst_pos..<dst_capacity], advancing both.
sluice_step_result sluice_zstd_dstream_step(sluice_zstd_dstream *stream, const void *src,
                                            size_t src_size, size_t *src_pos, void *dst,
                                            size_t dst_capacity, size_t *dst_pos,
                                            const char **error);

// MARK: lz4 (frame format)

/// 1 when liblz4.so.1 was loaded and every symbol needed was found, 0 otherwise.
int sluice_lz4_available(void);
/// Why lz4 is unavailable (a static string), or "" when it is available.
const char *sluice_lz4_unavailable_reason(void);
/// Worst-case size of a frame produced by sluice_lz4_compress_frame; 0 when unavailable.
size_t sluice_lz4_compress_frame_bound(size_t size);
/// Compresses into one LZ4 frame (64 KiB independent blocks, as Kafka's Java reader
/// expects) at `level` (0: the library's fast default; 3 and above: LZ4 HC). Returns 0 and
/// sets *written, or -1 and sets *error.
int sluice_lz4_compress_frame(void *dst, size_t dst_capacity, const void *src, size_t src_size,
                              int level, size_t *written, const char **error);

typedef struct sluice_lz4_dctx sluice_lz4_dctx;
/// NULL when unavailable or out of memory.
sluice_lz4_dctx *sluice_lz4_dctx_create(void);
void sluice_lz4_dctx_free(sluice_lz4_dctx *ctx);
/// Decodes from src[*src_pos..<src_size] into dst[*dst_pos..<dst_capacity], advancing both.
sluice_step_result sluice_lz4_dctx_step(sluice_lz4_dctx *ctx, const void *src, size_t src_size,
                                        size_t *src_pos, void *dst, size_t dst_capacity,
                                        size_t *dst_pos, const char **error);

#ifdef __cplusplus
}
#endif
