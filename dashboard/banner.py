"""The banner a dashboard page shows while its data source cannot be read."""

from __future__ import annotations

import html

import panel as pn

from dashboard.feed import FeedStatus


class SourceBanner:
    """A red banner naming the unreachable source, hidden while the source is read.

    Args:
        source: the source's name as the page says it (``store x.db``, ``Kafka …``).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.pane = pn.pane.Alert("", alert_type="danger", visible=False,
                                  sizing_mode="stretch_width", css_classes=["pf-banner"])
        self._shown: tuple | None = None

    def show(self, status: FeedStatus) -> None:
        """Follow the feed's status (the pane is touched only when the status changes)."""
        key = (status.ok, status.message)
        if key != self._shown:
            self._shown = key
            self.pane.object = (f"**{self.source} is unreachable:** "
                                f"{html.escape(status.message)} — retrying…")
            self.pane.visible = not status.ok and status.message != "starting"
