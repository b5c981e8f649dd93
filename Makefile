# acemux: `make run` builds and runs the daemon, `make test` runs the tests.
# Both install missing Debian packages first (make deps).

PREFIX  ?= /usr/local
DESTDIR ?=
CROSS   ?=
STATIC  ?=

# Router builds: STATIC=1 links one self-contained binary, CROSS=<triplet>-
# (e.g. aarch64-linux-gnu-) builds with Debian's cross toolchain. Neither can
# lean on this machine's shared libraries, so toml++ is used header-only and
# cJSON, hiredis, c-ares and mbedTLS are compiled in from Debian's own source packages,
# at the versions installed here (apt fetches and checks them: see DEBSRC below).
ROUTER  := $(if $(or $(STATIC),$(CROSS)),1)
ifneq ($(ROUTER),)
BUILD   ?= build/$(or $(CROSS:%-=%),native)
endif
BUILD   ?= build
DEBSRC  := build/debsrc
# hls.js for the watch page (fetched by make deps, installed by make install).
# Defined before any rule names it: a rule's prerequisites are expanded as
# the rule is read.
HLSJS   := build/share/hls.min.js

# Build in parallel; sub-makes share the top level's job slots.
ifeq ($(MAKELEVEL),0)
MAKEFLAGS += -j$(shell nproc)
endif
SAN     ?=

ifeq ($(origin CXX),default)
CXX := $(CROSS)g++
endif
ifeq ($(origin CC),default)
CC := $(CROSS)gcc
endif

LLHTTP_DIR := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

comma    := ,
# No vptr check: UBSan tests a vtable by writing it to a pipe it opens, and
# with every fd in use (the out-of-fds test does that on purpose) it reports a
# sound object as invalid. ASan still catches calls on freed objects.
# Line tables only (-g1): all a sanitizer's stack trace needs, inlined frames
# included, and the ASan build takes a third less time than with -g.
SANFLAGS := $(if $(SAN),-O1 -g1 -fsanitize=address$(comma)undefined -fno-sanitize=vptr -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined)
override CPPFLAGS += -Iinclude -I$(LLHTTP_INC) -MMD -MP
CXXFLAGS ?= -O2 -g
override CXXFLAGS += -std=c++20 -Wall -Wextra -Werror $(SANFLAGS)
CFLAGS   ?= -O2 -g
override CFLAGS   += -Wall -Werror $(SANFLAGS)
override LDFLAGS  += $(SANFLAGS)

LIB_SRC    := $(filter-out src/main.cpp,$(wildcard src/*.cpp))
# `make` alone (and `make STATIC=1`, `make CROSS=...`) builds `all`, whatever rule comes first.
.DEFAULT_GOAL := all
# Where hls.js lives once installed; [server] data_dir overrides it.
$(BUILD)/src/daemon.o: override CPPFLAGS += -DACEMUX_DATADIR='"$(PREFIX)/share/acemux"'
# daemon.o names PREFIX (where hls.js is installed): a change of PREFIX rebuilds it.
$(BUILD)/src/daemon.o: $(BUILD)/.prefix
$(BUILD)/.prefix: FORCE
	@mkdir -p $(@D); echo '$(PREFIX)' | cmp -s - $@ 2>/dev/null || echo '$(PREFIX)' > $@
.PHONY: FORCE

LIB_OBJ    := $(LIB_SRC:%.cpp=$(BUILD)/%.o) $(patsubst %,$(BUILD)/llhttp/%.o,api http llhttp)

ifeq ($(ROUTER),)
override CPPFLAGS += -DTOML_HEADER_ONLY=0 -DTOML_SHARED_LIB=1
override LDLIBS   += -ltomlplusplus -lhiredis -lcjson -lcares -lmbedtls -lmbedx509 -lmbedcrypto
else
BUNDLED  := cjson/cJSON $(patsubst %,hiredis/%,net hiredis sds async read alloc)
CARES_BUILD := $(BUILD)/debsrc/c-ares
MBEDTLS_BUILD := $(BUILD)/debsrc/mbedtls
MBEDTLS_LIBS  := $(patsubst %,$(MBEDTLS_BUILD)/library/libmbed%.a,tls x509 crypto)
LIB_OBJ  += $(BUNDLED:%=$(BUILD)/debsrc/%.o) $(CARES_BUILD)/lib/libcares.a $(MBEDTLS_LIBS)
override CPPFLAGS += -I$(DEBSRC)/include -I$(CARES_BUILD) -I$(DEBSRC)/c-ares/include -I$(DEBSRC)/mbedtls/include \
	-DTOML_HEADER_ONLY=1 -DTOML_FLOAT_CHARCONV=1 \
	-DACEMUX_ROUTER=1
# toml++ reads floats with std::from_chars (GCC has it since 11; toml++
# assumes it does not) rather than a stringstream: the C++ streams bring
# libstdc++'s locales into a static binary, half a megabyte of code.
# Each function in its own section, so the linker drops what nothing calls:
# a router's flash is small (the static binary shrinks by a sixth).
SECTIONS := -ffunction-sections -fdata-sections
# Optimised for size, as router firmware is: fewer pages of code to load and
# keep resident (the daemon's time goes to the kernel's socket work, not here).
override CXXFLAGS += $(SECTIONS) -Os
override CFLAGS   += $(SECTIONS) -Os
override LDFLAGS  += -s -Wl,--gc-sections
ROUTER_BIN := $(BUILD)/acemux$(if $(STATIC),-static)
endif
TEST_SRC   := $(wildcard test/test_*.cpp) test/harness.cpp test/rig.cpp test/runner.cpp
TEST_OBJ   := $(TEST_SRC:%.cpp=$(BUILD)/%.o)
# The tests are processes and sockets, not arithmetic: compiled for speed of
# compiling, unoptimised (CI builds the suite from nothing every run, twice;
# under the sanitizers the tests' objects took 77 s at -O1, 39 s at -O0). The
# daemon, the engine simulator and the library the tests call keep their flags.
$(TEST_OBJ): override CXXFLAGS += -O0 -g1
# The daemon's stack pages stay resident for its life: a large object on the
# stack (a Redis Cluster's 128 KiB slot table once sat in main's frame) is
# memory every router pays for. The sanitizers' frames are larger by design.
ifeq ($(SAN),)
$(BUILD)/src/%.o: override CXXFLAGS += -Wframe-larger-than=32768
endif
SIM_OBJ    := $(BUILD)/test/engine_sim.o $(BUILD)/test/ts_gen.o $(BUILD)/test/card.o $(BUILD)/test/broadcast.o

DEB_DEPS      := g++ make pkg-config libhiredis-dev libtomlplusplus-dev libcjson-dev libc-ares-dev libmbedtls-dev ca-certificates node-llhttp
DEB_TEST_DEPS := libcriterion-dev redis-server mandoc ffmpeg chromium openssl
DEB_FUZZ_DEPS := clang libclang-rt-14-dev
DEB_ROUTER_DEPS := dpkg-dev cmake $(if $(CROSS),g++-$(CROSS:%-=%) qemu-user-static)

.PHONY: all run test test-asan asan-build suite-plain suite-asan bench faults cluster-faults fuzz fuzz-build fuzz-smoke soak install \
	clean deps deps-test deps-fuzz deps-router check-tests image-root test-image install-files deb check-deps test-router

ifeq ($(ROUTER),)
all: acemux $(BUILD)/engine_sim
# Checked before anything compiles (order-only: it never makes a rebuild).
$(BUILD)/src/main.o $(LIB_OBJ): | check-deps
else
all: deps-router
	$(MAKE) --no-print-directory $(ROUTER_BIN)
	@echo "router build: $(ROUTER_BIN)"
endif

acemux: $(BUILD)/acemux
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/acemux: $(BUILD)/src/main.o $(LIB_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Same objects, linked with everything in: runs on a router with no libraries.
$(BUILD)/acemux-static: $(BUILD)/src/main.o $(LIB_OBJ)
	$(CXX) $(LDFLAGS) -static -o $@ $^ $(LDLIBS)

$(BUILD)/engine_sim: $(SIM_OBJ) $(LIB_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/swarm: $(BUILD)/bench/swarm.o $(BUILD)/test/ts_gen.o
	$(CXX) $(LDFLAGS) -o $@ $^

$(BUILD)/hls_swarm: $(BUILD)/bench/hls_swarm.o $(BUILD)/test/ts_gen.o
	$(CXX) $(LDFLAGS) -o $@ $^ -pthread

$(BUILD)/baseline: $(BUILD)/bench/baseline.o
	$(CXX) $(LDFLAGS) -o $@ $^

$(BUILD)/copies: $(BUILD)/bench/copies.o
	$(CXX) $(LDFLAGS) -o $@ $^

$(BUILD)/ingest: $(BUILD)/bench/ingest.o $(BUILD)/test/card.o $(BUILD)/test/broadcast.o $(BUILD)/test/ts_gen.o $(LIB_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/faults: $(BUILD)/bench/faults.o $(BUILD)/test/harness.o $(BUILD)/test/ts_gen.o
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/cluster_faults: $(BUILD)/bench/cluster_faults.o $(BUILD)/test/harness.o $(BUILD)/test/ts_gen.o
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/benchmark: $(BUILD)/bench/bench.o $(BUILD)/test/harness.o $(BUILD)/test/ts_gen.o $(LIB_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/soak: $(BUILD)/bench/soak.o $(BUILD)/test/harness.o
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/acemux-tests: $(TEST_OBJ) $(BUILD)/test/ts_gen.o $(LIB_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -DSOURCE_DIR='"$(CURDIR)"' -c -o $@ $<

$(BUILD)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# Installing comes first and alone (dpkg takes one apt-get at a time), then the build.
run: deps
	$(MAKE) --no-print-directory all
	./acemux -f -c etc/acemux.toml

# Every check, whatever fails: the suite, the same suite under AddressSanitizer
# + UBSan (+ LeakSanitizer), and every fuzz target built and run for
# FUZZ_SMOKE_SECONDS. Each step's output is shown and kept in $(TEST_LOG)/;
# at the end, each step's summary lines together, and the exit status says
# whether all passed. While a suite runs, the next step's programs compile
# (suite-plain, suite-asan).
TEST_LOG := build/test-log
test: deps-test
	@rm -rf $(TEST_LOG) && mkdir -p $(TEST_LOG)
	$(call test_step,plain,suite-plain)
	$(call test_step,asan,suite-asan)
	$(call test_step,fuzz,fuzz-smoke)
	@echo "==== make test"
	@for s in plain asan fuzz; do \
		echo "$$s: $$(cat $(TEST_LOG)/$$s.status)"; \
		grep -h -e '^\[====\] Synthesis' -e '^fuzz_' -e '^\[LEAK\]' $(TEST_LOG)/$$s.log | sed 's/^/    /'; \
	done
	@! grep -q FAILED $(TEST_LOG)/*.status
	@# A test that left a process running fails the run too (test/runner.cpp says which).
	@! grep -q '^\[LEAK\]' $(TEST_LOG)/*.log

# One step of `make test`: make $(2), output shown and kept in
# $(TEST_LOG)/$(1).log; "ok" or "FAILED", and the seconds it took, in
# $(TEST_LOG)/$(1).status. The + says it is a recursive make (make does not
# see $(MAKE) through a call).
define test_step
@+t=$$(date +%s); { $(MAKE) --no-print-directory $(2) && r=ok || r="FAILED (output in $(TEST_LOG)/$(1).log)"; \
	echo "$$r, $$(( $$(date +%s) - t )) s" > $(TEST_LOG)/$(1).status; } 2>&1 | tee $(TEST_LOG)/$(1).log
endef

# Six tests per core: most of a test's time is spent waiting on engines,
# players, Redis leases and HLS segments (a real engine takes a second to
# start a stream), not computing: at three a core, the plain suite kept the
# two cores of this VM 13 % busy. Both suites were green at this setting,
# repeatedly, on two cores, with a busy loop on one of them.
TEST_JOBS ?= $(shell echo $$(( $$(nproc) * 6 )))

RUN_TESTS      = $(BUILD)/acemux-tests --jobs=$(TEST_JOBS)
RUN_ASAN_TESTS = ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/test/lsan.supp build/asan/acemux-tests --jobs=$(TEST_JOBS)

check-tests: all $(BUILD)/acemux-tests
	$(RUN_TESTS)

# asan-build after the install, not beside it (make -j): it needs clang.
test-asan: deps-test
	$(MAKE) --no-print-directory asan-build
	$(RUN_ASAN_TESTS)

# With clang, which the fuzz targets need anyway: it builds this in two
# thirds of GCC's time (110 s against 164 on this 2-core VM, from nothing).
asan-build:
	$(MAKE) --no-print-directory BUILD=build/asan SAN=1 CXX=clang++ CC=clang \
		build/asan/acemux build/asan/engine_sim build/asan/acemux-tests

# make test's suites: check-tests and test-asan, each with the next step's
# build under way.
suite-plain: all $(BUILD)/acemux-tests
	$(call while_building,$(RUN_TESTS),asan-build)
suite-asan: deps-test
	$(MAKE) --no-print-directory asan-build
	$(call while_building,$(RUN_ASAN_TESTS),fuzz-build)

# Runs $(1) while make $(2) goes on at the lowest priority, on every core (its
# own -j) and the CPU the suite leaves: a suite spends most of its time
# waiting on sockets and timers, and gets the CPU back whenever it wants it.
# When $(1) ends, the build stops wherever it is and the next step builds the
# rest at normal priority: on a loaded machine a build at nice 19 gets next to
# nothing done (beside a busy core and a fuzzer, one took 20 minutes), and
# nothing should wait for it. The build has a process group of its own, so
# that stopping it stops its compilers too (they outlive a make killed
# alone); the trap stops it however the shell ends, and waits until it has.
# Its output goes to build/$(2).log.
define while_building
@setsid nice -n 19 $(MAKE) --no-print-directory -k -j$(shell nproc) $(2) > build/$(2).log 2>&1 & ahead=$$!; \
	trap 'kill -TERM -$$ahead 2>/dev/null; wait $$ahead; while kill -0 -$$ahead 2>/dev/null; do sleep 0.1; done' \
		EXIT INT TERM HUP; \
	$(1); r=$$?; [ $$r -eq 0 ] || echo "the suite's runner exited with status $$r"; exit $$r
endef

# Speed and memory figures (a few minutes); FULL=1 for every size (longer).
# The static router build is measured too (its idle memory and size).
bench: deps
	$(MAKE) --no-print-directory all $(BUILD)/swarm $(BUILD)/hls_swarm $(BUILD)/baseline $(BUILD)/copies $(BUILD)/ingest \
		$(BUILD)/benchmark
	$(MAKE) --no-print-directory STATIC=1
	$(BUILD)/ingest
	$(BUILD)/benchmark $(if $(FULL),--full) --out bench/results/latest.json

# libFuzzer targets (test/fuzz/fuzz_*.cpp) under ASan+UBSan. `make fuzz` runs
# each for FUZZ_SECONDS on its corpus in build/fuzz/corpus-<target> (the seeds
# of test/fuzz/corpus/ and what earlier runs found); `make test` runs each for
# FUZZ_SMOKE_SECONDS on a fresh copy of the seeds. Every target runs, whatever
# the others did; a crash fails the run at the end and leaves its input in
# build/fuzz/<target>-crash-*, the whole output in build/fuzz/<target>.log.
FUZZ_TARGETS := $(patsubst test/fuzz/fuzz_%.cpp,%,$(wildcard test/fuzz/fuzz_*.cpp))
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5
FUZZ_DIR     := build/fuzz
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_CORPUS  := $(FUZZ_DIR)/corpus
# -O1 (fast enough to fuzz) and line tables only (all a stack trace needs):
# `make test` builds these objects too, so they must compile quickly.
FUZZ_FLAGS   := -gline-tables-only -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_OBJ := $(LIB_SRC:%.cpp=$(FUZZ_DIR)/%.o) $(patsubst %,$(FUZZ_DIR)/llhttp/%.o,api http llhttp)

$(FUZZ_DIR)/%.o: %.cpp
	@mkdir -p $(dir $@)
	clang++ $(CPPFLAGS) -std=c++20 -Wall -Wextra -Werror $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/test/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	clang++ $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)
# Named only by a pattern rule, the objects would count as intermediate and
# be deleted after each build, then built again by the next.
.SECONDARY: $(FUZZ_LIB_OBJ) $(FUZZ_TARGETS:%=$(FUZZ_DIR)/test/fuzz/fuzz_%.o)

fuzz-build: $(FUZZ_BINS)

# Every target in turn, so that each has a core to itself (the runs say how
# fast each goes), each whatever the others did; fails at the end when one
# crashed.
fuzz: deps-fuzz
	$(MAKE) --no-print-directory fuzz-build
	@failed=; for t in $(FUZZ_TARGETS); do $(MAKE) --no-print-directory fuzz-run-$$t || failed="$$failed $$t"; done; \
		test -z "$$failed" || { echo "fuzz: failed:$$failed"; exit 1; }

# The smoke runs share the job slots, and -k keeps them going past a failure.
fuzz-smoke: fuzz-build
	rm -rf $(FUZZ_DIR)/smoke-*
	$(MAKE) --no-print-directory -k FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) FUZZ_CORPUS=$(FUZZ_DIR)/smoke \
		$(FUZZ_TARGETS:%=fuzz-run-%)

# One target for FUZZ_SECONDS; -timeout: an input taking 10 s is a hang.
fuzz-run-%: $(FUZZ_DIR)/fuzz_%
	@mkdir -p $(FUZZ_CORPUS)-$* && cp -n test/fuzz/corpus/$*/* $(FUZZ_CORPUS)-$*/
	@$< -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/$*- \
		$(FUZZ_CORPUS)-$* > $(FUZZ_DIR)/$*.log 2>&1 \
		|| { tail -40 $(FUZZ_DIR)/$*.log; echo "fuzz_$*: FAILED (crash, hang or leak), output in $(FUZZ_DIR)/$*.log"; exit 1; }
	@sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/fuzz_$*: \1 runs, \2 s, no crash/p' $(FUZZ_DIR)/$*.log

# What a player sees when an engine fails in each way it can (a stall, garbage,
# a refusal, ...): times to null packets and to the other engine's data,
# what was lost, and a bystander; ACEMUX=path measures another binary.
faults: deps
	$(MAKE) --no-print-directory all $(BUILD)/faults
	$(BUILD)/faults $(if $(ACEMUX),--acemux $(ACEMUX)) --out bench/results/faults.json

# Three instances on one Redis (plain, Sentinel, Redis Cluster) while Redis,
# the owner instance or the topology fails: every player's longest time
# without data, CC errors, lost packets, the channel's engine sessions over
# time. CLUSTER_FAULTS="--only all" adds the CLIENT KILL loop, Redis memory
# per channel, follower CPU and engine slots.
# The container image's root (Dockerfile): the static binary, the sample
# config set for a container (the engine by its service name "acestream",
# hls.js where the image keeps it), hls.js and the CA bundle for https
# playlists. Nothing else: no shell, no libc.
IMAGE_ROOT := build/image-root
image-root: deps
	$(MAKE) --no-print-directory STATIC=1
	rm -rf $(IMAGE_ROOT)
	install -d $(IMAGE_ROOT)/usr/sbin $(IMAGE_ROOT)/etc/acemux $(IMAGE_ROOT)/usr/share/acemux $(IMAGE_ROOT)/etc/ssl/certs
	install -m 755 build/native/acemux-static $(IMAGE_ROOT)/usr/sbin/acemux
	sed -e 's|^host = "127.0.0.1"|host = "acestream"|' -e 's|^data_dir = ""|data_dir = "/usr/share/acemux"|' \
		etc/acemux.toml > $(IMAGE_ROOT)/etc/acemux/acemux.toml
	chmod 644 $(IMAGE_ROOT)/etc/acemux/acemux.toml # readable by the image's user whatever the umask
	install -m 644 $(HLSJS) $(IMAGE_ROOT)/usr/share/acemux/hls.min.js
	install -m 644 /etc/ssl/certs/ca-certificates.crt $(IMAGE_ROOT)/etc/ssl/certs/
	@echo "image root: $(IMAGE_ROOT) ($$(du -sk $(IMAGE_ROOT) | cut -f1) KiB)"

# acemux run from the image root alone, in an empty root with only what a
# container runtime adds (/etc/hosts, /etc/resolv.conf), streaming from the
# engine simulator by host name; then `docker build` (or podman) where one
# is installed. Outside `make test`: the static build takes a minute or two.
test-image: image-root $(BUILD)/engine_sim
	test/image_root.sh $(IMAGE_ROOT) $(BUILD)/engine_sim

# Static router builds for aarch64 (dynamic too), armhf and mipsel, each run
# under qemu-user: -V, -t, a player streaming from engine_sim; sizes and idle
# RSS said. Outside `make test`: each build takes minutes.
ROUTER_CROSS := aarch64-linux-gnu arm-linux-gnueabihf mipsel-linux-gnu
test-router: deps-test
	$(call install_missing,$(ROUTER_CROSS:%=g++-%) qemu-user-static dpkg-dev cmake)
	$(MAKE) --no-print-directory all $(BUILD)/acemux-tests
	ACEMUX_ROUTER_TESTS=1 $(BUILD)/acemux-tests --jobs=1 --verbose --filter 'router/*'

# The Debian package (debian/), built from a clean export of HEAD in
# build/deb-src (dh_clean tidies the tree it runs in): build/acemux_<version>_<arch>.deb,
# checked by lintian (errors and warnings fail it). hls.js (npm) is not in it.
deb: deps
	$(call install_missing,debhelper lintian dpkg-dev fakeroot)
	rm -rf build/deb-src && mkdir -p build/deb-src && git archive HEAD | tar -x -C build/deb-src
	cd build/deb-src && dpkg-buildpackage -b -us -uc
	lintian --fail-on error,warning --info build/acemux_$$(dpkg-parsechangelog -S Version)_$$(dpkg --print-architecture).deb

cluster-faults: deps
	$(MAKE) --no-print-directory all $(BUILD)/cluster_faults
	@mkdir -p bench/results
	$(BUILD)/cluster_faults $(if $(ACEMUX),--acemux $(ACEMUX)) $(CLUSTER_FAULTS) --out bench/results/cluster-faults.json

# Players joining and leaving at random for SOAK_SECONDS; RSS and fds over time.
SOAK_SECONDS ?= 600
soak: deps
	$(MAKE) --no-print-directory all $(BUILD)/soak
	$(BUILD)/soak --seconds $(SOAK_SECONDS)

install: all $(HLSJS)
	$(MAKE) --no-print-directory install-files

# What is built, without building (a Debian package build calls it, with
# its own binary): hls.js only when make deps fetched it.
INSTALL_BIN ?= $(if $(ROUTER),$(ROUTER_BIN),acemux)
INSTALL_STRIP ?= $(if $(ROUTER),,-s)
install-files:
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man5 \
		$(DESTDIR)/etc/acemux
	install -m 755 $(INSTALL_STRIP) $(INSTALL_BIN) $(DESTDIR)$(PREFIX)/sbin/acemux
	install -m 644 man/acemux.8 $(DESTDIR)$(PREFIX)/share/man/man8/acemux.8
	install -m 644 man/acemux.toml.5 $(DESTDIR)$(PREFIX)/share/man/man5/acemux.toml.5
	install -d $(DESTDIR)$(PREFIX)/share/acemux
	sed 's|@SBINDIR@|$(PREFIX)/sbin|g' etc/acemux.service > $(DESTDIR)$(PREFIX)/share/acemux/acemux.service
	sed 's|@SBINDIR@|$(PREFIX)/sbin|g' etc/acemux.init > $(DESTDIR)$(PREFIX)/share/acemux/acemux.init
	if [ -f $(HLSJS) ]; then install -m 644 $(HLSJS) $(DESTDIR)$(PREFIX)/share/acemux/hls.min.js; fi
	install -m 644 etc/acemux.toml $(DESTDIR)/etc/acemux/acemux.toml.example
	test -e $(DESTDIR)/etc/acemux/acemux.toml || install -m 644 etc/acemux.toml $(DESTDIR)/etc/acemux/acemux.toml

clean:
	rm -rf build acemux

# apt-get only for what dpkg says is absent; nothing at all when everything is there.
define install_missing
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$sudo apt-get update && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y $$missing; \
	fi
endef


# hls.js for the watch page: the release pinned in etc/web, fetched from the
# npm registry (npm ci checks it against the lock file's integrity). npm
# comes with Debian's package unless the machine has one already.
$(HLSJS): etc/web/package.json etc/web/package-lock.json
	@command -v npm >/dev/null || $(MAKE) --no-print-directory deps-npm
	mkdir -p build/web $(dir $@)
	cp etc/web/package.json etc/web/package-lock.json build/web/
	cd build/web && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	cp build/web/node_modules/hls.js/dist/hls.min.js $@

deps-npm:
	$(call install_missing,npm)

# `make` alone on a machine without the libraries: one line saying what is
# missing and what to run, not a compiler error.
# Only where dpkg is (elsewhere the compiler says what is missing).
check-deps:
	@command -v dpkg >/dev/null || exit 0; \
	missing=$$(for p in $(DEB_DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "acemux needs Debian packages that are missing:" $$missing "(run: make deps)"; exit 1; fi

deps: $(HLSJS)
	$(call install_missing,$(DEB_DEPS))

# The ASan and fuzz steps of `make test` need clang and its sanitizer and
# libFuzzer runtimes (libclang-rt, which clang only recommends).
deps-test: deps
	$(call install_missing,$(DEB_TEST_DEPS) $(DEB_FUZZ_DEPS))

deps-fuzz: deps
	$(call install_missing,$(DEB_FUZZ_DEPS))

deps-router: deps
	$(call install_missing,$(DEB_ROUTER_DEPS))

# Debian's source of a library, at the version of its installed -dev package,
# unpacked with Debian's patches into $(DEBSRC)/<name>. apt reads a private
# deb-src list, so the machine's own apt configuration is left alone.
APT_SRC := -o Dir::Etc::SourceList=$(CURDIR)/$(DEBSRC)/apt/sources -o Dir::Etc::SourceParts=/dev/null \
	-o Dir::State::Lists=$(CURDIR)/$(DEBSRC)/apt/lists -o Dir::Cache=$(CURDIR)/$(DEBSRC)/apt/cache
DEBIAN_SUITE = $(shell . /etc/os-release && echo $$VERSION_CODENAME)
DEBIAN_KEY   := [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]

$(DEBSRC)/apt/.updated:
	mkdir -p $(DEBSRC)/apt/lists/partial $(DEBSRC)/apt/cache
	for s in $(DEBIAN_SUITE) $(DEBIAN_SUITE)-updates; do echo "deb-src $(DEBIAN_KEY) http://deb.debian.org/debian $$s main"; done \
		> $(DEBSRC)/apt/sources
	echo "deb-src $(DEBIAN_KEY) http://deb.debian.org/debian-security $(DEBIAN_SUITE)-security main" >> $(DEBSRC)/apt/sources
	apt-get $(APT_SRC) -qq update
	touch $@

$(DEBSRC)/%/.unpacked: $(DEBSRC)/apt/.updated
	rm -rf $(DEBSRC)/$* $(DEBSRC)/dl-$* && mkdir -p $(DEBSRC)/dl-$* $(DEBSRC)/include
	cd $(DEBSRC)/dl-$* && apt-get $(APT_SRC) -qq source --download-only \
		$*=$$(dpkg-query -W -f='$${Version}' lib$*-dev) 2>&1 | grep -v 'unsandboxed as root' || true
	@# apt has checked the files against the archive's signed index; the
	@# uploader's key, which dpkg-source would look for, is not on the machine.
	dpkg-source -q --no-check -x $(DEBSRC)/dl-$*/$*_*.dsc $(DEBSRC)/$*
	ln -sfn ../$* $(DEBSRC)/include/$*
	touch $@

# Their code is theirs: built as Debian builds it, warnings not ours to fix.
$(BUILD)/debsrc/cjson/%.o: $(DEBSRC)/cjson/.unpacked
	@mkdir -p $(dir $@)
	$(CC) -Os -w $(SECTIONS) -c -o $@ $(DEBSRC)/cjson/$*.c
$(BUILD)/debsrc/hiredis/%.o: $(DEBSRC)/hiredis/.unpacked
	@mkdir -p $(dir $@)
	$(CC) -Os -w $(SECTIONS) -c -o $@ $(DEBSRC)/hiredis/$*.c

# c-ares is built by its own CMake files (they generate its configuration).
$(CARES_BUILD)/lib/libcares.a: $(DEBSRC)/c-ares/.unpacked
	mkdir -p $(CARES_BUILD)
	cmake -S $(DEBSRC)/c-ares -B $(CARES_BUILD) -DCMAKE_C_COMPILER=$(CC) -DCMAKE_BUILD_TYPE=MinSizeRel \
		$(if $(CROSS),-DCMAKE_SYSTEM_NAME=Linux) -DCMAKE_C_FLAGS="$(SECTIONS)" -DCARES_STATIC=ON \
		-DCARES_SHARED=OFF -DCARES_BUILD_TOOLS=OFF -DCARES_BUILD_TESTS=OFF -DCARES_INSTALL=OFF > $(CARES_BUILD).log
	cmake --build $(CARES_BUILD) >> $(CARES_BUILD).log

# mbedTLS too (https playlist sources); only its libraries.
$(MBEDTLS_LIBS) &: $(DEBSRC)/mbedtls/.unpacked
	mkdir -p $(MBEDTLS_BUILD)
	cmake -S $(DEBSRC)/mbedtls -B $(MBEDTLS_BUILD) -DCMAKE_C_COMPILER=$(CC) -DCMAKE_BUILD_TYPE=MinSizeRel \
		$(if $(CROSS),-DCMAKE_SYSTEM_NAME=Linux) -DCMAKE_C_FLAGS="$(SECTIONS)" -DENABLE_PROGRAMS=OFF \
		-DENABLE_TESTING=OFF -DUSE_SHARED_MBEDTLS_LIBRARY=OFF -DMBEDTLS_FATAL_WARNINGS=OFF > $(MBEDTLS_BUILD).log
	cmake --build $(MBEDTLS_BUILD) >> $(MBEDTLS_BUILD).log

ifneq ($(ROUTER),)
$(BUILD)/src/main.o $(filter %.o,$(LIB_OBJ)): | $(DEBSRC)/cjson/.unpacked $(DEBSRC)/hiredis/.unpacked \
	$(CARES_BUILD)/lib/libcares.a $(MBEDTLS_LIBS)
endif

-include $(shell find $(BUILD) -name '*.d' -type f -not -path '*/debsrc/*' 2>/dev/null)
