#!/usr/bin/env bash
# check_orc_guard.sh PROGRAM...: each program exports resize/orc_guard.c's orc_program_compile
# and orc_program_free, so that libvips' calls into ORC reach the lock there. A program that
# does not would still be safe (resize_global_init turns the vector code off) but about 30%
# slower at resizing: this makes that a failure rather than a silent slowdown.
set -euo pipefail
status=0
for program in "$@"; do
    exported=$(nm -D --defined-only "$program" | awk '{print $3}')
    for symbol in orc_program_compile orc_program_free; do
        if grep -qx "$symbol" <<<"$exported"; then
            echo "ok: $(basename "$program") exports $symbol"
        else
            echo "FAIL: $(basename "$program") does not export $symbol (see resize/orc_guard.c)"
            status=1
        fi
    done
done
exit $status
