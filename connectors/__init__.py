"""Everything that touches the outside world: Binance, files, Kafka, the SQLite store."""
