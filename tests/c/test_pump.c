/* The byte pump: two stores in one process, each with a pump, the test shuttling bytes between
 * them (its own "transport") until the reader has every block, then a live append. */
#include "check.h"

#define BLOCKS 200
#define MAX_ROUNDS 100000

/* Moves what `from` has to send into `to`; returns the number of bytes moved, or -1 on error. */
static long shuttle(dat_pump *from, dat_pump *to) {
  dat_bytes out = {0};
  if (dat_pump_take_output(from, &out) != DAT_OK) return -1;
  long n = (long)out.len;
  dat_status s = n > 0 ? dat_pump_receive(to, out.data, out.len) : DAT_OK;
  dat_bytes_free(&out);
  return s == DAT_OK ? n : -1;
}

/* True when `log` holds every block of `start .. end` locally. */
static int has_all(const dat_log *log, uint64_t start, uint64_t end) {
  for (uint64_t i = end; i-- > start;) {
    dat_bytes block = {0};
    if (dat_log_get(log, i, 0, &block) != DAT_OK) return 0;
    dat_bytes_free(&block);
  }
  return 1;
}

/* Pumps until `log` holds blocks `start .. end`, or nothing moves for many rounds. */
static int pump_until(dat_pump *a, dat_pump *b, const dat_log *log, uint64_t start, uint64_t end) {
  int idle = 0;
  for (int round = 0; round < MAX_ROUNDS; round++) {
    if (has_all(log, start, end)) return 1;
    long ab = shuttle(a, b), ba = shuttle(b, a);
    if (ab < 0 || ba < 0) return 0;
    if (ab == 0 && ba == 0) {
      /* nothing in flight: let the schedulers' clocks run (request timeouts, retries) */
      if (++idle > 1000) return 0;
      if (dat_pump_tick(a) != DAT_OK || dat_pump_tick(b) != DAT_OK) return 0;
    } else {
      idle = 0;
    }
  }
  return 0;
}

int main(void) {
  char *wdir, *rdir;
  const dat_store *wstore = open_test_store(&wdir);
  const dat_store *rstore = open_test_store(&rdir);

  dat_log *wlog = NULL;
  CHECK_OK(dat_log_create(wstore, &wlog));
  uint8_t payload[1000];
  int appended = 0;
  for (int i = 0; i < BLOCKS; i++) {
    memset(payload, 'a' + i % 26, sizeof payload);
    appended += dat_log_append(wlog, payload, (size_t)(i % 7) * 100 + 1, NULL) == DAT_OK;
  }
  CHECK(appended == BLOCKS);
  uint8_t key[32];
  CHECK_OK(dat_log_key(wlog, key, sizeof key));
  dat_log *rlog = NULL;
  CHECK_OK(dat_log_open_key(rstore, key, sizeof key, false, &rlog));

  dat_pump *w = NULL, *r = NULL;
  CHECK_OK(dat_pump_new(wstore, true, &w));
  CHECK_OK(dat_pump_new(rstore, false, &r));
  /* only the reader names the log: the writer opens it when asked, as it holds it */
  CHECK_OK(dat_pump_replicate(r, rlog, false));

  CHECK(pump_until(w, r, rlog, 0, BLOCKS));
  uint64_t length = 0, bytes = 0, wbytes = 0;
  CHECK_OK(dat_log_length(rlog, &length));
  CHECK(length == BLOCKS);
  CHECK_OK(dat_log_byte_length(rlog, &bytes));
  CHECK_OK(dat_log_byte_length(wlog, &wbytes));
  CHECK(bytes == wbytes);
  int same = 0;
  for (int i = 0; i < BLOCKS; i++) {
    dat_bytes a = {0}, b = {0};
    if (dat_log_get(rlog, (uint64_t)i, 0, &a) == DAT_OK && dat_log_get(wlog, (uint64_t)i, 0, &b) == DAT_OK)
      same += a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
    dat_bytes_free(&a);
    dat_bytes_free(&b);
  }
  CHECK(same == BLOCKS);

  /* a live append travels through the pumps too */
  CHECK_OK(dat_log_append(wlog, (const uint8_t *)"live", 4, NULL));
  CHECK(pump_until(w, r, rlog, BLOCKS, BLOCKS + 1));
  dat_bytes live = {0};
  CHECK_OK(dat_log_get(rlog, BLOCKS, 0, &live));
  CHECK(live.len == 4 && memcmp(live.data, "live", 4) == 0);
  dat_bytes_free(&live);

  /* a sparse reader through a pump: a prioritized range and nothing else */
  char *sdir;
  const dat_store *sstore = open_test_store(&sdir);
  dat_log *slog = NULL;
  CHECK_OK(dat_log_open_key(sstore, key, sizeof key, true, &slog));
  dat_pump *w2 = NULL, *s = NULL;
  CHECK_OK(dat_pump_new(wstore, false, &w2));
  CHECK_OK(dat_pump_new(sstore, true, &s));
  CHECK_OK(dat_pump_replicate(s, slog, true));
  dat_range_options opts = {.start = 50, .end = 60, .priority = 7, .hotswap = true};
  dat_range *range = NULL;
  CHECK_OK(dat_log_prioritize(slog, &opts, NULL, NULL, &range));
  CHECK(pump_until(s, w2, slog, 50, 60));
  int held = 0;
  for (uint64_t i = 0; i <= BLOCKS; i++) {
    dat_bytes b = {0};
    if (dat_log_get(slog, i, 0, &b) == DAT_OK) held++;
    dat_bytes_free(&b);
  }
  CHECK(held == 10);
  /* the range resolved as its blocks were stored: no library thread is involved */
  CHECK(dat_range_is_done(range));
  CHECK_OK(dat_range_wait(range, 0));
  dat_range_free(range);

  /* garbage from the "peer" ends the pump: every later call says so */
  dat_pump *bad = NULL;
  CHECK_OK(dat_pump_new(rstore, false, &bad));
  uint8_t garbage[8] = {5, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff}; /* a 5-byte Noise message */
  dat_status st = dat_pump_receive(bad, garbage, sizeof garbage);
  CHECK(st != DAT_OK && st != DAT_PANIC);
  CHECK_STATUS(dat_pump_receive(bad, garbage, 1), DAT_CANCELLED);
  dat_bytes out = {0};
  CHECK_STATUS(dat_pump_take_output(bad, &out), DAT_CANCELLED);
  CHECK_STATUS(dat_pump_tick(bad), DAT_CANCELLED);
  dat_pump_free(bad);

  dat_pump_free(w2);
  dat_pump_free(s);
  dat_pump_free(w);
  dat_pump_free(r);
  dat_log_free(slog);
  dat_log_free(rlog);
  dat_log_free(wlog);
  dat_store_free(sstore);
  dat_store_free(rstore);
  dat_store_free(wstore);
  remove_dir(sdir);
  remove_dir(rdir);
  remove_dir(wdir);
  return finish();
}
