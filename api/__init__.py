"""The REST service (docs/protocol.md §6): a Litestar app over the same Market as the gateway."""
