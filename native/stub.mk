# The loader stub at the front of every slinked file (native/stub.c). Freestanding and -static-pie;
# it must carry no run-time relocations because nothing would apply them, so the build fails if
# the linker left any. src/elf/slink.ts reads build/stub at run time.
STUB_CFLAGS := -Os -std=gnu11 -Wall -Wextra -Werror -fPIE -ffreestanding -fno-builtin \
	-fno-stack-protector -fno-asynchronous-unwind-tables -fno-unwind-tables \
	-fno-tree-loop-distribute-patterns -fcf-protection=none -fno-plt
STUB_LDFLAGS := -nostdlib -static-pie -Wl,--build-id=none -Wl,-z,noexecstack \
	-Wl,-z,norelro -Wl,-z,noseparate-code -Wl,--hash-style=gnu -Wl,-e,_start

build/stub: native/stub.c native/stub.mk
	@mkdir -p build
	$(CC) $(STUB_CFLAGS) $(STUB_LDFLAGS) -o $@.tmp native/stub.c
	@if readelf -rW $@.tmp | grep -q 'R_X86_64'; then \
		echo 'native/stub.c: the stub has run-time relocations (no pointers in initialised data)' >&2; \
		readelf -rW $@.tmp >&2; rm -f $@.tmp; exit 1; fi
	@if readelf -lW $@.tmp | grep -q INTERP; then echo 'native/stub.c: stub must not have PT_INTERP' >&2; rm -f $@.tmp; exit 1; fi
	strip --strip-all -R .comment $@.tmp
	mv $@.tmp $@

NATIVE_TARGETS += build/stub
