"""pairflow: real-time pair analytics for crypto markets."""
