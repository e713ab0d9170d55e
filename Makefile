# Rein — the two commands of the README, plus benchmarks. Every target installs what is missing.
SWIFT ?= swift
REIN := .build/release/rein

.PHONY: setup build demo test bench bench-quick clean

setup:
	@scripts/setup.sh

build: setup
	$(SWIFT) build -c release

# The main job on a small default: pretrain π_ref if missing, then a short RL run.
demo: setup
	scripts/demo.sh

# The test suite (what CI runs). The actor-system tests measure timeouts and heartbeats, so they
# run in their own process: CPU-bound tests elsewhere would starve the shared cooperative pool.
# Each run is bounded: a test process that crashes while its backtrace is being taken can leave
# the backtracer waiting forever, and a hung run must fail, not stall the CI.
# The hostile-frames test bounds its process's RSS growth, so it runs alone in a third process.
TIMED_TESTS := ReinActorsTests|ReinRuntimeTests
ALONE_TESTS := WireFuzzTests
TEST_LIMIT := timeout --kill-after=30 1800
test: setup
	$(SWIFT) build --build-tests
	$(TEST_LIMIT) $(SWIFT) test --skip-build --skip '$(TIMED_TESTS)'
	$(TEST_LIMIT) $(SWIFT) test --skip-build --filter '$(TIMED_TESTS)' --skip '$(ALONE_TESTS)'
	$(TEST_LIMIT) $(SWIFT) test --skip-build --filter '$(ALONE_TESTS)'

# Full benchmarks (minutes); each compares against a peer measured in the same run.
bench: build
	$(REIN) bench transport
	$(REIN) bench model
	$(REIN) bench kl
	$(REIN) bench e2e $$(test -f runs/reference.safetensors || echo --random-reference 1)
	scripts/bench/memory.sh

bench-quick: build
	$(REIN) bench transport --quick

clean:
	rm -rf .build
