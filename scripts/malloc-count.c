// Counts heap allocations of a process: LD_PRELOAD this (built by
// scripts/bench-requests.py) and send SIGUSR2; the count so far goes to the file
// named by MALLOC_COUNT_FILE. Every allocation entry point of glibc is counted
// (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign), then served
// by glibc itself.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static unsigned long long allocations;

static void count(void) { __atomic_fetch_add(&allocations, 1, __ATOMIC_RELAXED); }

void *malloc(size_t size) { count(); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { count(); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { count(); return __libc_realloc(p, size); }
void *memalign(size_t align, size_t size) { count(); return __libc_memalign(align, size); }
void *aligned_alloc(size_t align, size_t size) { count(); return __libc_memalign(align, size); }
int posix_memalign(void **out, size_t align, size_t size) {
  count();
  void *p = __libc_memalign(align, size);
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}

// Async-signal-safe: open, write and close only.
static void report(int signal) {
  (void)signal;
  const char *path = getenv("MALLOC_COUNT_FILE");
  if (path == NULL) return;
  char digits[32];
  int n = 0;
  unsigned long long value = __atomic_load_n(&allocations, __ATOMIC_RELAXED);
  do { digits[sizeof digits - 1 - n++] = (char)('0' + value % 10); value /= 10; } while (value > 0);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  ssize_t ignored = write(fd, digits + sizeof digits - n, (size_t)n);
  (void)ignored;
  close(fd);
}

__attribute__((constructor)) static void install(void) {
  struct sigaction action = {0};
  action.sa_handler = report;
  action.sa_flags = SA_RESTART;
  sigaction(SIGUSR2, &action, NULL);
}
