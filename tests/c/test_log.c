/* A log from C: write, read, batch, seek, keys, reopen by name, events, version, statuses. */
#include "check.h"

static void test_version(void) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", DAT_VERSION_MAJOR, DAT_VERSION_MINOR, DAT_VERSION_PATCH);
  CHECK(strcmp(dat_version(), want) == 0);
  CHECK(DAT_VERSION_NUMBER ==
        DAT_VERSION_MAJOR * 1000000 + DAT_VERSION_MINOR * 1000 + DAT_VERSION_PATCH);
}

static void test_status_messages(void) {
  char buf[128];
  size_t n = 99;
  CHECK_OK(dat_status_message(DAT_OK, buf, sizeof buf, &n));
  CHECK(strcmp(buf, "success") == 0 && n == 7);
  CHECK_OK(dat_status_message(DAT_TIMEOUT, buf, sizeof buf, &n));
  CHECK(strcmp(buf, "timed out") == 0);
  CHECK_OK(dat_status_message(12345, buf, sizeof buf, &n));
  CHECK(strcmp(buf, "unknown status") == 0);
  /* truncated to fit, always terminated */
  char small[4];
  CHECK_OK(dat_status_message(DAT_NOT_AVAILABLE, small, sizeof small, &n));
  CHECK(n == 3 && small[3] == '\0');
  /* every status has its own message */
  dat_status all[] = {DAT_OK, DAT_PANIC, DAT_NULL_ARGUMENT, DAT_INVALID_ARGUMENT,
                      DAT_BUFFER_TOO_SMALL, DAT_STORAGE, DAT_IO, DAT_CORRUPT,
                      DAT_UNSUPPORTED_VERSION, DAT_DECODE, DAT_INVALID_PROOF, DAT_STALE_PROOF,
                      DAT_INVALID_SIGNATURE, DAT_INVALID_MANIFEST, DAT_INVALID_REQUEST,
                      DAT_MISSING_NODE, DAT_NOT_AVAILABLE, DAT_OUT_OF_BOUNDS, DAT_NOT_WRITABLE,
                      DAT_SNAPSHOT_STALE, DAT_FORK_MISMATCH, DAT_CONFLICT, DAT_NOT_FOUND,
                      DAT_HANDSHAKE, DAT_PROTOCOL, DAT_FRAME_TOO_LARGE, DAT_TIMEOUT,
                      DAT_CANCELLED, DAT_OTHER};
  size_t count = sizeof all / sizeof all[0];
  int distinct = 1;
  for (size_t i = 0; i < count; i++) {
    char a[128], b[128];
    dat_status_message(all[i], a, sizeof a, &n);
    if (n == 0 || strcmp(a, "unknown status") == 0) distinct = 0;
    for (size_t j = 0; j < i; j++) {
      dat_status_message(all[j], b, sizeof b, &n);
      if (strcmp(a, b) == 0) distinct = 0;
    }
  }
  CHECK(distinct);
}

static void test_write_and_read(void) {
  char *dir;
  const dat_store *store = open_test_store(&dir);
  dat_log *log = NULL;
  CHECK_OK(dat_log_create(store, &log));
  bool writable = false;
  CHECK_OK(dat_log_writable(log, &writable));
  CHECK(writable);

  uint64_t length = 0;
  CHECK_OK(dat_log_append(log, (const uint8_t *)"hello", 5, &length));
  CHECK(length == 1);
  const uint8_t *datas[] = {(const uint8_t *)"world", (const uint8_t *)"", (const uint8_t *)"!!"};
  size_t lens[] = {5, 0, 2};
  CHECK_OK(dat_log_append_batch(log, datas, lens, 3, &length));
  CHECK(length == 4);
  CHECK_OK(dat_log_append(log, NULL, 0, NULL)); /* an empty block; out_length may be NULL */
  CHECK_OK(dat_log_length(log, &length));
  CHECK(length == 5);
  uint64_t bytes = 0;
  CHECK_OK(dat_log_byte_length(log, &bytes));
  CHECK(bytes == 12);

  dat_bytes block = {0};
  CHECK_OK(dat_log_get(log, 1, 0, &block));
  CHECK(block.len == 5 && memcmp(block.data, "world", 5) == 0);
  dat_bytes_free(&block);
  CHECK(block.data == NULL && block.len == 0);
  dat_bytes_free(&block); /* a zeroed struct is ignored */
  CHECK_OK(dat_log_get(log, 2, 0, &block));
  CHECK(block.len == 0 && block.data != NULL);
  dat_bytes_free(&block);
  /* a writable log never waits, even with a timeout */
  CHECK_STATUS(dat_log_get(log, 5, 1000, &block), DAT_OUT_OF_BOUNDS);
  CHECK(block.data == NULL); /* untouched on failure */

  uint64_t index = 99, offset = 99;
  CHECK_OK(dat_log_seek(log, 7, &index, &offset)); /* "hello|world": byte 7 is block 1, offset 2 */
  CHECK(index == 1 && offset == 2);
  CHECK_OK(dat_log_seek(log, 11, &index, &offset)); /* "!!" is bytes 10-11 (block 2 is empty) */
  CHECK(index == 3 && offset == 1);
  CHECK_STATUS(dat_log_seek(log, 1000, &index, &offset), DAT_OUT_OF_BOUNDS);

  uint8_t key[32], dkey[32];
  CHECK_OK(dat_log_key(log, key, sizeof key));
  CHECK_OK(dat_log_discovery_key(log, dkey, sizeof dkey));
  CHECK(memcmp(key, dkey, 32) != 0);

  /* the same key opens the same log */
  dat_log *again = NULL;
  CHECK_OK(dat_log_open_key(store, key, 32, true, &again));
  CHECK_OK(dat_log_length(again, &length));
  CHECK(length == 5);
  dat_log_free(again);

  dat_log_free(log);
  dat_store_free(store);
  remove_dir(dir);
}

static void test_named_log_survives_reopen(void) {
  char *dir = temp_dir();
  uint8_t key1[32], key2[32];
  const dat_store *store = NULL;
  dat_store_options opts = {.durability = DAT_DURABILITY_NO_SYNC, .map_size = 64u << 20};
  CHECK_OK(dat_store_open_with(dir, &opts, &store));
  dat_log *log = NULL;
  CHECK_OK(dat_log_open_named(store, "chat", &log));
  CHECK_OK(dat_log_append(log, (const uint8_t *)"persisted", 9, NULL));
  CHECK_OK(dat_log_key(log, key1, sizeof key1));
  dat_log_free(log);
  dat_store_free(store);

  /* reopen with the default options (a 1 TiB map, which valgrind cannot reserve) */
  store = NULL;
  if (getenv("DAT_UNDER_VALGRIND"))
    CHECK_OK(dat_store_open_with(dir, &opts, &store));
  else
    CHECK_OK(dat_store_open(dir, &store));
  log = NULL;
  CHECK_OK(dat_log_open_named(store, "chat", &log));
  CHECK_OK(dat_log_key(log, key2, sizeof key2));
  CHECK(memcmp(key1, key2, 32) == 0);
  dat_bytes block = {0};
  CHECK_OK(dat_log_get(log, 0, 0, &block));
  CHECK(block.len == 9 && memcmp(block.data, "persisted", 9) == 0);
  dat_bytes_free(&block);
  dat_log *other = NULL;
  CHECK_OK(dat_log_open_named(store, "other", &other));
  CHECK_OK(dat_log_key(other, key2, sizeof key2));
  CHECK(memcmp(key1, key2, 32) != 0);
  dat_log_free(other);
  dat_log_free(log);
  dat_store_free(store);
  remove_dir(dir);
}

typedef struct {
  signal_t signal;
  uint64_t lengths[16];
  int kinds[16];
} events_t;

static void on_event(void *userdata, const dat_event *ev) {
  events_t *e = userdata;
  pthread_mutex_lock(&e->signal.mutex);
  int i = e->signal.count;
  pthread_mutex_unlock(&e->signal.mutex);
  if (i < 16) {
    e->kinds[i] = ev->kind;
    e->lengths[i] = ev->length;
  }
  signal_raise(&e->signal, DAT_OK);
}

static void test_events(void) {
  char *dir;
  const dat_store *store = open_test_store(&dir);
  dat_log *log = NULL;
  CHECK_OK(dat_log_create(store, &log));
  events_t events;
  memset(&events, 0, sizeof events);
  signal_init(&events.signal);
  dat_subscription *sub = NULL;
  CHECK_OK(dat_log_subscribe(log, on_event, &events, &sub));
  CHECK_OK(dat_log_append(log, (const uint8_t *)"a", 1, NULL));
  CHECK_OK(dat_log_append(log, (const uint8_t *)"bc", 2, NULL));
  CHECK(signal_wait(&events.signal, 2, 10000) == 2);
  CHECK(events.kinds[0] == DAT_EVENT_APPEND && events.lengths[0] == 1);
  CHECK(events.kinds[1] == DAT_EVENT_APPEND && events.lengths[1] == 2);
  dat_subscription_free(sub);
  /* unsubscribed: no more calls */
  CHECK_OK(dat_log_append(log, (const uint8_t *)"d", 1, NULL));
  CHECK(events.signal.count == 2);
  signal_destroy(&events.signal);
  dat_log_free(log);
  dat_store_free(store);
  remove_dir(dir);
}

static void test_last_error(void) {
  char *dir;
  const dat_store *store = open_test_store(&dir);
  dat_log *log = NULL;
  CHECK_OK(dat_log_create(store, &log));
  dat_bytes block = {0};
  CHECK_STATUS(dat_log_get(log, 3, 0, &block), DAT_OUT_OF_BOUNDS);
  char buf[256];
  size_t n = 0;
  CHECK_OK(dat_last_error(buf, sizeof buf, &n));
  CHECK(n > 0 && strstr(buf, "block 3") != NULL);
  /* a success leaves it as it was */
  CHECK_OK(dat_log_append(log, (const uint8_t *)"x", 1, NULL));
  char again[256];
  CHECK_OK(dat_last_error(again, sizeof again, &n));
  CHECK(strcmp(buf, again) == 0);
  dat_log_free(log);
  dat_store_free(store);
  remove_dir(dir);
}

int main(void) {
  test_version();
  test_status_messages();
  test_write_and_read();
  test_named_log_survives_reopen();
  test_events();
  test_last_error();
  return finish();
}
