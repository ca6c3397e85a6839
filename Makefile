# fmnist-lua: build, test, bench, install.
#   make            engine (build/libfmnist.a), Lua module (fmnist.so), host (./fmnist-lua)
#   make deps       install missing Debian packages (as root), or print the command
#   make test       build and run the whole suite; the last line is "N passed, N failed"
#   make test SANITIZE=1   the same suite in an AddressSanitizer + UBSan build (build-san/)
#   make bench      speed and memory figures
#   make install    into $(PREFIX)

PREFIX   ?= /usr/local
CC       ?= cc
PKGS      = lua5.4 libpng zlib openblas
DEB_PKGS  = liblua5.4-dev lua5.4 gnuplot-nox libpng-dev zlib1g-dev libopenblas-dev libreadline-dev \
            pkg-config dataset-fashion-mnist make gcc procps tmux

ifeq ($(SANITIZE),1)
BUILD    ?= build-san
OPT       = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
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

.PHONY: all deps test bench install clean format
all: $(HOST) $(MODULE)

$(BUILD)/%.o: %.c $(wildcard engine/*.h lua/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

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

deps:
	@sh tools/deps.sh $(DEB_PKGS)

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

clean:
	rm -rf build build-san fmnist-lua fmnist.so
