#!/usr/bin/env bash
# libdat's main job, on this machine: share a folder as a drive, read it from another peer.
# Two peers on 127.0.0.1, each with its own store: a sharer and a reader.
#   scripts/demo.sh [path/to/dat]
set -euo pipefail
DAT=${1:-target/release/dat}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/libdat-demo.XXXXXX")
SHARER_PID=
cleanup() { [ -n "$SHARER_PID" ] && kill "$SHARER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "a sample folder: 300 small files and one 64 MiB file"
mkdir -p "$WORK/folder/notes" "$WORK/folder/media"
for i in $(seq -w 1 300); do
  printf 'note %s\nthe quick brown fox jumps over the lazy dog %s\n' "$i" "$i" > "$WORK/folder/notes/note-$i.txt"
done
head -c $((64 << 20)) /dev/urandom > "$WORK/folder/media/large.bin"
du -sh "$WORK/folder"

step "peer A shares it (dat share --watch): import, then serve on 127.0.0.1"
"$DAT" --store "$WORK/store-a" share "$WORK/folder" --watch > "$WORK/share.out" &
SHARER_PID=$!
for _ in $(seq 1 600); do grep -q '^listening' "$WORK/share.out" 2>/dev/null && break; sleep 0.1; done
KEY=$(awk '/^key/ {print $2}' "$WORK/share.out")
ADDR=$(awk '/^listening/ {print $2}' "$WORK/share.out")
[ -n "$ADDR" ] || { echo "the sharer did not start"; exit 1; }
echo "drive key: $KEY"
echo "address:   $ADDR"

step "peer B: a sparse clone (the metadata only)"
"$DAT" --store "$WORK/store-b" clone "$KEY" "$WORK/clone" --peer "$ADDR" --sparse | tail -3

step "peer B reads 100 bytes in the middle of the large file (a cursor seek): only the blocks it needs"
"$DAT" --store "$WORK/store-b" cat "$KEY" /media/large.bin --start $((32 << 20)) --end $(( (32 << 20) + 99 )) --peer "$ADDR" --stats | od -An -tx1 | head -2
cmp <("$DAT" --store "$WORK/store-b" cat "$KEY" /media/large.bin --start $((32 << 20)) --end $(( (32 << 20) + 99 )) --peer "$ADDR") \
    <(tail -c +$(( (32 << 20) + 1 )) "$WORK/folder/media/large.bin" | head -c 100) && echo "the bytes match the original"

step "a change on peer A arrives live at peer B (dat log --follow)"
"$DAT" --store "$WORK/store-b" log "$KEY" --peer "$ADDR" --follow --count 1 > "$WORK/follow.out" &
FOLLOW=$!
sleep 1
echo "a new line" >> "$WORK/folder/notes/note-007.txt"
wait "$FOLLOW"
echo "peer B saw: $(tail -1 "$WORK/follow.out")"

step "peer B: dat log (newest first)"
"$DAT" --store "$WORK/store-b" log "$KEY" --peer "$ADDR" | head -3

step "peer B: dat history /notes/note-007.txt"
"$DAT" --store "$WORK/store-b" history "$KEY" /notes/note-007.txt --peer "$ADDR"

VERSION=$("$DAT" --store "$WORK/store-b" log "$KEY" --peer "$ADDR" | sed -n 2p | cut -f1)
step "peer B: dat checkout $VERSION (the version before the change) and dat diff $VERSION"
"$DAT" --store "$WORK/store-b" checkout "$KEY" "$VERSION" "$WORK/old" --peer "$ADDR"
"$DAT" --store "$WORK/store-b" diff "$KEY" "$VERSION" --peer "$ADDR"
diff <(cat "$WORK/old/notes/note-007.txt"; echo "a new line") "$WORK/folder/notes/note-007.txt" && echo "the old version is the file before the change"

step "peer B: a full clone, compared with the folder"
"$DAT" --store "$WORK/store-b" clone "$KEY" "$WORK/clone" --peer "$ADDR"
diff -r "$WORK/folder" "$WORK/clone" && echo "identical"

step "done"
