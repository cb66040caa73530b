"""What the platform keeps in Redis, and nothing else touches: every key pattern and Lua
script (:mod:`~scheduler.state.keys`), the commands that read and write them
(:mod:`~scheduler.state.store`, where redis-py's errors become ``StateStoreError``), and the
embedded ``redis-server`` with the one way to connect to any Redis
(:mod:`~scheduler.state.redis_server`).

May import: the shared modules only.
"""

from scheduler.state.redis_server import EmbeddedRedis, connect
from scheduler.state.store import RECENT_INVOCATIONS

__all__ = ["RECENT_INVOCATIONS", "EmbeddedRedis", "connect"]
