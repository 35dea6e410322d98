# slinkyfs build. `make demo` installs everything and runs the main job; `make test` installs
# what is missing, builds, type-checks and runs the whole suite. Native parts each have their
# own fragment in native/*.mk.
NODE_INCLUDE ?= $(shell node -p "require('path').resolve(process.execPath, '../../include/node')")
CC ?= cc

.PHONY: all deps build ts native test demo bench clean
all: build

deps:
	bash scripts/install-deps.sh

build: deps
	$(MAKE) ts native

ts:
	npx tsc -p .

NATIVE_TARGETS :=
include $(wildcard native/*.mk)

native: $(NATIVE_TARGETS)

test: build
	npx tsc --noEmit -p .
	npx jest --ci

demo: build
	bash scripts/demo.sh

clean:
	rm -rf dist build
