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
]


@pytest.mark.parametrize("change,message", INVALID, ids=[m for _, m in INVALID])
def test_invalid_values_say_what_to_fix(change, message):
    cli = {**BASE, **change}
    with pytest.raises(ConfigError) as info:
        load_config(cli, env={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


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
