"""Build backends from a model spec, sharing one loaded instance per (backend, model)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rlaif.errors import ConfigError


def make_backend(kind: str, model: str, **options):
    if kind == "local":
        from rlaif.backends.local import LocalBackend

        return LocalBackend(model, **options)
    raise ConfigError(f"unknown backend '{kind}'", hint="use one of: local")


@dataclass
class BackendPool:
    """Loads each model once per process, so a judge that is also the generator is not loaded twice."""

    loaded: dict = field(default_factory=dict)

    def get(self, kind: str, model: str, **options):
        key = (kind, model, tuple(sorted(options.items())))
        if key not in self.loaded:
            self.loaded[key] = make_backend(kind, model, **options)
        return self.loaded[key]
