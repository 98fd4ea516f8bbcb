"""The semantic answer cache: serve an earlier answer only when the question is the same and its files are unchanged.

- `guard`: pure rules that refuse near neighbours differing in language, identifiers, flags, numbers, negation,
  antonyms or conversion direction.
- `store`: the LanceDB table ``answer_cache`` and the SQLite usage/counter file.
- `cache`: `AnswerCache` (lookup, store, invalidate, evict, stats) and the watcher hook `invalidate_paths`.
"""

from mcp_router.cache.cache import (
    AnswerCache,
    CacheSettings,
    CacheStats,
    LookupResult,
    StoreResult,
    invalidate_paths,
)
from mcp_router.cache.guard import GuardVerdict, check_pair, normalize_query

__all__ = [
    "AnswerCache", "CacheSettings", "CacheStats", "LookupResult", "StoreResult", "invalidate_paths",
    "GuardVerdict", "check_pair", "normalize_query",
]
