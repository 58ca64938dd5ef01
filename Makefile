# shmbus - one plain Makefile.
#
#   make                 libshmbus.so/.a and the shmbus command, in build/
#   make test            build and run every test; ends with "N passed, N failed, N skipped"
#                        (the tests link build/tp/: util/, shm/ and lib/ with test points compiled in)
#   make asan | tsan     the same tests under AddressSanitizer+UBSan / ThreadSanitizer
#   make fuzz            run the libFuzzer targets longer (FUZZ_SECONDS each)
#   make run             shmbusd in the foreground on the default bus root (built-in
#                        configuration), after the commands to try from another terminal
#   make bench           shmbus vs machine limits and peers (bench/README.md); QUICK=1 quick mode
#   make install PREFIX=/usr/local DESTDIR=    (and make uninstall, the same way)
#
# Dependencies are found with pkg-config.  If one is missing, the build
# installs it with apt-get when run as root, else prints the exact line.

VERSION   := 1.0.0
SOVERSION := 1
PREFIX    ?= /usr/local
DESTDIR   ?=
# The configuration's directory as autotools lays it out: /etc for the
# system's own PREFIX=/usr, else under the prefix (/usr/local/etc,
# $HOME/.local/etc), so an install never writes outside DESTDIR+PREFIX
ifeq ($(patsubst %/,%,$(PREFIX)),/usr)
SYSCONFDIR ?= /etc
else
SYSCONFDIR ?= $(PREFIX)/etc
endif
MANDIR    ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DOCDIR    ?= $(PREFIX)/share/doc/shmbus
BUILD     ?= build
CC        ?= gcc
LD        ?= ld
OBJCOPY   ?= objcopy
SAN       ?=
CFLAGS    ?= -O2 -g
FUZZ_SECONDS ?= 60

PKGS      := liburcu-bp liburcu-cds numa libisal
DAEMON_PKGS := inih libmicrohttpd libsystemd libbpf openssl
TEST_PKGS := cmocka rdkafka
# Debian packages that provide them (and the tools the tests use)
APT_PKGS  := pkg-config liburcu-dev libnuma-dev libisal-dev libinih-dev libmicrohttpd-dev \
	libsystemd-dev libcmocka-dev librdkafka-dev clang util-linux strace systemtap-sdt-dev \
	libbpf-dev bpftool libssl-dev openssl nftables spin

ARCH := $(shell uname -m)
ifeq ($(ARCH),x86_64)
ARCH_FLAGS := -mcx16
endif

ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-6s %s\n' $(1) $(2)
endif

ifneq ($(SAN),)
SAN_FLAGS := -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
ifeq ($(SAN),thread)
# TSan does not model fences; the seqlock reads they order are listed in
# tests/tsan.supp with the reason
SAN_FLAGS += -Wno-tsan
endif

# pkg-config is asked once, after the dependency check has run
DEP_CFLAGS = $(eval DEP_CFLAGS := $$(shell pkg-config --cflags $(PKGS)))$(DEP_CFLAGS)
DEP_LIBS   = $(eval DEP_LIBS := $$(shell pkg-config --libs $(PKGS)))$(DEP_LIBS)
DAEMON_CFLAGS = $(eval DAEMON_CFLAGS := $$(shell pkg-config --cflags $(DAEMON_PKGS)))$(DAEMON_CFLAGS)
DAEMON_LIBS = $(eval DAEMON_LIBS := $$(shell pkg-config --libs $(DAEMON_PKGS)))$(DAEMON_LIBS)
TEST_CFLAGS = $(eval TEST_CFLAGS := $$(shell pkg-config --cflags $(TEST_PKGS)))$(TEST_CFLAGS)
TEST_LIBS  = $(eval TEST_LIBS := $$(shell pkg-config --libs $(TEST_PKGS)))$(TEST_LIBS)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
	-Wno-format-nonliteral
ALL_CFLAGS = -std=gnu11 $(CFLAGS) $(WARN) $(ARCH_FLAGS) -fPIC -fvisibility=hidden \
	-D_GNU_SOURCE -Iinclude $(DEP_CFLAGS) $(SAN_FLAGS)
LDLIBS = $(DEP_LIBS) -lpthread

UTIL_SRC := $(wildcard util/*.c)
SHM_SRC := $(UTIL_SRC) $(wildcard shm/*.c) # util/ and shm/: what lib/ stands on
LIB_SRC := $(wildcard lib/*.c)
CLI_SRC := $(wildcard cli/*.c)
DAEMON_SRC := $(wildcard daemon/*.c)
# the shipped library and commands never compile bench/ or tests/
ifneq ($(filter bench/% tests/%,$(SHM_SRC) $(LIB_SRC) $(CLI_SRC) $(DAEMON_SRC)),)
$(error shipped sources include $(filter bench/% tests/%,$(SHM_SRC) $(LIB_SRC) $(CLI_SRC) $(DAEMON_SRC)))
endif
OBJ_SHM := $(SHM_SRC:%.c=$(BUILD)/%.o)
OBJ_LIB := $(LIB_SRC:%.c=$(BUILD)/%.o)
OBJ_CLI := $(CLI_SRC:%.c=$(BUILD)/%.o)
# What `shmbus bench` measures with, which the programs of `make bench`
# link too (bench/ may use cli/, never the reverse), and test_bench drives:
# the clock, statistics and workers; and the workloads with the bare floor
OBJ_MEASURE := $(BUILD)/cli/measure.o $(BUILD)/cli/workers.o
OBJ_WORKLOADS := $(OBJ_MEASURE) $(BUILD)/cli/workloads.o $(BUILD)/cli/bare.o
OBJ_DAEMON := $(DAEMON_SRC:%.c=$(BUILD)/%.o)

STATIC  := $(BUILD)/libshmbus.a
INTERNAL := $(BUILD)/libshmbus-internal.a
SHARED  := $(BUILD)/libshmbus.so.$(VERSION)
CLI     := $(BUILD)/shmbus
DAEMON  := $(BUILD)/shmbusd
DEPSOK  := $(BUILD)/.deps-ok

# The tests link a second build of util/, shm/ and lib/ with the test points
# of util/testpoint.h compiled in (-DSHMBUS_TESTPOINTS); the shipped library
# and commands are built without them, and `make test` checks that.
TP       := $(BUILD)/tp
OBJ_TP   := $(SHM_SRC:%.c=$(TP)/%.o) $(LIB_SRC:%.c=$(TP)/%.o)
STATIC_TP := $(TP)/libshmbus-tp.a

TEST_SRC := $(wildcard tests/test_*.c)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# the model's check (spin's verifier, no shmbus code) runs once, in the plain build
ifneq ($(SAN),)
TESTS    := $(filter-out $(BUILD)/tests/test_model,$(TESTS))
endif
TESTLIB_SRC := $(wildcard tests/lib/*.c)
OBJ_TESTLIB := $(TESTLIB_SRC:%.c=$(BUILD)/%.o)

.PHONY: all test asan tsan fuzz run bench install uninstall clean deps check-deps \
	check-testpoints
.SECONDARY:

all: $(STATIC) $(INTERNAL) $(SHARED) $(CLI) $(DAEMON) trace-maybe

# --- dependencies ----------------------------------------------------------

deps: $(DEPSOK)

$(DEPSOK): Makefile
	@mkdir -p $(@D)
	@missing=""; \
	command -v pkg-config >/dev/null 2>&1 || missing="pkg-config"; \
	for pc in $(PKGS) $(DAEMON_PKGS) $(TEST_PKGS); do \
		pkg-config --exists $$pc 2>/dev/null || missing="$$missing $$pc"; \
	done; \
	command -v clang >/dev/null 2>&1 || missing="$$missing clang"; \
	echo '#include <sys/sdt.h>' | $(CC) -E -x c - >/dev/null 2>&1 || missing="$$missing sys/sdt.h"; \
	if [ "$$(id -u)" = 0 ]; then pkg-config --exists libbpf 2>/dev/null && \
		command -v bpftool >/dev/null 2>&1 || missing="$$missing libbpf bpftool"; fi; \
	if [ "$$(id -u)" = 0 ]; then command -v spin >/dev/null 2>&1 || \
		missing="$$missing spin"; fi; \
	if [ -n "$$missing" ]; then \
		echo "shmbus: missing:$$missing"; \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "shmbus: installing $(APT_PKGS)"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y -q $(APT_PKGS) >/dev/null 2>&1 || \
			{ apt-get update -q >/dev/null && apt-get install -y -q $(APT_PKGS) >/dev/null; } || \
			{ echo "shmbus: apt-get could not install: $(APT_PKGS)"; exit 1; }; \
		else \
			echo "shmbus: install them with:"; \
			echo "    sudo apt-get install -y $(APT_PKGS)"; \
			exit 1; \
		fi; \
	fi
	@touch $@

# --- library and command ---------------------------------------------------

$(BUILD)/%.o: %.c $(DEPSOK)
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# The installed static library: one relocatable object in which only the
# symbols lib/libshmbus.map exports stay global, so that an application's
# own crc32c, murmur2 or cache_get cannot clash with ours.
$(STATIC): $(OBJ_SHM) $(OBJ_LIB) lib/libshmbus.map
	$(call say,AR,$@)
	$(Q)sed -n 's/^[[:space:]]*\(shmbus_[a-z0-9_]*\);.*/\1/p' lib/libshmbus.map > $(BUILD)/libshmbus.syms
	$(Q)$(LD) -r -o $(BUILD)/libshmbus.o $(OBJ_SHM) $(OBJ_LIB)
	$(Q)$(OBJCOPY) --keep-global-symbols=$(BUILD)/libshmbus.syms $(BUILD)/libshmbus.o
	$(Q)rm -f $@ && ar rcs $@ $(BUILD)/libshmbus.o

# What the programs of this tree link (shmbus, shmbusd, the tests): every
# object, internal symbols global (lib/shmbus_private.h, and the util/, shm/ and
# lib/ internals the tests drive).  Never installed.
$(INTERNAL): $(OBJ_SHM) $(OBJ_LIB)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(SHARED): $(OBJ_SHM) $(OBJ_LIB) lib/libshmbus.map
	$(call say,LD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,libshmbus.so.$(SOVERSION) \
		-Wl,--version-script=lib/libshmbus.map -o $@ $(OBJ_SHM) $(OBJ_LIB) $(LDLIBS)
	$(Q)ln -sf libshmbus.so.$(VERSION) $(BUILD)/libshmbus.so.$(SOVERSION)
	$(Q)ln -sf libshmbus.so.$(SOVERSION) $(BUILD)/libshmbus.so

$(CLI): $(OBJ_CLI) $(INTERNAL)
	$(call say,LD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $(OBJ_CLI) $(INTERNAL) $(LDLIBS) -lm

$(BUILD)/daemon/%.o: daemon/%.c $(DEPSOK)
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) $(DAEMON_CFLAGS) -MMD -MP -c $< -o $@

$(DAEMON): $(OBJ_DAEMON) $(INTERNAL)
	$(call say,LD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $(OBJ_DAEMON) $(INTERNAL) $(LDLIBS) $(DAEMON_LIBS)

# --- tests -----------------------------------------------------------------

$(TP)/%.o: %.c $(DEPSOK)
	@mkdir -p $(@D)
	$(call say,CC-TP,$<)
	$(Q)$(CC) $(ALL_CFLAGS) -DSHMBUS_TESTPOINTS -MMD -MP -c $< -o $@

$(STATIC_TP): $(OBJ_TP)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/tests/%.o: tests/%.c $(DEPSOK)
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -DSHMBUS_TESTPOINTS -Itests -MMD -MP -c $< -o $@

$(BUILD)/tests/lib/%.o: tests/lib/%.c $(DEPSOK)
	@mkdir -p $(@D)
	$(call say,CC,$<)
	$(Q)$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -DSHMBUS_TESTPOINTS -Itests -MMD -MP -c $< -o $@

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(OBJ_TESTLIB) $(STATIC_TP)
	$(call say,LD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(OBJ_TESTLIB) $(STATIC_TP) $(LDLIBS) $(TEST_LIBS) -lm

# test_abi is an application: it links the installed static library (and
# the one test helper that uses only the public API), and defines
# functions named like our internal ones
$(BUILD)/tests/test_abi: $(BUILD)/tests/test_abi.o $(BUILD)/tests/lib/testutil.o $(STATIC)
	$(call say,LD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/tests/lib/testutil.o $(STATIC) $(LDLIBS) $(TEST_LIBS) -lm

# test_bench drives the workloads of `shmbus bench` and `make bench` directly
$(BUILD)/tests/test_bench: $(BUILD)/tests/test_bench.o $(OBJ_TESTLIB) $(OBJ_WORKLOADS) $(STATIC_TP)
	$(call say,LD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS) $(TEST_LIBS) -lm

# The shipped library and commands hold no test point (no hook symbol);
# the tests' build does, so the check cannot pass by looking at nothing.
check-testpoints: $(STATIC) $(SHARED) $(CLI) $(DAEMON) $(STATIC_TP)
	$(call say,CHECK,"no test points in $(notdir $(STATIC) $(SHARED) $(CLI) $(DAEMON))")
	$(Q)if nm -A $(STATIC) $(SHARED) $(CLI) $(DAEMON) 2>/dev/null | grep -w shm_testpoint_hook; \
	then echo "shmbus: a shipped binary has test points (above): build it without -DSHMBUS_TESTPOINTS"; \
		exit 1; fi
	$(Q)nm $(STATIC_TP) | grep -qw shm_testpoint_hook || \
		{ echo "shmbus: $(STATIC_TP) has no test points: is -DSHMBUS_TESTPOINTS lost?"; exit 1; }

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZERS  := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(SHM_SRC) $(DEPSOK)
	@mkdir -p $(@D)
	$(call say,FUZZ,$@)
	$(Q)clang -std=gnu11 -O1 -g -Wall -Wextra -Werror $(ARCH_FLAGS) -D_GNU_SOURCE -Iinclude $(DEP_CFLAGS) \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-o $@ $< $(SHM_SRC) $(LDLIBS)

test: all bench-programs check-testpoints $(TESTS) $(FUZZERS)
	@BUILD=$(BUILD) SHMBUS_CLI=$(abspath $(CLI)) SHMBUSD=$(abspath $(DAEMON)) tests/run-tests.sh $(TESTS) -- $(FUZZERS)

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=address,undefined CFLAGS="-O1 -g" test

# the tests fork from processes that run liburcu's call_rcu thread
tsan:
	@TSAN_OPTIONS="suppressions=$(abspath tests/tsan.supp) die_after_fork=0" \
		$(MAKE) --no-print-directory BUILD=build/tsan SAN=thread CFLAGS="-O1 -g" test

fuzz: $(FUZZERS)
	@for f in $(FUZZERS); do \
		echo "== $$f ($(FUZZ_SECONDS) s)"; \
		mkdir -p $(BUILD)/fuzz/corpus-$$(basename $$f); \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			$(BUILD)/fuzz/corpus-$$(basename $$f) tests/fuzz/seeds/$$(basename $$f) || exit 1; \
	done

# --- run, bench, install ---------------------------------------------------

# The root is the one shmbus and shmbusd default to (shmbus --help says
# which); the daemon's own banner would repeat this, so its stdout is dropped
# (its log is on stderr).
run: all
	@root=$$($(CLI) --help | sed -n 's/^The default root here is \(.*\)\.$$/\1/p'); \
	if [ -z "$$root" ]; then echo "make run: no default bus root here; set SHMBUS_ROOT"; exit 1; fi; \
	echo "Starting shmbusd in the foreground with the built-in configuration (no --config):"; \
	echo "  bus root        $$root"; \
	echo "  control socket  $$root/control"; \
	echo "In another terminal, from this directory ($(CLI) is the command until make install):"; \
	echo "  $(CLI) --root $$root topic create orders"; \
	echo "  seq 1 3 | $(CLI) --root $$root produce orders"; \
	echo "  $(CLI) --root $$root consume orders -e"; \
	echo "  $(CLI) --root $$root status"; \
	echo "  $(CLI) --root $$root demo      # 2,000,000 records through the bus, and the rate"; \
	echo "Stop the daemon with Ctrl-C."; \
	exec $(DAEMON) --root "$$root" >/dev/null

include bench/Makefile.inc
include trace/Makefile.inc

MAN_PAGES := docs/man/shmbus.1 docs/man/libshmbus.3 docs/man/shmbusd.conf.5 docs/man/shmbusd.8

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 0755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libshmbus.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libshmbus.so.$(SOVERSION)
	ln -sf libshmbus.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libshmbus.so
	install -m 0644 include/shmbus.h $(DESTDIR)$(PREFIX)/include/
	install -m 0755 $(CLI) $(DESTDIR)$(PREFIX)/bin/
	test ! -e $(TRACE) || install -m 0755 $(TRACE) $(DESTDIR)$(PREFIX)/bin/
	test ! -e $(BUILD)/trace/kevents.bpf.o || install -D -m 0644 $(BUILD)/trace/kevents.bpf.o \
		$(DESTDIR)$(PREFIX)/lib/shmbus/kevents.bpf.o
	install -d $(DESTDIR)$(PREFIX)/sbin
	install -m 0755 $(DAEMON) $(DESTDIR)$(PREFIX)/sbin/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
		-e 's|@REQUIRES@|$(PKGS)|g' lib/shmbus.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/shmbus.pc
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(SYSCONFDIR)/shmbus $(DESTDIR)$(DOCDIR)
	sed -e 's|@SBINDIR@|$(PREFIX)/sbin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		-e 's|@DOCDIR@|$(DOCDIR)|g' systemd/shmbusd.service.in \
		> $(DESTDIR)$(SYSTEMDUNITDIR)/shmbusd.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/shmbusd.service
	install -m 0644 systemd/shmbusd.socket $(DESTDIR)$(SYSTEMDUNITDIR)/shmbusd.socket
	install -m 0644 systemd/shmbus.conf $(DESTDIR)$(TMPFILESDIR)/shmbus.conf
	install -m 0644 systemd/shmbus-sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/shmbus.conf
	install -m 0644 systemd/shmbusd.conf.example $(DESTDIR)$(SYSCONFDIR)/shmbus/shmbusd.conf.example
	test -e $(DESTDIR)$(SYSCONFDIR)/shmbus/shmbusd.conf || install -m 0644 \
		systemd/shmbusd.conf.example $(DESTDIR)$(SYSCONFDIR)/shmbus/shmbusd.conf
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/
	for m in $(MAN_PAGES); do \
		s=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s && \
		install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/ || exit 1; \
	done

# A shmbusd.conf the administrator changed stays (as dpkg keeps a changed
# conffile); one still equal to the example goes with it.
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libshmbus.* $(DESTDIR)$(PREFIX)/include/shmbus.h \
		$(DESTDIR)$(PREFIX)/bin/shmbus $(DESTDIR)$(PREFIX)/bin/shmbus-trace \
		$(DESTDIR)$(PREFIX)/lib/shmbus/kevents.bpf.o \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig/shmbus.pc \
		$(DESTDIR)$(PREFIX)/sbin/shmbusd $(DESTDIR)$(SYSTEMDUNITDIR)/shmbusd.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/shmbusd.socket \
		$(DESTDIR)$(TMPFILESDIR)/shmbus.conf $(DESTDIR)$(SYSUSERSDIR)/shmbus.conf
	for m in $(MAN_PAGES); do rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/}; done
	if cmp -s systemd/shmbusd.conf.example $(DESTDIR)$(SYSCONFDIR)/shmbus/shmbusd.conf; then \
		rm -f $(DESTDIR)$(SYSCONFDIR)/shmbus/shmbusd.conf; \
	elif [ -e $(DESTDIR)$(SYSCONFDIR)/shmbus/shmbusd.conf ]; then \
		echo "kept $(DESTDIR)$(SYSCONFDIR)/shmbus/shmbusd.conf: it differs from the example"; \
	fi
	rm -f $(DESTDIR)$(SYSCONFDIR)/shmbus/shmbusd.conf.example
	rmdir $(DESTDIR)$(SYSCONFDIR)/shmbus 2>/dev/null || true
	rmdir $(DESTDIR)$(PREFIX)/lib/shmbus 2>/dev/null || true
	rm -rf $(DESTDIR)$(DOCDIR)

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
