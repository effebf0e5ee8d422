"""Every shipped preset, written as layers of agents, sends exactly the requests (so the cache
keys) and has the run identity it had before (`tests/data/preset_requests.json`)."""

from __future__ import annotations

import json

import pytest

from .kit.presets import GOLDEN, VARIANTS, requests

EXPECTED = json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("variant", VARIANTS, ids=" ".join)
def test_preset_sends_the_requests_it_sent(variant: tuple[str, ...]) -> None:
    made = requests(variant)
    expected = EXPECTED[" ".join(variant)]
    assert made["identity"] == expected["identity"]
    assert made["calls"] == expected["calls"]
