# build/slinky_native.node: the N-API addon behind src/chunking (Rabin cut finder, chunking and
# hashing of write batches, zstd chunk compression, extended attributes of open files for digest). Plain $(CC) against Node's headers, no
# node-gyp; links Debian's libzstd (apt package libzstd-dev to build, libzstd1 to run).
SLINKY_NATIVE := build/slinky_native.node
SLINKY_NATIVE_SRC := native/addon.c native/addon_rabin.c native/addon_zstd.c native/addon_chunkhash.c native/addon_xattr.c native/codecJob.c
SLINKY_NATIVE_CFLAGS := -O2 -std=gnu11 -Wall -Wextra -Werror=implicit-function-declaration \
	-fvisibility=hidden -shared -fPIC -I$(NODE_INCLUDE) -Wno-deprecated-declarations

NATIVE_TARGETS += $(SLINKY_NATIVE)

$(SLINKY_NATIVE): $(SLINKY_NATIVE_SRC) native/addon.h native/codecJob.h native/addon.mk
	@mkdir -p $(@D)
	@test -f /usr/include/zstd.h || { echo "slinky_native needs zstd.h: apt-get install libzstd-dev" >&2; exit 1; }
	$(CC) $(SLINKY_NATIVE_CFLAGS) -o $@ $(SLINKY_NATIVE_SRC) -lzstd
