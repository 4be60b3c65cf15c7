"""Bytewax dataflows: sources → bars → pair statistics → alerts → sinks."""
