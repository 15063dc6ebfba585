/* Two stores in one process replicating over 127.0.0.1: a sparse reader fetches a prioritized
 * range (callback + wait), reads a block on demand, follows a live append; events on both the
 * log and the connection. */
#include "check.h"

#define BLOCKS 64
#define WAIT_MS 30000

typedef struct {
  signal_t signal;
  pthread_t thread;
} done_t;

static void on_done(void *userdata, dat_status status) {
  done_t *d = userdata;
  d->thread = pthread_self();
  signal_raise(&d->signal, status);
}

typedef struct {
  signal_t downloads;
  signal_t peers;
  signal_t removed; /* peer-remove events for the log (the connection ended) */
  uint8_t peer_key[32];
  uint8_t removed_key[32];
  uint64_t max_index;
} seen_t;

static void on_log_event(void *userdata, const dat_event *ev) {
  seen_t *s = userdata;
  if (ev->kind == DAT_EVENT_DOWNLOAD) {
    pthread_mutex_lock(&s->downloads.mutex);
    if (ev->index > s->max_index) s->max_index = ev->index;
    pthread_mutex_unlock(&s->downloads.mutex);
    signal_raise(&s->downloads, DAT_OK);
  }
}

static void on_connection_event(void *userdata, const dat_event *ev) {
  seen_t *s = userdata;
  if (ev->kind == DAT_EVENT_PEER_ADD) {
    memcpy(s->peer_key, ev->key, 32);
    signal_raise(&s->peers, DAT_OK);
  }
  if (ev->kind == DAT_EVENT_PEER_REMOVE) {
    memcpy(s->removed_key, ev->key, 32);
    signal_raise(&s->removed, DAT_OK);
  }
}

int main(void) {
  char *wdir, *rdir;
  const dat_store *wstore = open_test_store(&wdir);
  const dat_store *rstore = open_test_store(&rdir);

  /* the writer: 64 blocks "block-<i>" */
  dat_log *wlog = NULL;
  CHECK_OK(dat_log_open_named(wstore, "shared", &wlog));
  char text[BLOCKS][16];
  const uint8_t *datas[BLOCKS];
  size_t lens[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    lens[i] = (size_t)snprintf(text[i], sizeof text[i], "block-%d", i);
    datas[i] = (const uint8_t *)text[i];
  }
  uint64_t length = 0;
  CHECK_OK(dat_log_append_batch(wlog, datas, lens, BLOCKS, &length));
  CHECK(length == BLOCKS);
  uint8_t key[32], dkey[32];
  CHECK_OK(dat_log_key(wlog, key, sizeof key));
  CHECK_OK(dat_log_discovery_key(wlog, dkey, sizeof dkey));

  dat_server *server = NULL;
  CHECK_OK(dat_replicator_listen(wstore, "127.0.0.1:0", &server));
  char address[64];
  size_t n = 0;
  CHECK_OK(dat_server_address(server, address, sizeof address, &n));
  CHECK(n > 10 && strncmp(address, "127.0.0.1:", 10) == 0 && strlen(address) == n);

  /* the reader connects first (holding no log yet), so no connection event can be missed */
  dat_connection *conn = NULL;
  CHECK_OK(dat_replicator_connect(rstore, address, &conn));
  seen_t seen;
  memset(&seen, 0, sizeof seen);
  signal_init(&seen.downloads);
  signal_init(&seen.peers);
  signal_init(&seen.removed);
  dat_subscription *conn_sub = NULL;
  CHECK_OK(dat_connection_subscribe(conn, on_connection_event, &seen, &conn_sub));

  /* then opens the log by key (it joins the open connection), sparse: it fetches only what it
   * asks for */
  dat_log *rlog = NULL;
  CHECK_OK(dat_log_open_key(rstore, key, 32, true, &rlog));
  bool writable = true;
  CHECK_OK(dat_log_writable(rlog, &writable));
  CHECK(!writable);
  dat_subscription *log_sub = NULL;
  CHECK_OK(dat_log_subscribe(rlog, on_log_event, &seen, &log_sub));

  /* prioritized before the log's channel has paired: the range waits for the peer */
  done_t done;
  signal_init(&done.signal);
  dat_range_options opts = {.start = 10, .end = 20, .priority = 5, .linear = true};
  dat_range *range = NULL;
  CHECK_OK(dat_log_prioritize(rlog, &opts, on_done, &done, &range));

  /* the callback fires once, from the library's callback thread */
  CHECK(signal_wait(&done.signal, 1, WAIT_MS) == 1);
  CHECK(done.signal.last_status == DAT_OK);
  CHECK(!pthread_equal(done.thread, pthread_self())); /* a library thread, not this one */
  CHECK_OK(dat_range_wait(range, WAIT_MS));
  CHECK(dat_range_is_done(range));
  CHECK_OK(dat_log_length(rlog, &length));
  CHECK(length == BLOCKS);
  int local = 0, right = 0;
  for (int i = 0; i < BLOCKS; i++) {
    dat_bytes b = {0};
    if (dat_log_get(rlog, (uint64_t)i, 0, &b) == DAT_OK) {
      local++;
      right += (i >= 10 && i < 20 && b.len == lens[i] && memcmp(b.data, datas[i], b.len) == 0);
      dat_bytes_free(&b);
    }
  }
  CHECK(local == 10 && right == 10); /* exactly the range, nothing else */
  dat_bytes b = {0};
  CHECK_STATUS(dat_log_get(rlog, 40, 0, &b), DAT_NOT_AVAILABLE);
  CHECK(signal_wait(&seen.downloads, 10, WAIT_MS) >= 10);

  /* a block on demand: fetched at the top priority within the timeout */
  CHECK_OK(dat_log_get(rlog, 40, WAIT_MS, &b));
  CHECK(b.len == lens[40] && memcmp(b.data, datas[40], b.len) == 0);
  dat_bytes_free(&b);

  /* the connection paired the log */
  CHECK(signal_wait(&seen.peers, 1, WAIT_MS) >= 1);
  CHECK(memcmp(seen.peer_key, dkey, 32) == 0);

  /* a live append reaches the reader (its length), and a live range follows it */
  dat_range_options live = {.start = BLOCKS, .end = UINT64_MAX, .priority = 3};
  dat_range *follow = NULL;
  CHECK_OK(dat_log_prioritize(rlog, &live, NULL, NULL, &follow));
  CHECK_OK(dat_log_append(wlog, (const uint8_t *)"live!", 5, NULL));
  CHECK_OK(dat_log_wait_length(rlog, BLOCKS + 1, WAIT_MS, &length));
  CHECK(length == BLOCKS + 1);
  CHECK_OK(dat_log_get(rlog, BLOCKS, WAIT_MS, &b));
  CHECK(b.len == 5 && memcmp(b.data, "live!", 5) == 0);
  dat_bytes_free(&b);
  CHECK_STATUS(dat_range_wait(follow, 10), DAT_TIMEOUT); /* a live range never completes */
  dat_range_free(follow);

  /* a second range freed before it completes: its callback says cancelled, at once */
  done_t cancelled;
  signal_init(&cancelled.signal);
  dat_range_options far = {.start = 0, .end = 1000000, .priority = 0, .bisect = true};
  dat_range *never = NULL;
  CHECK_OK(dat_log_prioritize(rlog, &far, on_done, &cancelled, &never));
  dat_range_free(never);
  CHECK(cancelled.signal.count == 1 && cancelled.signal.last_status == DAT_CANCELLED);

  /* a timeout when no peer has the block */
  uint64_t reached = 0;
  CHECK_STATUS(dat_log_wait_length(rlog, 1000, 50, &reached), DAT_TIMEOUT);
  CHECK_STATUS(dat_log_get(rlog, 1000, 50, &b), DAT_TIMEOUT);

  CHECK_OK(dat_connection_close(conn));
  /* the log it shared is reported removed when the connection ends */
  CHECK(signal_wait(&seen.removed, 1, WAIT_MS) == 1);
  CHECK(memcmp(seen.removed_key, dkey, 32) == 0);
  CHECK_OK(dat_connection_close(conn)); /* closing twice is fine */
  dat_subscription_free(conn_sub);
  dat_connection_free(conn);
  dat_subscription_free(log_sub);
  dat_range_free(range);
  CHECK(done.signal.count == 1); /* still once */
  dat_server_free(server);
  dat_log_free(rlog);
  dat_log_free(wlog);
  dat_store_free(rstore);
  dat_store_free(wstore);
  signal_destroy(&done.signal);
  signal_destroy(&cancelled.signal);
  signal_destroy(&seen.downloads);
  signal_destroy(&seen.peers);
  signal_destroy(&seen.removed);
  remove_dir(wdir);
  remove_dir(rdir);
  return finish();
}
