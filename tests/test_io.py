import os

import pytest

from hgcnet_jax import _io


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    _io.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with _io.atomic_write(target, "w") as f:
            f.write("half-written")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_upsert_section_keeps_other_sections(tmp_path):
    doc = tmp_path / "results.md"
    _io.upsert_section(doc, "a", "first A")
    _io.upsert_section(doc, "b", "only B")
    _io.upsert_section(doc, "a", "second A")
    text = doc.read_text()
    assert "second A" in text and "first A" not in text and "only B" in text
    assert text.index("second A") < text.index("only B")


def test_ensure_writable_dir_names_the_folder(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(PermissionError, match="file"):
        _io.ensure_writable_dir(blocked / "sub")
