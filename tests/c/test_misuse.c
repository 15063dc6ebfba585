/* Misuse of every handle kind: NULL handles, NULL out-parameters, wrong lengths and values,
 * small buffers, free(NULL). Each is a status (never a crash), and out-parameters stay as they
 * were. */
#include "check.h"

#define SENTINEL ((void *)0x1)

static void noop_event(void *userdata, const dat_event *ev) {
  (void)userdata;
  (void)ev;
}

static void noop_done(void *userdata, dat_status status) {
  (void)userdata;
  (void)status;
}

static void test_free_null(void) {
  dat_store_free(NULL);
  dat_log_free(NULL);
  dat_range_free(NULL);
  dat_server_free(NULL);
  dat_connection_free(NULL);
  dat_pump_free(NULL);
  dat_subscription_free(NULL);
  dat_cancel_free(NULL);
  dat_bytes_free(NULL);
  dat_bytes zeroed = {0};
  dat_bytes_free(&zeroed);
  CHECK(1); /* reached: no crash */
}

static void test_status_functions(void) {
  char buf[64];
  size_t n = 77;
  CHECK_STATUS(dat_status_message(DAT_OK, NULL, 10, &n), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_status_message(DAT_OK, buf, sizeof buf, NULL), DAT_NULL_ARGUMENT);
  CHECK(n == 77);
  CHECK_OK(dat_status_message(DAT_OK, buf, 0, &n)); /* nothing written */
  CHECK(n == 0);
  CHECK_STATUS(dat_last_error(NULL, 10, &n), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_last_error(buf, sizeof buf, NULL), DAT_NULL_ARGUMENT);
}

static void test_cancel(void) {
  dat_cancel *cancel = SENTINEL;
  CHECK_STATUS(dat_cancel_new(NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_cancel_cancel(NULL), DAT_NULL_ARGUMENT);
  CHECK_OK(dat_cancel_new(&cancel));
  CHECK(cancel != SENTINEL && cancel != NULL);
  uint64_t u = 77;
  CHECK_STATUS(dat_drive_download_until(NULL, "/", cancel, NULL, NULL, &u), DAT_NULL_ARGUMENT);
  CHECK(u == 77);
  dat_cancel_free(cancel);
}

static void test_store(void) {
  const dat_store *store = SENTINEL;
  CHECK_STATUS(dat_store_open(NULL, &store), DAT_NULL_ARGUMENT);
  CHECK(store == SENTINEL);
  CHECK_STATUS(dat_store_open("/tmp", NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_store_open("\xff\xfe", &store), DAT_INVALID_ARGUMENT); /* not UTF-8 */
  CHECK(store == SENTINEL);
  CHECK_STATUS(dat_store_open("/proc/version/not-a-dir", &store), DAT_IO);
  CHECK(store == SENTINEL);
  dat_store_options bad = {.durability = 42};
  char *dir = temp_dir();
  CHECK_STATUS(dat_store_open_with(dir, &bad, &store), DAT_INVALID_ARGUMENT);
  CHECK_STATUS(dat_store_open_with(NULL, NULL, &store), DAT_NULL_ARGUMENT);
  CHECK(store == SENTINEL);
  remove_dir(dir);
}

static void test_log(const dat_store *store, dat_log *log) {
  dat_log *out = SENTINEL;
  uint64_t u = 77;
  bool b = true;
  uint8_t key[32];
  dat_bytes bytes = {0};

  CHECK_STATUS(dat_log_create(NULL, &out), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_create(store, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_open_named(NULL, "x", &out), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_open_named(store, NULL, &out), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_open_named(store, "x", NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_open_key(NULL, key, 32, true, &out), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_open_key(store, NULL, 32, true, &out), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_open_key(store, NULL, 0, true, &out), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_open_key(store, key, 31, true, &out), DAT_INVALID_ARGUMENT);
  CHECK_STATUS(dat_log_open_key(store, key, 33, true, &out), DAT_INVALID_ARGUMENT);
  CHECK_STATUS(dat_log_open_key(store, key, 32, true, NULL), DAT_NULL_ARGUMENT);
  CHECK(out == SENTINEL);

  CHECK_STATUS(dat_log_append(NULL, (const uint8_t *)"x", 1, &u), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_append(log, NULL, 5, &u), DAT_NULL_ARGUMENT);
  const uint8_t *datas[] = {(const uint8_t *)"a", NULL};
  size_t lens[] = {1, 3};
  CHECK_STATUS(dat_log_append_batch(NULL, datas, lens, 1, &u), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_append_batch(log, NULL, lens, 1, &u), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_append_batch(log, datas, NULL, 1, &u), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_append_batch(log, datas, lens, 2, &u), DAT_NULL_ARGUMENT);
  CHECK(u == 77);
  CHECK_OK(dat_log_length(log, &u));
  CHECK(u == 0); /* a failed batch appended nothing */
  CHECK_OK(dat_log_append_batch(log, NULL, NULL, 0, &u)); /* an empty batch */
  CHECK(u == 0);

  u = 77;
  CHECK_STATUS(dat_log_get(NULL, 0, 0, &bytes), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_get(log, 0, 0, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_get(log, 0, 0, &bytes), DAT_OUT_OF_BOUNDS);
  CHECK(bytes.data == NULL);
  CHECK_STATUS(dat_log_length(NULL, &u), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_length(log, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_byte_length(NULL, &u), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_byte_length(log, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_wait_length(NULL, 1, 0, &u), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_wait_length(log, 1, 0, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_wait_length(log, 1, 0, &u), DAT_TIMEOUT);
  CHECK(u == 77);
  CHECK_STATUS(dat_log_writable(NULL, &b), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_writable(log, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_key(NULL, key, 32), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_key(log, NULL, 32), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_key(log, key, 31), DAT_BUFFER_TOO_SMALL);
  CHECK_STATUS(dat_log_discovery_key(NULL, key, 32), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_discovery_key(log, NULL, 32), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_discovery_key(log, key, 0), DAT_BUFFER_TOO_SMALL);
  uint64_t v = 77;
  CHECK_STATUS(dat_log_seek(NULL, 0, &u, &v), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_seek(log, 0, NULL, &v), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_seek(log, 0, &u, NULL), DAT_NULL_ARGUMENT);
  CHECK(u == 77 && v == 77);

  /* a log without its secret key cannot be appended to */
  uint8_t other[32];
  memset(other, 7, sizeof other);
  dat_log *remote = NULL;
  CHECK_OK(dat_log_open_key(store, other, 32, true, &remote));
  CHECK_STATUS(dat_log_append(remote, (const uint8_t *)"x", 1, NULL), DAT_NOT_WRITABLE);
  CHECK_STATUS(dat_log_get(remote, 0, 0, &bytes), DAT_OUT_OF_BOUNDS);
  dat_log_free(remote);
}

static void test_range(dat_log *log) {
  dat_range_options opts = {.start = 0, .end = 10, .priority = 1};
  dat_range *range = SENTINEL;
  CHECK_STATUS(dat_log_prioritize(NULL, &opts, NULL, NULL, &range), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_prioritize(log, NULL, NULL, NULL, &range), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_prioritize(log, &opts, noop_done, NULL, NULL), DAT_NULL_ARGUMENT);
  dat_range_options high = {.start = 0, .end = 10, .priority = 8};
  CHECK_STATUS(dat_log_prioritize(log, &high, NULL, NULL, &range), DAT_INVALID_ARGUMENT);
  dat_range_options both = {.start = 0, .end = 10, .linear = true, .bisect = true};
  CHECK_STATUS(dat_log_prioritize(log, &both, NULL, NULL, &range), DAT_INVALID_ARGUMENT);
  dat_range_options backwards = {.start = 10, .end = 5};
  CHECK_STATUS(dat_log_prioritize(log, &backwards, NULL, NULL, &range), DAT_INVALID_ARGUMENT);
  CHECK(range == SENTINEL);
  CHECK_STATUS(dat_range_wait(NULL, 0), DAT_NULL_ARGUMENT);
  CHECK(!dat_range_is_done(NULL));
  /* an empty range is done at once */
  dat_range_options empty = {.start = 0, .end = 0};
  CHECK_OK(dat_log_prioritize(log, &empty, NULL, NULL, &range));
  CHECK_OK(dat_range_wait(range, 1000));
  dat_range_free(range);
}

static void test_replication(const dat_store *store, dat_log *log) {
  dat_server *server = SENTINEL;
  dat_connection *conn = SENTINEL;
  CHECK_STATUS(dat_replicator_listen(NULL, "127.0.0.1:0", &server), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_replicator_listen(store, NULL, &server), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_replicator_listen(store, "127.0.0.1:0", NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_replicator_listen(store, "not an address", &server), DAT_IO);
  CHECK(server == SENTINEL);
  CHECK_STATUS(dat_replicator_connect(NULL, "127.0.0.1:1", &conn), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_replicator_connect(store, NULL, &conn), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_replicator_connect(store, "127.0.0.1:1", NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_replicator_connect(store, "no port", &conn), DAT_IO);
  CHECK(conn == SENTINEL);
  CHECK_STATUS(dat_connection_close(NULL), DAT_NULL_ARGUMENT);

  char buf[64];
  size_t n = 77;
  CHECK_OK(dat_replicator_listen(store, "127.0.0.1:0", &server));
  CHECK_STATUS(dat_server_address(NULL, buf, sizeof buf, &n), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_server_address(server, NULL, sizeof buf, &n), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_server_address(server, buf, sizeof buf, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_server_address(server, buf, 5, &n), DAT_BUFFER_TOO_SMALL);
  CHECK(n == 77);
  dat_server_free(server);

  dat_pump *pump = SENTINEL;
  CHECK_STATUS(dat_pump_new(NULL, true, &pump), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_pump_new(store, true, NULL), DAT_NULL_ARGUMENT);
  CHECK(pump == SENTINEL);
  CHECK_OK(dat_pump_new(store, true, &pump));
  CHECK_STATUS(dat_pump_replicate(NULL, log, false), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_pump_replicate(pump, NULL, false), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_pump_receive(NULL, (const uint8_t *)"x", 1), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_pump_receive(pump, NULL, 1), DAT_NULL_ARGUMENT);
  CHECK_OK(dat_pump_receive(pump, NULL, 0));
  dat_bytes out = {0};
  CHECK_STATUS(dat_pump_take_output(NULL, &out), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_pump_take_output(pump, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_pump_tick(NULL), DAT_NULL_ARGUMENT);
  /* the initiator's first output is its handshake message */
  CHECK_OK(dat_pump_take_output(pump, &out));
  CHECK(out.len > 0 && out.data != NULL);
  dat_bytes_free(&out);
  dat_pump_free(pump);
}

static void test_events(dat_log *log) {
  dat_subscription *sub = SENTINEL;
  CHECK_STATUS(dat_log_subscribe(NULL, noop_event, NULL, &sub), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_subscribe(log, NULL, NULL, &sub), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_log_subscribe(log, noop_event, NULL, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_connection_subscribe(NULL, noop_event, NULL, &sub), DAT_NULL_ARGUMENT);
  CHECK(sub == SENTINEL);
  /* a subscription freed without any event */
  CHECK_OK(dat_log_subscribe(log, noop_event, NULL, &sub));
  dat_subscription_free(sub);
}

int main(void) {
  test_free_null();
  test_status_functions();
  test_store();
  test_cancel();
  char *dir;
  const dat_store *store = open_test_store(&dir);
  dat_log *log = NULL;
  CHECK_OK(dat_log_create(store, &log));
  test_log(store, log);
  test_range(log);
  test_replication(store, log);
  test_events(log);
  dat_log_free(log);
  dat_store_free(store);
  remove_dir(dir);
  return finish();
}
