# prism: two commands matter — `make demo` and `make test` (see README.md).
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all bootstrap configure build demo test unit-asan unit-tsan fuzz interop-deps bench format clean

all: build

bootstrap:
	@bash scripts/bootstrap.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_ARGS)

configure: bootstrap $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j$(JOBS)

# The main job on the embedded default.
demo: build
	@bash scripts/demo.sh $(BUILD)

# npm packages of the test peers written by others (OpenTelemetry JS).
interop-deps:
	@for f in tools/*/install.sh; do if [ -f "$$f" ]; then bash "$$f" || exit 1; fi; done

# Unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
unit-asan: bootstrap
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPRISM_SANITIZE=ON -DPRISM_UNIT_ONLY=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(ASAN_BUILD) -L unit --output-on-failure -j$(JOBS) --timeout 300

# Unit tests again under ThreadSanitizer: the SDK, the batch processor's
# lock-free ring, its fork handlers, adaptive sampling's shards, PtrMap.
# Optimised (-O2), so the concurrency tests run at a useful speed.
# die_after_fork=0: the fork tests start threads in the child on purpose.
# ForkChildGetsAWorkingProcessor is left to the plain and ASan runs: GCC 12's
# TSan runtime cannot follow a thread started in the child of a threaded
# process ("dup thread with used id"); ForkUnderLoadLosesNothingInTheParent
# runs the fork handlers here, under load, with a child that starts none.
# TcpListener.HandsOnUpToTheLimitAndRefusesTheRest is left out too: the
# listener's thread fstat()s a descriptor number the test thread closed and
# reused, which TSan reports as a race on the fd; that check of an fd gRPC
# may have closed is the design (proxy/src/listener.h, OpenConnections).
unit-tsan: bootstrap
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPRISM_TSAN=ON -DPRISM_UNIT_ONLY=ON
	cmake --build $(TSAN_BUILD) -j$(JOBS)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 die_after_fork=0" \
	  ctest --test-dir $(TSAN_BUILD) -L unit -E '^(BatchSpanProcessorTest.ForkChildGetsAWorkingProcessor|TcpListener.HandsOnUpToTheLimitAndRefusesTheRest)$$' \
	  --output-on-failure -j$(JOBS) --timeout 300

# Short bounded fuzz runs of the header parsers and the proxy's request path (clang + libFuzzer).
fuzz: bootstrap
	@if [ -x scripts/fuzz.sh ]; then bash scripts/fuzz.sh; else echo "fuzz: no targets yet"; fi

# Every test: sanitizer unit tests, fuzzing, then the full suite (last, so
# its summary closes the output).
test: build interop-deps unit-asan unit-tsan fuzz
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS) --timeout 600

bench: build
	@bash scripts/bench.sh $(BUILD)

format:
	@find . -path ./build -prune -o -path './build-*' -prune -o -path '*/node_modules' -prune -o \
	  \( -name '*.cc' -o -name '*.h' \) -print | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-fuzz
