"""Run the test server by hand: ``python -m tests.binance_server --speed 20``.

Then ``pairflow live --symbols BTCUSDT,ETHUSDT --ws-url ws://127.0.0.1:PORT --rest-url
http://127.0.0.1:PORT …``. With ``--quotes`` it serves the book tickers too, and with
``--market usdm`` their futures form and the synthetic mark prices (``pairflow live --market
usdm --quotes …``).
"""

from __future__ import annotations

import argparse
import time

from tests.binance_server import BinanceTestServer, Faults, Tape


def main() -> None:
    """Parse flags, serve until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--speed", type=float, default=1.0, help="tape seconds per second")
    parser.add_argument("--start", type=float, default=0.0, help="tape offset, s")
    parser.add_argument("--length", type=float, default=None, help="tape length, s")
    parser.add_argument("--abrupt-close-at", type=float, action="append", default=[],
                        help="tape second of an abrupt TCP close (repeatable)")
    parser.add_argument("--duplicate-every", type=int, default=0)
    parser.add_argument("--reorder-every", type=int, default=0)
    parser.add_argument("--malformed-every", type=int, default=0)
    parser.add_argument("--max-connection-age", type=float, default=None)
    parser.add_argument("--rest-429-every", type=int, default=0)
    parser.add_argument("--quotes", action="store_true", help="serve @bookTicker too")
    parser.add_argument("--market", choices=("spot", "usdm"), default="spot",
                        help="usdm: futures book tickers and synthetic @markPrice@1s")
    args = parser.parse_args()
    faults = Faults(events=[(t, "abrupt_close", None) for t in args.abrupt_close_at],
                    duplicate_every=args.duplicate_every, reorder_every=args.reorder_every,
                    malformed_every=args.malformed_every,
                    max_connection_age_s=args.max_connection_age,
                    rest_429_every=args.rest_429_every)
    tape = Tape.load(args.start, args.length, quotes=args.quotes)
    with BinanceTestServer(tape, args.speed, faults, market=args.market) as server:
        print(f"ws {server.ws_url}  rest {server.rest_url}  trades {len(tape.trades)}  "
              f"quotes {len(tape.quotes)}", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
