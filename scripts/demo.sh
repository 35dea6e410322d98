#!/usr/bin/env bash
# The main job on the embedded default store: mount it at /slinky (or $SLINKY_MOUNT), copy this
# machine's executables in, run one from the mount, and show what digest-based sharing saves.
set -euo pipefail
cd "$(dirname "$0")/.."
MNT=${SLINKY_MOUNT:-/slinky}
BIN=./bin/slinkyfs

mkdir -p "$MNT"
if ! grep -q " $MNT fuse.slinkyfs " /proc/self/mounts; then
  "$BIN" mount "$MNT"
fi
echo "mounted the default store at $MNT; copying /usr/bin into $MNT/bin ..."
mkdir -p "$MNT/bin"
start=$(date +%s.%N)
cp -a /usr/bin/. "$MNT/bin/"
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v b="$(du -sb /usr/bin | cut -f1)" 'BEGIN { printf "copied %.0f MB in %.1f s (%.0f MB/s)\n", b/1e6, e-s, b/1e6/(e-s) }'
echo "running $MNT/bin/ls from the mount:"
"$MNT/bin/ls" -l "$MNT/bin/ls"
echo "copying it all again under $MNT/again (every chunk is already stored) ..."
mkdir -p "$MNT/again"
cp -a /usr/bin/. "$MNT/again/"
# The daemon compresses new chunks once writes pause: wait for it (at most two minutes).
printf 'waiting for background compression'
for _ in $(seq 1 120); do
  pending=$("$BIN" stats "$MNT" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).pendingCompression))')
  [ "$pending" = "0" ] && break
  printf '.'
  sleep 1
done
echo
"$BIN" stats "$MNT" --by-dir
echo
echo "$MNT stays mounted; unmount with: $BIN umount $MNT"
