"""Binance market data: wire schemas, the live WebSocket source and REST backfill."""
