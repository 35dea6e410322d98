# slinkyfs build. `make` builds the TypeScript and every native part; `make test` type-checks,
# builds and runs the whole suite. Native parts each have their own fragment in native/*.mk.
NODE_INCLUDE ?= $(shell node -p "require('path').resolve(process.execPath, '../../include/node')")
CC ?= cc

.PHONY: all build ts native test clean
all: build
build: ts native

ts:
	npx tsc -p .

NATIVE_TARGETS :=
include $(wildcard native/*.mk)

native: $(NATIVE_TARGETS)

test: build
	npx tsc --noEmit -p .
	npx jest --ci

clean:
	rm -rf dist build
