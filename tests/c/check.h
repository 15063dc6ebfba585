/* Tiny test helpers shared by the C tests: checks that count passes and failures, temporary
 * directories, and a "flag + condition variable" to wait for callbacks with a timeout. */
#ifndef CHECK_H
#define CHECK_H

#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dat.h"

static int passed, failed;

static inline void report_failure(const char *file, int line, const char *what) {
  failed++;
  char detail[512];
  size_t n = 0;
  dat_last_error(detail, sizeof detail, &n);
  fprintf(stderr, "%s:%d: FAILED: %s (last error: %s)\n", file, line, what, detail);
}

#define CHECK(cond)                                 \
  do {                                              \
    if (cond)                                       \
      passed++;                                     \
    else                                            \
      report_failure(__FILE__, __LINE__, #cond);    \
  } while (0)

/* Checks that `expr` returns `want` (a dat_status). */
#define CHECK_STATUS(expr, want)                                                   \
  do {                                                                             \
    dat_status got_ = (expr);                                                      \
    if (got_ == (want)) {                                                          \
      passed++;                                                                    \
    } else {                                                                       \
      char what_[512];                                                             \
      snprintf(what_, sizeof what_, "%s gave %d, not %s", #expr, (int)got_, #want); \
      report_failure(__FILE__, __LINE__, what_);                                   \
    }                                                                              \
  } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, DAT_OK)

/* Prints the closing line the test runner reads; the exit code says the same. */
static inline int finish(void) {
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

/* A fresh directory under $TMPDIR (or /tmp); the caller frees the string. */
static inline char *temp_dir(void) {
  const char *base = getenv("TMPDIR");
  char *path = malloc(4096);
  snprintf(path, 4096, "%s/dat-c-test-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(path)) {
    perror("mkdtemp");
    exit(2);
  }
  return path;
}

static inline int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* Removes a directory made by temp_dir and frees its name. */
static inline void remove_dir(char *path) {
  nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(path);
}

/* A counter that callbacks bump and tests wait on. */
typedef struct {
  pthread_mutex_t mutex;
  pthread_cond_t cond;
  int count;
  dat_status last_status;
} signal_t;

static inline void signal_init(signal_t *s) {
  pthread_mutex_init(&s->mutex, NULL);
  pthread_cond_init(&s->cond, NULL);
  s->count = 0;
  s->last_status = DAT_OTHER;
}

static inline void signal_destroy(signal_t *s) {
  pthread_mutex_destroy(&s->mutex);
  pthread_cond_destroy(&s->cond);
}

static inline void signal_raise(signal_t *s, dat_status status) {
  pthread_mutex_lock(&s->mutex);
  s->count++;
  s->last_status = status;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mutex);
}

/* Waits until the counter reaches `count`, for at most `ms`; returns the counter. */
static inline int signal_wait(signal_t *s, int count, long ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += ms / 1000;
  deadline.tv_nsec += (ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&s->mutex);
  while (s->count < count) {
    if (pthread_cond_timedwait(&s->cond, &s->mutex, &deadline) == ETIMEDOUT) break;
  }
  int got = s->count;
  pthread_mutex_unlock(&s->mutex);
  return got;
}

/* A store in a fresh directory, without fsync (tests do not need power-loss durability) and
 * with a small map (valgrind cannot reserve the default terabyte of address space). */
static inline const dat_store *open_test_store(char **dir) {
  *dir = temp_dir();
  dat_store_options opts = {.durability = DAT_DURABILITY_NO_SYNC, .map_size = 64u << 20};
  const dat_store *store = NULL;
  CHECK_OK(dat_store_open_with(*dir, &opts, &store));
  return store;
}

#endif
