# fmnist-lua: build, test, bench, install.
#   make            engine (build/libfmnist.a), Lua module (fmnist.so), host (./fmnist-lua)
#   make deps       install missing Debian packages (as root), or print the command; and ONNX
#                   Runtime for Node.js into build/onnxruntime (tests/onnx/install_ort.sh)
#   make test       build and run the whole suite; the last line is "N passed, N failed"
#   make test SANITIZE=1   the same suite in an AddressSanitizer + UBSan build (build-san/)
#   make bench      speed and memory figures
#   make install    into $(PREFIX)
#   make fuzz       libFuzzer targets (clang, ASan + UBSan) in build-fuzz/; see tests/fuzz/README.md
#   make fuzz-run   each target for FUZZ_SECONDS (default 30) from its corpus; fails on a finding

PREFIX   ?= /usr/local
CC       ?= cc
PKGS      = lua5.4 libpng zlib openblas
DEB_PKGS  = liblua5.4-dev lua5.4 gnuplot-nox libpng-dev zlib1g-dev libopenblas-dev libreadline-dev \
            pkg-config dataset-fashion-mnist make gcc procps parallel tmux clang-14 \
            libclang-rt-14-dev libomp-14-dev python3-onnx python3-numpy

ifeq ($(SANITIZE),1)
BUILD    ?= build-san
OPT       = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -DFM_DEBUG
SANLD     = -fsanitize=address,undefined
else
BUILD    ?= build
OPT       = -O2 -g
SANLD     =
endif
# The default build puts the host and the module at the root; any other BUILD keeps them inside.
ifeq ($(BUILD),build)
HOST      = fmnist-lua
MODULE    = fmnist.so
else
HOST      = $(BUILD)/fmnist-lua
MODULE    = $(BUILD)/fmnist.so
endif

# Deferred (=) so that pkg-config runs only when a recipe needs it, after `make deps`.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
# The module leaves the Lua core to whoever loads it (a second copy of the VM must not be linked in).
MOD_LIBS   = $(shell pkg-config --libs libpng zlib openblas) -lm -fopenmp -pthread $(SANLD) $(LDFLAGS)
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -Werror -fPIC -pthread -fopenmp \
             -Iengine -Ilua -I$(BUILD) $(PKG_CFLAGS) $(CFLAGS)
LIBS_ALL   = $(PKG_LIBS) -lreadline -lm -fopenmp -pthread $(SANLD) $(LDFLAGS)

ENGINE_SRC = $(wildcard engine/*.c)
ENGINE_OBJ = $(ENGINE_SRC:%.c=$(BUILD)/%.o)
BIND_SRC   = $(filter-out lua/host.c,$(wildcard lua/*.c))
BIND_OBJ   = $(BIND_SRC:%.c=$(BUILD)/%.o) $(BUILD)/lua_modules.o
LUA_MODS   = $(sort $(wildcard lua/fmnist/*.lua))
CTEST_SRC  = $(wildcard tests/engine/test_*.c)
CTEST_BIN  = $(CTEST_SRC:tests/engine/%.c=$(BUILD)/tests/%)
BENCH_SRC  = $(wildcard bench/*.c)
BENCH_BIN  = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps test bench install clean format fuzz fuzz-run
all: $(HOST) $(MODULE)

$(BUILD)/%.o: %.c $(wildcard engine/*.h lua/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# The commit the program is built from, for host.build().git and the reports: `git describe`
# of this checkout (nothing outside one, or without git), kept to the characters a tag or a
# hash has. The stamp file is rewritten, when make reads this file, only if the description
# changed: a new commit (or edits that make it -dirty) rebuild host.o alone, and an unchanged
# tree nothing.
GIT_DESCRIBE := $(if $(wildcard .git),$(shell git describe --always --dirty --tags 2>/dev/null | tr -cd 'A-Za-z0-9._/+-'))
GIT_STAMP    := $(BUILD)/git-describe.stamp
ifneq ($(GIT_DESCRIBE),$(shell cat $(GIT_STAMP) 2>/dev/null))
$(shell mkdir -p $(BUILD) && printf '%s\n' '$(GIT_DESCRIBE)' > $(GIT_STAMP))
endif
HOST_DEFS = $(if $(GIT_DESCRIBE),-DLFM_GIT_DESCRIBE='"$(GIT_DESCRIBE)"')

$(BUILD)/lua/host.o: lua/host.c $(GIT_STAMP) $(wildcard engine/*.h lua/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(HOST_DEFS) -c $< -o $@

$(BUILD)/libfmnist.a: $(ENGINE_OBJ)
	rm -f $@; ar rcs $@ $^

# The pure-Lua modules (plotting, tables, reports) are compiled into the C module, so that
# `require "fmnist"` finds them from any directory, in the host and in a stock lua5.4 alike.
$(BUILD)/bin2c: tools/bin2c.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror $< -o $@

$(BUILD)/lua_modules.c: $(BUILD)/bin2c $(LUA_MODS)
	$(BUILD)/bin2c $(LUA_MODS) > $@

$(BUILD)/lua_modules.o: $(BUILD)/lua_modules.c
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(MODULE): $(BIND_OBJ) $(BUILD)/libfmnist.a
	$(CC) -shared -o $@ $(BIND_OBJ) $(BUILD)/libfmnist.a $(MOD_LIBS)

$(HOST): $(BUILD)/lua/host.o $(BIND_OBJ) $(BUILD)/libfmnist.a
	$(CC) -o $@ $^ $(LIBS_ALL)

$(BUILD)/tests/%: tests/engine/%.c tests/engine/check.h $(BUILD)/libfmnist.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests/engine $< $(BUILD)/libfmnist.a -o $@ $(LIBS_ALL)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libfmnist.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< $(BUILD)/libfmnist.a -o $@ $(LIBS_ALL)

# python3-onnx (with python3-numpy) and onnxruntime-node check what model:export_onnx and
# model:export_npy write (tests/lua/test_export.lua); without them those checks are skipped.
deps:
	@sh tools/deps.sh $(DEB_PKGS)
	@sh tests/onnx/install_ort.sh build/onnxruntime

test: all $(CTEST_BIN)
	@FMNIST_SANITIZE=$(SANITIZE) sh tests/run.sh $(BUILD) $(HOST) $(MODULE)

bench: all $(BENCH_BIN)
	@sh bench/run.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/lua/5.4
	install -m 755 fmnist-lua $(DESTDIR)$(PREFIX)/bin/fmnist-lua
	install -m 644 fmnist.so $(DESTDIR)$(PREFIX)/lib/lua/5.4/fmnist.so

format:
	clang-format -i engine/*.[ch] lua/*.[ch] tests/engine/*.[ch] tools/*.c

# ---- fuzzing: clang's libFuzzer, with the engine and the binding compiled from source with
# ASan + UBSan and coverage (the gcc-built libfmnist.a has no coverage). Without -Werror: a warning
# only clang gives in engine/ or lua/ must not stop the fuzzers; the harnesses themselves use it.
FUZZ_BUILD   = build-fuzz
FUZZ_CC     ?= clang-14
FUZZ_SECONDS ?= 30
FUZZ_CFLAGS  = -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link -fopenmp -pthread \
               -Wall -Wextra -Wno-pass-failed -Iengine -Ilua -I$(FUZZ_BUILD) $(PKG_CFLAGS)
FUZZ_LINK    = -fsanitize=fuzzer,address,undefined
FUZZ_LIBS    = $(shell pkg-config --libs libpng zlib openblas) -lm -fopenmp -pthread
FUZZ_ENGINE  = $(ENGINE_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BIND    = $(BIND_SRC:%.c=$(FUZZ_BUILD)/%.o) $(FUZZ_BUILD)/lua_modules.o
FUZZ_TARGETS ?= idx idx_gz csv npy png model lua lua_plot
FUZZ_BIN     = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_LUA_DEFS = -DFUZZ_LUA_DRIVER='"$(CURDIR)/tests/fuzz/lua_driver.lua"' \
                -DFUZZ_KEYS='"$(CURDIR)/$(FUZZ_BUILD)/fuzz_keys.txt"'

fuzz: $(FUZZ_BIN)

fuzz-run: fuzz
	@sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

$(FUZZ_BUILD)/%.o: %.c $(wildcard engine/*.h lua/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/lua_modules.c: $(BUILD)/bin2c $(LUA_MODS)
	@mkdir -p $(dir $@)
	$(BUILD)/bin2c $(LUA_MODS) > $@

$(FUZZ_BUILD)/lua_modules.o: $(FUZZ_BUILD)/lua_modules.c
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

# Words the Lua target's palette uses as option names: every short lower-case string literal of
# the binding and the key of every `name = true` set in the pure-Lua modules (their known options).
$(FUZZ_BUILD)/fuzz_keys.txt: $(BIND_SRC) $(LUA_MODS)
	@mkdir -p $(dir $@)
	{ grep -ohE '"[a-z][a-z0-9_]{0,23}"' $(BIND_SRC) $(LUA_MODS) | tr -d '"'; \
	  grep -ohE '\b[a-z][a-z0-9_]{0,23} = true' $(LUA_MODS) | cut -d' ' -f1; } | LC_ALL=C sort -u > $@

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h $(FUZZ_ENGINE)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror $(FUZZ_LINK) $< $(FUZZ_ENGINE) -o $@ $(FUZZ_LIBS)

$(FUZZ_BUILD)/fuzz_lua: tests/fuzz/fuzz_lua.c tests/fuzz/fuzz_util.h $(FUZZ_BIND) $(FUZZ_ENGINE) \
                        $(FUZZ_BUILD)/fuzz_keys.txt
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror $(FUZZ_LINK) $(FUZZ_LUA_DEFS) $< $(FUZZ_BIND) $(FUZZ_ENGINE) \
	  -o $@ $(FUZZ_LIBS) $(shell pkg-config --libs lua5.4)

$(FUZZ_BUILD)/fuzz_lua_plot: tests/fuzz/fuzz_lua.c tests/fuzz/fuzz_util.h $(FUZZ_BIND) $(FUZZ_ENGINE) \
                             $(FUZZ_BUILD)/fuzz_keys.txt
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror $(FUZZ_LINK) $(FUZZ_LUA_DEFS) -DFUZZ_PLOT=1 $< $(FUZZ_BIND) \
	  $(FUZZ_ENGINE) -o $@ $(FUZZ_LIBS) $(shell pkg-config --libs lua5.4)

clean:
	rm -rf build build-san $(FUZZ_BUILD) fmnist-lua fmnist.so
