# Twin - the two commands a new machine needs:
#
#   make demo   install what is missing, build, and run the main job
#   make test   install what is missing, build every preset, run every suite
#
# Both start with scripts/bootstrap, which is idempotent and quick when
# everything is present.

.PHONY: all build demo test bootstrap format fuzz clean

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake --preset default >/dev/null
	@cmake --build --preset default

demo:
	@scripts/demo

test:
	@scripts/test

# Rewrites every C file in the clang-format style (the test only checks).
format:
	@scripts/check-format --fix

# Runs every libFuzzer target for FUZZ_SECONDS each (default 60).
FUZZ_SECONDS ?= 60
fuzz: bootstrap
	@scripts/fuzz $(FUZZ_SECONDS)

clean:
	rm -rf build
