"""The dashboard page: ``panel serve dashboard/app.py`` or ``pairflow dashboard``.

Settings come from the environment (``PAIRFLOW_STORE``, ``PAIRFLOW_KAFKA``,
``PAIRFLOW_KAFKA_PREFIX``); ``?pair=Y/X&timeframe=1s`` in the URL selects a series.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import panel as pn

if __package__ in (None, ""):  # run as a script by ``panel serve dashboard/app.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.feed import FeedSettings, get_feed  # noqa: E402
from dashboard.views import PairDashboard  # noqa: E402

#: The ``--basic-auth`` login page: self-contained, where Panel's own loads a logo from a CDN
#: (``panel serve dashboard/app.py --basic-auth … --login-template`` this file).
LOGIN_TEMPLATE = Path(__file__).resolve().parent / "templates" / "login.html"


class _ClosedTabSends(logging.Filter):
    """Drops Bokeh's warning about a message to a tab that just closed (nothing to act on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "connection was closed" not in record.getMessage()


# A session stops sending once its tab's socket is gone (``PairDashboard``); a send already
# under way when the tab closes still fails, and Bokeh logs it as a warning.
logging.getLogger("bokeh.server.views.ws").addFilter(_ClosedTabSends())

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
    try:
        dashboard = PairDashboard(feed, pair=_arg("pair"), timeframe=_arg("timeframe"))
    except Exception as error:  # noqa: BLE001 - a message, never a stack trace in the page
        return pn.pane.Alert(f"The dashboard could not start: {error}", alert_type="danger")
    return pn.Column(dashboard, sizing_mode="stretch_width")


if pn.state.served:
    create_page().servable(title="pairflow")
