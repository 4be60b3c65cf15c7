"""The application layer: the ``pairflow`` command line, its flow runner and signal handling.

It sits on top of the layers and may import all of them (``flows/``, ``dashboard/``,
``connectors/``, ``pairflow/``); nothing imports it.
"""
