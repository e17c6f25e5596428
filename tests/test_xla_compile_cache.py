"""hgcnet_jax.compile_cache: JAX's persistent compilation cache, turned on explicitly."""

import os
import subprocess
import sys
import textwrap

import hgcnet_jax as hg


def test_default_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert hg.compile_cache.default_dir() == tmp_path / "hgcnet_jax" / "xla"


def test_the_callers_choice_is_kept():
    # the test session sets JAX_COMPILATION_CACHE_DIR (tests/conftest.py): enable() keeps it
    assert str(hg.compile_cache.enable("/nonexistent/elsewhere")) == os.environ["JAX_COMPILATION_CACHE_DIR"]


def test_a_second_process_reads_the_programs_the_first_wrote(tmp_path):
    """The cache is written by one process and read by the next, with the same result."""
    script = textwrap.dedent(f"""
        import json, jax, jax.numpy as jnp
        import hgcnet_jax as hg
        folder = hg.compile_cache.enable({str(tmp_path / "cache")!r})
        hits = []
        jax.monitoring.register_event_listener(lambda e, **kw: hits.append(e) if "cache_hits" in e else None)
        f = jax.jit(lambda x: jnp.sin(x) @ jnp.cos(x).T + jnp.linalg.qr(x)[0])
        y = f(jnp.arange(4096.0).reshape(64, 64) / 4096)
        print(json.dumps({{"folder": str(folder), "hits": len(hits), "sum": float(y.sum())}}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE") and
           k != "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"}
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"   # this small program compiles fast

    def run():
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        import json

        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    assert first["folder"] == str(tmp_path / "cache") and any((tmp_path / "cache").iterdir())
    assert first["hits"] == 0 and second["hits"] >= 1
    assert second["sum"] == first["sum"]
