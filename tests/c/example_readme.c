/* A drive: write files, read one whole and through a cursor, list them, read an old version. */
#include <stdio.h>
#include <string.h>

#include "dat.h"

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "/tmp/dat-drive-example";
  dat_store_options opts = {.map_size = 1u << 30}; /* 1 GiB of address space is plenty here */
  const dat_store *store;
  dat_drive *drive;
  if (dat_store_open_with(dir, &opts, &store) != DAT_OK) return 1;
  if (dat_drive_create(store, &drive) != DAT_OK) return 1;

  dat_drive_put(drive, "/docs/hello.txt", (const uint8_t *)"hello world", 11);
  uint64_t first;
  dat_drive_version(drive, &first);
  dat_drive_put(drive, "/docs/hello.txt", (const uint8_t *)"hello again", 11);
  dat_drive_symlink(drive, "/latest", "/docs/hello.txt");

  dat_bytes file; /* a whole file, allocated by libdat */
  if (dat_drive_get(drive, "/docs/hello.txt", &file) != DAT_OK) return 1;
  printf("%.*s\n", (int)file.len, (const char *)file.data);
  dat_bytes_free(&file);

  dat_cursor *cursor; /* random access into the caller's buffer */
  char word[8];
  size_t n;
  dat_cursor_open(drive, "/latest", &cursor); /* follows the symlink */
  dat_cursor_seek(cursor, 6);
  dat_cursor_read(cursor, (uint8_t *)word, sizeof word, &n); /* n == 5: "again" */
  dat_cursor_free(cursor);

  dat_list *list;
  dat_bytes path;
  dat_entry *entry;
  uint64_t size;
  dat_drive_list(drive, "/", true, &list);
  while (dat_list_next(list, &path, &entry) == DAT_OK) { /* then DAT_END */
    dat_drive_file_size(drive, entry, &size); /* also a deduplicated file's */
    printf("%.*s: %llu bytes\n", (int)path.len, (const char *)path.data, (unsigned long long)size);
    dat_bytes_free(&path);
    dat_entry_free(entry);
  }
  dat_list_free(list);

  dat_drive *old; /* a read-only checkout */
  dat_drive_checkout(drive, first, &old);
  if (dat_drive_get(old, "/docs/hello.txt", &file) != DAT_OK) return 1;
  int ok = n == 5 && memcmp(word, "again", 5) == 0 && memcmp(file.data, "hello world", 11) == 0;
  dat_bytes_free(&file);
  dat_drive_free(old);
  dat_drive_free(drive);
  dat_store_free(store);
  return ok ? 0 : 1;
}
