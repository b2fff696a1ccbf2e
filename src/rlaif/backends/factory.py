"""Build backends from a model spec, sharing one loaded instance per (backend, model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rlaif.errors import ConfigError
from rlaif.usage import UsageMeter


def make_backend(kind: str, model: str, meter: UsageMeter | None = None, **options):
    if kind == "local":
        from rlaif.backends.local import LocalBackend

        return LocalBackend(model, **options)
    if kind in ("openai", "anthropic"):
        from rlaif.backends.remote import RemoteOptions

        opts = RemoteOptions(**options)
        if kind == "openai":
            from rlaif.backends.openai_compat import OpenAICompatBackend

            return OpenAICompatBackend(model, opts, meter or UsageMeter())
        from rlaif.backends.anthropic import AnthropicBackend

        return AnthropicBackend(model, opts, meter or UsageMeter())
    raise ConfigError(f"unknown backend '{kind}'", hint="use one of: local, openai, anthropic")


def default_cache_path() -> Path:
    from rlaif.backends.embedded import cache_root

    return cache_root() / "responses.sqlite"


@dataclass
class BackendPool:
    """Loads each model once per process, so a judge that is also the generator is not loaded twice.

    Server backends are wrapped in the response cache (local models are not: they cost nothing
    to ask again, and their tests must compute for real)."""

    cache: object = None  # CacheConfig, or None for no cache
    meter: UsageMeter = field(default_factory=UsageMeter)
    loaded: dict = field(default_factory=dict)
    identities: dict = field(default_factory=dict)
    _db: object = None

    @staticmethod
    def _key(kind: str, model: str, options: dict) -> tuple:
        """A local model asked for without a dtype and with the dtype that default resolves to is
        the same model: one load, not two."""
        if kind == "local":
            from rlaif.backends.identity import resolve_dtype

            options = {**options, "dtype": resolve_dtype(options.get("device"), options.get("dtype"))}
        return kind, model, tuple(sorted(options.items()))

    def get(self, kind: str, model: str, **options):
        key = self._key(kind, model, options)
        if key not in self.loaded:
            backend = make_backend(kind, model, self.meter, **options)
            if kind != "local" and self.cache is not None and self.cache.enabled:
                from rlaif.backends.cache import CachedBackend

                backend = CachedBackend(backend, self._response_cache(), self.meter, self.cache.unseeded)
            self.loaded[key] = backend
        return self.loaded[key]

    def identity(self, kind: str, model: str, **options) -> dict:
        """The backend's identity (see identity.py), for planning: a local model's comes from its
        files without loading it (or from the instance already loaded); a server is asked once."""
        key = self._key(kind, model, options)
        if key not in self.identities:
            if key in self.loaded or kind != "local":
                self.identities[key] = self.get(kind, model, **options).identity()
            else:
                from rlaif.backends.identity import local_identity

                self.identities[key] = local_identity(model, options.get("device"), options.get("dtype"))
        return self.identities[key]

    def release(self, model: str) -> None:
        """Forget every backend and identity of ``model`` (a round's model that no later round
        runs), so that a run of many rounds does not keep every round's weights in memory."""
        for key in [k for k in self.loaded if k[1] == model]:
            close = getattr(self.loaded.pop(key), "close", None)
            if close:
                close()
        for key in [k for k in self.identities if k[1] == model]:
            del self.identities[key]

    def _response_cache(self):
        if self._db is None:
            from rlaif.backends.cache import ResponseCache

            self._db = ResponseCache(Path(self.cache.path) if self.cache.path else default_cache_path())
        return self._db

    def close(self) -> None:
        """Close server connections (on the loop they belong to) and the cache database."""
        for backend in self.loaded.values():
            close = getattr(backend, "close", None)
            if close:
                close()
        self.loaded.clear()
        self.identities.clear()
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> "BackendPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
