// dlopen-based bindings to libzstd.so.1 and liblz4.so.1 (see include/sluice_codecs.h).
//
// The build machines have the runtime libraries but not their development headers, so the
// handful of functions and structs used here are declared locally from the libraries'
// documented, stable interfaces. Libraries are loaded once, lazily, under pthread_once;
// afterwards the function pointers are read-only and safe to use from any thread.

#include "sluice_codecs.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

// MARK: - zstd interface (stable API of libzstd 1.x)

typedef struct {
  const void *src;
  size_t size;
  size_t pos;
} sluice_zstd_in_buffer_t;

typedef struct {
  void *dst;
  size_t size;
  size_t pos;
} sluice_zstd_out_buffer_t;

// ZSTD_dParameter value for the maximum window log a decompression context accepts.
#define SLUICE_ZSTD_D_WINDOW_LOG_MAX 100

static struct {
  size_t (*compress_bound)(size_t src_size);
  size_t (*compress)(void *dst, size_t dst_capacity, const void *src, size_t src_size, int level);
  unsigned (*is_error)(size_t code);
  const char *(*get_error_name)(size_t code);
  void *(*create_dstream)(void);
  size_t (*free_dstream)(void *stream);
  size_t (*init_dstream)(void *stream);
  size_t (*decompress_stream)(void *stream, sluice_zstd_out_buffer_t *out,
                              sluice_zstd_in_buffer_t *in);
  size_t (*dctx_set_parameter)(void *dctx, int param, int value);  // optional (>= 1.4.0)
  int loaded;
  char reason[256];
} sluice_zstd;

static pthread_once_t sluice_zstd_once = PTHREAD_ONCE_INIT;

// MARK: - lz4 frame interface (stable API of liblz4 >= 1.8)

#define SLUICE_LZ4F_VERSION 100u

typedef struct {
  int block_size_id;            // LZ4F_blockSizeID_t: 0 = default (64 KiB)
  int block_mode;               // LZ4F_blockMode_t: 0 = linked, 1 = independent
  int content_checksum_flag;    // LZ4F_contentChecksum_t
  int frame_type;               // LZ4F_frameType_t: 0 = frame
  unsigned long long content_size;
  unsigned dict_id;
  int block_checksum_flag;      // LZ4F_blockChecksum_t
} sluice_lz4f_frame_info_t;

typedef struct {
  sluice_lz4f_frame_info_t frame_info;
  int compression_level;
  unsigned auto_flush;
  unsigned favor_dec_speed;
  unsigned reserved[3];
} sluice_lz4f_preferences_t;

static struct {
  unsigned (*is_error)(size_t code);
  const char *(*get_error_name)(size_t code);
  size_t (*create_dctx)(void **dctx, unsigned version);
  size_t (*free_dctx)(void *dctx);
  size_t (*decompress)(void *dctx, void *dst, size_t *dst_size, const void *src,
                       size_t *src_size, const void *options);
  size_t (*compress_frame_bound)(size_t src_size, const sluice_lz4f_preferences_t *prefs);
  size_t (*compress_frame)(void *dst, size_t dst_capacity, const void *src, size_t src_size,
                           const sluice_lz4f_preferences_t *prefs);
  int loaded;
  char reason[256];
} sluice_lz4;

static pthread_once_t sluice_lz4_once = PTHREAD_ONCE_INIT;

// MARK: - loading

static void *sluice_open(const char *soname, char *reason, size_t reason_size) {
  void *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    const char *err = dlerror();
    snprintf(reason, reason_size, "cannot load %s: %s", soname, err ? err : "unknown error");
  }
  return handle;
}

// Resolves `name` into *slot; on failure records the reason and returns 0.
static int sluice_sym(void *handle, const char *name, void *slot, char *reason,
                      size_t reason_size, const char *soname) {
  void *sym = dlsym(handle, name);
  if (sym == NULL) {
    snprintf(reason, reason_size, "%s lacks symbol %s", soname, name);
    return 0;
  }
  memcpy(slot, &sym, sizeof(sym));
  return 1;
}

static void sluice_zstd_load(void) {
  static const char soname[] = "libzstd.so.1";
  char *reason = sluice_zstd.reason;
  size_t rs = sizeof(sluice_zstd.reason);
  void *h = sluice_open(soname, reason, rs);
  if (h == NULL) return;
  int ok = sluice_sym(h, "ZSTD_compressBound", &sluice_zstd.compress_bound, reason, rs, soname) &&
           sluice_sym(h, "ZSTD_compress", &sluice_zstd.compress, reason, rs, soname) &&
           sluice_sym(h, "ZSTD_isError", &sluice_zstd.is_error, reason, rs, soname) &&
           sluice_sym(h, "ZSTD_getErrorName", &sluice_zstd.get_error_name, reason, rs, soname) &&
           sluice_sym(h, "ZSTD_createDStream", &sluice_zstd.create_dstream, reason, rs, soname) &&
           sluice_sym(h, "ZSTD_freeDStream", &sluice_zstd.free_dstream, reason, rs, soname) &&
           sluice_sym(h, "ZSTD_initDStream", &sluice_zstd.init_dstream, reason, rs, soname) &&
           sluice_sym(h, "ZSTD_decompressStream", &sluice_zstd.decompress_stream, reason, rs,
                      soname);
  if (!ok) {
    // Keep the handle: unloading while another thread might race is not worth the risk.
    return;
  }
  void *opt = dlsym(h, "ZSTD_DCtx_setParameter");
  if (opt != NULL) memcpy(&sluice_zstd.dctx_set_parameter, &opt, sizeof(opt));
  sluice_zstd.reason[0] = '\0';
  sluice_zstd.loaded = 1;
}

static void sluice_lz4_load(void) {
  static const char soname[] = "liblz4.so.1";
  char *reason = sluice_lz4.reason;
  size_t rs = sizeof(sluice_lz4.reason);
  void *h = sluice_open(soname, reason, rs);
  if (h == NULL) return;
  int ok =
      sluice_sym(h, "LZ4F_isError", &sluice_lz4.is_error, reason, rs, soname) &&
      sluice_sym(h, "LZ4F_getErrorName", &sluice_lz4.get_error_name, reason, rs, soname) &&
      sluice_sym(h, "LZ4F_createDecompressionContext", &sluice_lz4.create_dctx, reason, rs,
                 soname) &&
      sluice_sym(h, "LZ4F_freeDecompressionContext", &sluice_lz4.free_dctx, reason, rs, soname) &&
      sluice_sym(h, "LZ4F_decompress", &sluice_lz4.decompress, reason, rs, soname) &&
      sluice_sym(h, "LZ4F_compressFrameBound", &sluice_lz4.compress_frame_bound, reason, rs,
                 soname) &&
      sluice_sym(h, "LZ4F_compressFrame", &sluice_lz4.compress_frame, reason, rs, soname);
  if (!ok) return;
  sluice_lz4.reason[0] = '\0';
  sluice_lz4.loaded = 1;
}

static int sluice_zstd_ready(void) {
  pthread_once(&sluice_zstd_once, sluice_zstd_load);
  return sluice_zstd.loaded;
}

static int sluice_lz4_ready(void) {
  pthread_once(&sluice_lz4_once, sluice_lz4_load);
  return sluice_lz4.loaded;
}

// MARK: - zstd

int sluice_zstd_available(void) { return sluice_zstd_ready(); }

const char *sluice_zstd_unavailable_reason(void) {
  sluice_zstd_ready();
  return sluice_zstd.reason;
}

size_t sluice_zstd_compress_bound(size_t size) {
  if (!sluice_zstd_ready()) return 0;
  size_t bound = sluice_zstd.compress_bound(size);
  return sluice_zstd.is_error(bound) ? 0 : bound;
}

int sluice_zstd_compress(void *dst, size_t dst_capacity, const void *src, size_t src_size,
                         int level, size_t *written, const char **error) {
  *written = 0;
  if (!sluice_zstd_ready()) {
    *error = sluice_zstd.reason;
    return -1;
  }
  size_t rc = sluice_zstd.compress(dst, dst_capacity, src, src_size, level);
  if (sluice_zstd.is_error(rc)) {
    *error = sluice_zstd.get_error_name(rc);
    return -1;
  }
  *written = rc;
  return 0;
}

sluice_zstd_dstream *sluice_zstd_dstream_create(int window_log_max) {
  if (!sluice_zstd_ready()) return NULL;
  void *stream = sluice_zstd.create_dstream();
  if (stream == NULL) return NULL;
  size_t rc = sluice_zstd.init_dstream(stream);
  if (sluice_zstd.is_error(rc)) {
    sluice_zstd.free_dstream(stream);
    return NULL;
  }
  if (window_log_max > 0 && sluice_zstd.dctx_set_parameter != NULL) {
    rc = sluice_zstd.dctx_set_parameter(stream, SLUICE_ZSTD_D_WINDOW_LOG_MAX, window_log_max);
    if (sluice_zstd.is_error(rc)) {
      sluice_zstd.free_dstream(stream);
      return NULL;
    }
  }
  return (sluice_zstd_dstream *)stream;
}

void sluice_zstd_dstream_free(sluice_zstd_dstream *stream) {
  if (stream != NULL && sluice_zstd.loaded) sluice_zstd.free_dstream(stream);
}

sluice_step_result sluice_zstd_dstream_step(sluice_zstd_dstream *stream, const void *src,
                                            size_t src_size, size_t *src_pos, void *dst,
                                            size_t dst_capacity, size_t *dst_pos,
                                            const char **error) {
  if (stream == NULL || !sluice_zstd.loaded || *src_pos > src_size || *dst_pos > dst_capacity) {
    *error = "invalid zstd stream state";
    return SLUICE_STEP_ERROR;
  }
  sluice_zstd_in_buffer_t in = {src, src_size, *src_pos};
  sluice_zstd_out_buffer_t out = {dst, dst_capacity, *dst_pos};
  size_t rc = sluice_zstd.decompress_stream(stream, &out, &in);
  *src_pos = in.pos;
  *dst_pos = out.pos;
  if (sluice_zstd.is_error(rc)) {
    *error = sluice_zstd.get_error_name(rc);
    return SLUICE_STEP_ERROR;
  }
  return rc == 0 ? SLUICE_STEP_FRAME_END : SLUICE_STEP_CONTINUE;
}

// MARK: - lz4

int sluice_lz4_available(void) { return sluice_lz4_ready(); }

const char *sluice_lz4_unavailable_reason(void) {
  sluice_lz4_ready();
  return sluice_lz4.reason;
}

static void sluice_lz4_kafka_preferences(sluice_lz4f_preferences_t *prefs) {
  memset(prefs, 0, sizeof(*prefs));
  // Kafka's Java reader decodes every block on its own, without the previous block as a
  // dictionary, so blocks must be independent. Everything else stays at the defaults.
  prefs->frame_info.block_mode = 1;
}

size_t sluice_lz4_compress_frame_bound(size_t size) {
  if (!sluice_lz4_ready()) return 0;
  sluice_lz4f_preferences_t prefs;
  sluice_lz4_kafka_preferences(&prefs);
  size_t bound = sluice_lz4.compress_frame_bound(size, &prefs);
  return sluice_lz4.is_error(bound) ? 0 : bound;
}

int sluice_lz4_compress_frame(void *dst, size_t dst_capacity, const void *src, size_t src_size,
                              int level, size_t *written, const char **error) {
  *written = 0;
  if (!sluice_lz4_ready()) {
    *error = sluice_lz4.reason;
    return -1;
  }
  sluice_lz4f_preferences_t prefs;
  sluice_lz4_kafka_preferences(&prefs);
  prefs.compression_level = level;
  size_t rc = sluice_lz4.compress_frame(dst, dst_capacity, src, src_size, &prefs);
  if (sluice_lz4.is_error(rc)) {
    *error = sluice_lz4.get_error_name(rc);
    return -1;
  }
  *written = rc;
  return 0;
}

sluice_lz4_dctx *sluice_lz4_dctx_create(void) {
  if (!sluice_lz4_ready()) return NULL;
  void *ctx = NULL;
  size_t rc = sluice_lz4.create_dctx(&ctx, SLUICE_LZ4F_VERSION);
  if (sluice_lz4.is_error(rc)) {
    if (ctx != NULL) sluice_lz4.free_dctx(ctx);
    return NULL;
  }
  return (sluice_lz4_dctx *)ctx;
}

void sluice_lz4_dctx_free(sluice_lz4_dctx *ctx) {
  if (ctx != NULL && sluice_lz4.loaded) sluice_lz4.free_dctx(ctx);
}

sluice_step_result sluice_lz4_dctx_step(sluice_lz4_dctx *ctx, const void *src, size_t src_size,
                                        size_t *src_pos, void *dst, size_t dst_capacity,
                                        size_t *dst_pos, const char **error) {
  if (ctx == NULL || !sluice_lz4.loaded || *src_pos > src_size || *dst_pos > dst_capacity) {
    *error = "invalid lz4 context state";
    return SLUICE_STEP_ERROR;
  }
  size_t in_size = src_size - *src_pos;
  size_t out_size = dst_capacity - *dst_pos;
  size_t rc = sluice_lz4.decompress(ctx, (char *)dst + *dst_pos, &out_size,
                                    (const char *)src + *src_pos, &in_size, NULL);
  if (sluice_lz4.is_error(rc)) {
    *error = sluice_lz4.get_error_name(rc);
    return SLUICE_STEP_ERROR;
  }
  *src_pos += in_size;
  *dst_pos += out_size;
  return rc == 0 ? SLUICE_STEP_FRAME_END : SLUICE_STEP_CONTINUE;
}
