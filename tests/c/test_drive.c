/* The drive from C: files, symlinks, entries, lists; a byte cursor at random offsets and read
 * streams; history, checkouts, diffs of versions and of drives, the changes stream; dedup; two
 * stores replicating a drive over 127.0.0.1 (a sparse reader, a prioritized range of its content
 * log with its callback, a live change from the writer, a download with progress); misuse of
 * every drive handle; and the README's example, compiled in and run. */
#include "check.h"

/* the README's C example (tests/c/example_readme.c, which a Rust test keeps equal to the README
 * block), compiled into this program */
#define main readme_example_main
#include "example_readme.c"
#undef main

#define SENTINEL ((void *)0x1)
#define WAIT_MS 30000

/* xorshift: reproducible file contents and offsets */
static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static uint8_t *pattern(size_t n, uint64_t seed) {
  uint8_t *p = malloc(n);
  uint64_t x = seed;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = (uint8_t)(x >> 24);
  }
  return p;
}

static int bytes_eq(const dat_bytes *b, const void *data, size_t len) {
  return b->data != NULL && b->len == len && memcmp(b->data, data, len) == 0;
}

static int bytes_is(const dat_bytes *b, const char *s) { return bytes_eq(b, s, strlen(s)); }

static const uint8_t *u8(const char *s) { return (const uint8_t *)s; }

/* a file's content, or NULL; the caller frees it with dat_bytes_free */
static int get_is(const dat_drive *drive, const char *path, const char *want) {
  dat_bytes b = {0};
  if (dat_drive_get(drive, path, &b) != DAT_OK) return 0;
  int ok = bytes_is(&b, want);
  dat_bytes_free(&b);
  return ok;
}

static uint64_t version_of(const dat_drive *drive) {
  uint64_t v = 0;
  CHECK_OK(dat_drive_version(drive, &v));
  return v;
}

/* ------------------------------------------------------------------ write and read */

static void test_write_read(const dat_store *store) {
  dat_drive *drive = NULL;
  CHECK_OK(dat_drive_create_named(store, "files", &drive));
  bool b = false;
  CHECK_OK(dat_drive_writable(drive, &b));
  CHECK(b);
  CHECK(version_of(drive) == 1); /* an empty drive */
  uint8_t key[32], dkey[32];
  CHECK_OK(dat_drive_key(drive, key, sizeof key));
  CHECK_OK(dat_drive_discovery_key(drive, dkey, sizeof dkey));
  CHECK(memcmp(key, dkey, 32) != 0);

  /* the drive's key is its metadata log's key */
  dat_log *meta = NULL, *content = NULL;
  CHECK_OK(dat_drive_metadata_log(drive, &meta));
  CHECK_OK(dat_drive_content_log(drive, &content));
  uint8_t mkey[32], ckey[32];
  CHECK_OK(dat_log_key(meta, mkey, sizeof mkey));
  CHECK_OK(dat_log_key(content, ckey, sizeof ckey));
  CHECK(memcmp(mkey, key, 32) == 0 && memcmp(ckey, key, 32) != 0);

  CHECK_OK(dat_drive_put(drive, "/hello.txt", u8("hello world"), 11));
  CHECK_OK(dat_drive_put(drive, "dir/./sub//a.txt", u8("A"), 1)); /* normalized */
  CHECK_OK(dat_drive_put(drive, "/dir/b.txt", u8("BB"), 2));
  CHECK_OK(dat_drive_put(drive, "/empty", NULL, 0));
  dat_put_options opts = {.executable = true, .metadata = "{\"mode\":493,\"tags\":[\"x\"]}"};
  dat_dedup_report report;
  memset(&report, 0x55, sizeof report);
  CHECK_OK(dat_drive_put_with(drive, "/bin/run.sh", u8("#!/bin/sh\n"), 10, &opts, &report));
  CHECK(report.bytes_total == 0 && report.blocks_total == 0); /* zeroed: not a dedup write */
  CHECK_OK(dat_drive_put_with(drive, "/plain", u8("p"), 1, NULL, NULL));
  CHECK_OK(dat_drive_symlink(drive, "/link", "/dir/b.txt"));
  CHECK(version_of(drive) == 8);
  uint64_t length = 0;
  CHECK_OK(dat_log_length(meta, &length));
  CHECK(length == 8);

  CHECK(get_is(drive, "/hello.txt", "hello world"));
  CHECK(get_is(drive, "/dir/sub/a.txt", "A"));
  CHECK(get_is(drive, "\\dir\\b.txt", "BB"));
  dat_bytes bytes = {0};
  CHECK_OK(dat_drive_get(drive, "/empty", &bytes));
  CHECK(bytes.data != NULL && bytes.len == 0);
  dat_bytes_free(&bytes);
  CHECK_STATUS(dat_drive_get(drive, "/missing", &bytes), DAT_NOT_FOUND);
  CHECK_STATUS(dat_drive_get(drive, "/link", &bytes), DAT_NOT_FOUND); /* not followed */
  CHECK(bytes.data == NULL);
  CHECK_STATUS(dat_drive_get(drive, "/dir", &bytes), DAT_NOT_FOUND); /* a folder is no file */

  /* entries */
  dat_entry *e = NULL;
  uint64_t size = 0;
  bool exec = true, link = true;
  char buf[128];
  size_t n = 0;
  CHECK_OK(dat_drive_entry(drive, "/hello.txt", &e));
  CHECK_OK(dat_entry_size(e, &size));
  CHECK_OK(dat_entry_executable(e, &exec));
  CHECK_OK(dat_entry_is_symlink(e, &link));
  CHECK(size == 11 && !exec && !link);
  n = 77;
  CHECK_STATUS(dat_entry_linkname(e, buf, sizeof buf, &n), DAT_NOT_FOUND);
  CHECK_STATUS(dat_entry_metadata(e, buf, sizeof buf, &n), DAT_NOT_FOUND);
  CHECK(n == 77);
  dat_entry_free(e);

  CHECK_OK(dat_drive_entry(drive, "/bin/run.sh", &e));
  CHECK_OK(dat_entry_executable(e, &exec));
  CHECK(exec);
  CHECK_OK(dat_entry_metadata(e, NULL, 0, &n)); /* a size query */
  CHECK(n == strlen("{\"mode\":493,\"tags\":[\"x\"]}"));
  CHECK_STATUS(dat_entry_metadata(e, buf, n, &n), DAT_BUFFER_TOO_SMALL); /* no room for NUL */
  CHECK_OK(dat_entry_metadata(e, buf, n + 1, &n));
  CHECK(strcmp(buf, "{\"mode\":493,\"tags\":[\"x\"]}") == 0 && n == strlen(buf));
  dat_entry_free(e);

  CHECK_OK(dat_drive_entry(drive, "link", &e));
  CHECK_OK(dat_entry_is_symlink(e, &link));
  CHECK_OK(dat_entry_size(e, &size));
  CHECK(link && size == 0);
  CHECK_OK(dat_entry_linkname(e, buf, sizeof buf, &n));
  CHECK(strcmp(buf, "/dir/b.txt") == 0 && n == 10);
  dat_entry_free(e);
  e = SENTINEL;
  CHECK_STATUS(dat_drive_entry(drive, "/nothing", &e), DAT_NOT_FOUND);
  CHECK(e == SENTINEL);

  /* exists, delete */
  CHECK_OK(dat_drive_exists(drive, "/plain", &b));
  CHECK(b);
  bool existed = false;
  CHECK_OK(dat_drive_del(drive, "/plain", &existed));
  CHECK(existed);
  CHECK_OK(dat_drive_del(drive, "/plain", &existed));
  CHECK(!existed);
  CHECK_OK(dat_drive_del(drive, "/never", NULL));
  CHECK_OK(dat_drive_exists(drive, "/plain", &b));
  CHECK(!b);

  /* a list of everything, in path order */
  const char *want[] = {"/bin/run.sh", "/dir/b.txt", "/dir/sub/a.txt", "/empty", "/hello.txt",
                        "/link"};
  dat_list *list = NULL;
  CHECK_OK(dat_drive_list(drive, "/", true, &list));
  int count = 0, right = 0;
  dat_bytes path = {0};
  while (dat_list_next(list, &path, &e) == DAT_OK) {
    right += count < 6 && bytes_is(&path, want[count]);
    count++;
    dat_bytes_free(&path);
    dat_entry_free(e);
  }
  CHECK(count == 6 && right == 6);
  CHECK_STATUS(dat_list_next(list, &path, &e), DAT_END); /* and stays at the end */
  dat_list_free(list);

  /* a folder, not recursive: one entry per name */
  CHECK_OK(dat_drive_list(drive, "/dir", false, &list));
  count = 0;
  right = 0;
  while (dat_list_next(list, &path, &e) == DAT_OK) {
    right += (count == 0 && bytes_is(&path, "/dir/b.txt")) ||
             (count == 1 && bytes_is(&path, "/dir/sub/a.txt"));
    count++;
    dat_bytes_free(&path);
    dat_entry_free(e);
  }
  CHECK(count == 2 && right == 2);
  dat_list_free(list);
  CHECK_OK(dat_drive_list(drive, "/nowhere", true, &list));
  CHECK_STATUS(dat_list_next(list, &path, &e), DAT_END);
  dat_list_free(list);

  /* items stay valid after their iterator is freed */
  CHECK_OK(dat_drive_list(drive, "/", true, &list));
  CHECK_OK(dat_list_next(list, &path, &e));
  dat_list_free(list);
  CHECK(bytes_is(&path, "/bin/run.sh"));
  CHECK_OK(dat_entry_executable(e, &exec));
  CHECK(exec);
  dat_bytes_free(&path);
  dat_entry_free(e);

  /* the same drive reopened by name, and by key */
  dat_drive *again = NULL, *by_key = NULL;
  CHECK_OK(dat_drive_create_named(store, "files", &again));
  CHECK(get_is(again, "/hello.txt", "hello world"));
  CHECK_OK(dat_drive_open(store, key, 32, true, 0, &by_key));
  CHECK(get_is(by_key, "/dir/b.txt", "BB"));
  CHECK_OK(dat_drive_writable(by_key, &b));
  CHECK(b);
  dat_drive_free(by_key);
  dat_drive_free(again);

  dat_log_free(meta);
  dat_log_free(content);
  dat_drive_free(drive);
}

/* ------------------------------------------------------------------ cursor and streams */

#define BIG (300 * 1000 + 17)

static void test_cursor_and_stream(const dat_store *store) {
  dat_drive *drive = NULL;
  CHECK_OK(dat_drive_create_named(store, "random", &drive));
  uint8_t *data = pattern(BIG, 7);
  CHECK_OK(dat_drive_put(drive, "/big.bin", data, BIG));
  CHECK_OK(dat_drive_symlink(drive, "/big-link", "big.bin")); /* relative: /big-link/big.bin */
  CHECK_OK(dat_drive_symlink(drive, "/big-abs", "/big.bin"));

  dat_cursor *c = NULL;
  CHECK_OK(dat_cursor_open(drive, "/big.bin", &c));
  uint64_t len = 0, pos = 77;
  CHECK_OK(dat_cursor_len(c, &len));
  CHECK_OK(dat_cursor_tell(c, &pos));
  CHECK(len == BIG && pos == 0);
  uint8_t *buf = malloc(8192);
  int good = 0, rounds = 300;
  for (int i = 0; i < rounds; i++) {
    uint64_t at = rng() % BIG;
    size_t want = 1 + (size_t)(rng() % 8192);
    size_t got = 0;
    if (dat_cursor_seek(c, at) != DAT_OK) continue;
    if (dat_cursor_read(c, buf, want, &got) != DAT_OK) continue;
    size_t expect = at + want <= BIG ? want : (size_t)(BIG - at);
    if (dat_cursor_tell(c, &pos) != DAT_OK) continue;
    good += got == expect && memcmp(buf, data + at, got) == 0 && pos == at + got;
  }
  CHECK(good == rounds);
  /* sequential reads continue where the last one ended */
  size_t got = 0;
  CHECK_OK(dat_cursor_seek(c, 1000));
  CHECK_OK(dat_cursor_read(c, buf, 100, &got));
  CHECK_OK(dat_cursor_read(c, buf + 100, 100, &got));
  CHECK(got == 100 && memcmp(buf, data + 1000, 200) == 0);
  /* the end */
  CHECK_OK(dat_cursor_seek(c, BIG));
  CHECK_OK(dat_cursor_read(c, buf, 100, &got));
  CHECK(got == 0);
  CHECK_OK(dat_cursor_read(c, NULL, 0, &got));
  CHECK(got == 0);
  CHECK_STATUS(dat_cursor_seek(c, BIG + 1), DAT_OUT_OF_BOUNDS);
  CHECK_OK(dat_cursor_tell(c, &pos));
  CHECK(pos == BIG);
  dat_cursor_free(c);

  /* through an absolute symlink; a relative one resolves against the link's own path */
  CHECK_OK(dat_cursor_open(drive, "/big-abs", &c));
  CHECK_OK(dat_cursor_seek(c, BIG - 10));
  CHECK_OK(dat_cursor_read(c, buf, 100, &got));
  CHECK(got == 10 && memcmp(buf, data + BIG - 10, 10) == 0);
  dat_cursor_free(c);
  c = SENTINEL;
  CHECK_STATUS(dat_cursor_open(drive, "/big-link", &c), DAT_NOT_FOUND);
  CHECK_STATUS(dat_cursor_open(drive, "/missing", &c), DAT_NOT_FOUND);
  CHECK(c == SENTINEL);

  /* a read stream of the whole file, into a buffer smaller than its chunks */
  dat_read_stream *s = NULL;
  CHECK_OK(dat_read_stream_open(drive, "/big.bin", 0, UINT64_MAX, &s));
  uint8_t *all = malloc(BIG);
  size_t total = 0, written = 0;
  bool done = false;
  int calls = 0, ok = 1;
  while (!done && ok && calls < 10000) {
    ok = dat_read_stream_next(s, all + total, total + 1000 <= BIG ? 1000 : BIG - total + 1,
                              &written, &done) == DAT_OK;
    total += written;
    calls++;
  }
  CHECK(ok && done && total == BIG && memcmp(all, data, BIG) == 0);
  CHECK_OK(dat_read_stream_next(s, buf, 10, &written, &done)); /* after the end: nothing */
  CHECK(written == 0 && done);
  dat_read_stream_free(s);

  /* a range, inclusive, into a large buffer: chunks of at most 64 KiB */
  CHECK_OK(dat_read_stream_open(drive, "/big.bin", 1000, 200000, &s));
  total = 0;
  done = false;
  ok = 1;
  size_t largest = 0;
  while (!done && ok) {
    ok = dat_read_stream_next(s, all + total, BIG - total, &written, &done) == DAT_OK;
    total += written;
    if (written > largest) largest = written;
  }
  CHECK(ok && total == 199001 && memcmp(all, data + 1000, total) == 0);
  CHECK(largest <= 65536);
  dat_read_stream_free(s);

  /* an empty range; a start past the end */
  CHECK_OK(dat_read_stream_open(drive, "/big.bin", 500, 10, &s));
  CHECK_OK(dat_read_stream_next(s, buf, 10, &written, &done));
  CHECK(written == 0 && done);
  dat_read_stream_free(s);
  s = SENTINEL;
  CHECK_STATUS(dat_read_stream_open(drive, "/big.bin", BIG + 1, UINT64_MAX, &s), DAT_OUT_OF_BOUNDS);
  CHECK_STATUS(dat_read_stream_open(drive, "/missing", 0, UINT64_MAX, &s), DAT_NOT_FOUND);
  CHECK(s == SENTINEL);
  /* a zero-length buffer while bytes remain */
  CHECK_OK(dat_read_stream_open(drive, "/big-abs", BIG - 5, UINT64_MAX, &s));
  CHECK_STATUS(dat_read_stream_next(s, buf, 0, &written, &done), DAT_BUFFER_TOO_SMALL);
  CHECK_OK(dat_read_stream_next(s, buf, 3, &written, &done));
  CHECK(written == 3 && !done);
  CHECK_OK(dat_read_stream_next(s, buf + 3, 100, &written, &done));
  CHECK(written == 2 && done && memcmp(buf, data + BIG - 5, 5) == 0);
  dat_read_stream_free(s);

  free(all);
  free(buf);
  free(data);
  dat_drive_free(drive);
}

/* ------------------------------------------------------------------ versions */

typedef struct {
  const char *path;
  dat_diff_kind kind;
} diff_want;

/* Reads a diff iterator to its end and checks it against `want`; frees the iterator. */
static void check_diff(dat_diff *diff, const diff_want *want, int n) {
  dat_diff_item item;
  int count = 0, right = 0;
  while (dat_diff_next(diff, &item) == DAT_OK) {
    if (count < n && bytes_is(&item.path, want[count].path) && item.kind == want[count].kind) {
      switch (item.kind) {
        case DAT_DIFF_ADDED: right += item.left != NULL && item.right == NULL; break;
        case DAT_DIFF_REMOVED: right += item.left == NULL && item.right != NULL; break;
        case DAT_DIFF_CHANGED: right += item.left != NULL && item.right != NULL; break;
      }
    }
    count++;
    dat_diff_item_free(&item);
    dat_diff_item_free(&item); /* zeroed: a second call does nothing */
  }
  CHECK(count == n && right == n);
  dat_diff_free(diff);
}

static void test_versions(const dat_store *store) {
  dat_drive *drive = NULL;
  CHECK_OK(dat_drive_create_named(store, "versions", &drive));
  CHECK_OK(dat_drive_put(drive, "/a.txt", u8("1"), 1)); /* version 2 */
  CHECK_OK(dat_drive_put(drive, "/b.txt", u8("x"), 1)); /* 3 */
  uint64_t v3 = version_of(drive);
  CHECK(v3 == 3);
  CHECK_OK(dat_drive_put(drive, "/a.txt", u8("2"), 1)); /* 4 */
  CHECK_OK(dat_drive_del(drive, "/a.txt", NULL));       /* 5 */
  CHECK_OK(dat_drive_put(drive, "/a.txt", u8("3"), 1)); /* 6 */
  CHECK_OK(dat_drive_put(drive, "/c.txt", u8("c"), 1)); /* 7 */
  CHECK_OK(dat_drive_del(drive, "/b.txt", NULL));       /* 8 */
  CHECK(version_of(drive) == 8);

  /* the history of one file */
  dat_history *h = NULL;
  CHECK_OK(dat_drive_file_history(drive, "a.txt", &h));
  uint64_t versions[8], v = 0;
  bool has_entry[8];
  int n = 0;
  dat_entry *e = NULL;
  while (n < 8 && dat_history_next(h, &v, &e) == DAT_OK) {
    versions[n] = v;
    has_entry[n] = e != NULL;
    if (e) {
      uint64_t size = 0;
      CHECK_OK(dat_entry_size(e, &size));
      CHECK(size == 1);
    }
    dat_entry_free(e);
    n++;
  }
  CHECK(n == 4);
  CHECK(versions[0] == 2 && has_entry[0]);
  CHECK(versions[1] == 4 && has_entry[1]);
  CHECK(versions[2] == 5 && !has_entry[2]); /* the delete */
  CHECK(versions[3] == 6 && has_entry[3]);
  CHECK_STATUS(dat_history_next(h, &v, &e), DAT_END);
  dat_history_free(h);
  CHECK_OK(dat_drive_file_history(drive, "/never.txt", &h));
  CHECK_STATUS(dat_history_next(h, &v, &e), DAT_END);
  dat_history_free(h);

  /* a checkout of version 3: read-only, the files as they were */
  dat_drive *old = NULL;
  CHECK_OK(dat_drive_checkout(drive, v3, &old));
  CHECK(version_of(old) == 3);
  CHECK(get_is(old, "/a.txt", "1"));
  CHECK(get_is(old, "/b.txt", "x"));
  bool b = true;
  CHECK_OK(dat_drive_exists(old, "/c.txt", &b));
  CHECK(!b);
  CHECK_OK(dat_drive_writable(old, &b));
  CHECK(!b);
  CHECK_STATUS(dat_drive_put(old, "/x", u8("y"), 1), DAT_NOT_WRITABLE);
  CHECK_STATUS(dat_drive_del(old, "/a.txt", NULL), DAT_NOT_WRITABLE);
  CHECK_STATUS(dat_drive_symlink(old, "/l", "/a.txt"), DAT_NOT_WRITABLE);
  dat_drive *bad = SENTINEL;
  CHECK_STATUS(dat_drive_checkout(drive, 100, &bad), DAT_OUT_OF_BOUNDS);
  CHECK(bad == SENTINEL);
  /* the checkout outlives its drive handle */
  dat_drive *cur = NULL;
  CHECK_OK(dat_drive_create_named(store, "versions", &cur));
  dat_drive_free(drive);
  drive = cur;
  CHECK(get_is(old, "/a.txt", "1"));

  /* diff: the current drive (left) against version 3 (right) */
  dat_diff *diff = NULL;
  CHECK_OK(dat_drive_diff(drive, v3, "/", &diff));
  diff_want want[] = {
      {"/a.txt", DAT_DIFF_CHANGED}, {"/b.txt", DAT_DIFF_REMOVED}, {"/c.txt", DAT_DIFF_ADDED}};
  check_diff(diff, want, 3);
  /* and the other way round, from the checkout */
  CHECK_OK(dat_drive_diff(old, 8, "/", &diff));
  diff_want back[] = {
      {"/a.txt", DAT_DIFF_CHANGED}, {"/b.txt", DAT_DIFF_ADDED}, {"/c.txt", DAT_DIFF_REMOVED}};
  check_diff(diff, back, 3);
  CHECK_OK(dat_drive_diff(drive, version_of(drive), "/", &diff));
  check_diff(diff, NULL, 0); /* a version against itself */
  dat_diff *none = SENTINEL;
  CHECK_STATUS(dat_drive_diff(drive, 100, "/", &none), DAT_OUT_OF_BOUNDS);
  CHECK(none == SENTINEL);

  /* diff of two drives: by content, not by where the bytes are */
  dat_drive *x = NULL, *y = NULL;
  CHECK_OK(dat_drive_create_named(store, "left", &x));
  CHECK_OK(dat_drive_create_named(store, "right", &y));
  CHECK_OK(dat_drive_put(x, "/same.txt", u8("identical"), 9));
  CHECK_OK(dat_drive_put(y, "/pad.txt", u8("shift the blob offsets"), 22));
  CHECK_OK(dat_drive_put(y, "/same.txt", u8("identical"), 9));
  CHECK_OK(dat_drive_put(x, "/changed.txt", u8("left"), 4));
  CHECK_OK(dat_drive_put(y, "/changed.txt", u8("right"), 5));
  CHECK_OK(dat_drive_put(x, "/only-x.txt", u8("x"), 1));
  CHECK_OK(dat_drive_diff_drive(x, y, "/", &diff));
  diff_want drives[] = {{"/changed.txt", DAT_DIFF_CHANGED},
                        {"/only-x.txt", DAT_DIFF_ADDED},
                        {"/pad.txt", DAT_DIFF_REMOVED}};
  check_diff(diff, drives, 3);
  dat_drive_free(x);
  dat_drive_free(y);

  /* the changes, not live: every one from version 2, then the end */
  dat_changes *changes = NULL;
  CHECK_OK(dat_drive_changes(drive, 2, false, &changes));
  dat_change *ch = NULL;
  int count = 0, puts = 0, dels = 0, in_order = 1;
  uint64_t last = 1;
  while (dat_changes_next(changes, 0, &ch) == DAT_OK) {
    dat_change_type kind;
    CHECK_OK(dat_change_version(ch, &v));
    CHECK_OK(dat_change_kind(ch, &kind));
    CHECK_OK(dat_change_entry(ch, &e));
    in_order &= v == last + 1;
    last = v;
    if (kind == DAT_CHANGE_PUT && e != NULL) puts++;
    if (kind == DAT_CHANGE_DEL && e == NULL) dels++;
    dat_entry_free(e);
    dat_change_free(ch);
    count++;
  }
  CHECK(count == 7 && puts == 5 && dels == 2 && in_order && last == 8);
  CHECK_STATUS(dat_changes_next(changes, 0, &ch), DAT_END);
  dat_changes_free(changes);
  /* one change: its path */
  CHECK_OK(dat_drive_changes(drive, 7, false, &changes));
  CHECK_OK(dat_changes_next(changes, 0, &ch));
  char path[64];
  size_t len = 0;
  CHECK_OK(dat_change_path(ch, NULL, 0, &len));
  CHECK(len == 6);
  CHECK_STATUS(dat_change_path(ch, path, 6, &len), DAT_BUFFER_TOO_SMALL);
  CHECK_OK(dat_change_path(ch, path, sizeof path, &len));
  CHECK(strcmp(path, "/c.txt") == 0 && len == 6);
  dat_changes_free(changes);
  CHECK_OK(dat_change_version(ch, &v)); /* a change outlives its stream */
  CHECK(v == 7);
  dat_change_free(ch);

  /* live: nothing new within the timeout, then a local write arrives */
  CHECK_OK(dat_drive_changes(drive, version_of(drive) + 1, true, &changes));
  ch = SENTINEL;
  CHECK_STATUS(dat_changes_next(changes, 0, &ch), DAT_TIMEOUT);
  CHECK_STATUS(dat_changes_next(changes, 20, &ch), DAT_TIMEOUT);
  CHECK(ch == SENTINEL);
  CHECK_OK(dat_drive_put(drive, "/later.txt", u8("late"), 4));
  CHECK_OK(dat_changes_next(changes, 5000, &ch));
  CHECK_OK(dat_change_path(ch, path, sizeof path, &len));
  CHECK(strcmp(path, "/later.txt") == 0);
  dat_change_free(ch);
  dat_changes_free(changes);
  /* a live stream on a checkout ends */
  CHECK_OK(dat_drive_changes(old, 3, true, &changes));
  CHECK_OK(dat_changes_next(changes, 0, &ch));
  dat_change_free(ch);
  CHECK_STATUS(dat_changes_next(changes, 100, &ch), DAT_END);
  dat_changes_free(changes);

  dat_drive_free(old);
  dat_drive_free(drive);
}

/* ------------------------------------------------------------------ dedup */

static void test_dedup(const dat_store *store) {
  dat_drive *drive = NULL;
  CHECK_OK(dat_drive_create_named(store, "dedup", &drive));
  size_t size = 600 * 1000;
  uint8_t *data = pattern(size, 99);
  dat_put_options opts = {.dedup = true};
  dat_dedup_report first, again, edit;
  CHECK_OK(dat_drive_put_with(drive, "/one.bin", data, size, &opts, &first));
  CHECK(first.bytes_total == size && first.blocks_reused == 0 && first.bytes_new == size);
  CHECK(first.blocks_total > 1 && first.blocks_new == first.blocks_total);
  /* the same content again reuses every block */
  CHECK_OK(dat_drive_put_with(drive, "/two.bin", data, size, &opts, &again));
  CHECK(again.bytes_total == size && again.bytes_new == 0 && again.blocks_new == 0);
  CHECK(again.blocks_reused == again.blocks_total && again.blocks_total == first.blocks_total);
  /* an insertion in the middle reuses most */
  uint8_t *edited = malloc(size + 12);
  memcpy(edited, data, size / 2);
  memcpy(edited + size / 2, "an insertion", 12);
  memcpy(edited + size / 2 + 12, data + size / 2, size - size / 2);
  CHECK_OK(dat_drive_put_with(drive, "/one.bin", edited, size + 12, &opts, NULL));
  CHECK_OK(dat_drive_put_with(drive, "/three.bin", edited, size + 12, &opts, &edit));
  CHECK(edit.bytes_new == 0);
  dat_bytes b = {0};
  CHECK_OK(dat_drive_get(drive, "/one.bin", &b));
  CHECK(bytes_eq(&b, edited, size + 12));
  dat_bytes_free(&b);
  CHECK_OK(dat_drive_get(drive, "/two.bin", &b));
  CHECK(bytes_eq(&b, data, size));
  dat_bytes_free(&b);
  /* a deduplicated file's entry holds its block map's size, not the file's: the drive reads it */
  dat_entry *e = NULL;
  CHECK_OK(dat_drive_entry(drive, "/two.bin", &e));
  bool dedup = false;
  CHECK_OK(dat_entry_is_deduplicated(e, &dedup));
  CHECK(dedup);
  uint64_t fsize = 77;
  CHECK_STATUS(dat_entry_size(e, &fsize), DAT_NOT_AVAILABLE);
  CHECK(fsize == 77);
  CHECK_OK(dat_drive_file_size(drive, e, &fsize));
  CHECK(fsize == size);
  CHECK_STATUS(dat_drive_file_size(NULL, e, &fsize), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_file_size(drive, NULL, &fsize), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_file_size(drive, e, NULL), DAT_NULL_ARGUMENT);
  dat_entry_free(e);
  /* a plain file: both give its size */
  CHECK_OK(dat_drive_put(drive, "/plain.txt", u8("plain"), 5));
  CHECK_OK(dat_drive_entry(drive, "/plain.txt", &e));
  CHECK_OK(dat_entry_is_deduplicated(e, &dedup));
  CHECK(!dedup);
  CHECK_OK(dat_entry_size(e, &fsize));
  CHECK(fsize == 5);
  CHECK_OK(dat_drive_file_size(drive, e, &fsize));
  CHECK(fsize == 5);
  dat_entry_free(e);
  /* a cursor reads through the block map */
  dat_cursor *c = NULL;
  CHECK_OK(dat_cursor_open(drive, "/three.bin", &c));
  uint8_t buf[1000];
  size_t got = 0;
  CHECK_OK(dat_cursor_seek(c, size / 2 - 500));
  CHECK_OK(dat_cursor_read(c, buf, sizeof buf, &got));
  CHECK(got == 1000 && memcmp(buf, edited + size / 2 - 500, 1000) == 0);
  dat_cursor_free(c);
  /* metadata that is not JSON */
  dat_put_options bad = {.metadata = "{not json"};
  dat_dedup_report r = {.bytes_total = 77};
  CHECK_STATUS(dat_drive_put_with(drive, "/x", u8("x"), 1, &bad, &r), DAT_INVALID_ARGUMENT);
  CHECK(r.bytes_total == 77);
  bool exists = true;
  CHECK_OK(dat_drive_exists(drive, "/x", &exists));
  CHECK(!exists);
  free(edited);
  free(data);
  dat_drive_free(drive);
}

/* ------------------------------------------------------------------ replication */

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
  int calls;
  uint64_t done, total;
  int monotonic;
  pthread_t thread;
} progress_t;

static void on_progress(void *userdata, uint64_t done, uint64_t total) {
  progress_t *p = userdata;
  if (p->calls > 0 && (done < p->done || total != p->total)) p->monotonic = 0;
  p->calls++;
  p->done = done;
  p->total = total;
  p->thread = pthread_self();
}

typedef struct {
  dat_cancel *cancel;
  int calls;
  uint64_t done, total;
} cancelling_t;

/* cancels the download it reports on at its first report */
static void cancel_on_progress(void *userdata, uint64_t done, uint64_t total) {
  cancelling_t *c = userdata;
  if (c->calls++ == 0) dat_cancel_cancel(c->cancel);
  c->done = done;
  c->total = total;
}

#define FILES 20
#define REMOTE_BIG (2 * 1024 * 1024)

static void test_replication(void) {
  char *wdir, *rdir;
  const dat_store *wstore = open_test_store(&wdir);
  const dat_store *rstore = open_test_store(&rdir);

  /* the writer: a large file first (content blocks 0..31), then small ones */
  dat_drive *writer = NULL;
  CHECK_OK(dat_drive_create(wstore, &writer));
  uint8_t *big = pattern(REMOTE_BIG, 3);
  CHECK_OK(dat_drive_put(writer, "/big/large.bin", big, REMOTE_BIG));
  char path[64], text[64];
  for (int i = 0; i < FILES; i++) {
    snprintf(path, sizeof path, "/files/%03d.txt", i);
    int n = snprintf(text, sizeof text, "file number %d", i);
    CHECK_OK(dat_drive_put(writer, path, u8(text), (size_t)n));
  }
  uint8_t key[32];
  CHECK_OK(dat_drive_key(writer, key, sizeof key));
  uint64_t wversion = version_of(writer);

  dat_server *server = NULL;
  CHECK_OK(dat_replicator_listen(wstore, "127.0.0.1:0", &server));
  char address[64];
  size_t n = 0;
  CHECK_OK(dat_server_address(server, address, sizeof address, &n));
  dat_connection *conn = NULL;
  CHECK_OK(dat_replicator_connect(rstore, address, &conn));

  /* the reader opens the drive by key, sparse: it blocks until the writer sent it */
  dat_drive *reader = NULL;
  CHECK_OK(dat_drive_open(rstore, key, 32, true, WAIT_MS, &reader));
  bool writable = true;
  CHECK_OK(dat_drive_writable(reader, &writable));
  CHECK(!writable);
  CHECK(version_of(reader) == wversion);
  CHECK(get_is(reader, "/files/007.txt", "file number 7"));
  CHECK_STATUS(dat_drive_put(reader, "/x", u8("x"), 1), DAT_NOT_WRITABLE);

  /* a cursor near the end of the large file: only the blocks it needs are fetched */
  dat_cursor *c = NULL;
  CHECK_OK(dat_cursor_open(reader, "/big/large.bin", &c));
  uint8_t buf[4096];
  int good = 0;
  for (int i = 0; i < 20; i++) {
    uint64_t at = REMOTE_BIG - 200000 + rng() % 190000;
    size_t got = 0;
    if (dat_cursor_seek(c, at) == DAT_OK && dat_cursor_read(c, buf, sizeof buf, &got) == DAT_OK)
      good += got == sizeof buf && memcmp(buf, big + at, got) == 0;
  }
  CHECK(good == 20);
  dat_cursor_free(c);
  dat_log *content = NULL;
  CHECK_OK(dat_drive_content_log(reader, &content));
  dat_bytes block = {0};
  CHECK_STATUS(dat_log_get(content, 0, 0, &block), DAT_NOT_AVAILABLE); /* sparse */

  /* a prioritized range of the content log, with its callback */
  done_t done;
  signal_init(&done.signal);
  dat_range_options opts = {.start = 8, .end = 12, .priority = 5, .linear = true};
  dat_range *range = NULL;
  CHECK_OK(dat_log_prioritize(content, &opts, on_done, &done, &range));
  CHECK(signal_wait(&done.signal, 1, WAIT_MS) == 1);
  CHECK(done.signal.last_status == DAT_OK);
  CHECK(!pthread_equal(done.thread, pthread_self()));
  CHECK_OK(dat_log_get(content, 10, 0, &block));
  CHECK(bytes_eq(&block, big + 10 * 65536, 65536));
  dat_bytes_free(&block);
  dat_range_free(range);
  signal_destroy(&done.signal);

  /* a read stream over a remote range */
  dat_read_stream *s = NULL;
  CHECK_OK(dat_read_stream_open(reader, "/big/large.bin", 300000, 400000 - 1, &s));
  uint8_t *range_bytes = malloc(100000);
  size_t total = 0, written = 0;
  bool finished = false;
  int ok = 1;
  while (!finished && ok) {
    ok = dat_read_stream_next(s, range_bytes + total, 100000 - total + 1, &written, &finished) ==
         DAT_OK;
    total += written;
  }
  CHECK(ok && total == 100000 && memcmp(range_bytes, big + 300000, 100000) == 0);
  free(range_bytes);
  dat_read_stream_free(s);

  /* live changes: a change written on the other store arrives */
  dat_changes *changes = NULL;
  CHECK_OK(dat_drive_changes(reader, wversion + 1, true, &changes));
  dat_change *ch = SENTINEL;
  CHECK_STATUS(dat_changes_next(changes, 0, &ch), DAT_TIMEOUT);
  CHECK_OK(dat_drive_put(writer, "/live.txt", u8("from the writer"), 15));
  CHECK_OK(dat_changes_next(changes, WAIT_MS, &ch));
  if (ch != SENTINEL) {
    char p[64];
    size_t len = 0;
    uint64_t v = 0, size = 0;
    dat_change_type kind = DAT_CHANGE_DEL;
    dat_entry *e = NULL;
    CHECK_OK(dat_change_path(ch, p, sizeof p, &len));
    CHECK_OK(dat_change_version(ch, &v));
    CHECK_OK(dat_change_kind(ch, &kind));
    CHECK_OK(dat_change_entry(ch, &e));
    CHECK(strcmp(p, "/live.txt") == 0 && v == wversion + 1 && kind == DAT_CHANGE_PUT);
    CHECK(e != NULL);
    CHECK_OK(dat_entry_size(e, &size));
    CHECK(size == 15);
    dat_entry_free(e);
    dat_change_free(ch);
  }
  dat_changes_free(changes);
  CHECK(get_is(reader, "/live.txt", "from the writer"));

  /* a download cancelled (here from its progress callback; any thread may) stops with
     DAT_CANCELLED and keeps what arrived */
  cancelling_t cancelling = {0};
  CHECK_OK(dat_cancel_new(&cancelling.cancel));
  uint64_t none = 77;
  CHECK_STATUS(dat_drive_download_until(reader, "/", cancelling.cancel, cancel_on_progress,
                                        &cancelling, &none),
               DAT_CANCELLED);
  CHECK(cancelling.calls == 1 && cancelling.done < cancelling.total && none == 77);
  CHECK_OK(dat_cancel_cancel(cancelling.cancel)); /* twice does nothing */
  dat_cancel_free(cancelling.cancel);

  /* download everything, with progress on this thread */
  progress_t progress = {.monotonic = 1};
  uint64_t fetched = 0;
  CHECK_OK(dat_drive_download(reader, "/", on_progress, &progress, &fetched));
  CHECK(progress.calls >= 1 && progress.monotonic && progress.done == progress.total);
  CHECK(progress.total >= 32 + FILES && fetched > 0 && fetched < progress.total);
  CHECK(pthread_equal(progress.thread, pthread_self()));
  CHECK_OK(dat_log_get(content, 0, 0, &block)); /* now local */
  CHECK(bytes_eq(&block, big, 65536));
  dat_bytes_free(&block);
  /* again: nothing left to fetch, no callback needed */
  CHECK_OK(dat_drive_download(reader, "/files", NULL, NULL, &fetched));
  CHECK(fetched == 0);

  /* the two copies do not differ */
  dat_diff *diff = NULL;
  dat_diff_item item;
  CHECK_OK(dat_drive_diff_drive(reader, writer, "/", &diff));
  CHECK_STATUS(dat_diff_next(diff, &item), DAT_END);
  dat_diff_free(diff);

  /* a drive no peer has: a timeout */
  uint8_t unknown[32];
  memset(unknown, 9, sizeof unknown);
  dat_drive *nobody = SENTINEL;
  CHECK_STATUS(dat_drive_open(rstore, unknown, 32, true, 50, &nobody), DAT_TIMEOUT);
  CHECK(nobody == SENTINEL);

  CHECK_OK(dat_connection_close(conn));
  dat_connection_free(conn);
  dat_server_free(server);
  dat_log_free(content);
  dat_drive_free(reader);
  dat_drive_free(writer);
  dat_store_free(rstore);
  dat_store_free(wstore);
  free(big);
  remove_dir(wdir);
  remove_dir(rdir);
}

/* ------------------------------------------------------------------ misuse */

static void noop_progress(void *userdata, uint64_t done, uint64_t total) {
  (void)userdata;
  (void)done;
  (void)total;
}

static void test_misuse(const dat_store *store) {
  dat_drive_free(NULL);
  dat_entry_free(NULL);
  dat_list_free(NULL);
  dat_diff_free(NULL);
  dat_diff_item_free(NULL);
  dat_history_free(NULL);
  dat_cursor_free(NULL);
  dat_read_stream_free(NULL);
  dat_changes_free(NULL);
  dat_change_free(NULL);
  dat_diff_item zero;
  memset(&zero, 0, sizeof zero);
  dat_diff_item_free(&zero);
  CHECK(1); /* no crash */

  dat_drive *drive = NULL;
  CHECK_OK(dat_drive_create_named(store, "misuse", &drive));
  CHECK_OK(dat_drive_put(drive, "/f.txt", u8("file"), 4));
  CHECK_OK(dat_drive_symlink(drive, "/l", "/f.txt"));

  /* drive: NULL handles, NULL out-parameters, wrong values */
  dat_drive *out = SENTINEL;
  uint8_t key[32] = {0};
  CHECK_STATUS(dat_drive_create(NULL, &out), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_create(store, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_create_named(NULL, "x", &out), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_create_named(store, NULL, &out), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_create_named(store, "x", NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_open(NULL, key, 32, true, 0, &out), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_open(store, NULL, 32, true, 0, &out), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_open(store, key, 31, true, 0, &out), DAT_INVALID_ARGUMENT);
  CHECK_STATUS(dat_drive_open(store, key, 32, true, 0, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_open(store, key, 32, true, 0, &out), DAT_TIMEOUT); /* no peer */
  CHECK_STATUS(dat_drive_checkout(NULL, 1, &out), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_checkout(drive, 1, NULL), DAT_NULL_ARGUMENT);
  CHECK(out == SENTINEL);

  uint64_t u = 77;
  bool b = true;
  CHECK_STATUS(dat_drive_key(NULL, key, 32), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_key(drive, NULL, 32), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_key(drive, key, 31), DAT_BUFFER_TOO_SMALL);
  CHECK_STATUS(dat_drive_discovery_key(NULL, key, 32), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_discovery_key(drive, key, 0), DAT_BUFFER_TOO_SMALL);
  CHECK_STATUS(dat_drive_version(NULL, &u), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_version(drive, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_writable(NULL, &b), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_writable(drive, NULL), DAT_NULL_ARGUMENT);
  dat_log *log = SENTINEL;
  CHECK_STATUS(dat_drive_metadata_log(NULL, &log), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_metadata_log(drive, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_content_log(NULL, &log), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_content_log(drive, NULL), DAT_NULL_ARGUMENT);
  CHECK(u == 77 && b && log == SENTINEL);

  /* writes */
  CHECK_STATUS(dat_drive_put(NULL, "/a", u8("a"), 1), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_put(drive, NULL, u8("a"), 1), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_put(drive, "/a", NULL, 1), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_put(drive, "/..", u8("a"), 1), DAT_INVALID_ARGUMENT);
  CHECK_STATUS(dat_drive_put(drive, "/a/../..", u8("a"), 1), DAT_INVALID_ARGUMENT);
  CHECK_STATUS(dat_drive_put(drive, "/", u8("a"), 1), DAT_INVALID_ARGUMENT);
  CHECK_STATUS(dat_drive_put(drive, "", u8("a"), 1), DAT_INVALID_ARGUMENT);
  CHECK_STATUS(dat_drive_put(drive, "/\xff\xfe", u8("a"), 1), DAT_INVALID_ARGUMENT);
  dat_put_options opts = {0};
  dat_dedup_report report = {.bytes_total = 77};
  CHECK_STATUS(dat_drive_put_with(NULL, "/a", u8("a"), 1, &opts, &report), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_put_with(drive, NULL, u8("a"), 1, &opts, &report), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_put_with(drive, "/a", NULL, 1, &opts, &report), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_put_with(drive, "/..", u8("a"), 1, &opts, &report),
               DAT_INVALID_ARGUMENT);
  dat_put_options not_utf8 = {.metadata = "\"\xff\""};
  CHECK_STATUS(dat_drive_put_with(drive, "/a", u8("a"), 1, &not_utf8, &report),
               DAT_INVALID_ARGUMENT);
  CHECK(report.bytes_total == 77);
  CHECK_STATUS(dat_drive_del(NULL, "/a", NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_del(drive, NULL, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_del(drive, "/..", &b), DAT_INVALID_ARGUMENT);
  CHECK_STATUS(dat_drive_symlink(NULL, "/s", "/f.txt"), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_symlink(drive, NULL, "/f.txt"), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_symlink(drive, "/s", NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_symlink(drive, "/..", "/f.txt"), DAT_INVALID_ARGUMENT);
  CHECK(version_of(drive) == 3); /* nothing was written */

  /* reads */
  dat_bytes bytes = {0};
  dat_entry *e = SENTINEL;
  CHECK_STATUS(dat_drive_get(NULL, "/f.txt", &bytes), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_get(drive, NULL, &bytes), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_get(drive, "/f.txt", NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_get(drive, "/..", &bytes), DAT_INVALID_ARGUMENT);
  CHECK(bytes.data == NULL);
  CHECK_STATUS(dat_drive_entry(NULL, "/f.txt", &e), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_entry(drive, NULL, &e), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_entry(drive, "/f.txt", NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_entry(drive, "/..", &e), DAT_INVALID_ARGUMENT);
  CHECK_STATUS(dat_drive_exists(NULL, "/f.txt", &b), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_exists(drive, NULL, &b), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_exists(drive, "/f.txt", NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_exists(drive, "/..", &b), DAT_INVALID_ARGUMENT);
  CHECK(e == SENTINEL && b);
  CHECK_STATUS(dat_drive_download(NULL, "/", noop_progress, NULL, &u), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_download(drive, NULL, noop_progress, NULL, &u), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_download(drive, "/", noop_progress, NULL, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_download(drive, "/..", noop_progress, NULL, &u), DAT_INVALID_ARGUMENT);
  CHECK(u == 77);
  CHECK_OK(dat_drive_download(drive, "/", NULL, NULL, &u)); /* a local drive: all there */
  CHECK(u == 0);

  /* entry getters */
  CHECK_OK(dat_drive_entry(drive, "/l", &e));
  char buf[64];
  size_t n = 77;
  CHECK_STATUS(dat_entry_size(NULL, &u), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_entry_size(e, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_entry_executable(NULL, &b), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_entry_executable(e, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_entry_is_symlink(NULL, &b), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_entry_is_symlink(e, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_entry_linkname(NULL, buf, sizeof buf, &n), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_entry_linkname(e, NULL, sizeof buf, &n), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_entry_linkname(e, buf, sizeof buf, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_entry_linkname(e, NULL, 0, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_entry_linkname(e, buf, 3, &n), DAT_BUFFER_TOO_SMALL);
  CHECK_STATUS(dat_entry_metadata(NULL, buf, sizeof buf, &n), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_entry_metadata(e, buf, sizeof buf, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_entry_metadata(e, NULL, 5, &n), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_entry_metadata(e, buf, sizeof buf, &n), DAT_NOT_FOUND);
  CHECK(n == 77 && u == 0);
  dat_entry_free(e);

  /* iterators */
  dat_list *list = SENTINEL;
  e = SENTINEL;
  CHECK_STATUS(dat_drive_list(NULL, "/", true, &list), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_list(drive, NULL, true, &list), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_list(drive, "/", true, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_list(drive, "/..", true, &list), DAT_INVALID_ARGUMENT);
  CHECK(list == SENTINEL);
  CHECK_OK(dat_drive_list(drive, "/", true, &list));
  CHECK_STATUS(dat_list_next(NULL, &bytes, &e), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_list_next(list, NULL, &e), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_list_next(list, &bytes, NULL), DAT_NULL_ARGUMENT);
  CHECK(bytes.data == NULL && e == SENTINEL);
  CHECK_OK(dat_list_next(list, &bytes, &e)); /* a failed next consumed nothing */
  CHECK(bytes_is(&bytes, "/f.txt"));
  dat_bytes_free(&bytes);
  dat_entry_free(e);
  dat_list_free(list);

  dat_diff *diff = SENTINEL;
  dat_diff_item item;
  CHECK_STATUS(dat_drive_diff(NULL, 1, "/", &diff), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_diff(drive, 1, NULL, &diff), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_diff(drive, 1, "/", NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_diff(drive, 1, "/..", &diff), DAT_INVALID_ARGUMENT);
  CHECK_STATUS(dat_drive_diff_drive(NULL, drive, "/", &diff), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_diff_drive(drive, NULL, "/", &diff), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_diff_drive(drive, drive, NULL, &diff), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_diff_drive(drive, drive, "/", NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_diff_drive(drive, drive, "/..", &diff), DAT_INVALID_ARGUMENT);
  CHECK(diff == SENTINEL);
  CHECK_OK(dat_drive_diff(drive, 1, "/", &diff));
  CHECK_STATUS(dat_diff_next(NULL, &item), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_diff_next(diff, NULL), DAT_NULL_ARGUMENT);
  dat_diff_free(diff);

  dat_history *h = SENTINEL;
  CHECK_STATUS(dat_drive_file_history(NULL, "/f.txt", &h), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_file_history(drive, NULL, &h), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_file_history(drive, "/f.txt", NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_file_history(drive, "/..", &h), DAT_INVALID_ARGUMENT);
  CHECK(h == SENTINEL);
  CHECK_OK(dat_drive_file_history(drive, "/f.txt", &h));
  u = 77;
  CHECK_STATUS(dat_history_next(NULL, &u, &e), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_history_next(h, NULL, &e), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_history_next(h, &u, NULL), DAT_NULL_ARGUMENT);
  CHECK(u == 77);
  dat_history_free(h);

  dat_changes *changes = SENTINEL;
  dat_change *ch = SENTINEL;
  CHECK_STATUS(dat_drive_changes(NULL, 2, false, &changes), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_drive_changes(drive, 2, false, NULL), DAT_NULL_ARGUMENT);
  CHECK(changes == SENTINEL);
  CHECK_OK(dat_drive_changes(drive, 2, false, &changes));
  CHECK_STATUS(dat_changes_next(NULL, 0, &ch), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_changes_next(changes, 0, NULL), DAT_NULL_ARGUMENT);
  CHECK(ch == SENTINEL);
  CHECK_OK(dat_changes_next(changes, 0, &ch));
  dat_changes_free(changes);
  dat_change_type kind = DAT_CHANGE_DEL;
  CHECK_STATUS(dat_change_version(NULL, &u), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_change_version(ch, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_change_kind(NULL, &kind), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_change_kind(ch, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_change_path(NULL, buf, sizeof buf, &n), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_change_path(ch, NULL, sizeof buf, &n), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_change_path(ch, buf, sizeof buf, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_change_entry(NULL, &e), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_change_entry(ch, NULL), DAT_NULL_ARGUMENT);
  CHECK(u == 77 && kind == DAT_CHANGE_DEL && n == 77);
  dat_change_free(ch);

  /* cursor and stream */
  dat_cursor *c = SENTINEL;
  CHECK_STATUS(dat_cursor_open(NULL, "/f.txt", &c), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_cursor_open(drive, NULL, &c), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_cursor_open(drive, "/f.txt", NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_cursor_open(drive, "/..", &c), DAT_INVALID_ARGUMENT);
  CHECK(c == SENTINEL);
  CHECK_OK(dat_cursor_open(drive, "/l", &c)); /* through the symlink */
  uint8_t data[8];
  CHECK_STATUS(dat_cursor_seek(NULL, 0), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_cursor_read(NULL, data, sizeof data, &n), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_cursor_read(c, NULL, sizeof data, &n), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_cursor_read(c, data, sizeof data, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_cursor_tell(NULL, &u), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_cursor_tell(c, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_cursor_len(NULL, &u), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_cursor_len(c, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_cursor_seek(c, 5), DAT_OUT_OF_BOUNDS);
  CHECK(n == 77 && u == 77);
  CHECK_OK(dat_cursor_read(c, data, sizeof data, &n));
  CHECK(n == 4 && memcmp(data, "file", 4) == 0);
  dat_cursor_free(c);

  dat_read_stream *s = SENTINEL;
  bool done = false;
  CHECK_STATUS(dat_read_stream_open(NULL, "/f.txt", 0, UINT64_MAX, &s), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_read_stream_open(drive, NULL, 0, UINT64_MAX, &s), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_read_stream_open(drive, "/f.txt", 0, UINT64_MAX, NULL), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_read_stream_open(drive, "/..", 0, UINT64_MAX, &s), DAT_INVALID_ARGUMENT);
  CHECK(s == SENTINEL);
  CHECK_OK(dat_read_stream_open(drive, "/f.txt", 0, UINT64_MAX, &s));
  n = 77;
  CHECK_STATUS(dat_read_stream_next(NULL, data, sizeof data, &n, &done), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_read_stream_next(s, NULL, sizeof data, &n, &done), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_read_stream_next(s, data, sizeof data, NULL, &done), DAT_NULL_ARGUMENT);
  CHECK_STATUS(dat_read_stream_next(s, data, sizeof data, &n, NULL), DAT_NULL_ARGUMENT);
  CHECK(n == 77 && !done);
  CHECK_OK(dat_read_stream_next(s, data, sizeof data, &n, &done));
  CHECK(n == 4 && done && memcmp(data, "file", 4) == 0);
  dat_read_stream_free(s);

  dat_drive_free(drive);
}

/* ------------------------------------------------------------------ README */

static void test_readme_example(void) {
  char *dir = temp_dir();
  char *argv[] = {"example_readme", dir, NULL};
  CHECK(readme_example_main(2, argv) == 0);
  remove_dir(dir);
}

int main(void) {
  char *dir;
  const dat_store *store = open_test_store(&dir);
  test_write_read(store);
  test_cursor_and_stream(store);
  test_versions(store);
  test_dedup(store);
  test_misuse(store);
  dat_store_free(store);
  remove_dir(dir);
  test_replication();
  test_readme_example();
  return finish();
}
