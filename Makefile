# acemux: `make run` builds and runs the daemon, `make test` runs the tests.
# Both install missing Debian packages first (make deps).

PREFIX  ?= /usr/local
DESTDIR ?=
CROSS   ?=
BUILD   ?= build
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
SANFLAGS := $(if $(SAN),-fsanitize=address$(comma)undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
CPPFLAGS += -Iinclude -I$(LLHTTP_INC) -DTOML_HEADER_ONLY=0 -DTOML_SHARED_LIB=1 -MMD -MP
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++20 -Wall -Wextra -Werror $(SANFLAGS)
CFLAGS   ?= -O2 -g
CFLAGS   += -Wall -Werror $(SANFLAGS)
LDFLAGS  += $(SANFLAGS)
LDLIBS   += -ltomlplusplus -lhiredis -lcjson

LIB_SRC    := $(filter-out src/main.cpp,$(wildcard src/*.cpp))
LIB_OBJ    := $(LIB_SRC:%.cpp=$(BUILD)/%.o) $(patsubst %,$(BUILD)/llhttp/%.o,api http llhttp)
TEST_SRC   := $(wildcard test/test_*.cpp) test/harness.cpp test/player.cpp
TEST_OBJ   := $(TEST_SRC:%.cpp=$(BUILD)/%.o)
SIM_OBJ    := $(BUILD)/test/engine_sim.o $(BUILD)/test/ts_gen.o

DEB_DEPS      := g++ make pkg-config libhiredis-dev libtomlplusplus-dev libcjson-dev node-llhttp
DEB_TEST_DEPS := libcriterion-dev redis-server mandoc

.PHONY: all run test test-asan bench install clean deps deps-test check-tests

all: acemux $(BUILD)/engine_sim

acemux: $(BUILD)/acemux
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/acemux: $(BUILD)/src/main.o $(LIB_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/engine_sim: $(SIM_OBJ) $(LIB_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/swarm: $(BUILD)/bench/swarm.o $(BUILD)/test/ts_gen.o
	$(CXX) $(LDFLAGS) -o $@ $^

$(BUILD)/baseline: $(BUILD)/bench/baseline.o
	$(CXX) $(LDFLAGS) -o $@ $^

$(BUILD)/benchmark: $(BUILD)/bench/bench.o $(BUILD)/test/harness.o $(BUILD)/test/ts_gen.o $(LIB_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/acemux-tests: $(TEST_OBJ) $(BUILD)/test/ts_gen.o $(LIB_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -DSOURCE_DIR='"$(CURDIR)"' -c -o $@ $<

$(BUILD)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

run: deps all
	./acemux -f -c etc/acemux.toml

# The suite, then the same suite under AddressSanitizer + UBSan (+ LeakSanitizer).
test: deps deps-test
	$(MAKE) --no-print-directory check-tests
	$(MAKE) --no-print-directory test-asan

check-tests: all $(BUILD)/acemux-tests
	$(BUILD)/acemux-tests --jobs=$$(nproc)

test-asan: deps deps-test
	$(MAKE) --no-print-directory BUILD=build/asan SAN=1 build/asan/acemux build/asan/engine_sim build/asan/acemux-tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 LSAN_OPTIONS=suppressions=$(CURDIR)/test/lsan.supp \
		build/asan/acemux-tests --jobs=$$(nproc)

# Speed and memory figures (a few minutes); FULL=1 for every size (longer).
bench: deps all $(BUILD)/swarm $(BUILD)/baseline $(BUILD)/benchmark
	$(BUILD)/benchmark $(if $(FULL),--full) --out bench/results/latest.json

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man5 \
		$(DESTDIR)/etc/acemux
	install -m 755 acemux $(DESTDIR)$(PREFIX)/sbin/acemux
	install -m 644 man/acemux.8 $(DESTDIR)$(PREFIX)/share/man/man8/acemux.8
	install -m 644 man/acemux.toml.5 $(DESTDIR)$(PREFIX)/share/man/man5/acemux.toml.5
	install -d $(DESTDIR)$(PREFIX)/share/acemux
	install -m 644 etc/acemux.service etc/acemux.init $(DESTDIR)$(PREFIX)/share/acemux/
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

deps:
	$(call install_missing,$(DEB_DEPS))

deps-test:
	$(call install_missing,$(DEB_TEST_DEPS))

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
