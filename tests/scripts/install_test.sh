#!/bin/sh
# Installs a built tree into a temporary prefix and builds examples/embed.c
# against the installed files only, through pkg-config, as a user would; then
# runs it and checks its output and exit status. Once against the shared
# library, once against the static one (pkg-config --static).
#
#   sh tests/scripts/install_test.sh BUILD_DIR SOURCE_DIR SCRATCH_DIR
#
# CC chooses the compiler (default cc). Exit status 0 when everything worked.
set -eu
if [ $# -ne 3 ]; then
  echo "usage: $0 BUILD_DIR SOURCE_DIR SCRATCH_DIR" >&2
  exit 2
fi
build=$1
src=$2
mkdir -p "$3"
work=$(mktemp -d "$3/install.XXXXXX")
trap 'rm -rf "$work"' EXIT
cc=${CC:-cc}
prefix=$work/prefix

fail() {
  echo "install_test: $*" >&2
  exit 1
}

echo "==> cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" > "$work/install.log" || {
  cat "$work/install.log"
  fail "cmake --install failed"
}
pc=$(find "$prefix" -name spe.pc)
[ -n "$pc" ] || fail "no spe.pc installed"
for f in "$prefix/include/spe.h" "$prefix/bin/spe"; do
  [ -f "$f" ] || fail "$f not installed"
done
export PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
libdir=$(pkg-config --variable=libdir spe)
for f in libspe.a libspe.so libspe.so.0; do
  [ -e "$libdir/$f" ] || fail "$libdir/$f not installed"
done
echo "pkg-config --cflags --libs spe: $(pkg-config --cflags --libs spe)"
echo "pkg-config --static --libs spe: $(pkg-config --static --libs spe)"

# Copy the example out of the source tree, so that nothing but the installed
# header can be found next to it.
cp "$src/examples/embed.c" "$work/embed.c"

# Checks one build of the example: it runs the job to success (exit 0) and
# prints the result of its last task, 17 + 2 * 17 + 4.
check_run() {
  out=$work/$1.out
  shift
  status=0
  "$@" "$work/state-$$.db" > "$out" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    cat "$out"
    fail "$* exited with $status"
  fi
  grep -q '"status": "succeeded"' "$out" || { cat "$out"; fail "no succeeded job in the output"; }
  grep -q '"result": 55' "$out" || { cat "$out"; fail "no result 55 in the output"; }
  grep -q 'job_finished' "$out" || { cat "$out"; fail "no job_finished event printed"; }
  rm -f "$work"/state-$$.db*
}

echo "==> shared: $cc embed.c \$(pkg-config --cflags --libs spe)"
# shellcheck disable=SC2046 # word splitting of pkg-config's flags is wanted
"$cc" -o "$work/embed" "$work/embed.c" $(pkg-config --cflags --libs spe)
# The prefix is not in the loader's path: tell it (or link with -Wl,-rpath).
export LD_LIBRARY_PATH="$libdir"
ldd "$work/embed" | grep -q "$libdir/libspe.so.0" ||
  fail "embed does not load the installed libspe.so.0"
check_run shared "$work/embed"
unset LD_LIBRARY_PATH

echo "==> static: $cc embed.c libspe.a \$(pkg-config --static --libs spe)"
# -Bstatic for libspe alone: the other libraries stay shared, as a program that
# wants only libspe inside it would link.
# shellcheck disable=SC2046
"$cc" -o "$work/embed-static" "$work/embed.c" $(pkg-config --cflags spe) \
  -L"$libdir" -Wl,-Bstatic -lspe -Wl,-Bdynamic \
  $(pkg-config --static --libs spe | sed 's/-L[^ ]*//g; s/-lspe\b//g')
if ldd "$work/embed-static" | grep -q libspe; then
  fail "embed-static still loads a shared libspe"
fi
check_run static "$work/embed-static"

echo "install_test: the installed library, header and spe.pc work (shared and static)"
