"""mdgw-client: a verifying, reconnecting Python client of the mdgw market-data gateway.

async with MarketDataClient("ws://127.0.0.1:8080/ws") as client:
    await client.subscribe("book", ["BINANCE:BTC-USDT"], depth=20)
    async for event in client.events():
        if event.kind == "book":
            book = client.book("BINANCE:BTC-USDT")
            print(book.sequence, book.best_bid(), book.best_ask())
"""

from __future__ import annotations

from mdgw_client.book import LocalBook
from mdgw_client.checksum import Level, checksum
from mdgw_client.client import Event, Format, MarketDataClient
from mdgw_client.decode import Message, decode_frame, pb_to_dict

__version__ = "0.1.0"

__all__ = [
    "Event",
    "Format",
    "Level",
    "LocalBook",
    "MarketDataClient",
    "Message",
    "__version__",
    "checksum",
    "decode_frame",
    "pb_to_dict",
]
