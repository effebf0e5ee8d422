"""An example of a user-defined strategy: vote, then fuse the winners.

Run it as the final agent of any two-layer preset, with this directory on the path:

    PYTHONPATH=examples moa-bench moa=moa_lite moa.layers.1.0.strategy=mylab.fusers.vote_then_fuse

Every call goes through `ctx.generate`, so it is cached, budgeted, ledgered and traced like any
other, and `task=plan` counts it (the count does not depend on what the voters answer).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from moa.prompts import RANK_AND_SELECT, parse_pick
from moa.strategy import StrategyContext

VOTERS = 3  # draws of the ranker's request, told apart by sample index
KEEP = 2  # answers with the most votes, fused


async def vote_then_fuse(ctx: StrategyContext) -> list[str]:
    """`VOTERS` draws of a pick among the answers (at the agent's temperature), then one fusion
    of the `KEEP` most voted answers under the paper's aggregate prompt; nothing, if the
    fusion failed (the mixture then records the turn as failed, with the call's error)."""
    answers = list(ctx.references)
    ballots = await asyncio.gather(
        *(
            ctx.generate(references=answers, template=RANK_AND_SELECT, sample=i)
            for i in range(VOTERS)
        )
    )
    votes = Counter(parse_pick(b, len(answers)) for b in ballots if b is not None)
    votes.pop(None, None)
    ranked = sorted(range(len(answers)), key=lambda i: (-votes[i], i))
    fused = await ctx.generate(references=[answers[i] for i in ranked[:KEEP]])
    return [] if fused is None else [fused]
