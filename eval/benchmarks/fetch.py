"""Find a benchmark file: in a given `data_dir`, else in the download cache, else download it.

The files are not ours to redistribute, so they are fetched at run time from their canonical
sources into a cache laid out exactly like a `data_dir` (`alpaca_eval/`, `mt_bench/`, `flask/`),
which is how a copy made once on a connected machine serves an offline one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.benchmarks import arena_hard_files as arena_hard
from eval.benchmarks.base import DataError
from eval.benchmarks.row_digest import rows_sha256

CACHE_ENV = "MOA_BENCH_CACHE"
_DETAIL_CHARS = 300  # of a download error's first line in the one-line refusal
# pooch's HTTP transport (None: its own, made when a file is downloaded), named here so that
# tests can put a fake network in its place.
HTTP: Any = None


def hf_hub_download(**kwargs: Any) -> str:
    """huggingface_hub's download, imported only when a file is fetched: a run from a
    `data_dir` never pays its import."""
    from huggingface_hub import hf_hub_download as download

    return str(download(**kwargs))


@dataclass(frozen=True)
class UrlSource:
    """A file under a URL; its sha256 is checked on download and on every cache hit."""

    url: str
    sha256: str


@dataclass(frozen=True)
class HubSource:
    """A file of a Hugging Face dataset repository (AlpacaEval 2.0's and MATH-500's home),
    checked by `row_digest.rows_sha256` over `row_fields` rather than by its bytes, which the
    Hub's copy need not share with ours; `revision` pins the repository where one is known."""

    repo_id: str
    filename: str
    row_fields: tuple[str, ...]
    rows_sha256: str
    revision: str | None = None


@dataclass(frozen=True)
class GitBlobSource:
    """A file under a URL pinned by its git blob id (`git hash-object`), where only that was
    at hand; checked as `UrlSource`'s sha256 is."""

    url: str
    blob_sha1: str


Source = UrlSource | HubSource | GitBlobSource

# No full commit ids were at hand for the FastChat and FLASK snapshots named in
# shared/data/README.md, so these follow `main`; the pinned hashes make a changed upstream
# file fail loudly instead of silently changing the benchmark.
_FASTCHAT = "https://raw.githubusercontent.com/lm-sys/FastChat/main/fastchat/llm_judge/data/"
_FLASK = "https://raw.githubusercontent.com/kaistAI/FLASK/main/"
_GSM8K = (
    "https://raw.githubusercontent.com/openai/grade-school-math/"
    "3101c7d5072418e28b9008a6636bde82a006892c/"
)
_CRUXEVAL = (
    "https://raw.githubusercontent.com/facebookresearch/cruxeval/"
    "190faf16d175b5847b0af05d937872b1fb395942/"
)
_ALPACA_RESULTS = (
    "https://raw.githubusercontent.com/tatsu-lab/alpaca_eval/"
    "cd543a149df89434d8a54582c0151c0b945c3d20/results/"
)

_PUBLISHED_OUTPUTS = {
    "Meta-Llama-3-70B-Instruct": "d88208d379e6ece0cfa923be521b068a557f7bd84fdc5568d6151918d6004d45",
    "Mixtral-8x22B-Instruct-v0.1": (
        "e2cb060776096ce11b893f868ad856ec724281a06c48feed09d771423f47dea9"
    ),
    "Qwen1.5-110B-Chat": "d3545f6b61c2f3af3ff9e2a80f037647bf21be1f12851832ad9d6b9102a8aa65",
    "Qwen1.5-72B-Chat": "fda155afefc94c1eff05404000e1309e22e76196053055de8008a95d8e2101dc",
    "Together-MoA-Lite": "4dbf2928625b1f950c26d26d435d2a83195a4928841c580abd56f8864f9d0f18",
    "Together-MoA": "bf1df20d58d94c3f82fdc7b74bbffa98e0bd8e8faec24b30de1c27fd42ec2efc",
    "dbrx-instruct": "ce2feece8e1bba6f282fce1786c73179200c029071a0548a7560bd3ceffac301",
    "gpt-4o-2024-05-13": "653c131d58e8d5802203c85e80ca3fb4b378f22e2a0280ad5cd910ff0bee9535",
}

# The published GPT-4 Turbo judgments `task=calibrate` re-judges (results/NAME/
# weighted_alpaca_eval_gpt4_turbo/annotations.json): the 13 models of shared/data/README.md.
_PUBLISHED_ANNOTATIONS = {
    "FuseChat-Gemma-2-9B-Instruct": (
        "72945b6a549eadcd18940fee835343d62985fced144e5b7a2b69c79e120d3cab"
    ),
    "FuseChat-Llama-3.2-3B-Instruct": (
        "32d4b6912694012c82c1b822792a3fc9e492119a48d93a10c3fbf2990b3a40ae"
    ),
    "FuseChat-Qwen-2.5-7B-Instruct": (
        "c816628e6973dc86ed95e6f6a50fdc09fbc4fcb970ee39140138e652cbf2a505"
    ),
    "Mixtral-8x7B-Instruct-v0.1_concise": (
        "5f0d215b9a5796ad666dfce980ab4f8db38efa68b766b114f5d44cf85ce25315"
    ),
    "NullModel": "d8e6d6d8ad735b57149fe0d9cb307e095cdc8befee5f0a849e00d66912500be3",
    "alpaca-7b": "41047c654c6c5ddc0290fb207367e3f458d22692045eb41927eb64103a2cb764",
    "claude-2": "cb4ef83e4f77bc2106c53ec0645a47e0b704b6ff7d013936ef9e70f330ca264b",
    "gemma-7b-it": "bd5de7f969f6783933d7cf2cf6720d1ebcfdf0a164626fa5439abea521e27de3",
    "gpt-3.5-turbo-1106": "4558bed562144780dfcdd5ff55cafc17d76eea62eca143cfcc7ac5f3c154de10",
    "gpt-3.5-turbo-1106_concise": (
        "87f84647d56b37e4e8c40a874ba33752f8e54f37ffcdfaab366775d84bf1adde"
    ),
    "gpt-3.5-turbo-1106_verbose": (
        "7d04918cdcdfee001cb27255fe52acf7cc1d6b2afde651d129b87d0707c99d8a"
    ),
    "gpt4_0613_concise": "91780cf1f3f2e78658aa369a5f65bc07660b9025e38f549fc787ed41f1c3c332",
    "vicuna-13b": "3bd08c0e1cee0f649d95a6986ca275f9281448a2237afed941133b7957212ef8",
}

SOURCES: dict[str, Source] = {
    # No revision at hand for the Hub's file: the instructions and baseline outputs that decide
    # every preference are checked against alpaca-eval cd543a1's gpt4_1106_preview outputs.
    "alpaca_eval/alpaca_eval_gpt4_baseline.json": HubSource(
        "tatsu-lab/alpaca_eval",
        "alpaca_eval_gpt4_baseline.json",
        row_fields=("instruction", "output"),
        rows_sha256="aea8604a31b28c9a84df8dedb8789039678861da015c70d57ebcabace1e10158",
    ),
    **{
        f"alpaca_eval/annotations/{name}.weighted_alpaca_eval_gpt4_turbo.json": UrlSource(
            f"{_ALPACA_RESULTS}{name}/weighted_alpaca_eval_gpt4_turbo/annotations.json", sha256
        )
        for name, sha256 in _PUBLISHED_ANNOTATIONS.items()
    },
    **{
        f"alpaca_eval/model_outputs/{name}.json": UrlSource(
            f"{_ALPACA_RESULTS}{name}/model_outputs.json", sha256
        )
        for name, sha256 in _PUBLISHED_OUTPUTS.items()
    },
    "mt_bench/question.jsonl": UrlSource(
        _FASTCHAT + "mt_bench/question.jsonl",
        "119565adbab82227089cefdb44c8d7e2cf04dc0a0ec233634c82e7d4e2a944f7",
    ),
    "mt_bench/reference_answer/gpt-4.jsonl": UrlSource(
        _FASTCHAT + "mt_bench/reference_answer/gpt-4.jsonl",
        "f957a5bc977badb66885ec970e6cd08527845780313f0995764260e5777b9b3f",
    ),
    "mt_bench/judge_prompts.jsonl": UrlSource(
        _FASTCHAT + "judge_prompts.jsonl",
        "fd283293406d024f44c174b094ef48031d0687a4682fd3a56b29b138f80281b6",
    ),
    # The verifiable track; the copies in shared/data are grade-school-math @ 3101c7d,
    # prm800k @ 7ecc794 (MATH-500, which Hugging Face republishes) and cruxeval @ 190faf1.
    "gsm8k/test.jsonl": UrlSource(
        _GSM8K + "grade_school_math/data/test.jsonl",
        "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
    ),
    # The Hub's revision is the one public harnesses pin; the rows that decide a score are
    # checked against prm800k's git-lfs copy (sha256 35dc4108...), which data_dir may hold.
    "math500/test.jsonl": HubSource(
        "HuggingFaceH4/MATH-500",
        "test.jsonl",
        revision="6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be",
        row_fields=("unique_id", "problem", "answer", "subject", "level"),
        rows_sha256="f80353668b4039850be1486cf37e95d2dc63c032e0b9099418ed42d052c65494",
    ),
    "cruxeval/cruxeval.jsonl": UrlSource(
        _CRUXEVAL + "data/cruxeval.jsonl",
        "8368b81047dc5014e4caf5a2f97604eff7644e0ecd7415e3ceeb184bbc2e0c96",
    ),
    "flask/flask_evaluation.jsonl": UrlSource(
        _FLASK + "evaluation_set/flask_evaluation.jsonl",
        "791950bf1f159b048eba8fee205eba606926c25467a9a31e6f9b6affc2e3e13d",
    ),
    "flask/flask_hard_evaluation.jsonl": UrlSource(
        _FLASK + "evaluation_set/flask_hard_evaluation.jsonl",
        "9830d65b2a137b9184039850c748f52dde369377a0ae06c00ccb6d464d5ebb48",
    ),
    "flask/skillset_description.json": UrlSource(
        _FLASK + "metadata_annotation/skillset/src/skillset_description.json",
        "78f03c29f5a6510b76b8a765cb539c302d69898b7e4d7c68372c9cc2427e595e",
    ),
    "flask/gpt_review_prompt.jsonl": UrlSource(
        _FLASK + "gpt_review/src/prompt.jsonl",
        "64836bb1eb6940e7ddbbbf0ea66265191bfd49476036ca15fc2660bbfa326134",
    ),
    "flask/gpt_review_reviewer.jsonl": UrlSource(
        _FLASK + "gpt_review/src/reviewer.jsonl",
        "af5b23bfb63125763ad39415cad7bd021473df57a32a11041d3f988e8335104e",
    ),
    "flask/model_output_gpt4.jsonl": UrlSource(
        _FLASK + "model_output/outputs/gpt4.jsonl",
        "572e4190f15170e855a96782067cc853d295e48deae51771760df9b3123237b8",
    ),
    **{
        f"{arena_hard.ROOT}/{path}": UrlSource(arena_hard.RAW + path, sha256)
        for path, sha256 in arena_hard.SHA256.items()
    },
    **{
        f"{arena_hard.ROOT}/{path}": GitBlobSource(arena_hard.RAW + path, blob)
        for path, blob in arena_hard.GIT_BLOB.items()
    },
}


def default_cache_dir() -> Path:
    """`$MOA_BENCH_CACHE` if set, else `~/.cache/moa-bench/data`; read at call time."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/moa-bench/data").expanduser()


def fetch(
    relpath: str,
    *,
    data_dir: Path | str | None = None,
    cache_dir: Path | str | None = None,
) -> Path:
    """The local path of `relpath` (e.g. `mt_bench/question.jsonl`), downloading it on a miss.

    With `data_dir` nothing is downloaded: the file must be at `data_dir/relpath`.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser() / relpath
        if not path.is_file():
            raise DataError(
                f"{path}: not found; data_dir must hold {relpath} at that place "
                "(the layout of the download cache), or leave data_dir unset to download it"
            )
        return path
    source = SOURCES.get(relpath)
    if source is None:
        raise DataError(f"{relpath}: no download source is known; pass data_dir=... holding it")
    target = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / relpath
    cached = target.is_file()
    if cached and _intact(target, source):
        return target
    try:
        _download(source, target)
    except (OSError, ValueError) as exc:  # network errors are OSErrors; bad hashes ValueErrors
        state = "cached copy is corrupt and it" if cached else "no cached copy and it"
        raise DataError(
            f"{relpath}: {state} cannot be downloaded from {_origin(source)} "
            f"({_first_line(exc)}); pass data_dir=... or connect once to download"
        ) from exc
    return target


def _intact(path: Path, source: Source) -> bool:
    if isinstance(source, HubSource):
        return _rows_intact(path, source)
    if isinstance(source, GitBlobSource):
        return _blob_sha1(path) == source.blob_sha1
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest() == source.sha256


def _download(source: Source, target: Path) -> None:
    """Write `target` whole or not at all: both paths download beside it, then rename."""
    import pooch

    target.parent.mkdir(parents=True, exist_ok=True)
    downloader = HTTP or pooch.HTTPDownloader(progressbar=False)
    if isinstance(source, GitBlobSource):
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            got = Path(
                pooch.retrieve(source.url, known_hash=None, path=staging, downloader=downloader)
            )
            if _blob_sha1(got) != source.blob_sha1:
                raise ValueError(f"git blob id of {source.url} is not {source.blob_sha1}")
            os.replace(got, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return
    if isinstance(source, UrlSource):
        pooch.retrieve(
            source.url,
            known_hash=f"sha256:{source.sha256}",
            fname=target.name,
            path=target.parent,
            downloader=downloader,
        )
        return
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        hf_hub_download(
            repo_id=source.repo_id,
            repo_type="dataset",
            filename=source.filename,
            revision=source.revision,
            local_dir=staging,
        )
        got = staging / source.filename
        if not _rows_intact(got, source):
            raise ValueError(
                f"rows of {source.filename} ({', '.join(source.row_fields)}) "
                f"do not match the pinned digest {source.rows_sha256}"
            )
        os.replace(got, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _rows_intact(path: Path, source: HubSource) -> bool:
    """The file's rows are those pinned (False for a file that is not such rows at all)."""
    try:
        return rows_sha256(path, source.row_fields) == source.rows_sha256
    except (ValueError, KeyError, TypeError, OSError):  # not rows of JSON objects with the fields
        return False


def _blob_sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _origin(source: Source) -> str:
    if isinstance(source, UrlSource | GitBlobSource):
        return source.url
    return f"the Hugging Face dataset {source.repo_id}"


def _first_line(exc: BaseException) -> str:
    """An error's kind and first line, shortened at a word (with "...") if past
    `_DETAIL_CHARS`: a line cut mid-word reads as a different word."""
    lines = str(exc).strip().splitlines()
    detail = lines[0] if lines else ""
    if len(detail) > _DETAIL_CHARS:
        detail = detail[: _DETAIL_CHARS + 1].rsplit(maxsplit=1)[0].rstrip(",;:") + " ..."
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
