"""BackendPool.release: a model no later round runs is forgotten (and closed), the others kept.
The models are fake model folders (bytes in files) whose identities are read without loading;
the loaded backend is a labelled fake that records being closed."""

from __future__ import annotations

from rlaif.backends import BackendPool
from tests.unit.test_pipeline import fake_model


class FakeBackend:
    """Labelled fake: stands in for a loaded model; records close()."""

    closed = False

    def close(self) -> None:
        self.closed = True


def test_release_forgets_one_model_and_keeps_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("RLAIF_CACHE_DIR", str(tmp_path / "cache"))
    a, b = fake_model(tmp_path / "a", b"round 1"), fake_model(tmp_path / "b", b"round 2")
    with BackendPool() as pool:
        fp_a, fp_b = pool.identity("local", a)["fingerprint"], pool.identity("local", b)["fingerprint"]
        loaded = FakeBackend()
        pool.loaded[pool._key("local", a, {})] = loaded
        pool.release(a)
        assert loaded.closed and not pool.loaded
        assert [k[1] for k in pool.identities] == [b] and fp_a != fp_b
        fake_model(tmp_path / "a", b"round 1, trained again")  # asked again: read again from its files
        assert pool.identity("local", a)["fingerprint"] != fp_a
