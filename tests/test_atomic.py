"""Atomic writes and checkpoints: a file appears whole or not at all; a checkpoint is read back only by its own run."""
from __future__ import annotations

import pytest

from ragenv.atomic import atomic_path, atomic_write, atomic_write_json
from ragenv.checkpoint import Checkpoint

pytestmark = pytest.mark.unit  # model-free: the fast tier


def test_a_failed_write_leaves_the_old_file_and_no_scratch(tmp_path):
    target = tmp_path / "sub" / "result.json"
    atomic_write_json(target, {"reward": float("nan"), "name": "é"})
    assert target.read_text(encoding="utf-8") == '{\n "reward": NaN,\n "name": "é"\n}'
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text(encoding="utf-8").startswith('{\n "reward"')
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]


def test_a_folder_is_swapped_in_whole(tmp_path):
    target = tmp_path / "index"
    with atomic_path(target, folder=True) as tmp:
        (tmp / "part").write_bytes(b"1")
        assert not target.exists()
    assert (target / "part").read_bytes() == b"1"
    atomic_write(tmp_path / "bytes.bin", b"\x00\x01", fsync=True)
    assert (tmp_path / "bytes.bin").read_bytes() == b"\x00\x01"


def test_a_checkpoint_is_read_only_by_its_own_run_and_a_torn_one_reads_as_absent(tmp_path):
    mine = Checkpoint(tmp_path / "checkpoint", {"config": {"seed": 0}})
    assert mine.read("state.pkl") is None
    mine.write("state.pkl", {"step": 3})
    assert mine.read("state.pkl") == {"step": 3}
    assert Checkpoint(tmp_path / "checkpoint", {"config": {"seed": 1}}).read("state.pkl") is None
    (tmp_path / "checkpoint" / "state.pkl").write_bytes(b"\x80\x04torn")
    assert mine.read("state.pkl") is None
    mine.remove()
    assert not (tmp_path / "checkpoint").exists()
