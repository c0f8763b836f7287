"""Feeds into Kafka: the simulator, capture replay, live exchange connectors."""
