"""Browser-test fixtures: a replayed store, a dashboard server on a free port, Chromium pages.

Pages fail their test on any console error, page error or failed network request (the
dashboard must work offline: every script and style is served by the dashboard itself).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("PAIRFLOW_TEST_DATA",
                           REPO.parent / "shared" / "data" / "binance-spot-2024-08-08"))
PAIRFLOW = Path(sys.executable).with_name("pairflow")
CHROMIUM = os.environ.get("PAIRFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: Console warnings that fail a page: BokehJS could not range a chart (it stays blank).
BAD_WARNINGS = ("could not set initial ranges",)
#: How long a page wait or ``expect`` polls before failing: an upper bound only, generous for a
#: busy machine; every wait polls for a state the page or store shows, never for a time.
WAIT_MS = 60_000
expect.set_options(timeout=WAIT_MS)


def pairflow(*args: str) -> str:
    """Run the ``pairflow`` CLI; return its stdout."""
    done = subprocess.run([str(PAIRFLOW), *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="session")
def replay_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store filled by a replay of the real recorded ticks (1s and 1m, two pairs)."""
    files = sorted(DATA.glob("*.gz"))
    if not files:
        pytest.fail(f"no recorded data in {DATA} (set PAIRFLOW_TEST_DATA)", pytrace=False)
    store = tmp_path_factory.mktemp("replay") / "replay.db"
    pairflow("replay", *map(str, files), "--symbols", "BTCUSDT,ETHUSDT",
             "--pairs", "BTCUSDT/ETHUSDT,ETHUSDT/BTCUSDT", "--timeframes", "1s,1m",
             "--window", "120", "--store", str(store))
    return store


#: The real basis pair of the shared tapes: spot BTCUSDT against COIN-M BTCUSD_PERP, quotes on
#: both legs (2024-08-09 00:00-00:05).
BASIS_TAPES = (REPO.parent / "shared" / "data" / "binance-spot-2024-08-08" / "btcusdt_20240809.gz",
               REPO.parent / "shared" / "data" / "binance-coinm-2024-08-09"
               / "btcusd_perp_20240809.gz")
BASIS_Y, BASIS_X = "spot:BTCUSDT", "cm:BTCUSD_PERP"
BASIS_PAIR = f"{BASIS_Y}/{BASIS_X}"


def replay_basis(store: Path, *options: str) -> Path:
    """Replay the basis pair with quotes into ``store`` as 1 s bars, with more ``options``."""
    missing = [str(tape) for tape in BASIS_TAPES if not tape.exists()]
    if missing:
        pytest.fail(f"shared tapes missing: {missing}", pytrace=False)
    pairflow("replay", *map(str, BASIS_TAPES), "--symbols", f"{BASIS_Y},{BASIS_X}",
             "--pairs", BASIS_PAIR, "--quotes", "--timeframes", "1s", *options,
             "--store", str(store))
    return store


def copy_store(source: Path, target: Path) -> Path:
    """A consistent copy of a store (SQLite backup API)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target


def store_rows(store: Path, table: str, **where: object) -> list[dict]:
    """The rows of a store table (equality filters ``where``), as the store reader gives them."""
    from connectors.store import StoreReader

    reader = StoreReader(store)
    try:
        return list(reader.query(table, where))
    finally:
        reader.close()


@contextmanager
def dashboard_server(*args: str, timeout_s: float = 120.0,
                     log_path: Path | None = None) -> Iterator[str]:
    """Run ``pairflow dashboard … --port 0``; yield its URL once the liveness URL answers.

    The server's stderr (its log) goes to ``log_path`` when given.
    """
    log = open(log_path or os.devnull, "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "app.dashboard", *args, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO)
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://\S+", line)
        assert match, f"no URL printed: {line!r}"
        url = match.group(0)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(url + "liveness", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
            time.sleep(0.05)  # polling the liveness URL, not waiting for a fixed time
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page; the test fails on console errors, range warnings, page errors or failed
    requests."""
    context = browser.new_context(viewport={"width": 1500, "height": 1300},
                                  accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" or any(w in m.text for w in BAD_WARNINGS) else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url} "
                                                       f"{r.failure}"))
    page.set_default_timeout(WAIT_MS)
    yield page
    context.close()
    assert not problems, problems
