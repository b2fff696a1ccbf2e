"""Unit tests for the DPO stage's pure parts (rlaif.train.stage): resuming from checkpoints."""

from __future__ import annotations

def test_resume_skips_a_checkpoint_cut_short_by_a_kill(tmp_path):
    from rlaif.train.stage import _last_checkpoint

    assert _last_checkpoint(tmp_path) is None
    for step, state in ((2, "{}"), (4, '{"global_step": 4}'), (6, '{"global_st'), (8, None)):
        d = tmp_path / "checkpoints" / f"checkpoint-{step}"
        d.mkdir(parents=True)
        (d / "model.safetensors").write_bytes(b"x")
        if state is not None:  # 6: state cut mid-write; 8: killed before the state was written
            (d / "trainer_state.json").write_text(state)
    assert _last_checkpoint(tmp_path).name == "checkpoint-4"
