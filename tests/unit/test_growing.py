"""When a checkpoint of a growing series is complete (``ingest.growing``), and the build
cadence of ``tdw watch`` (``warehouse.watch.Cadence``); a hand-driven clock, no sleeping."""

from __future__ import annotations

import json

import pytest

from ingest.errors import TdwError
from ingest.growing import Settler, signature, trainer_state_complete
from warehouse.watch import Cadence


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_trainer_checkpoint_is_complete_when_its_state_parses(tmp_path):
    ck = tmp_path / "checkpoint-10"
    ck.mkdir()
    (ck / "model.safetensors").write_bytes(b"x" * 10)
    s = Settler(settle=1e9)  # the settle rule never applies to a Trainer checkpoint
    assert trainer_state_complete(ck) is False and s.complete({10: ck}) == {}
    (ck / "trainer_state.json").write_text('{"log_history": [')  # being written
    assert s.complete({10: ck}) == {}
    (ck / "trainer_state.json").write_text(json.dumps({"log_history": []}))
    assert s.complete({10: ck}) == {10: signature(ck)}


def test_other_folders_settle_on_observed_stability(tmp_path):
    clock = Clock()
    s = Settler(settle=5, clock=clock)
    a = tmp_path / "step0"
    a.mkdir()
    assert s.complete({0: a}) == {}  # empty: nothing to ingest yet
    (a / "config.json").write_text("{}")
    assert s.complete({0: a}) == {}
    clock.t = 4.9
    assert s.complete({0: a}) == {}
    (a / "model.safetensors").write_bytes(b"y")  # a change restarts the interval
    clock.t = 9.0
    assert s.complete({0: a}) == {}
    clock.t = 14.0
    done = s.complete({0: a})
    assert done == {0: signature(a)} and len(done[0]) == 2
    (a / "model.safetensors").write_bytes(b"yy")  # rewritten later: a new signature once settled again
    clock.t = 15.0
    assert s.complete({0: a}) == {}
    clock.t = 20.0
    assert s.complete({0: a})[0] != done[0]
    assert Settler(settle=0).complete({0: a}) == {0: signature(a)}  # settle 0: complete on sight


@pytest.mark.parametrize(
    "text, want",
    [
        (None, None),
        ("0", None),
        ("5", Cadence(checkpoints=5)),
        ("30s", Cadence(seconds=30)),
        ("10m", Cadence(seconds=600)),
        ("1.5h", Cadence(seconds=5400)),
    ],
)
def test_cadence(text, want):
    assert Cadence.parse(text) == want


@pytest.mark.parametrize("text", ["x", "5x", "1.5", "-3", "0s"])
def test_bad_cadence_is_one_line(text):
    with pytest.raises(TdwError, match="--build-every"):
        Cadence.parse(text)


def test_cadence_due():
    assert not Cadence(checkpoints=2).due(1, 1e9) and Cadence(checkpoints=2).due(2, 0)
    assert not Cadence(seconds=60).due(0, 1e9)  # nothing new: no build
    assert not Cadence(seconds=60).due(3, 59) and Cadence(seconds=60).due(1, 60)
