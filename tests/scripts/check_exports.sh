#!/bin/sh
# Checks that a shared libspe exports exactly the functions that include/spe.h
# declares: no internal function leaks out (the objects are compiled with
# hidden visibility; only SPE_EXPORT definitions are visible) and no declared
# function is missing (a declaration without a definition, or a definition
# without SPE_EXPORT).
#
#   sh tests/scripts/check_exports.sh path/to/libspe.so path/to/spe.h
#
# Exit status 0 when the two lists are equal, 1 (with both differences
# listed) otherwise, 2 on bad usage.
set -eu
if [ $# -ne 2 ] || [ ! -f "$1" ] || [ ! -f "$2" ]; then
  echo "usage: $0 LIBSPE.so SPE.h" >&2
  exit 2
fi
lib=$1
header=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The names the header declares as functions: every spe_* identifier followed
# by "(" once comments are gone. Function pointer types are written
# "(*spe_name)(" and so do not match; macros are upper case (SPE_).
awk '
  { text = text $0 "\n" }
  END {
    while ((i = index(text, "/*")) > 0) {
      printf "%s", substr(text, 1, i - 1)
      text = substr(text, i + 2)
      j = index(text, "*/")
      if (j == 0) { text = ""; break }
      text = substr(text, j + 2)
    }
    printf "%s", text
  }' "$header" |
  sed 's://.*$::' |
  grep -oE '(^|[^A-Za-z0-9_])spe_[a-z0-9_]+[[:space:]]*\(' |
  sed -E 's/^[^s]//; s/[[:space:]]*\($//' |
  sort -u > "$tmp/declared"

# Every symbol the library defines in its dynamic symbol table, whatever its
# name: anything that is not a declared function is a leak.
nm -D --defined-only "$lib" | awk 'NF >= 3 { print $3 } NF == 2 { print $2 }' |
  sed 's/@.*$//' | sort -u > "$tmp/exported"

if [ ! -s "$tmp/declared" ]; then
  echo "check_exports: found no function declarations in $header" >&2
  exit 1
fi

comm -13 "$tmp/declared" "$tmp/exported" > "$tmp/extra"
comm -23 "$tmp/declared" "$tmp/exported" > "$tmp/missing"
status=0
if [ -s "$tmp/extra" ]; then
  echo "exported by $lib but not declared in $header:"
  sed 's/^/  /' "$tmp/extra"
  status=1
fi
if [ -s "$tmp/missing" ]; then
  echo "declared in $header but not exported by $lib:"
  sed 's/^/  /' "$tmp/missing"
  status=1
fi
if [ $status -eq 0 ]; then
  echo "$lib exports exactly the $(wc -l < "$tmp/declared") functions of $header"
fi
exit $status
