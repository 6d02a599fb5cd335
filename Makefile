# The front door. Every target installs what it needs first (Debian 12).
#
#   make run         build and start tokenplace-relay on 127.0.0.1:5010
#   make test        everything: warnings-as-errors build, all tests, ASan+UBSan, valgrind
#   make check       the dev build and its tests only (quick loop)
#   make test-asan   the whole suite under ASan+UBSan
#   make test-valgrind  the integration tests with the relay under valgrind
#   make test-tsan   the Redis store unit tests under ThreadSanitizer
#   make fuzz-long   the HTTP fuzzer against the ASan relay for 10 minutes
#                    (FUZZ_LONG_SECONDS, FUZZ_SEED); not part of `test`
#   make bench       wrk benchmarks on loopback (not a test)
#   make image-multiarch  amd64 + arm64 image manifest, arm64 run under qemu

JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE   ?= cmake
CTEST   ?= ctest
DEPS    := cmake/install-deps.sh
DEV     := build/dev
ASAN    := build/asan
VG      := build/valgrind
TSAN    := build/tsan
RELEASE := build/release
# Tests of artifacts rather than of C code, and the fuzzers (which carry
# their own sanitizers): the ASan pass adds nothing there.
NOT_C   := chart|lint|image|windows|fuzz

RELAY_HOST ?= 127.0.0.1
RELAY_PORT ?= 5010

.PHONY: all deps build run test check test-asan test-valgrind test-tsan release bench clean fuzz-long

all: build

deps:
	@sh $(DEPS) all

build: deps
	$(CMAKE) --preset dev >/dev/null
	$(CMAKE) --build --preset dev -j $(JOBS)

run:
	@sh $(DEPS) build
	$(CMAKE) --preset release >/dev/null
	$(CMAKE) --build --preset release -j $(JOBS) --target tokenplace-relay
	RELAY_HOST=$(RELAY_HOST) RELAY_PORT=$(RELAY_PORT) exec ./$(RELEASE)/relay/tokenplace-relay

check: build
	$(CTEST) --test-dir $(DEV) --output-on-failure -j $(JOBS)

test-asan: deps
	$(CMAKE) --preset asan >/dev/null
	$(CMAKE) --build --preset asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(CTEST) --test-dir $(ASAN) --output-on-failure -j $(JOBS) -LE '$(NOT_C)'

# Integration tests with every relay process under valgrind (the dev build).
test-valgrind: build
	TP_RELAY_WRAPPER="valgrind --quiet --error-exitcode=97 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --track-fds=no" \
	  TP_TIMEOUT_SCALE=10 \
	  $(CTEST) --test-dir $(DEV) --output-on-failure -L integration -j $(JOBS)

# The HTTP fuzzer (tests/integration/test_http_fuzz.py) for much longer
# than its bounded run in test-asan, on the ASan+UBSan relay, every route,
# with a fresh seed each time (printed; FUZZ_SEED=<n> repeats a run). Run
# it before submitting any change to request handling (docs/hardening.md).
FUZZ_LONG_SECONDS ?= 600
FUZZ_SEED ?= $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
fuzz-long: deps
	$(CMAKE) --preset asan >/dev/null
	$(CMAKE) --build --preset asan -j $(JOBS) --target tokenplace-relay
	TP_RELAY_BIN=$(ASAN)/relay/tokenplace-relay TP_HTTP_FUZZ_REQUIRED=1 \
	  TP_HTTP_FUZZ_SECONDS=$(FUZZ_LONG_SECONDS) TP_HTTP_FUZZ_CASES=1000000000 \
	  TP_HTTP_FUZZ_SEED=$(FUZZ_SEED) \
	  PYTHONPATH=tests/integration:tests/fixtures \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  /usr/bin/python3 -B tests/integration/test_http_fuzz.py

# The Redis store's unit tests (adapter, both stores' suites, brokers; label
# "redis", not "integration") under ThreadSanitizer: the pool, the
# subscriber thread and the time base are shared by every worker thread.
test-tsan: deps
	$(CMAKE) --preset tsan >/dev/null
	$(CMAKE) --build --preset tsan -j $(JOBS)
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  $(CTEST) --test-dir $(TSAN) --output-on-failure -j $(JOBS) -L redis -LE integration

# The optimised build of everything: -O2 finds warnings (format truncation,
# ...) that the debug builds do not, and `make run` uses it.
release:
	$(CMAKE) --preset release >/dev/null
	$(CMAKE) --build --preset release -j $(JOBS)

test: check test-asan test-valgrind test-tsan release

bench:
	@sh $(DEPS) bench
	$(CMAKE) --preset release >/dev/null
	$(CMAKE) --build --preset release -j $(JOBS) --target tokenplace-relay
	/usr/bin/python3 bench/run.py --relay ./$(RELEASE)/relay/tokenplace-relay

# Both image architectures in one manifest list; the arm64 one runs under
# qemu (tests/image/test_multiarch.py). Slow when cold; not part of `test`.
.PHONY: image-multiarch
image-multiarch:
	@sh $(DEPS) multiarch
	/usr/bin/python3 -B tests/image/test_multiarch.py

clean:
	rm -rf build
