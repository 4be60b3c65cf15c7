# pairflow tasks. On a fresh machine run them through ./dev, which installs `just` first.

set shell := ["bash", "-euo", "pipefail", "-c"]

python := ".venv/bin/python"
demo_store := ".cache/demo/demo.db"

# list the recipes
default:
    @just --list

# create .venv and install pairflow with its development tools (skipped when up to date)
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    [ -x {{python}} ] || python3 -m venv .venv
    stamp=.venv/.pairflow-installed
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        {{python}} -m pip install --quiet --disable-pip-version-check --upgrade pip
        {{python}} -m pip install --quiet --disable-pip-version-check -e '.[dev]'
        touch "$stamp"
    fi

# the Kafka broker's jars (Maven Central) and Debian's chromium for the browser tests
setup-test: setup
    #!/usr/bin/env bash
    set -euo pipefail
    command -v java >/dev/null || { echo "error: java (17+) is missing: apt-get install openjdk-17-jre-headless" >&2; exit 2; }
    {{python}} -c 'from tests.kafka_broker import ensure_kafka_libs; ensure_kafka_libs()'
    if [ ! -x /usr/bin/chromium ]; then
        if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
    fi

# replay the bundled real tape (looped 6x) at 10x real time into the demo store, serve the dashboard
demo speed="10" port="5006": setup
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p "$(dirname {{demo_store}})"
    rm -f {{demo_store}} {{demo_store}}-wal {{demo_store}}-shm
    # The 11-minute tape looped 6x end to end (bench/tapes.py, the benchmarks' loop: times and
    # trade ids shifted, prices repeat, each seam jumps back to the first prices): 66 minutes,
    # so the 1m and 5m bars fill their windows (20 and 10 bars) too.
    tape=$({{python}} bench/tapes.py spot_recording 200000 | cut -d' ' -f1)
    {{python}} -m app.cli replay "$tape" --symbols BTCUSDT,ETHUSDT \
        --pairs BTCUSDT/ETHUSDT --timeframes 1s,1m,5m --window 1s=120,1m=20,5m=10 \
        --speed {{speed}} --store {{demo_store}} &
    replay=$!
    trap 'kill $replay 2>/dev/null || true' EXIT
    {{python}} -m app.cli dashboard --store {{demo_store}} --port {{port}}

# the whole test suite: unit, property, Kafka, live-server and browser tests
test: setup-test
    {{python}} -m pytest -q

# benchmarks: figures and ratios against baselines run side by side (results in BENCHMARKS.md)
bench: setup-test
    {{python}} bench/replay.py
    {{python}} bench/analytics.py
    {{python}} bench/fuzz.py --seconds 60
    {{python}} bench/soak.py
    {{python}} bench/latency.py --seconds 90
    {{python}} bench/dashboard_load.py --sessions 20 --seconds 60

# ruff lint and the import contracts (layers point down; pyproject.toml [tool.importlinter])
lint: setup
    .venv/bin/ruff check .
    .venv/bin/lint-imports --no-cache

# a local Apache Kafka broker (KRaft) on 127.0.0.1:9092 in the foreground
kafka: setup-test
    {{python}} -m tests.kafka_broker --port 9092
