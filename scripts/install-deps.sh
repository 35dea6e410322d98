#!/usr/bin/env bash
# Installs what slinkyfs needs on a Debian 12 machine, and nothing when it is already there:
# system packages (FUSE 3 tools and headers for our binding, FUSE 2 for the fuse-native baseline
# of bench/fuseBinding.ts, zstd headers for the addon, the benchmark peers) and the npm
# dependencies from package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  libfuse2 fuse3 libfuse3-dev pkg-config   # mounting (native/fusell.c, fusermount3); libfuse.so.2 for fuse-native
  libzstd-dev gcc make                       # the native addon and the loader stub
  liblzma-dev                                # xz for chunk batches on the wire (native/netxz.c)
  bindfs casync hyperfine zstd               # benchmark peers (bench/)
  acl                                        # setfacl/getfacl for the ACL tests
  attr                                       # getfattr/setfattr for the tests of what digest keeps
  strace                                     # the tests of which files a slinked program opens
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# npm ci only when the lock file changed since the last install.
stamp=node_modules/.slinkyfs-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  # npm install, not npm ci: npm 11 ci rejects this lock file over optional deps of other
  # platforms (msgpackr-extract); install still takes the exact versions the lock records.
  npm install --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi
