"""The paged KV store: page pool, spans, views; fork, append, evict, RoPE shift.

See ``docs/cache.md``. The engine talks to one ``KVStore``; views and spans are read-only
handles on it.
"""

from tim.cache.cascade import CascadeGroup, group_by_prefix
from tim.cache.config import CacheConfig, PositionPolicy, num_pages_for_tokens
from tim.cache.integrity import StoreIntegrity
from tim.cache.pool import CacheIntegrityError, PagePool, PoolIntegrity
from tim.cache.positions import Reencode, rotate_keys
from tim.cache.span import Span
from tim.cache.store import EvictResult, KVStore
from tim.cache.view import TokenLocation, View

__all__ = [
    "CacheConfig",
    "CacheIntegrityError",
    "CascadeGroup",
    "EvictResult",
    "KVStore",
    "PagePool",
    "PoolIntegrity",
    "PositionPolicy",
    "Reencode",
    "Span",
    "StoreIntegrity",
    "TokenLocation",
    "View",
    "group_by_prefix",
    "num_pages_for_tokens",
    "rotate_keys",
]
