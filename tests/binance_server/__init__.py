"""A local fault-injecting Binance market-data server for the live connector's tests."""

from tests.binance_server.server import BinanceTestServer, Faults
from tests.binance_server.tape import Tape

__all__ = ["BinanceTestServer", "Faults", "Tape"]
