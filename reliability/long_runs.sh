#!/usr/bin/env bash
# The long versions of the reliability tests, each bounded in count and time; the figures in
# docs/RELIABILITY.md come from this. Needs a PostgreSQL (TEST_DATABASE_URL, or an embedded
# one is started). Usage: reliability/long_runs.sh [model|fuzz|load|faults ...] (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=("${@:-model fuzz load faults}")
for run in ${runs[@]}; do
    case "$run" in
    model)
        CREDITS_MODEL_EXAMPLES=1000 CREDITS_MODEL_STEPS=50 timeout 900 \
            .venv/bin/pytest -q -s -p no:cacheprovider tests/test_model.py | grep -E "^model|passed|failed"
        ;;
    fuzz)
        CREDITS_FUZZ_EXAMPLES=1000 timeout 900 \
            .venv/bin/pytest -q -s -p no:cacheprovider tests/test_fuzz.py | grep -E "^fuzz|passed|failed"
        ;;
    load)
        timeout 600 .venv/bin/python -m reliability.load --users 5000 --triggers 2000 \
            --trigger-threads 16 --consumers 12 --spends 1000 --max-seconds 300
        ;;
    faults)
        FAULTS_SUBSCRIPTIONS=50000 timeout 900 \
            .venv/bin/pytest -q -s -p no:cacheprovider tests/test_faults.py | grep -E "^faults|passed|failed"
        ;;
    *) echo "unknown run: $run" >&2; exit 2 ;;
    esac
done
