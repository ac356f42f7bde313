"""The capability probe's registration and its bad parameters, refused with one line before
any work (synthetic checkpoints: no model is run). Its numbers are checked against Hugging
Face's own loss on the real toy suite in tests/dbt/test_capability.py."""

from __future__ import annotations

import pytest

from ingest.errors import TdwError
from ingest.probes import PROBES
from ingest.probes.capability import CapabilityProbe
from ingest.sources import open_source


def test_registered():
    assert PROBES["capability"] is CapabilityProbe


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"tasks": "nope"}, "unknown capability task 'nope'"),
        ({"tasks": ""}, "needs at least one task"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"seq_len": 7}, "induction seq_len must be even"),
    ],
)
def test_bad_parameters_fail_before_any_work(make_checkpoints, overrides, message):
    root, _ = make_checkpoints(steps=(0,))
    probe = CapabilityProbe()
    with pytest.raises(TdwError, match=message):
        probe.validate(open_source(str(root)).checkpoint(0), probe.params(**{"tasks": "induction", **overrides}))
