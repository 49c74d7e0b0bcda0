"""The undecided note advises only a move that keeps the error rates: one follow-up audit on fresh seeds
(`seed_offset`), judged alone (issue 35, item 2)."""

from __future__ import annotations

import pytest

from pytest_kernelbias import AuditConfigError, AuditSpec, TrainConfig, run_audit, synthfaces
from pytest_kernelbias.audit import prepare_plan as prepare

from .conftest import tiny_cnn

DATA = dict(data=synthfaces(300, 0, "planted"), test_data=synthfaces(240, 0, "planted", split="test"),
            train_config=TrainConfig(epochs=1, batch_size=32), progress=None, require_learning=False,
            min_group_size=5, workers=1, spectral_cutoff=None)


def seeds_of(**kw):
    spec = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], **{**DATA, "seeds": 2, **kw})
    return {(v.seed, v.role): v.key for v in prepare(spec)[0].variants}


def test_a_follow_up_trains_only_seeds_no_earlier_audit_used():
    first, follow = seeds_of(), seeds_of(seed_offset=2)
    assert {s for s, _ in first} == {0, 1} and {s for s, _ in follow} == {2, 3}
    assert not set(first.values()) & set(follow.values())
    assert follow == {k: v for k, v in seeds_of(seeds=4).items() if k[0] >= 2}  # seed s is one model, any audit
    with_aa = seeds_of(seed_offset=2, placebos=("aa",))
    assert {s for s, role in with_aa if role == "aa"} == {4, 5}


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_a_seed_offset_that_is_not_a_whole_number_is_refused(bad):
    with pytest.raises(AuditConfigError, match="seed_offset is the audit's first seed"):
        AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], seed_offset=bad)


def _undecided_notes(result):
    return [row["note"] for row in result.summary_rows() if row["verdict"] == "undecided"]


@pytest.mark.slow
def test_the_undecided_note_names_the_follow_up_and_a_follow_up_is_final(tmp_path):
    first = run_audit(tiny_cnn, "0", [3, 5], seeds=2, cache=tmp_path, threshold=0.05, placebos=("aa",), **DATA)
    notes = _undecided_notes(first)
    assert notes, "two guessing seeds leave the interval across the threshold"
    for note in notes:
        assert "seed_offset=4, seeds=" in note and "confidence=0.975" in note and "judged alone" in note
        assert "(seeds=" not in note.split("seed_offset")[0]  # never seeds=N on the seeds already seen
    follow = run_audit(tiny_cnn, "0", [3, 5], seeds=2, seed_offset=4, cache=tmp_path, threshold=0.05,
                       placebos=(), **DATA)
    assert follow.settings["trained"] == 4  # fresh seeds: nothing of the first audit is reused
    assert all("already a follow-up on fresh seeds" in n for n in _undecided_notes(follow))
