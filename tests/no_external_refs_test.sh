#!/bin/bash
# The repository must be readable on its own: no comment or document may cite a file that is not
# in it. Citations go to public specifications (C706, [MS-RPCE], KB articles), to other projects'
# source files, or to docs/ (docs/evasions.md, docs/wire-vectors.md). Fails, naming every line,
# when one of these comes back:
#   * the research notes that were never part of the repository: "shared/reference",
#     "epm-and-ports.md", "firewalls.md", "seed-rpc", or anything under "../shared/";
#   * outside docs/ and README.md, a bare "§N" not preceded by "C706 " (those notes' section
#     numbers: a code comment citing "§7.3" names no document a reader can find).
# Scans the tracked files (git ls-files); without git, every file under the source directories.
set -euo pipefail
src=${RPCGATE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$src"
self=tests/no_external_refs_test.sh

files=$(mktemp)
trap 'rm -f "$files"' EXIT
if command -v git >/dev/null && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z >"$files"
else
  find src apps tests fuzz bench docs cmake scripts .ci README.md Makefile CMakeLists.txt \
    CMakePresets.json -type f -print0 2>/dev/null >"$files" || true
fi
if ! [ -s "$files" ]; then
  echo "FAIL: no files to check under $src" >&2
  exit 1
fi

found=0
# Fixed strings; binary files skipped (-I); this script excluded. Output captured rather than
# tested through xargs' exit status (123 when any one batch has no match).
hits=$(grep -v -z -x -F "$self" "$files" |
  xargs -0 grep -n -I -F -e 'shared/reference' -e 'epm-and-ports.md' -e 'firewalls.md' \
    -e 'seed-rpc' -e '../shared/' -- 2>/dev/null || true)
if [ -n "$hits" ]; then
  echo "$hits"
  found=1
fi
# Bare section numbers outside docs/ and README.md ("\xc2\xa7" is UTF-8 for the section sign;
# LC_ALL=C so that grep -P matches those bytes).
if echo | grep -P '' >/dev/null 2>&1; then
  hits=$(grep -v -z -E -x -e "$self" -e 'docs/.*' -e 'README\.md' "$files" |
    LC_ALL=C xargs -0 grep -n -I -P '(?<!C706 )\xc2\xa7[0-9](?![0-9])' -- 2>/dev/null || true)
  if [ -n "$hits" ]; then
    echo "$hits"
    found=1
  fi
else
  echo "note: grep -P unavailable, bare section numbers not checked" >&2
fi

if [ "$found" -ne 0 ]; then
  echo "FAIL: the lines above cite files that are not in the repository; cite the public" \
    "specification (C706 section, [MS-RPCE] section, KB article) or docs/ instead" >&2
  exit 1
fi
echo "OK: $(tr -cd '\0' <"$files" | wc -c) files cite nothing outside the repository"
