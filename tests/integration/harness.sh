# The shell tests' harness (sourced): "ok N - ..." / "not ok N - ..." per case, then a closing
# "N passed, M failed" line, and the exit status of the whole test.
# shellcheck shell=bash

n=0 passed=0 failed=0

diag() { printf '#   %s\n' "$@"; }

case_() { # description command...
  local what=$1
  shift
  n=$((n + 1))
  if "$@"; then
    echo "ok $n - $what"
    passed=$((passed + 1))
  else
    echo "not ok $n - $what"
    failed=$((failed + 1))
  fi
}

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}

# skip_case DESCRIPTION REASON: a case that could not run here ("ok N - ... # SKIP reason").
skip_case() {
  n=$((n + 1))
  echo "ok $n - $1 # SKIP $2"
}
