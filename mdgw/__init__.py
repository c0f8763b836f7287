"""Process wiring of the market-data gateway: configuration, Kafka adapters, CLI."""
