"""The REST service (CONTRACT §6): a Litestar app over the same Market as the gateway."""
