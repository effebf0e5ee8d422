"""CRUXEval's 800 functions, for output prediction (`cruxeval_o`) and input prediction
(`cruxeval_i`), each sent in the reference's own prompt and scored by running the assertion.

The YAML's `cot` picks the direct or the chain-of-thought prompt (and the reference's token
allowance for it); each request opens with the system message the reference's chat script
(`openai/openai_prompt.py`) sends before every prompt, `prompts.SYSTEM`, and stops at
`[/ANSWER]` as that script's do. The gold is the side asked for; `meta` keeps the code and
both sides for the check.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import ClassVar

from eval.benchmarks import _read
from eval.benchmarks.base import Instance
from eval.benchmarks.verifiable import Verifiable
from eval.verify import cruxeval_prompts as prompts
from eval.verify.cruxeval import Mode
from moa.types import GenerateConfig

FILE = "cruxeval/cruxeval.jsonl"
SIZE = 800
TEMPLATES = {
    ("output", False): prompts.OUTPUT_DIRECT,
    ("output", True): prompts.OUTPUT_COT,
    ("input", False): prompts.INPUT_DIRECT,
    ("input", True): prompts.INPUT_COT,
}


class CruxEval(Verifiable):
    mode: ClassVar[Mode]

    @property
    def cot(self) -> bool:
        return bool(self.settings.get("cot", False))

    def load(self) -> list[Instance]:
        """The 800 functions in file order, id = `id` (`sample_0`, ...)."""
        path = self.data.path(FILE)
        rows = _read.read_jsonl(path)
        _read.check_count(path, len(rows), SIZE, "functions")
        template = TEMPLATES[(self.mode, self.cot)]
        instances = []
        for n, row in enumerate(rows, 1):
            where = f"record {n}"
            code, output = (_read.text(path, row, key, where) for key in ("code", "output"))
            given = _read.text(path, row, "input", where, empty=True)  # `f()` takes none
            instances.append(
                Instance(
                    id=_read.text(path, row, "id", where),
                    turns=(template.format(code=code, input=given, output=output),),
                    category=None,
                    references=(output if self.mode == "output" else given,),
                    meta=MappingProxyType({"code": code, "input": given, "output": output}),
                    system=prompts.SYSTEM,
                )
            )
        _read.check_unique(path, (i.id for i in instances), "id")
        return instances

    def recorded_prompt(self) -> dict[str, str] | None:
        return {"template": TEMPLATES[(self.mode, self.cot)], "system": prompts.SYSTEM}

    def generation(self) -> Callable[[Instance], GenerateConfig]:
        gen = self.settings["generation"]
        config = GenerateConfig(
            temperature=float(gen["temperature"]),
            max_tokens=prompts.MAX_TOKENS_COT if self.cot else prompts.MAX_TOKENS,
            stop=(prompts.STOP,),
        )
        return lambda instance: config
