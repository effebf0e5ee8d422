"""AlpacaEval win rate and length-controlled (LC) win rate, computed by alpaca_eval itself.

The LC GLM reads `df_gamed.csv` from the Hugging Face dataset `tatsu-lab/alpaca_eval` through
`hf_hub_download`. We fetch the files it needs beforehand with the very same arguments, so they
land in the cache alpaca_eval then reads; when that fails (offline with no cached copy) LC is
reported unavailable with the reason, and the win rate is still reported.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eval.judges import alpaca_upstream
from eval.judges.alpaca_eval import Annotation
from eval.judges.common import count_failures

# `get_length_controlled_winrate` reads the first; alpaca_eval's `predict_winrate` (LC against
# another baseline) reads the second.
LC_FILES = ("df_gamed.csv", "instruction_difficulty.csv")
HUB_HOST = "huggingface.co"


@dataclass(frozen=True)
class WinRates:
    """alpaca_eval's leaderboard columns (percentages), plus what was left out and why."""

    win_rate: float
    standard_error: float
    discrete_win_rate: float
    n_wins: int
    n_wins_base: int
    n_draws: int
    n_total: int
    length_controlled_winrate: float | None
    lc_standard_error: float | None
    lc_unavailable: str | None
    failures: dict[str, int]


def fetch_length_control_files() -> str | None:
    """Find (or download) the LC files; None when ready, else why they are not.

    The cache is tried first; the Hub only when it answers at once, because the client would
    otherwise spend half a minute retrying a network that is not there."""
    kwargs = alpaca_upstream.hub_download_kwargs()
    missing = []
    for filename in LC_FILES:
        try:
            hf_hub_download(filename=filename, local_files_only=True, **kwargs)
        except Exception:
            missing.append(filename)
    if not missing:
        return None
    if not _hub_reachable():
        return f"offline, and {', '.join(missing)} not cached: connect once to download"
    for filename in missing:
        try:
            hf_hub_download(filename=filename, **kwargs)
        except Exception as exc:  # no cache, auth, rate limit: all mean "no LC", reported
            return f"cannot get {filename} from the HF dataset tatsu-lab/alpaca_eval: {exc!r}"
    return None


def hf_hub_download(**kwargs: Any) -> str:
    """huggingface_hub's download, imported at metric time only: a run without AlpacaEval's
    judge never pays its import."""
    from huggingface_hub import hf_hub_download as download

    return str(download(**kwargs))


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    import huggingface_hub.constants

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return False
    try:
        socket.create_connection((HUB_HOST, 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def win_rates(
    annotations: Sequence[Annotation],
    *,
    length_controlled: bool = True,
    positions: Sequence[int] | None = None,
) -> WinRates:
    """Rows without a preference are dropped by alpaca_eval's metrics; we count them here.

    LC's GLM looks instruction difficulty up by each row's position in AlpacaEval: `positions`
    are the rows' instructions' positions (by default the rows are the set's first ones, in its
    order, as alpaca_eval assumes); rows that cannot be placed (`positions` not one distinct
    position per row) get no LC, said so. With no preference at all there is no win rate
    (alpaca_eval's `get_winrate` would fail on the empty column): a `ValueError` says so.
    """
    if all(a.preference is None for a in annotations):
        raise ValueError(f"no preference among {len(annotations)} annotations: no win rate")
    rows = [a.to_json() for a in annotations]
    metrics = alpaca_upstream.get_winrate(rows)
    lc: dict[str, Any] = {}
    placed = list(range(len(rows)) if positions is None else positions)
    if len(placed) != len(rows) or len(set(placed)) != len(placed):
        reason: str | None = (
            "the rows' positions in AlpacaEval are unknown, and the GLM looks instruction "
            "difficulty up by position"
        )
    else:
        reason = fetch_length_control_files() if length_controlled else "not requested"
    if reason is None:
        try:
            lc = alpaca_upstream.get_length_controlled_winrate(rows, placed)
        except Exception as exc:  # a GLM failure must not cost us the plain win rate
            reason = f"alpaca_eval's get_length_controlled_winrate failed: {exc!r}"
    return WinRates(
        win_rate=float(metrics["win_rate"]),
        standard_error=float(metrics["standard_error"]),
        discrete_win_rate=float(metrics["discrete_win_rate"]),
        n_wins=int(metrics["n_wins"]),
        n_wins_base=int(metrics["n_wins_base"]),
        n_draws=int(metrics["n_draws"]),
        n_total=int(metrics["n_total"]),
        length_controlled_winrate=_float_or_none(lc.get("length_controlled_winrate")),
        lc_standard_error=_float_or_none(lc.get("lc_standard_error")),
        lc_unavailable=reason,
        failures=count_failures(a.failure for a in annotations),
    )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
