#!/bin/sh
# Run each named atheris target (default: all five) for FUZZ_SECONDS (default 600), one
# after another at the lowest priority. Seeds come from fuzz/corpus/<target> (read only);
# what libFuzzer adds goes to fuzz/work/<target>, crashes to fuzz/artifacts/. Stops at the
# first target with a finding (libFuzzer's exit status).
set -e
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SECONDS_EACH=${FUZZ_SECONDS:-600}
TARGETS=${*:-imap smtp pop3 mime web}
mkdir -p fuzz/artifacts
for target in $TARGETS; do
    mkdir -p "fuzz/work/$target"
    echo "== $target: $SECONDS_EACH s" >&2
    nice -n 19 "$PY" "fuzz/$target.py" "fuzz/work/$target" "fuzz/corpus/$target" \
        -max_total_time="$SECONDS_EACH" -artifact_prefix="fuzz/artifacts/$target-" \
        2>"fuzz/artifacts/$target.log" || {
            tail -40 "fuzz/artifacts/$target.log" >&2
            exit 1
        }
    grep -E '^(Done|stat::number_of_executed_units)' "fuzz/artifacts/$target.log" >&2
done
