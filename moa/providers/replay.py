"""`replay`: serves published outputs (an AlpacaEval `model_outputs.json`, or an Arena-Hard-Auto
`model_answer/<model>.jsonl`) as if a model wrote them.

Holding real proposals fixed costs nothing and makes aggregator comparisons paired: the address
`replay/Qwen1.5-110B-Chat` answers each instruction with that model's published output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from moa.errors import ConfigError
from moa.providers.base import register_provider
from moa.types import ChatMessage, Completion, ErrorKind, GenerateConfig, ModelError

_FIX = "pass the model_outputs.json of a complete AlpacaEval 2.0 run"


def read_outputs(path: Path, *, expected: Sequence[str] | None = None) -> dict[str, str]:
    """A published `model_outputs.json` as instruction -> output, checked.

    AlpacaEval matches outputs to instructions by text, so instructions must be unique; with
    `expected` (the benchmark's instructions) the file must answer exactly those. A damaged
    file is one `ConfigError` line naming it.
    """

    def bad(problem: str) -> ConfigError:
        return ConfigError(f"{path}: {problem}; {_FIX}")

    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise bad(f"cannot be read ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"not a JSON file ({exc}), truncated?") from None
    if not isinstance(rows, list):
        raise bad(f"top level is a JSON {type(rows).__name__}, expected a list of objects")
    outputs: dict[str, str] = {}
    for n, row in enumerate(rows, 1):
        fields = row if isinstance(row, dict) else {}
        instruction, output = fields.get("instruction"), fields.get("output")
        if not isinstance(instruction, str) or not instruction.strip():
            raise bad(f"record {n}: field 'instruction' is missing or empty")
        if not isinstance(output, str):
            raise bad(f"record {n}: field 'output' is missing or not a string")
        if instruction in outputs:
            raise bad(f"record {n} repeats an earlier instruction")
        outputs[instruction] = output
    if expected is not None:
        missing = [i for i in expected if i not in outputs]
        extra = len(outputs.keys() - set(expected))
        problems = []
        if missing:
            problems.append(
                f"{len(missing)} instructions have no output (first: {missing[0][:60]!r})"
            )
        if extra:
            problems.append(f"{extra} outputs answer no benchmark instruction")
        if problems:
            raise bad(" and ".join(problems))
    return outputs


def read_answers(path: Path) -> dict[str, str]:
    """An Arena-Hard-Auto `model_answer` file as prompt -> answer (its first message is the
    prompt, its last message's content the answer); damage is one `ConfigError` line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    outputs: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
            outputs[str(messages[0]["content"])] = str(messages[-1]["content"]["answer"])
        except (json.JSONDecodeError, KeyError, TypeError, IndexError) as exc:
            raise ConfigError(f"{path}: line {n} is not an Arena-Hard answer ({exc!r})") from None
    return outputs


def published(outputs_dir: Path, model: str) -> tuple[Path, dict[str, str]]:
    """`model`'s outputs in `outputs_dir` and the file they came from: Arena-Hard's
    `<model>.jsonl` where there is one, else AlpacaEval's `<model>.json`."""
    answers = outputs_dir / f"{model}.jsonl"
    if answers.is_file():
        return answers, read_answers(answers)
    path = outputs_dir / f"{model}.json"
    return path, read_outputs(path)


class Replay:
    """Looks up `<outputs_dir>/<model>.json` (or `.jsonl`, Arena-Hard's) by the single user
    turn's text."""

    def __init__(self, outputs_dir: Path) -> None:
        self.outputs_dir = outputs_dir
        self._tables: dict[str, dict[str, str]] = {}

    @property
    def identity(self) -> str:
        return f"replay:{self.outputs_dir.resolve()}"

    def _table(self, model: str) -> dict[str, str]:
        table = self._tables.get(model)
        if table is None:
            path = self.outputs_dir / f"{model}.json"
            if not (path.is_file() or path.with_suffix(".jsonl").is_file()):
                raise ModelError(ErrorKind.PERMANENT, f"no published outputs at {path}")
            table = self._tables[model] = published(self.outputs_dir, model)[1]
        return table

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        sample: int,
    ) -> Completion:
        users = [m for m in messages if m["role"] == "user"]
        if len(users) != 1 or any(m["role"] == "system" for m in messages):
            raise ModelError(
                ErrorKind.PERMANENT, "replay serves single-turn prompts without references only"
            )
        try:
            text = self._table(model)[users[0]["content"]]
        except KeyError:
            raise ModelError(ErrorKind.PERMANENT, f"{model}: instruction not in outputs") from None
        return Completion(text, 0, 0, "stop")

    async def aclose(self) -> None:
        return None


@register_provider("replay")
def _build(endpoint: str, options: Mapping[str, Any]) -> Replay:
    outputs_dir = options.get("outputs_dir")
    if not outputs_dir:
        raise ConfigError(f"endpoint {endpoint!r}: set outputs_dir to a folder of <model>.json")
    return Replay(Path(str(outputs_dir)))
