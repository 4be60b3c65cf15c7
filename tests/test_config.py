"""Configuration: CLI > PAIRFLOW_* environment > TOML file > defaults, and every check."""

from __future__ import annotations

import pytest

from pairflow.config import PairflowConfig, load_config, parse_speed
from pairflow.errors import ConfigError

BASE = {"symbols": "BTCUSDT,ETHUSDT", "files": "a.gz"}


def write_toml(tmp_path, text: str):
    path = tmp_path / "pairflow.toml"
    path.write_text(text)
    return path


def test_defaults():
    config = load_config(BASE, env={})
    assert config.symbols == ("BTCUSDT", "ETHUSDT")
    assert config.timeframes == ("1s", "1m", "5m")
    assert (config.window, config.price, config.lag) == (300, "log", "aic")
    assert (config.entry_z, config.exit_z, config.cooldown_bars) == (2.0, 0.5, 0)
    assert config.lateness_s == 2.0 and config.lateness_us == 2_000_000
    assert config.source == "replay" and config.speed is None and config.store is None


@pytest.mark.parametrize("layers,expected", [
    ({}, 300),
    ({"toml"}, 50),
    ({"toml", "env"}, 60),
    ({"env"}, 60),
    ({"toml", "env", "cli"}, 70),
    ({"toml", "cli"}, 70),
    ({"cli"}, 70),
])
def test_precedence_cli_over_env_over_toml_over_default(tmp_path, layers, expected):
    toml = write_toml(tmp_path, "window = 50\nentry_z = 3.0\n") if "toml" in layers else None
    env = {"PAIRFLOW_WINDOW": "60"} if "env" in layers else {}
    cli = {**BASE, "window": 70 if "cli" in layers else None}
    config = load_config(cli, env=env, toml_path=toml)
    assert config.window == expected
    assert config.entry_z == (3.0 if "toml" in layers else 2.0)  # untouched layers stay


def test_every_layer_for_lists_and_strings(tmp_path):
    toml = write_toml(tmp_path, 'symbols = ["btcusdt", "ethusdt", "SOLUSDT"]\n'
                                'timeframes = ["5m", "1s"]\nprice = "raw"\nlateness_s = 1.5\n'
                                'files = ["x.gz"]\n')
    config = load_config({}, env={}, toml_path=toml)
    assert config.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    assert config.timeframes == ("1s", "5m")  # shortest first
    assert (config.price, config.lateness_us, config.files) == ("raw", 1_500_000, ("x.gz",))
    env = {"PAIRFLOW_TIMEFRAMES": "1m,1s", "PAIRFLOW_PRICE": "log",
           "PAIRFLOW_PAIRS": "ethusdt/btcusdt", "PAIRFLOW_LATENESS_S": "0.25"}
    config = load_config({}, env=env, toml_path=toml)
    assert config.timeframes == ("1s", "1m") and config.price == "log"
    assert config.pairs == ("ETHUSDT/BTCUSDT",) and config.lateness_us == 250_000
    config = load_config({"timeframes": "1h", "symbols": "BTCUSDT,ETHUSDT"}, env=env,
                         toml_path=toml)
    assert config.timeframes == ("1h",) and config.pairs == ("ETHUSDT/BTCUSDT",)


def test_pairflow_config_variable_names_the_toml_and_explicit_path_wins(tmp_path):
    a = tmp_path / "a.toml"
    a.write_text("window = 40\n")
    b = tmp_path / "b.toml"
    b.write_text("window = 45\n")
    assert load_config(BASE, env={"PAIRFLOW_CONFIG": str(a)}).window == 40
    assert load_config(BASE, env={"PAIRFLOW_CONFIG": str(a)}, toml_path=b).window == 45


def test_empty_env_value_means_not_set():
    assert load_config(BASE, env={"PAIRFLOW_WINDOW": ""}).window == 300


def test_speed_values():
    assert parse_speed("max") is None and parse_speed(None) is None
    assert parse_speed("realtime") == 1.0 and parse_speed("10") == 10.0
    assert parse_speed("2.5x") == 2.5
    for bad in ("0", "-3", "fast", "inf"):
        with pytest.raises(ConfigError, match="speed"):
            parse_speed(bad)


INVALID = [
    ({"timeframes": "1s,7x"}, "unknown timeframe '7x'"),
    ({"timeframes": "1m,60s"}, "same length"),
    ({"symbols": "BTC-USDT"}, "malformed symbol"),
    ({"symbols": ""}, "no symbols"),
    ({"symbols": "BTCUSDT,BTCUSDT"}, "repeat"),
    ({"pairs": "BTCUSDT/SOLUSDT"}, "not among --symbols"),
    ({"pairs": "BTCUSDT"}, "must be written Y/X"),
    ({"pairs": "BTCUSDT/BTCUSDT"}, "same symbol on both legs"),
    ({"entry_z": 2.0, "exit_z": 2.0}, "must be below the entry threshold"),
    ({"entry_z": 1.0, "exit_z": 1.5}, "must be below the entry threshold"),
    ({"entry_z": -1.0}, "entry_z > 0"),
    ({"window": 9}, "window must be at least 10 bars, got 9"),
    ({"price": "sqrt"}, "price transform"),
    ({"lag": "many"}, "lag policy"),
    ({"cooldown_bars": -1}, "cooldown"),
    ({"lateness_s": -1}, "lateness"),
    ({"lateness_s": 7200}, "lateness"),
    ({"files": None, "source": "replay"}, "needs input files"),
    ({"source": "ftp"}, "source"),
    ({"window": "ten"}, "window = 'ten' is not a valid value"),
    ({"kafka_tick_form": "rows"}, "kafka_tick_form 'rows' is not batch"),
]


@pytest.mark.parametrize("change,message", INVALID, ids=[m for _, m in INVALID])
def test_invalid_values_say_what_to_fix(change, message):
    cli = {**BASE, **change}
    with pytest.raises(ConfigError) as info:
        load_config(cli, env={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_kafka_tick_form_through_every_layer(tmp_path):
    assert load_config(BASE, env={}).kafka_tick_form == "batch"
    toml = write_toml(tmp_path, 'kafka_tick_form = "tick"\n')
    assert load_config(BASE, env={}, toml_path=toml).kafka_tick_form == "tick"
    env = {"PAIRFLOW_KAFKA_TICK_FORM": "batch"}
    assert load_config(BASE, env=env, toml_path=toml).kafka_tick_form == "batch"
    assert load_config({**BASE, "kafka_tick_form": "tick"}, env=env).kafka_tick_form == "tick"
    with pytest.raises(ConfigError, match="kafka_tick_form 'ticks' is not batch"):
        load_config(BASE, env={"PAIRFLOW_KAFKA_TICK_FORM": "ticks"})


def test_invalid_env_value_names_the_setting():
    with pytest.raises(ConfigError, match="cooldown_bars"):
        load_config(BASE, env={"PAIRFLOW_COOLDOWN_BARS": "soon"})


def test_toml_problems(tmp_path):
    bad_key = write_toml(tmp_path, "windw = 3\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['windw'\]"):
        load_config(BASE, env={}, toml_path=bad_key)
    broken = tmp_path / "broken.toml"
    broken.write_text("window = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(BASE, env={}, toml_path=broken)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(BASE, env={}, toml_path=tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config({**BASE, "colour": "red"}, env={})


def test_dataclass_checks_apply_without_loader():
    with pytest.raises(ConfigError, match="window"):
        PairflowConfig(symbols=("BTCUSDT",), files=("a",), window=3)
    config = PairflowConfig(symbols=("BTCUSDT", "ETHUSDT"), pairs=("BTCUSDT/ETHUSDT",),
                            files=("a",))
    assert config.legs("BTCUSDT/ETHUSDT") == ("BTCUSDT", "ETHUSDT")


# ---------------------------------------------------------------- window per timeframe


@pytest.mark.parametrize("given,expected", [
    (120, 120),
    ("120", 120),
    ("1s=300,1m=120,5m=48", (("1s", 300), ("1m", 120), ("5m", 48))),
    (" 5m = 48 , 1s=300,1m=120 ", (("1s", 300), ("1m", 120), ("5m", 48))),
])
def test_window_one_number_or_one_per_timeframe(given, expected):
    config = load_config({**BASE, "window": given}, env={})
    assert config.window == expected
    assert [config.window_for(t) for t in config.timeframes] == (
        [expected] * 3 if isinstance(expected, int) else [300, 120, 48])
    assert [config.pair_settings(t).estimator.window for t in config.timeframes] == [
        config.window_for(t) for t in config.timeframes]


def test_window_per_timeframe_from_toml_and_env(tmp_path):
    toml = write_toml(tmp_path, "window = {1s = 300, 1m = 120, 5m = 48}\n")
    assert load_config(BASE, env={}, toml_path=toml).window == (
        ("1s", 300), ("1m", 120), ("5m", 48))
    env = {"PAIRFLOW_WINDOW": "1s=200,1m=30,5m=12"}
    assert load_config(BASE, env=env, toml_path=toml).window_for("5m") == 12
    assert load_config({**BASE, "window": "60"}, env=env, toml_path=toml).window == 60


WINDOW_ERRORS = [
    ({"window": "1s=300,1m=120"}, "window gives no bars for timeframe(s) ['5m']"),
    ({"window": "1s=300,1m=120,5m=48,1h=10"}, "window names timeframe(s) ['1h'] which are not"),
    ({"window": "1s=300,1m=120,5m=8"}, "timeframe 5m: window must be at least 10 bars, got 8"),
    ({"window": "1s=300,1m=ten,5m=48"}, "window = '1s=300,1m=ten,5m=48' is not a valid value"),
    ({"window": "1s=300,1s=120"}, "timeframe 1s is given twice"),
    ({"window": "1s=300,7x=1,5m=48"}, "unknown timeframe '7x'"),
    ({"window": "=300"}, "use a number of bars or TIMEFRAME=BARS pairs"),
    ({"beta": "ewma"}, "beta must be one of ols, kalman, rls"),
    ({"rls_lambda": 1.5}, "rls_lambda must be in (0, 1]"),
    ({"kalman_delta": "often"}, "kalman_delta = 'often' is not a valid value"),
]


@pytest.mark.parametrize("change,message", WINDOW_ERRORS, ids=[m for _, m in WINDOW_ERRORS])
def test_window_and_hedge_errors_say_what_to_fix(change, message):
    with pytest.raises(ConfigError) as info:
        load_config({**BASE, **change}, env={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_window_table_errors_in_toml(tmp_path):
    toml = write_toml(tmp_path, 'window = {1s = 300, 1m = "many", 5m = 48}\n')
    with pytest.raises(ConfigError, match="window = .* is not a valid value"):
        load_config(BASE, env={}, toml_path=toml)


# ---------------------------------------------------------------- hedge-ratio settings


def test_hedge_settings_through_every_layer(tmp_path):
    config = load_config(BASE, env={})
    assert (config.beta, config.kalman_obs_var) == ("ols", None)
    toml = write_toml(tmp_path, 'beta = "kalman"\nkalman_delta = 1e-9\nkalman_obs_var = 2e-8\n'
                                "rls_lambda = 0.995\n")
    config = load_config(BASE, env={}, toml_path=toml)
    estimator = config.pair_settings("1s").estimator
    assert (estimator.beta, estimator.kalman_delta, estimator.kalman_obs_var,
            estimator.rls_lambda) == ("kalman", 1e-9, 2e-8, 0.995)
    env = {"PAIRFLOW_BETA": "rls", "PAIRFLOW_RLS_LAMBDA": "0.9"}
    config = load_config(BASE, env=env, toml_path=toml)
    assert (config.beta, config.rls_lambda, config.kalman_delta) == ("rls", 0.9, 1e-9)
    config = load_config({**BASE, "beta": "ols", "kalman_obs_var": 1e-6}, env=env,
                         toml_path=toml)
    assert (config.beta, config.kalman_obs_var) == ("ols", 1e-6)


def test_each_timeframe_pair_step_uses_its_own_window():
    from flows.pairs import _pair_step
    from pairflow.records import Bar, PairStats

    config = load_config({**BASE, "pairs": "BTCUSDT/ETHUSDT", "timeframes": "1s,1m",
                          "window": "1s=12,1m=10", "beta": "rls"}, env={})
    step = _pair_step(config)
    records: dict[str, list[PairStats]] = {"1s": [], "1m": []}
    for timeframe, length in (("1s", 1_000_000), ("1m", 60_000_000)):
        state = None
        for k in range(14):
            for leg, (symbol, close) in enumerate((("BTCUSDT", 60_000.0 + (k * 37) % 11),
                                                   ("ETHUSDT", 2_500.0 + (k * 17) % 7))):
                bar = Bar(symbol=symbol, timeframe=timeframe, start=k * length,
                          end=(k + 1) * length, open=close, high=close, low=close, close=close,
                          volume=1.0, quote_volume=close, vwap=close, trades=1,
                          taker_buy_volume=0.5, first_trade_id=k, last_trade_id=k)
                state, out = step(state, ("BTCUSDT/ETHUSDT", timeframe, leg, bar))
                records[timeframe] += [r for r in out if isinstance(r, PairStats)]
    for timeframe, window in (("1s", 12), ("1m", 10)):
        stats = records[timeframe]
        assert len(stats) == 14 and {r.window for r in stats} == {window}
        first = next(i for i, r in enumerate(stats) if r.beta is not None)
        assert first == window - 1 and stats[first].n == window
        assert all(r.beta == r.beta_rls for r in stats[first:])
        assert {r.hedge for r in stats} == {"rls lambda=0.99"}


@pytest.mark.parametrize("extra,fragment", [
    (["--window", "1s=300,1m=5"], "timeframe 1m: window must be at least 10 bars, got 5"),
    (["--window", "1s=300"], "window gives no bars for timeframe(s) ['1m']"),
    (["--beta", "median"], "beta must be one of ols, kalman, rls, got 'median'"),
])
def test_cli_window_and_hedge_errors_exit_2_in_one_line(tmp_path, extra, fragment):
    from tests.test_cli import assert_user_error, pairflow

    done = pairflow("replay", tmp_path / "a.gz", "--symbols", "BTCUSDT,ETHUSDT",
                    "--timeframes", "1s,1m", "--store", tmp_path / "s.db", *extra)
    assert_user_error(done, fragment)
