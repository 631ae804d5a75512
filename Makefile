# rpcgate: the two set-up commands are `make run` and `make test`; everything else is here too.
# Every target installs what it needs first (`make deps`), so a fresh Debian 12 machine works.

SHELL := /bin/bash
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 30
# Sanitizer reports with file:line (llvm-19's symbolizer matches clang-19's runtime).
export ASAN_SYMBOLIZER_PATH ?= /usr/lib/llvm-19/bin/llvm-symbolizer

# Build: toolchains and libraries; scdoc renders the manual pages (docs/man/*.scd, cmake/Man.cmake).
# Test: the independent peers the integration tests talk to; man-db's `man` renders the pages
# the way a reader sees them (tests/man_pages_test.py).
BUILD_PKGS := cmake ninja-build g++-12 clang-19 libclang-rt-19-dev llvm-19 clang-format \
              libgtest-dev libgmock-dev libbenchmark-dev libasio-dev libtomlplusplus-dev \
              libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libsystemd-dev pkg-config \
              libnftables-dev scdoc prometheus-cpp-dev
# prometheus: the real Prometheus and promtool the metrics tests scrape the daemons with.
TEST_PKGS  := python3 python3-impacket python3-samba tshark iproute2 procps nftables util-linux samba-testsuite \
              man-db prometheus
# Bench: Samba's endpoint mapper (samba-dcerpcd + rpcd_epmapper) for bench/epm_side_by_side.sh,
# and gnuplot-nox for the PNG plot it writes (bench/results/latest.png; no X needed).
BENCH_PKGS := samba gnuplot-nox
# Package: dpkg-shlibdeps and dpkg-buildflags (dpkg-dev) for `make package`; lintian, systemd's
# systemd-analyze and systemd-socket-activate, adduser and deb-systemd-helper for its test.
PACKAGE_PKGS := dpkg-dev lintian systemd adduser init-system-helpers
PKGS := $(BUILD_PKGS) $(TEST_PKGS) $(BENCH_PKGS) $(PACKAGE_PKGS)
# Profile: what bench/profile_epmd.sh uses (`make profile`); not needed by build, test or bench.
PROFILE_PKGS := valgrind linux-perf strace

.PHONY: all deps profile configure build test unit asan fuzz-build fuzz-smoke run bench package format format-check clean

all: build

# $(call install_missing,PACKAGES): apt-get installs those dpkg does not list as installed.
# Idempotent and quick when everything is present: dpkg-query decides whether apt runs at all.
define install_missing
	@missing=$$(for p in $(1); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -q --no-install-recommends $$missing; \
	else echo "deps: all $(words $(1)) packages present"; fi
endef

deps:
	$(call install_missing,$(PKGS))

configure: deps
	@[ -f build/build.ninja ] || cmake --preset default

build: configure
	cmake --build --preset default -j $(JOBS)

test: build
	ctest --preset default -j $(JOBS)

asan: deps
	@[ -f build-asan/build.ninja ] || cmake --preset asan
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)

fuzz-build: deps
	@[ -f build-fuzz/build.ninja ] || cmake --preset fuzz
	cmake --build --preset fuzz -j $(JOBS)

# Each fuzz target for FUZZ_SECONDS; new inputs go to a scratch dir, seeds stay untouched.
fuzz-smoke: fuzz-build
	@set -e; for f in build-fuzz/fuzz/*; do \
	  [ -f "$$f" ] && [ -x "$$f" ] || continue; name=$$(basename $$f); \
	  scratch=$$(mktemp -d); mkdir -p fuzz/artifacts; \
	  echo "== $$name ($(FUZZ_SECONDS) s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=fuzz/artifacts/$$name- \
	      $$scratch fuzz/corpus/$$name 2>&1 | grep -E '^(stat::number_of_executed_units|==|SUMMARY|#.*DONE)' || true; \
	  test $${PIPESTATUS[0]} -eq 0 || { echo "fuzz-smoke: $$name FAILED"; rm -rf $$scratch; exit 1; }; \
	  rm -rf $$scratch; \
	done

# The main job: rpcgate-epmd (endpoint mapper + port broker) and rpcgate-echo (a server that takes
# a dynamic port and registers) in the foreground, on the embedded default: 0.0.0.0:135 and
# [::]:135, control socket /run/rpcgate/epmd.sock, no port restriction. If 135 is taken:
#   make run LISTEN=127.0.0.1:1135        (more: CONTROL=..., EPMD_ARGS="--policy my.reg")
run: build
	@scripts/run.sh

# rpcgate-epmd side by side with Samba's endpoint mapper and the floor server (needs root: a
# private network namespace, Samba on its port 135). Writes bench/results/latest.{json,txt,png};
# takes ~3 minutes. Options: make bench BENCH_ARGS="--reps 5 --duration 5" (see --help).
# Then rpcgate-fwd side by side with a direct route (three network namespaces, nftables):
# bench/results/fwd-latest.{json,txt}, ~2 minutes, and again with rpcgate-fwd alone on a CPU
# (--pin-cpus): fwd-pinned-latest.{json,txt}; FWD_BENCH_ARGS="--reps 5" (see its --help).
BENCH_ARGS ?=
FWD_BENCH_ARGS ?=
bench: build
	bench/epm_side_by_side.sh $(BENCH_ARGS)
	bench/fwd_side_by_side.sh $(FWD_BENCH_ARGS)
	bench/fwd_side_by_side.sh --pin-cpus $(FWD_BENCH_ARGS)

# Where rpcgate-epmd spends an ept_map (root): MODE=callgrind (instructions per call), perf
# (kernel/user share, top symbols) or syscalls (strace -c per call). CONNS= connections.
profile: build
	$(call install_missing,$(PROFILE_PKGS))
	bench/profile_epmd.sh $(or $(MODE),callgrind) $(CONNS)

# The Debian package (cmake/Package.cmake): a release build of its own in PACKAGE_DIR (prefix
# /usr, no tests or benchmarks), then CPack's DEB generator (dpkg-shlibdeps computes Depends).
# Prints the .deb's path last. The compiler flags are the default preset's (RelWithDebInfo, -O2),
# so with ccache the objects of `make build` are reused and a package costs little more than a
# link; the link takes dpkg-buildflags' hardening (full RELRO, BIND_NOW; PIE is GCC's default on
# Debian). The compile-time hardening flags are not used: README "Installing the Debian package".
PACKAGE_DIR ?= build-package
package: deps
	@[ -f $(PACKAGE_DIR)/build.ninja ] || \
	  cmake -S . -B $(PACKAGE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCMAKE_CXX_COMPILER=g++-12 -DCMAKE_INSTALL_PREFIX=/usr \
	    -DRPCGATE_BUILD_TESTS=OFF -DRPCGATE_BUILD_BENCHMARKS=OFF \
	    "-DCMAKE_EXE_LINKER_FLAGS=$$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)" \
	    $$(command -v ccache >/dev/null && echo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
	cmake --build $(PACKAGE_DIR) -j $(JOBS)
	@rm -f $(PACKAGE_DIR)/rpcgate_*.deb
	@cd $(PACKAGE_DIR) && cpack -G DEB > cpack.log 2>&1 || { cat cpack.log; exit 1; }
	@ls $(CURDIR)/$(PACKAGE_DIR)/rpcgate_*.deb

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

format-check:
	git ls-files '*.cc' '*.h' | xargs clang-format --dry-run -Werror

clean:
	rm -rf build build-asan build-fuzz $(PACKAGE_DIR)
