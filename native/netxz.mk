# build/slinky_xz.node: xz (LZMA2) for chunk batches on the wire (src/net/xz.ts). Plain $(CC)
# against Node's headers; links Debian's liblzma (apt package liblzma-dev to build, liblzma5 to
# run). Optional at run time: without it the peer protocol offers zstd only.
SLINKY_XZ := build/slinky_xz.node
SLINKY_XZ_CFLAGS := -O2 -std=gnu11 -Wall -Wextra -Werror=implicit-function-declaration \
	-fvisibility=hidden -shared -fPIC -I$(NODE_INCLUDE)

NATIVE_TARGETS += $(SLINKY_XZ)

$(SLINKY_XZ): native/netxz.c native/codecJob.c native/codecJob.h native/netxz.mk
	@mkdir -p $(@D)
	@test -f /usr/include/lzma.h || { echo "slinky_xz needs lzma.h: apt-get install liblzma-dev" >&2; exit 1; }
	$(CC) $(SLINKY_XZ_CFLAGS) -o $@ native/netxz.c native/codecJob.c -llzma
