"""Dependencies handlers receive through Litestar's ``Provide``.

``store`` is the one :class:`api.state.StateStore` of the app; ``market`` is its
Market, handed out only when the store is ready: a market-data route asked while
the snapshots still load answers 503 instead of a misleading 404.
"""

from __future__ import annotations

from litestar.di import NamedDependency, Provide

from api.errors import NotReady
from api.state import StateStore
from core.market import Market


def provide_market(store: NamedDependency[StateStore]) -> Market:
    reason = store.not_ready_reason()
    if reason is not None:
        raise NotReady(reason)
    return store.market


def dependencies(store: StateStore) -> dict[str, Provide]:
    """The app-level dependency map for this store."""

    def provide_store() -> StateStore:
        return store

    return {
        "store": Provide(provide_store, use_cache=True, sync_to_thread=False),
        "market": Provide(provide_market, sync_to_thread=False),
    }
