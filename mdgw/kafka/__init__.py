"""Kafka adapters: topic administration, the record sink, the record source.

Only these modules import a Kafka client library.
"""
