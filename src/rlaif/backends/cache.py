"""A response cache in SQLite for server backends, keyed by everything that shapes an answer.

The key covers the backend's identity (kind, model name, base URL(s) and the model the server
reports serving, see identity.py), messages, prefill, schema and every sampling parameter, so two
servers serving different models under one name never share answers.
Seeded requests are deterministic enough to reuse; unseeded sampling at temperature > 0 is not
cached unless asked, since repeating it is supposed to give a new answer. Failures are never
cached. WAL mode lets several processes read and write at once, and a kill mid-write loses at
most the answer being written. Capabilities detected for a server are cached too, so a re-run
that is all hits asks each server one thing only: which model it serves.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Sequence

from rlaif.backends.base import Completion, Failure, GenRequest, ScoreRequest

SCHEMA_VERSION = 2  # 2: keys hold the server's identity, not only backend and model name


class ResponseCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                        "created REAL NOT NULL)")

    @staticmethod
    def key(**parts) -> str:
        blob = json.dumps({"v": SCHEMA_VERSION, **parts}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, object]:
        found: dict[str, object] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            part = unique[start:start + 500]
            rows = self.db.execute(f"SELECT key, value FROM responses WHERE key IN ({','.join('?' * len(part))})",
                                   part).fetchall()
            found.update((k, json.loads(v)) for k, v in rows)
        return found

    def put_many(self, items: dict[str, object]) -> None:
        if not items:
            return
        now = time.time()
        with self.db:  # one transaction: all of a batch's answers or none
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                                [(k, json.dumps(v), now) for k, v in items.items()])

    def close(self) -> None:
        self.db.close()


class CachedBackend:
    """Wraps a server backend: answers known requests from the cache, asks the server the rest."""

    def __init__(self, inner, cache: ResponseCache, meter, unseeded: bool = False):
        self.inner, self.cache, self.meter, self.unseeded = inner, cache, meter, unseeded
        self.name, self.model = inner.name, inner.model
        self._identity: dict | None = None

    def close(self) -> None:
        self.inner.close()

    def _cacheable(self, r: GenRequest) -> bool:
        return self.unseeded or r.params.temperature == 0 or r.params.seed is not None

    def identity(self) -> dict:
        if self._identity is None:
            self._identity = self.inner.identity()
        return self._identity

    def capabilities(self) -> dict:
        key = self.cache.key(op="capabilities", identity=self.identity())
        hit = self.cache.get_many([key]).get(key)
        if hit is not None:
            self.inner.set_capabilities(hit)
            return hit
        caps = self.inner.capabilities()
        self.cache.put_many({key: caps})
        return caps

    def describe(self) -> dict:
        self.capabilities()
        return self.inner.describe()

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        keys = [self.cache.key(op="generate", messages=r.messages, params=r.params.as_dict(),
                               prefill=r.prefill, json_schema=r.json_schema, identity=self.identity())
                if self._cacheable(r) else None for r in requests]
        found = self.cache.get_many([k for k in keys if k])
        out: list[Completion | None] = [Completion(**found[k], cached=True) if k in found else None
                                        for k in keys]
        todo = [i for i, c in enumerate(out) if c is None]
        self.meter.add(self.model, calls=0, cache_hits=len(requests) - len(todo), cache_misses=len(todo))
        if todo:
            self.capabilities()  # from the cache when known, so the server is not probed again
            fresh = self.inner.generate([requests[i] for i in todo])
            store = {}
            for i, c in zip(todo, fresh):
                out[i] = c
                if keys[i] and c.error is None:
                    store[keys[i]] = {"text": c.text, "finish_reason": c.finish_reason,
                                      "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens}
            self.cache.put_many(store)
        return out  # type: ignore[return-value]

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float] | Failure]:
        keys = [self.cache.key(op="score", messages=r.messages, continuations=r.continuations,
                               prefill=r.prefill, identity=self.identity()) for r in requests]
        found = self.cache.get_many(keys)
        out: list = [found.get(k) for k in keys]
        todo = [i for i, v in enumerate(out) if v is None]
        self.meter.add(self.model, calls=0, cache_hits=len(requests) - len(todo), cache_misses=len(todo))
        if todo:
            self.capabilities()
            fresh = self.inner.score([requests[i] for i in todo])
            store = {}
            for i, v in zip(todo, fresh):
                out[i] = v
                if not isinstance(v, Failure):
                    store[keys[i]] = v
            self.cache.put_many(store)
        return out
