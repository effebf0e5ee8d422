"""Arena-Hard-Auto's files, pinned to one commit of lmarena/arena-hard-auto, and its judge
settings read from them as data.

The judge's system prompts and per-category baselines live in a Python module upstream
(`utils/judge_utils.py`); it is parsed with `ast` and its constants evaluated as literals, never
executed. `eval.benchmarks.fetch` downloads each file from here and checks its hash.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from eval.benchmarks import _read

COMMIT = "196f6b826783b3da7310e361a805fa36f0be83f3"
RAW = f"https://raw.githubusercontent.com/lmarena/arena-hard-auto/{COMMIT}/"
ROOT = "arena_hard"
JUDGE_UTILS = f"{ROOT}/utils/judge_utils.py"
V01 = "arena-hard-v0.1"  # v0.1's bench_name, its prompts' category and its judge setting

# relpath under data_dir -> sha256 of the bytes at COMMIT
SHA256: Mapping[str, str] = {
    "data/arena-hard-v0.1/question.jsonl": (
        "2650242d2883f22b2abd498f273b6a7e02253cce533f5c91a858e1d44aa3002f"
    ),
    "data/arena-hard-v0.1/model_answer/gpt-4-0314.jsonl": (
        "0f6abc84de4600fde987d9db70f838f4ecdbd27a2f1f4058c12aa322a6f791b2"
    ),
    "data/arena-hard-v0.1/model_answer/gpt-4-0613.jsonl": (
        "055c37c6b230c87413f080c916deba18c6cace3d44b3d456009f1a3d3834a04b"
    ),
    "data/arena-hard-v0.1/model_answer/gpt-3.5-turbo-0125.jsonl": (
        "5cfec14570206ec251c3506d36951db87ca869757be75d6075a20120c3cbb616"
    ),
    "data/arena-hard-v2.0/question.jsonl": (
        "a75cef6623db6b27aec810497b059f0659705d7ff48dcbccc5bd5b130728ac73"
    ),
    "data/arena-hard-v2.0/model_answer/o3-mini-2025-01-31.jsonl": (
        "c23a7c255eead99f7f86ad48aa1d8ccdb5b3334f2097e0e1e09184df87265e03"
    ),
    "config/arena-hard-v0.1.yaml": (
        "87ac45a188421218349697b5eda95cc77f6e60b6f61495d67d8cfebba3210528"
    ),
    "config/arena-hard-v2.0.yaml": (
        "ee68e5c6ac98a79720bf11014fc3f7fc3c3e5899153b3b08efe3db0e174215a0"
    ),
    "utils/judge_utils.py": "cbb093f4fc27408d8447e946392f26f98538b1e3950f574aca91a0f7595167b4",
}
# The creative-writing baseline of v2.0 is too large to keep beside the others; its bytes were
# not at hand to hash, so it is pinned by its git blob id at COMMIT instead.
GIT_BLOB: Mapping[str, str] = {
    "data/arena-hard-v2.0/model_answer/gemini-2.0-flash-001.jsonl": (
        "75513a4feb8e2f642a9bdb952d1c3ed245b9c952"
    ),
}


def question_file(bench: str) -> str:
    return f"{ROOT}/data/{bench}/question.jsonl"


def answer_file(bench: str, model: str) -> str:
    return f"{ROOT}/data/{bench}/model_answer/{model}.jsonl"


def config_file(bench: str) -> str:
    return f"{ROOT}/config/{bench}.yaml"


@dataclass(frozen=True)
class JudgeConfig:
    """A version's judge settings: `config/<bench>.yaml` and `JUDGE_SETTINGS` of
    `utils/judge_utils.py` (category -> baseline and system prompt)."""

    judge_model: str
    temperature: float
    max_tokens: int
    regex_patterns: tuple[str, ...]
    prompt_template: str
    settings: Mapping[str, Mapping[str, str]]

    def system_prompt(self, category: str) -> str:
        return self.settings[category]["system_prompt"]

    def baseline(self, category: str) -> str:
        return self.settings[category]["baseline"]


def read_judge_config(config: Path, judge_utils: Path) -> JudgeConfig:
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise _read.bad(config, "not a YAML mapping")
    try:
        return JudgeConfig(
            judge_model=str(raw["judge_model"]),
            temperature=float(raw["temperature"]),
            max_tokens=int(raw["max_tokens"]),
            regex_patterns=tuple(str(p) for p in raw["regex_patterns"]),
            prompt_template=str(raw["prompt_template"]),
            settings=judge_settings(judge_utils),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _read.bad(config, f"missing or malformed field ({exc})") from None


def judge_settings(path: Path) -> dict[str, dict[str, str]]:
    """`JUDGE_SETTINGS` of `judge_utils.py`, its names resolved to the module's earlier string
    constants (`OG_ARENA_HARD_PROMPT`), each value a literal: the file is never run."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise _read.bad(path, f"not a readable Python module ({exc})") from None
    constants: dict[str, Any] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target = node.targets[0]
        if isinstance(target, ast.Name):
            try:
                constants[target.id] = ast.literal_eval(_Names(constants).visit(node.value))
            except ValueError as exc:
                raise _read.bad(path, f"{target.id} is not a literal ({exc})") from None
    settings = constants.get("JUDGE_SETTINGS")
    if not isinstance(settings, dict) or not all(
        isinstance(v, dict) and {"baseline", "system_prompt"} <= set(v) for v in settings.values()
    ):
        raise _read.bad(path, "JUDGE_SETTINGS is missing or not category -> baseline, prompt")
    return settings


class _Names(ast.NodeTransformer):
    """Puts the value of an already-read constant where its name is used."""

    def __init__(self, constants: Mapping[str, Any]) -> None:
        self.constants = constants

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.constants:
            return ast.Constant(self.constants[node.id])
        return node
