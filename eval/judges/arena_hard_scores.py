"""Arena-Hard-Auto's scores from its two games per prompt, as its `show_result.py` computes them.

v0.1 (lmarena/arena-hard-auto @ 3071ef9): each game a battle against the baseline, a strong
verdict (`>>`) counted three times, an unreadable one dropped; a Bradley-Terry fit (scikit-learn's
unpenalised logistic regression on the battles twice, a tie once each way) anchored at the
baseline = 1000, its win rate against the baseline the score; 100 bootstrap resamples of the
battles from numpy's generator seeded 42 (as the reference seeds it on import), the 2.5 and 97.5
percentiles of their ratings the 95% interval. v2.0 (@ 196f6b8): each game's verdict as a score
for ours (1, 0.5, 0; a strong one three times), a prompt with an unreadable game dropped whole;
the mean over 100 bootstrap resamples the score, their 5% and 95% quantiles the interval (the
reference does not seed this one; here it is seeded 42 too, so a rescore repeats itself). v2.0's
style control ports upstream's torch fit step for step (`_lbfgs`); both were checked against
`reference/v2.0/show_result.py` (`tests/test_arena_hard_v20_reference.py` says how).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

WEIGHT = 3  # show_result.py's --weight: a strong verdict counts as three battles
ROUNDS = 100
SEED = 42
_SCALE, _BASE, _INIT = 400.0, 10.0, 1000.0

# v0.1 (3071ef9): a game's label -> (winner, weight), winner "a" (shown first) / "b" / "tie"
_V01 = {
    "A=B": ("tie", 1),
    "A>B": ("a", 1),
    "A>>B": ("a", WEIGHT),
    "B>A": ("b", 1),
    "B>>A": ("b", WEIGHT),
}
# v2.0 (196f6b8): a game's label -> the scores of the answer shown first
_V20 = {
    "A>B": [1.0],
    "A>>B": [1.0] * WEIGHT,
    "A=B": [0.5],
    "A<<B": [0.0] * WEIGHT,
    "A<B": [0.0],
    "B>A": [0.0],
    "B>>A": [0.0] * WEIGHT,
    "B=A": [0.5],
    "B<<A": [1.0] * WEIGHT,
    "B<A": [1.0],
}


def labels(v01: bool) -> frozenset[str]:
    """The verdict labels the version's `show_result.py` scores; any other is unparseable."""
    return frozenset(_V01 if v01 else _V20)


@dataclass(frozen=True)
class Score:
    """A win rate against the baseline in percent, its interval, and the battles behind it."""

    score: float
    lower: float
    upper: float
    battles: int

    def to_json(self) -> dict[str, float | int]:
        return {"score": self.score, "lower": self.lower, "upper": self.upper, "n": self.battles}


def v01_battles(games: Sequence[tuple[str | None, str | None]]) -> list[str]:
    """Per prompt (game 1 with the baseline shown first, game 2 swapped) the battles' winners in
    the reference's order: "baseline", "ours" or "tie", a strong verdict three times."""
    out: list[str] = []
    for first, second in games:
        for label, ours_is in ((first, "b"), (second, "a")):
            winner, weight = _V01.get(label or "", ("", 0))
            if weight:
                side = "tie" if winner == "tie" else "ours" if winner == ours_is else "baseline"
                out += [side] * weight
    return out


def _elo_ours(winners: np.ndarray) -> float:
    """compute_mle_elo for the baseline (model_a) and ours (model_b): ours' rating with the
    baseline anchored at 1000. `winners`: 1 baseline, 0 ours, 0.5 tie."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    n = len(winners)
    doubled = np.concatenate([winners, winners])
    x = np.zeros((2 * n, 2))
    x[:, 0], x[:, 1] = math.log(_BASE), -math.log(_BASE)
    y = (doubled == 1.0).astype(float)
    ties = doubled == 0.5
    ties[n:] = False
    y[ties] = 1.0
    if y.min() == y.max():  # one class only: the reference's fit refuses it too
        return math.inf if y.max() == 0 else -math.inf
    lr = LogisticRegression(
        fit_intercept=False, C=np.inf, tol=1e-8
    )  # penalty=None, as 1.9 spells it
    with warnings.catch_warnings():  # lbfgs stops short of tol 1e-8 at the optimum, as upstream's
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr.fit(x, y)
    elo = _SCALE * lr.coef_[0] + _INIT
    return float(elo[1] - elo[0] + 1000.0)


def _win_rate(elo: float) -> float:
    """predict_win_rate of ours against the baseline at 1000, in percent."""
    return 100.0 / (1.0 + math.pow(_BASE, (1000.0 - elo) / _SCALE))


def bradley_terry(winners: Sequence[str], rounds: int = ROUNDS, seed: int = SEED) -> Score:
    """v0.1's score and 95% interval from the battles (`v01_battles`)."""
    coded = np.array([{"baseline": 1.0, "ours": 0.0, "tie": 0.5}[w] for w in winners])
    elo = _elo_ours(coded)
    rng = np.random.RandomState(seed)
    boots = [
        _elo_ours(coded[rng.choice(len(coded), size=len(coded), replace=True)])
        for _ in range(rounds)
    ]
    return Score(
        _win_rate(elo),
        _win_rate(float(np.percentile(boots, 2.5))),
        _win_rate(float(np.percentile(boots, 97.5))),
        len(coded),
    )


def v20_scores(games: Sequence[tuple[str | None, str | None]]) -> list[float] | None:
    """One prompt's battle scores for ours, in the reference's order (game 2's, then game 1's
    complemented); None when a game has no verdict the reference reads."""
    first, second = games[0]
    if first not in _V20 or second not in _V20:
        return None
    return _V20[second] + [1.0 - s for s in _V20[first]]


def mean_battle_score(scores: Sequence[float], rounds: int = ROUNDS, seed: int = SEED) -> Score:
    """v2.0's score: the bootstrap means' mean, with their 5% and 95% quantiles."""
    values = np.asarray(scores, dtype=float)
    rng = np.random.RandomState(seed)
    means = np.array(
        [
            values[rng.choice(len(values), size=len(values), replace=True)].mean()
            for _ in range(rounds)
        ]
    )
    return Score(
        100.0 * float(means.mean()),
        100.0 * float(np.quantile(means, 0.05)),
        100.0 * float(np.quantile(means, 0.95)),
        len(values),
    )


def style_features(ours: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """One prompt's style differences as v2.0's `print_leaderboard_with_style_features` builds
    them from each answer's (token_len, headers, list items, bold spans): the relative length,
    then each markdown element's relative density per token."""
    out = [(ours[0] - baseline[0]) / (ours[0] + baseline[0])]
    for k in range(1, len(ours)):
        mine, theirs = ours[k] / (ours[0] + 1), baseline[k] / (baseline[0] + 1)
        out.append((mine - theirs) / (mine + theirs + 1))
    return out


_CONTROLS = {"length": [0], "markdown": [1, 2, 3]}


def _design(styles: np.ndarray, controls: Sequence[str]) -> np.ndarray:
    """The reference's features: ours +1 and the baseline -1 (its one-hot of two models), then
    the chosen style columns normalised over the battles (torch.std's n - 1)."""
    unknown = sorted(set(controls) - set(_CONTROLS))
    if unknown or not controls:
        raise ValueError(f"style control takes length and/or markdown, not {list(controls)}")
    keep = [k for c in ("length", "markdown") if c in controls for k in _CONTROLS[c]]
    spread = styles[:, keep].std(axis=0, ddof=1)
    if not np.all(spread > 0):  # the reference's normalising would divide by zero (its assert)
        raise ValueError("a style feature does not vary over the battles")
    normal = (styles[:, keep] - styles[:, keep].mean(axis=0)) / spread
    ones = np.ones(len(styles))
    return np.column_stack([ones, -ones, normal])


# fit_pairwise_model's optimiser: torch.optim.LBFGS(lr=0.1, max_iter=50, tolerance_grad=1e-9,
# tolerance_change=1e-9), no line search, one `step`; 50 steps never fill its history of 100
_STEPS, _LR, _TOL = 50, 0.1, 1e-9


def _bt_loss(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    """The "bt" loss (logistic loss summed over the battles) and its gradient."""
    z = x @ w
    grad = x.T @ (1.0 / (1.0 + np.exp(-z)) - y)
    return float(np.sum(np.logaddexp(0.0, z) - y * z)), grad


def _lbfgs(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The coefficients after torch's L-BFGS step as upstream runs it, every coefficient from
    0.5: fixed steps of 0.1 (the first scaled by the gradient), at most 50, which stops short of
    the optimum; ported step for step, because the quantiles move with where it stops."""
    w = np.full(x.shape[1], 0.5)
    loss, grad = _bt_loss(x, y, w)
    if np.abs(grad).max() <= _TOL:
        return w
    dirs: list[np.ndarray] = []
    steps: list[np.ndarray] = []
    rho: list[float] = []
    scale, d, t = 1.0, -grad, 0.0
    prev_grad = grad
    for n in range(1, _STEPS + 1):
        if n > 1:
            change, step = grad - prev_grad, d * t
            ys = float(change @ step)
            if ys > 1e-10:
                dirs += [change]
                steps += [step]
                rho += [1.0 / ys]
                scale = ys / float(change @ change)
            q, alpha = -grad, [0.0] * len(dirs)
            for i in range(len(dirs) - 1, -1, -1):
                alpha[i] = float(steps[i] @ q) * rho[i]
                q = q - alpha[i] * dirs[i]
            d = q * scale
            for i in range(len(dirs)):
                d = d + steps[i] * (alpha[i] - float(dirs[i] @ d) * rho[i])
        prev_grad, prev_loss = grad, loss
        t = min(1.0, 1.0 / float(np.abs(grad).sum())) * _LR if n == 1 else _LR
        if float(grad @ d) > -_TOL:
            break
        w = w + t * d
        if n == _STEPS:
            break
        loss, grad = _bt_loss(x, y, w)
        if np.abs(grad).max() <= _TOL or np.abs(d * t).max() <= _TOL:
            break
        if abs(loss - prev_loss) < _TOL:
            break
    return w


def _bt_win_rate(x: np.ndarray, y: np.ndarray) -> float:
    """`fit_pairwise_model` with the "bt" loss: ours' win rate against the baseline, percent."""
    w = _lbfgs(x, y)
    return 100.0 / (1.0 + math.exp(float(w[1] - w[0])))


def style_controlled(
    battles: Sequence[float],
    styles: Sequence[Sequence[float]],
    controls: Sequence[str],
    rounds: int = ROUNDS,
    seed: int = SEED,
) -> Score:
    """v2.0 with style control (`--control-features`): per battle its score and its prompt's
    `style_features`; the median, 5% and 95% quantiles of 100 bootstrap fits' win rates."""
    x = _design(np.asarray(styles, dtype=float), controls)
    y = np.asarray(battles, dtype=float)
    rng = np.random.RandomState(seed)
    rates = [_bt_win_rate(x[idx], y[idx]) for idx in rng.randint(0, len(y), size=(rounds, len(y)))]
    return Score(
        float(np.quantile(rates, 0.5)),
        float(np.quantile(rates, 0.05)),
        float(np.quantile(rates, 0.95)),
        len(y),
    )
