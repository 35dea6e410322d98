# build/slinky_fusell.node: the N-API binding to libfuse3's low-level API behind src/fs/lowlevel.ts.
# Plain $(CC) against Node's headers, no node-gyp; links Debian's libfuse3 (apt packages
# libfuse3-dev and pkg-config to build, libfuse3-3 and fuse3 to run).
SLINKY_FUSELL := build/slinky_fusell.node
SLINKY_FUSELL_CFLAGS := -O2 -std=gnu11 -Wall -Wextra -Werror=implicit-function-declaration \
	-fvisibility=hidden -shared -fPIC -I$(NODE_INCLUDE)

NATIVE_TARGETS += $(SLINKY_FUSELL)

$(SLINKY_FUSELL): native/fusell.c native/fusell.mk
	@mkdir -p $(@D)
	@pkg-config --exists fuse3 || { echo "slinky_fusell needs libfuse3: apt-get install libfuse3-dev pkg-config" >&2; exit 1; }
	$(CC) $(SLINKY_FUSELL_CFLAGS) $$(pkg-config --cflags fuse3) -o $@ native/fusell.c $$(pkg-config --libs fuse3)
