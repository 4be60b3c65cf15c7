"""The dashboard page: ``panel serve dashboard/app.py`` or ``pairflow dashboard``.

Settings come from the environment (``PAIRFLOW_STORE``, ``PAIRFLOW_KAFKA``,
``PAIRFLOW_KAFKA_PREFIX``); ``?pair=Y/X&timeframe=1s`` in the URL selects a series,
``?view=universe`` shows the universe scan, ``?view=on-demand&pair=A/B&timeframe=1m`` a scanned
pair computed on demand.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import panel as pn
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

if __package__ in (None, ""):  # run as a script by ``panel serve dashboard/app.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.feed import FeedSettings, get_feed  # noqa: E402
from dashboard.on_demand import OnDemandPairPage  # noqa: E402
from dashboard.universe import ON_DEMAND_VIEW, UNIVERSE_VIEW  # noqa: E402
from dashboard.universe_page import UniversePage  # noqa: E402
from dashboard.views import PairDashboard  # noqa: E402

#: The ``--basic-auth`` login page: self-contained, where Panel's own loads a logo from a CDN
#: (``panel serve dashboard/app.py --basic-auth … --login-template`` this file).
LOGIN_TEMPLATE = Path(__file__).resolve().parent / "templates" / "login.html"


class _ClosedTabSends(logging.Filter):
    """Drops the log records of a send to a tab that just closed (nothing to act on).

    Bokeh warns "Failed sending message as connection was closed"; Panel writes a patch's
    frames to the socket itself, and asyncio reports each write that failed as "Task exception
    was never retrieved" with a ``WebSocketClosedError`` traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, (WebSocketClosedError, StreamClosedError)):
            return False
        return "connection was closed" not in record.getMessage()


# A session stops sending once its tab's socket is gone (``PairDashboard``); a send already
# under way when the tab closes still fails, and is reported by these two loggers.
for _name in ("bokeh.server.views.ws", "asyncio"):
    logging.getLogger(_name).addFilter(_ClosedTabSends())

#: Served from the Panel server itself, never from a CDN (the page works offline).
pn.config.notifications = True
pn.extension(notifications=True, inline=True)


def _arg(name: str) -> str | None:
    values = (pn.state.session_args or {}).get(name)
    if not values:
        return None
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def create_page(settings: FeedSettings | None = None) -> pn.viewable.Viewable:
    """One session's page, reading from the process's single feed for ``settings``."""
    settings = settings or FeedSettings.from_env()
    feed = get_feed(settings)
    view, pair, timeframe = _arg("view"), _arg("pair"), _arg("timeframe")
    try:
        if view == UNIVERSE_VIEW:
            return pn.Column(UniversePage(feed, timeframe=timeframe), sizing_mode="stretch_width")
        if view == ON_DEMAND_VIEW:
            return pn.Column(OnDemandPairPage(feed, pair, timeframe), sizing_mode="stretch_width")
        dashboard = PairDashboard(feed, pair=pair, timeframe=timeframe)
    except Exception as error:  # noqa: BLE001 - a message, never a stack trace in the page
        return pn.pane.Alert(f"The dashboard could not start: {error}", alert_type="danger")
    # Pinned to the top right corner, over the header's free end: the pair page keeps its
    # layout (its main charts above the fold).
    universe = pn.pane.HTML(f"<a href='?view={UNIVERSE_VIEW}' class='pf-nav'>universe scan →"
                            "</a>", margin=0, styles={"position": "absolute", "top": "4px",
                                                      "right": "16px", "z-index": "10"})
    return pn.Column(universe, dashboard, sizing_mode="stretch_width")


if pn.state.served:
    create_page().servable(title="pairflow")
