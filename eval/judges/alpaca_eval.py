"""AlpacaEval 2.0 judge (`weighted_alpaca_eval_gpt4_turbo`), faithful to alpaca_eval 0.6.6.

The prompt template, decoding settings and parser settings are read at run time from the
installed package's files; rendering and the seeded swap of the two outputs are alpaca_eval's,
rendered without importing it (`alpaca_upstream`), and the logprob parser is its own function.
Only the call goes through our `Generator`.

`annotations.json` has the columns `alpaca_eval.evaluate` 0.6.6 writes: the pair (`instruction`,
`output_1`, `generator_1`, `dataset`, `output_2`, `generator_2`), `annotator`, `preference`, then
the five kept outputs of the call, named `preference_<key>` (`SingleAnnotator` prefixes each
output of `fn_completions` with the annotation column, and stores the raw completion as
`BaseAnnotator.completion_key`). alpaca_eval writes those five in the order of a `set`, which
changes with the interpreter's hash seed; we write them in the order `BaseAnnotator` declares
them (`other_output_keys_to_keep`). Its `is_reapply_parsing` finds the raw completions under
that name, so it calls no judge again, but does not re-parse them: 0.6.6 hands its logprob
parser the raw completion as JSON text, which the parser cannot read, and every preference
comes back empty, on alpaca-eval's own files as on ours (an upstream bug;
`tests/test_fidelity_details.py` shows both). `task=rescore` re-parses them
(`rescore`). `read_annotations` also reads the layout of the published results files
(`price_per_example`, `time_per_example`, `raw_completion`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from eval.judges import alpaca_upstream
from eval.judges.common import (
    JUDGE_TAGS,
    Failure,
    FailureKind,
    call_failure,
    json_records,
    parse_records,
    settle_all,
)
from eval.rundir import write_atomic
from moa.errors import ConfigError
from moa.types import ChatMessage, Completion, GenerateConfig, Generator

ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
# alpaca-eval's own annotator for a judge without logprobs: a plain-text ranking of the two
# outputs, read by its `ranking_parser` (a preference of 1 or 2, no weight).
RANKING_ANNOTATOR = "alpaca_eval_llama3_70b_fn"
# How alpaca-eval reaches a model, not what it sends it: the endpoint decides these here.
_TRANSPORT_KWARGS = ("requires_chatml", "price_per_token", "client_kwargs")
_PARSERS = ("logprob_parser", "ranking_parser")
# `PairwiseAnnotator`'s default seed, which `alpaca_eval.evaluate` leaves as is.
SEED = 0
# Hard-coded in `SinglePairwiseAnnotator`, which seeds the switch on `instruction` alone.
_SWITCH_COLUMN = "is_switched_outputs"
# alpaca_eval's OpenAI helper sends top_p=1.0 unless told otherwise.
_DEFAULT_TOP_P = 1.0
_TIE = 1.5
# `PairwiseAnnotator.annotation_key`, which prefixes the stored outputs of each call.
_ANNOTATION_KEY = "preference"


@dataclass(frozen=True)
class Annotator:
    """One alpaca_eval annotator config: what to send and how to read the answer."""

    name: str
    template: str
    judge: str
    config: GenerateConfig
    parser_kwargs: Mapping[str, Any]
    parser: str = "logprob_parser"  # or "ranking_parser" (`RANKING_ANNOTATOR`)


@functools.cache
def load_annotator(name: str = ANNOTATOR) -> Annotator:
    cfg = alpaca_upstream.annotator_config(name)
    parser = cfg["fn_completion_parser"]
    if cfg["fn_completions"] != "openai_completions" or parser not in _PARSERS:
        raise ValueError(f"{name}: only openai_completions with {' or '.join(_PARSERS)}")
    kwargs = {k: v for k, v in cfg["completions_kwargs"].items() if k not in _TRANSPORT_KWARGS}
    model = kwargs.pop("model_name")
    config = GenerateConfig(
        temperature=float(kwargs.pop("temperature")),
        max_tokens=kwargs.pop("max_tokens"),
        top_p=_DEFAULT_TOP_P,
        logprobs=kwargs.pop("logprobs", None),
        top_logprobs=kwargs.pop("top_logprobs", None),
    )
    if kwargs:
        raise ValueError(f"{name}: unsupported completions_kwargs {sorted(kwargs)}")
    return Annotator(
        name=name,
        template=alpaca_upstream.read_evaluator_file(*cfg["prompt_template"].split("/")),
        judge=f"openai/{model}",
        config=config,
        parser_kwargs=dict(cfg.get("completion_parser_kwargs") or {}),
        parser=parser,
    )


@dataclass(frozen=True)
class Pair:
    """One instruction with the baseline's output (`output_1`) and the model's (`output_2`)."""

    instruction: str
    output_1: str
    generator_1: str
    output_2: str
    generator_2: str
    dataset: str | None = None


def make_pairs(
    baseline: Sequence[Mapping[str, Any]], model: Sequence[Mapping[str, Any]]
) -> list[Pair]:
    """Join outputs on `instruction` in the baseline's order, as `annotate_head2head` merges."""
    by_instruction = {row["instruction"]: row for row in model}
    if len(by_instruction) != len(model):
        raise ValueError("model outputs repeat an instruction")
    return [
        Pair(
            instruction=ref["instruction"],
            output_1=ref["output"],
            generator_1=ref["generator"],
            output_2=by_instruction[ref["instruction"]]["output"],
            generator_2=by_instruction[ref["instruction"]]["generator"],
            dataset=ref.get("dataset"),
        )
        for ref in baseline
        if ref["instruction"] in by_instruction
    ]


def is_switched(instruction: str, seed: int = SEED) -> bool:
    """RandomSwitchTwoColumnsProcessor's decision to show output_2 first, seeded the same way.

    Its seed is the switch column's name, the seed columns' values joined, then the seed.
    """
    key = f"{_SWITCH_COLUMN}{instruction}{seed}"
    return bool(alpaca_upstream.random_seeded_choice(key, [False, True]))


def render_prompt(pair: Pair, template: str, *, switched: bool) -> str:
    """The text prompt alpaca_eval builds, with the outputs in the order shown to the judge."""
    first, second = (pair.output_2, pair.output_1) if switched else (pair.output_1, pair.output_2)
    fields = {"instruction": pair.instruction, "output_1": first, "output_2": second}
    return alpaca_upstream.make_prompt(template, fields)


def build_messages(pair: Pair, annotator: Annotator, *, seed: int = SEED) -> list[ChatMessage]:
    """What `openai_completions` sends: the stripped prompt parsed from its chat markup."""
    prompt = render_prompt(pair, annotator.template, switched=is_switched(pair.instruction, seed))
    return [
        ChatMessage(role=m["role"], content=m["content"])
        for m in alpaca_upstream.prompt_to_chatml(prompt.strip())
    ]


def raw_completion(completion: Completion) -> dict[str, Any]:
    """The OpenAI choice dict that alpaca_eval stores as `raw_completion` (its parser's input)."""
    logprobs = None
    if completion.logprobs is not None:
        logprobs = {
            "content": [
                {
                    **_token(t.token, t.logprob),
                    "top_logprobs": [_token(tok, lp) for tok, lp in t.top],
                }
                for t in completion.logprobs
            ]
        }
    return {
        "finish_reason": completion.finish_reason,
        "index": 0,
        "logprobs": logprobs,
        "message": {
            "content": completion.text,
            "role": "assistant",
            "function_call": None,
            "tool_calls": None,
        },
        "text": completion.text or " ",  # alpaca_eval's stand-in for an empty answer
        "total_tokens": float(completion.input_tokens + completion.output_tokens),
    }


def _token(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "bytes": list(token.encode()), "logprob": logprob}


def parse_preference(
    raw: Mapping[str, Any], annotator: Annotator, *, switched: bool
) -> float | Failure:
    """alpaca_eval's parser (`logprob_parser`, or `ranking_parser` of the text), then its
    un-swap `3 - x`: 1 baseline wins, 2 model wins."""
    try:
        if annotator.parser == "ranking_parser":
            text = str(raw.get("text") or "")
            parsed = alpaca_upstream.ranking_parser(text, **annotator.parser_kwargs)
        else:
            parsed = alpaca_upstream.logprob_parser(raw, **annotator.parser_kwargs)
    except Exception as exc:  # alpaca_eval logs any parser error and stores no preference
        return Failure(FailureKind.PARSE, f"{annotator.parser} failed: {exc!r}")
    if len(parsed) != 1:
        return Failure(FailureKind.PARSE, f"expected 1 preference, parsed {len(parsed)}")
    value = parsed[0]
    if math.isnan(value) and annotator.parser == "ranking_parser":
        return Failure(FailureKind.PARSE, "no ranking of model_1 and model_2 in the answer")
    if math.isnan(value):
        tokens = annotator.parser_kwargs.get("denominator_tokens")
        return Failure(FailureKind.PARSE, f"none of {tokens} among the top logprobs")
    return 3 - value if switched else value


@dataclass(frozen=True)
class Annotation:
    """One row of alpaca_eval's `annotations.json`, plus why it has no preference, if so.

    `version` and `date` are what alpaca_eval's `SingleAnnotator` adds to each call's outputs:
    the package's version (`alpaca_eval==0.6.6`) and the time the answer came back."""

    pair: Pair
    annotator: str
    preference: float | None
    raw_completion: Mapping[str, Any] | None = None
    price_per_example: float | None = None
    time_per_example: float | None = None
    failure: Failure | None = None
    version: str | None = None
    date: str | None = None

    def to_json(self) -> dict[str, Any]:
        p = self.pair
        row: dict[str, Any] = {
            "instruction": p.instruction,
            "output_1": p.output_1,
            "generator_1": p.generator_1,
        }
        if p.dataset is not None:
            row["dataset"] = p.dataset
        raw = None if self.raw_completion is None else dict(self.raw_completion)
        kept = {
            "price_per_example": self.price_per_example,
            "time_per_example": self.time_per_example,
            "version": self.version,
            "date": self.date,
            "raw_completion": raw,
        }
        row |= {
            "output_2": p.output_2,
            "generator_2": p.generator_2,
            "annotator": self.annotator,
            "preference": self.preference,
            **{stored_column(key): kept[key] for key in STORED_KEYS},
        }
        return row


# `BaseAnnotator`'s default `other_output_keys_to_keep`, in its order, without their prefix.
STORED_KEYS = ("price_per_example", "time_per_example", "version", "date", "raw_completion")


def stored_column(key: str) -> str:
    """The column alpaca_eval stores a call's output `key` in: `preference_raw_completion`."""
    return f"{_ANNOTATION_KEY}_{key}"


def _with_verdict(annotation: Annotation, verdict: float | Failure) -> Annotation:
    if isinstance(verdict, Failure):
        return replace(annotation, preference=None, failure=verdict)
    return replace(annotation, preference=verdict, failure=None)


async def annotate(
    generator: Generator,
    pairs: Sequence[Pair],
    *,
    annotator: Annotator | None = None,
    judge: str | None = None,
    seed: int = SEED,
) -> list[Annotation]:
    """Judge every pair concurrently; identical outputs are a tie without a call, as upstream."""
    ann = annotator or load_annotator()
    model = judge or ann.judge
    version = alpaca_upstream.package_version()
    # upstream's parsers take seconds to import: a thread imports them while the first
    # requests are out, and each answer (not the event loop) waits for them
    parsers = asyncio.ensure_future(asyncio.to_thread(alpaca_upstream.load_parsers))
    checked = asyncio.get_running_loop().create_future()  # the first answer has logprobs

    async def one(pair: Pair, first: bool = False) -> Annotation:
        if pair.output_1 == pair.output_2:
            return Annotation(pair, ann.name, _TIE)
        messages = build_messages(pair, ann, seed=seed)
        outcome = await generator.generate(model, messages, ann.config, tags=JUDGE_TAGS)
        completion = outcome.completion
        if first and completion is not None and ann.config.logprobs and completion.logprobs is None:
            raise ConfigError(no_logprobs(model))  # a judge that never sends them: not one more
        if first:
            checked.set_result(None)
        if completion is None:
            return Annotation(pair, ann.name, None, failure=call_failure(outcome))
        raw = raw_completion(completion)
        annotation = Annotation(
            pair,
            ann.name,
            None,
            raw,
            price_per_example=outcome.record.cost_usd,
            time_per_example=outcome.record.latency_s,
            version=version,
            date=datetime.now().isoformat(),
        )
        switched = is_switched(pair.instruction, seed)
        with contextlib.suppress(Exception):  # a failed import fails the parse, below
            await parsers
        return _with_verdict(annotation, parse_preference(raw, ann, switched=switched))

    # The first call alone: a judge without logprobs is refused before the others are paid for
    # (a later answer without them is that pair's parse failure, as alpaca-eval's).
    first = next((n for n, p in enumerate(pairs) if p.output_1 != p.output_2), len(pairs))
    done = [await one(p) for p in pairs[:first]]  # ties: no call
    if first == len(pairs):
        return done
    head = asyncio.ensure_future(one(pairs[first], first=True))
    await asyncio.wait([head, checked], return_when=asyncio.FIRST_COMPLETED)
    if head.done() and not checked.done():
        head.result()  # it raised before its answer was checked
    return done + await settle_all([head, *(one(p) for p in pairs[first + 1 :])])


def no_logprobs(model: str) -> str:
    """Why a judge that answers without logprobs is refused, and what to run instead."""
    return (
        f"judge {model} answered without logprobs, so it cannot give AlpacaEval's weighted "
        f"preference ({ANNOTATOR}); judge with alpaca-eval's own ranking annotator instead: "
        f"judge.alpaca_eval_annotator={RANKING_ANNOTATOR}"
    )


def rescore(
    annotations: Sequence[Annotation], *, annotator: Annotator | None = None, seed: int = SEED
) -> list[Annotation]:
    """Re-parse every stored raw completion into a preference, without calling any model."""
    ann = annotator or load_annotator()

    def one(a: Annotation) -> Annotation:
        if a.pair.output_1 == a.pair.output_2:
            return _with_verdict(a, _TIE)
        if a.raw_completion is None:
            return _with_verdict(a, Failure(FailureKind.CALL, "no raw completion recorded"))
        switched = is_switched(a.pair.instruction, seed)
        return _with_verdict(a, parse_preference(a.raw_completion, ann, switched=switched))

    return [one(a) for a in annotations]


def read_annotations(path: Path) -> list[Annotation]:
    """Rows of an alpaca_eval `annotations.json`; a row without preference gets a `Failure`.
    A damaged file (empty, cut short, foreign) is a `RunFileError` naming it, in one line."""
    return parse_records(path, json_records(path), _annotation, "record")


def _stored(row: Mapping[str, Any], key: str) -> Any:
    """A call's stored output: alpaca_eval's `preference_<key>` column, else the published
    files' `<key>`."""
    column = stored_column(key)
    return row[column] if column in row else row.get(key)


def _raw(value: Any) -> Mapping[str, Any] | None:
    """A stored raw completion: an object, or the JSON text alpaca_eval's `is_reapply_parsing`
    turns it into (and saves so)."""
    if isinstance(value, str):
        value = json.loads(value)
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"raw completion is a {type(value).__name__}, not an object")
    return value


def _annotation(row: Mapping[str, Any]) -> Annotation:
    pair = Pair(
        instruction=row["instruction"],
        output_1=row["output_1"],
        generator_1=row["generator_1"],
        output_2=row["output_2"],
        generator_2=row["generator_2"],
        dataset=row.get("dataset"),
    )
    preference = row.get("preference")
    raw = _raw(_stored(row, "raw_completion"))
    failure = None
    if preference is None:
        failure = Failure(FailureKind.PARSE, "no preference recorded")
        if raw is None:
            failure = Failure(FailureKind.CALL, "no raw completion recorded")
    return Annotation(
        pair=pair,
        annotator=row["annotator"],
        preference=None if preference is None else float(preference),
        raw_completion=raw,
        price_per_example=_stored(row, "price_per_example"),
        time_per_example=_stored(row, "time_per_example"),
        failure=failure,
        version=_stored(row, "version"),
        date=_stored(row, "date"),
    )


def write_annotations(path: Path, annotations: Sequence[Annotation]) -> None:
    """The text `alpaca_eval.evaluate` writes, pandas `to_json(orient="records", indent=2)`,
    rendered to a string and written whole (`write_atomic`): a kill leaves the old file or the
    new one, never a truncated one. (pandas is imported here, not at start-up.)"""
    import pandas as pd

    frame = pd.DataFrame([a.to_json() for a in annotations])
    write_atomic(path, frame.to_json(orient="records", indent=2))
