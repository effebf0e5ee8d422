"""API keys never reach a file a run writes, nor its output, even when a server echoes them."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from moa.cache import CallCache
from moa.catalogue import Catalogue
from moa.client import ModelClient
from moa.redact import MASK, Redacting, holds_secret, is_secret_name, redact_config
from moa.types import ErrorKind, GenerateConfig, ModelError
from tests.kit.cli import SHARED_DATA, command, environment, ledger, run
from tests.kit.fakeserver import FakeServer, ModelProfile, serve_in_thread

TOGETHER = "sk-planted-together-6f1d2c9e8b7a"
OPENAI = "sk-planted-openai-0a9b8c7d6e5f"
WRONG = "sk-planted-wrong-41c3e2d1f0a9"


def leaks(root: Path, texts: list[str], secrets: list[str]) -> list[str]:
    """Every file under `root` and every text that holds one of `secrets`, byte for byte."""
    found = [str(p) for p in root.rglob("*") if p.is_file() for s in secrets
             if s.encode() in p.read_bytes()]  # fmt: skip
    return found + [t[:80] for t in texts for s in secrets if s in t]


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_no_file_or_output_of_a_run_holds_a_key(tmp_path: Path) -> None:
    """A generated and judged run with the right keys, then one whose key a server rejects
    by echoing it in full."""
    generator = FakeServer(default=ModelProfile(min_tokens=5, max_tokens=30), api_key=TOGETHER)
    judge = FakeServer(api_key=OPENAI)
    env = environment(TOGETHER_API_KEY=TOGETHER, OPENAI_API_KEY=OPENAI)
    with serve_in_thread(generator) as gen_url, serve_in_thread(judge) as judge_url:
        args = command(tmp_path, gen_url, "task=run", "benchmark.limit=3", max_attempts=2)
        args.append(f"endpoints.openai.base_url={judge_url}")
        good = run(args, env)
        sent = (len(generator.log), len(judge.log))
        # MoA-Lite's calls for the first 3 instances are MoA's, cached; the 4th needs new ones.
        wrong = environment(TOGETHER_API_KEY=WRONG, OPENAI_API_KEY=OPENAI)
        rejected = run([*args, "moa=moa_lite", "benchmark.limit=4"], wrong)
    assert good.returncode == 0, good.stderr
    assert sent == (39, 3)  # the keys were sent and accepted
    assert rejected.returncode == 1 and "1 instance(s) failed" in rejected.stdout
    errors = {r["error"] for r in ledger(tmp_path, "moa_lite")} - {None}
    assert errors == {f"permanent 401: Incorrect API key provided: {MASK}. (invalid_api_key)"}
    assert not leaks(tmp_path, [good.stdout, good.stderr, rejected.stdout, rejected.stderr],
                     [TOGETHER, OPENAI, WRONG])  # fmt: skip


class _RedirectLoop:
    """Answers every request with a redirect to itself, until the client gives up."""

    def app(self) -> web.Application:
        async def again(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(str(request.url))

        app = web.Application()
        app.router.add_post("/v1/chat/completions", again)
        return app


async def test_an_http_error_on_a_request_with_the_key_does_not_show_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOP_API_KEY", TOGETHER)
    spec = {"provider": "openai", "base_url": "", "api_key_env": "LOOP_API_KEY", "max_attempts": 1}
    with serve_in_thread(_RedirectLoop()) as url:  # type: ignore[arg-type]
        client = ModelClient(
            {"loop": {**spec, "base_url": url}},
            Catalogue({}, ["loop"]),
            CallCache(tmp_path / "c.sqlite"),
        )
        outcome = await client.generate(
            "loop/m", [{"role": "user", "content": "hi"}], GenerateConfig(max_tokens=5)
        )
        await client.aclose()
    error = outcome.record.error or ""
    assert error.startswith("transient: connection failed") and TOGETHER not in error


def test_a_refusal_that_echoes_an_override_hides_the_key(tmp_path: Path) -> None:
    done = run(
        command(tmp_path, "http://127.0.0.1:9/v1", f"token={TOGETHER}"),
        environment(TOGETHER_API_KEY=TOGETHER),
    )
    (line,) = done.stderr.splitlines()
    assert done.returncode == 2 and "token is not a setting" in line
    assert TOGETHER not in line  # the refusal names the key, never its value


def test_one_rule_says_which_names_hold_secrets() -> None:
    for name in ("TOGETHER_API_KEY", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "PGPASSWORD"):
        assert is_secret_name(name)
    for key in ("api_key", "apikey", "key", "token", "client_secret", "password", "Api_Key"):
        assert holds_secret(key), key
    for key in ("api_key_env", "base_url", "provider", "max_concurrency", "max_tokens", "tpm"):
        assert not holds_secret(key), key
    assert is_secret_name("API_KEY_ENV")  # an environment variable's value is still scrubbed


def test_a_saved_config_has_every_secret_blanked_at_any_depth() -> None:
    config = {
        "endpoints": {"x": {"api_key_env": "X_API_KEY", "apikey": TOGETHER, "rpm": 60}},
        "judges": [{"token": OPENAI, "name": "j"}],
        "seed": 1,
    }
    assert redact_config(config) == {
        "endpoints": {"x": {"api_key_env": "X_API_KEY", "apikey": MASK, "rpm": 60}},
        "judges": [{"token": MASK, "name": "j"}],
        "seed": 1,
    }


async def test_a_provider_bug_that_prints_the_key_is_recorded_scrubbed() -> None:
    class Buggy:
        identity = "buggy"

        async def generate(self, *args: object) -> None:
            raise RuntimeError(f"request failed with headers {{'Authorization': '{TOGETHER}'}}")

        async def aclose(self) -> None:
            return None

    with pytest.raises(ModelError) as caught:
        await Redacting(Buggy(), [TOGETHER]).generate(  # type: ignore[arg-type]
            "m", [], GenerateConfig(), 0
        )
    assert caught.value.kind is ErrorKind.PERMANENT
    assert (
        str(caught.value)
        == f"RuntimeError: request failed with headers {{'Authorization': '{MASK}'}}"
    )
