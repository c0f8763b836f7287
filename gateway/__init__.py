"""The WebSocket gateway: Kafka in, exact books out to many clients."""
