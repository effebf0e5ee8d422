"""Every shipped preset, written as layers of agents, sends exactly the requests (so the cache
keys) and has the run identity it had before (`tests/data/preset_requests.json`, which holds
the identities in format 1: the format-2 identity of today is the one they upgrade to)."""

from __future__ import annotations

import json

import pytest

from eval.records import RunIdentity

from .kit.presets import GOLDEN, VARIANTS, requests

EXPECTED = json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("variant", VARIANTS, ids=" ".join)
def test_preset_sends_the_requests_it_sent(variant: tuple[str, ...]) -> None:
    made = requests(variant)
    expected = EXPECTED[" ".join(variant)]
    today = RunIdentity.from_json(GOLDEN, made["identity"])
    assert today == RunIdentity.from_json(GOLDEN, expected["identity"])
    assert expected["identity"]["format"] == 1 and made["identity"]["format"] == 2
    assert made["calls"] == expected["calls"]
