"""The JSON Schemas in schemas/ match the record classes and accept what to_json writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator

from pairflow.records import (
    RECORD_TYPES,
    Alert,
    Bar,
    DeadLetter,
    Health,
    PairStats,
    PnlSummary,
    QuoteBar,
    RoundTrip,
    ScanRecord,
    SpreadCost,
    Tick,
    field_names,
    schema_version,
    to_json,
)

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
#: Schema file stem of each record kind.
SCHEMA_NAMES = {kind: kind for kind in ("tick", "bar", "quote", "cost", "pair", "alert",
                                         "trade", "pnl", "deadletter", "health", "scan")}


def load_schema(kind: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{SCHEMA_NAMES[kind]}.schema.json").read_text())


def validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(kind))


def sample_records() -> list[Any]:
    """One or more realistic records of every kind, nulls included."""
    t0 = 1_723_075_200_000_000  # 2024-08-08T00:00:00Z in µs
    tick = dict(buyer_is_maker=False, source="live")
    bar = dict(symbol="BTCUSDT", timeframe="1s", start=t0, end=t0 + 1_000_000)
    stats = dict(pair="BTCUSDT/ETHUSDT", timeframe="1s", y=10.95, x=7.80, window=120, price="log")
    undefined = dict.fromkeys(
        ["beta", "alpha", "spread", "spread_mean", "spread_std", "zscore", "corr", "adf_stat",
         "adf_pvalue", "adf_lags", "eg_stat", "eg_pvalue", "half_life", "beta_ols",
         "beta_kalman", "beta_rls", "beta_se"]
    )  # fmt: skip
    alert = dict(pair="BTCUSDT/ETHUSDT", timeframe="1s")
    return [
        Tick(symbol="BTCUSDT", trade_id=3_742_001, price=57_001.5, qty=0.012, ts=t0 + 1_234,
             recv_ts=t0 + 9_876, first_trade_id=3_742_001, last_trade_id=3_742_001, **tick),
        Tick(symbol="ETHUSDT", trade_id=1_590_002, price=2_450.25, qty=1.5, ts=t0 + 2_000,
             recv_ts=t0 + 12_000, buyer_is_maker=True, source="replay",
             first_trade_id=1_590_002, last_trade_id=1_590_004),
        Bar(open=57_000.0, high=57_010.0, low=56_990.5, close=57_001.5, volume=0.75,
            quote_volume=42_750.0, vwap=57_000.0, trades=12, taker_buy_volume=0.4,
            first_trade_id=3_741_990, last_trade_id=3_742_001, **bar),
        # A quiet window: no trades, flat at the previous close, no vwap or trade ids.
        Bar(symbol="ETHUSDT", timeframe="1m", start=t0, end=t0 + 60_000_000, open=2_450.0,
            high=2_450.0, low=2_450.0, close=2_450.0, volume=0.0, quote_volume=0.0, vwap=None,
            trades=0, taker_buy_volume=0.0, first_trade_id=None, last_trade_id=None),
        PairStats(ts=t0 + 120_000_000, n=120, beta=1.02, alpha=2.99, spread=3.0,
                  spread_mean=2.99, spread_std=0.0012, zscore=2.1, corr=0.83, adf_stat=-3.2,
                  adf_pvalue=0.018, adf_lags=1, eg_stat=-3.4, eg_pvalue=0.05, half_life=42.0,
                  beta_ols=1.02, beta_kalman=1.01, beta_rls=1.03, beta_se=0.004, lag="carry",
                  hedge="kalman delta=1e-10 obs_var=auto", reason=None, **stats),
        PairStats(ts=t0 + 5_000_000, n=5, lag="carry", hedge="ols", reason="n < window",
                  **undefined, **stats),
        Alert(alert_id="BTCUSDT/ETHUSDT|1s|1723075320000000|enter_upper", ts=t0 + 120_000_000,
              alert_kind="enter_upper", zscore=4.2, threshold=2.0, spread=0.004, beta=1.02,
              qvalue=0.012, **alert),
        Alert(alert_id="BTCUSDT/ETHUSDT|1s|1723075330000000|exit", ts=t0 + 130_000_000,
              alert_kind="exit", zscore=0.4, threshold=0.5, spread=0.0001, beta=1.01, **alert),
        DeadLetter(stage="parse", reason="missing field 'p'", raw='{"e":"trade","s":"BTCUSDT"}',
                   ts=t0 + 5),
        Health(stream="btcusdt@trade", symbol="BTCUSDT", ts=t0 + 10_000_000, connected=True,
               last_message_age_s=0.2, messages_per_s=35.5, reconnects=1, gaps_found=1,
               trades_backfilled=120, gaps_unrecovered=0, latency_p50_ms=12.5,
               latency_p99_ms=80.0, clock_skew_ms=-1.5, event=None),
        Health(stream="ethusdt@trade", symbol="ETHUSDT", ts=t0 + 10_000_000, connected=False,
               last_message_age_s=None, messages_per_s=0.0, reconnects=3, gaps_found=2,
               trades_backfilled=0, gaps_unrecovered=1, latency_p50_ms=None,
               latency_p99_ms=None, clock_skew_ms=None, event="reconnecting"),
        ScanRecord(pair="ETHBTC/LTCBTC", timeframe="1m", ts=t0 + 3_600_000_000,
                   as_of=t0 + 3_540_000_000, window=240, n=240, beta=0.93, zscore=-1.7,
                   corr=0.61, half_life=35.2, eg_stat=-3.9, eg_pvalue_yx=0.01,
                   eg_pvalue_xy=0.02, eg_pvalue=0.02, eg_qvalue=0.04, variance_ratio=0.42,
                   hurst=0.31, reason=None),
        ScanRecord(pair="ETHBTC/XMRBTC", timeframe="1m", ts=t0 + 3_600_000_000, as_of=None,
                   window=240, n=0, reason="n < window",
                   **dict.fromkeys(["beta", "zscore", "corr", "half_life", "eg_stat",
                                    "eg_pvalue_yx", "eg_pvalue_xy", "eg_pvalue", "eg_qvalue",
                                    "variance_ratio", "hurst"])),
        QuoteBar(bid=57_001.4, bid_qty=1.25, ask=57_001.5, ask_qty=0.5, spread_bps=0.0175,
                 mean_spread_bps=0.02, max_spread_bps=0.3, imbalance=0.43, mean_imbalance=-0.1,
                 microprice=57_001.47, quotes=4, mark_price=None, funding_rate=None,
                 next_funding_ts=None, **bar),
        SpreadCost(pair="spot:BTCUSDT/cm:BTCUSD_PERP", timeframe="1s", ts=t0 + 1_000_000,
                   beta=0.98, y_bid=61_685.99, y_ask=61_686.0, x_bid=61_668.6, x_ask=61_668.7,
                   short_at=0.21, long_at=0.2100018, crossing=1.8e-6, fees=0.00297,
                   round_trip_bps=15.0, round_trip_z=None),
        RoundTrip(trade_id="spot:BTCUSDT/cm:BTCUSD_PERP|1s|1723075201000000",
                  pair="spot:BTCUSDT/cm:BTCUSD_PERP", timeframe="1s", side="short",
                  entry_ts=t0 + 1_000_000, exit_ts=t0 + 4_000_000, beta=0.97, price="log",
                  notional=10_000.0, priced_at="quotes", y_qty=-0.1622, x_qty=0.1573,
                  y_entry=61_652.57, x_entry=61_640.7, y_exit=61_640.0, x_exit=61_637.1,
                  y_fee_bps=10.0, x_fee_bps=5.0, fees=29.6, funding=0.0,
                  funding_unknown_bars=3, gross_pnl=1.47, net_pnl=-28.13),
        PnlSummary(pair="spot:BTCUSDT/cm:BTCUSD_PERP", timeframe="1s", ts=t0 + 9_000_000,
                   notional=10_000.0, y_fee_bps=10.0, x_fee_bps=5.0, round_trips=0, wins=0,
                   hit_rate=None, total_net_pnl=0.0, mean_net_pnl=None, total_fees=0.0,
                   total_funding=0.0, equity=-29.9,
                   max_drawdown=29.9, sharpe=None, bars=9, position="long",
                   open_since=t0 + 9_000_000, open_pnl=-29.9),
    ]  # fmt: skip


@pytest.mark.parametrize("kind", sorted(RECORD_TYPES))
def test_every_record_kind_has_a_schema(kind: str) -> None:
    assert kind in SCHEMA_NAMES, f"record kind {kind!r} has no JSON Schema in schemas/"
    assert (SCHEMA_DIR / f"{SCHEMA_NAMES[kind]}.schema.json").is_file()


@pytest.mark.parametrize("kind", sorted(SCHEMA_NAMES))
def test_schema_fields_equal_record_fields(kind: str) -> None:
    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    expected = ["v", *field_names(RECORD_TYPES[kind])]
    assert list(schema["properties"]) == expected
    assert schema["required"] == expected
    assert schema["additionalProperties"] is False
    assert schema["properties"]["v"] == {"const": schema_version(kind),
                                         "description": "schema version"}
    assert schema["$id"] == f"urn:pairflow:schema:{kind}:{schema_version(kind)}"


def test_samples_cover_every_kind() -> None:
    assert {r.kind for r in sample_records()} == set(SCHEMA_NAMES)


@pytest.mark.parametrize("record", sample_records(), ids=lambda r: r.kind)
def test_serialised_records_validate(record: Any) -> None:
    value = msgspec.json.decode(to_json(record))
    assert value["v"] == schema_version(record.kind)
    validator(record.kind).validate(value)


def _errors(kind: str, value: dict[str, Any]) -> list[str]:
    return [e.message for e in validator(kind).iter_errors(value)]


def test_schemas_reject_what_the_contract_forbids() -> None:
    tick = msgspec.json.decode(to_json(sample_records()[0]))
    assert _errors("tick", {**tick, "v": 2})
    assert _errors("tick", {**tick, "extra": 1})
    assert _errors("tick", {**tick, "symbol": "btcusdt"})
    assert _errors("tick", {**tick, "ts": 1.5})
    assert _errors("tick", {k: v for k, v in tick.items() if k != "qty"})
    assert _errors("tick", {**tick, "source": "paper"})
    bar = msgspec.json.decode(to_json(sample_records()[2]))
    assert _errors("bar", {**bar, "timeframe": "1 minute"})
    assert _errors("bar", {**bar, "vwap": "57000"})
    pair = msgspec.json.decode(to_json(sample_records()[4]))
    assert _errors("pair", {**pair, "pair": "BTCUSDT-ETHUSDT"})
    assert not _errors("pair", {**pair, "zscore": None, "reason": "zero variance"})
    assert _errors("pair", {**pair, "v": 1})
    assert _errors("pair", {k: v for k, v in pair.items() if k != "beta_kalman"})
    assert _errors("pair", {**pair, "beta_se": -0.1})
    assert _errors("pair", {**pair, "hedge": None})
    alert = msgspec.json.decode(to_json(sample_records()[6]))
    assert alert["kind"] == "enter_upper"
    assert _errors("alert", {**alert, "kind": "enter"})
    assert _errors("alert", {**alert, "zscore": None})
    trade = msgspec.json.decode(to_json(sample_records()[-2]))
    assert _errors("trade", {**trade, "side": "upper"})
    assert _errors("trade", {**trade, "priced_at": "mid"})
    assert _errors("trade", {**trade, "fees": -1.0})
    summary = msgspec.json.decode(to_json(sample_records()[-1]))
    assert _errors("pnl", {**summary, "hit_rate": 1.5})
    assert _errors("pnl", {**summary, "position": "open"})


def test_a_store_written_before_pair_schema_2_gains_its_columns(tmp_path):
    """Opening an older store for writing adds the hedge-ratio columns (null in old rows)."""
    import sqlite3

    from connectors.store import StoreReader, StoreWriter

    path = tmp_path / "old.db"
    StoreWriter(path).close()
    added = ("beta_ols", "beta_kalman", "beta_rls", "beta_se")
    with sqlite3.connect(path) as connection:
        for column in added:
            connection.execute(f'ALTER TABLE pairs DROP COLUMN "{column}"')
        connection.execute("INSERT INTO pairs (pair, timeframe, ts, window, n, price, lag) "
                           "VALUES ('BTCUSDT/ETHUSDT', '1s', 1, 120, 5, 'log', 'aic')")
    writer = StoreWriter(path)
    writer.write([sample_records()[4]])
    writer.close()
    rows = {row["ts"]: row for row in StoreReader(path).query("pairs")}
    assert [rows[1][c] for c in added] == [None] * 4
    assert [rows[sample_records()[4].ts][c] for c in added] == [1.02, 1.01, 1.03, 0.004]
