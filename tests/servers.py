"""A real OpenAI-compatible server for tests and benchmarks: llama-cpp-python serving the
embedded GGUF on a free 127.0.0.1 port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    import time
    import urllib.error
    import urllib.request

    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


class LlamaServer:
    """Starts ``python -m llama_cpp.server`` on the embedded GGUF and waits until it answers."""

    def __init__(self, alias: str, log: Path, threads: int = 2, ctx: int = 4096):
        from rlaif.backends.embedded import gguf_path

        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}/v1"
        with Path(log).open("w") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--model_alias", alias,
                 "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(ctx), "--n_threads", str(threads)],
                stdout=fh, stderr=subprocess.STDOUT)
        try:
            wait_for_http(self.base_url + "/models", self.proc)
        except (RuntimeError, TimeoutError):
            self.proc.kill()
            raise

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
