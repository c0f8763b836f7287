"""Pure core of the gateway: books, depth views, sequencing, checksum, statistics.

Nothing in this package performs I/O, touches asyncio, Kafka, sockets or clocks;
time is always passed in. ``tests/unit/core/test_core_purity.py`` enforces it.
"""
