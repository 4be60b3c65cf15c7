"""The dashboard's other ways in, in Debian's Chromium: fed by Kafka instead of the store, and
behind ``--basic-auth``."""

from __future__ import annotations

import dataclasses
import math
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Producer
from playwright.sync_api import expect

from connectors.kafka import record_key, topic_for
from pairflow.records import PairStats, from_dict, to_json
from tests.ui.conftest import DATA, dashboard_server, pairflow, store_rows
from tests.ui.test_dashboard import LOADED, PAIR, data, open_dashboard

pytestmark = pytest.mark.ui


def _pair_rows(store) -> list[dict]:
    return store_rows(store, "pairs", pair=PAIR, timeframe="1s")


@pytest.mark.kafka
def test_kafka_fed_dashboard_shows_the_replayed_records_then_new_ones(
        page, kafka_broker, unique_prefix, tmp_path):
    store = tmp_path / "store.db"
    pairflow("replay", *map(str, sorted(DATA.glob("*.gz"))), "--symbols", "BTCUSDT,ETHUSDT",
             "--pairs", PAIR, "--timeframes", "1s,1m", "--window", "120", "--store", str(store),
             "--kafka", kafka_broker.bootstrap, "--kafka-prefix", unique_prefix)
    rows = _pair_rows(store)
    with dashboard_server("--kafka", kafka_broker.bootstrap,
                          "--kafka-prefix", unique_prefix) as url:
        open_dashboard(page, url)
        page.wait_for_function(f"() => Bokeh.documents[0].get_model_by_name('pair_source')"
                               f".data.t.length === {len(rows)}")
        shown = data(page)
        assert shown["ts"] == [r["ts"] for r in rows]
        for column in ("zscore", "beta", "corr", "adf_pvalue", "eg_pvalue"):
            assert [None if v is None or math.isnan(v) else v for v in shown[column]] \
                == [r[column] for r in rows], column
        # The residual y − α − βx of each bar's fit, in basis points of log price.
        assert [None if math.isnan(v) else v for v in shown["residual"]] \
            == [None if r["alpha"] is None else (r["spread"] - r["alpha"]) * 1e4 for r in rows]
        # A record produced to the topic after the page loaded streams in.
        ts = rows[-1]["ts"] + 1_000_000
        record = dataclasses.replace(from_dict(PairStats, rows[-1]), ts=ts, zscore=-3.5)
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
        producer.produce(topic_for("pair", unique_prefix), to_json(record),
                         record_key(record).encode())
        assert producer.flush(30) == 0
        page.wait_for_function(f"() => {{ const d = Bokeh.documents[0]"
                               f".get_model_by_name('pair_source').data; "
                               f"return d.t[d.t.length - 1] === {ts / 1000} }}")
        assert data(page)["zscore"][-1] == -3.5


def test_basic_auth_asks_for_a_login_and_refuses_a_wrong_one(page, replay_store):
    with dashboard_server("--store", str(replay_store), "--basic-auth", "alice:s3cret") as url:
        # Without a login cookie neither the page nor its data are served.
        request = urllib.request.Request(url)
        opener = urllib.request.build_opener(_NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(request, timeout=10)
        assert refused.value.code == 302 and "/login" in refused.value.headers["Location"]
        page.goto(url)
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "wrong")
        page.click("button[type=submit]")
        page.wait_for_url("**/login?error=*")
        expect(page.get_by_role("alert")).to_contain_text("Invalid username or password")
        assert page.evaluate("() => !window.Bokeh")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "s3cret")
        page.click("button[type=submit]")
        page.wait_for_function(LOADED)
        assert len(data(page)["t"]) == len(_pair_rows(replay_store))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: D102 - see the redirect as an error
        return None
