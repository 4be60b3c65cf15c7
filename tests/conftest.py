"""Shared pytest configuration: the real Kafka broker fixtures are a plugin module."""

pytest_plugins = ["tests.fixtures.kafka"]
