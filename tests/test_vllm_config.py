"""The vLLM scale-out config: it composes, routes the six open proposers to their own servers,
and agrees with scripts/serve_vllm.sh on each server's port and served model id."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from hydra import compose, initialize_config_dir

from eval.mixture_config import build_mixture
from eval.settings import CONF_DIR, build_client, resolve, to_dict
from moa.catalogue import split_address

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "serve_vllm.sh"


def served() -> dict[str, int]:
    """Model id -> port, from a dry run of the script over enough GPUs for all six."""
    env = {**os.environ, "DRY_RUN": "1", "GPUS": ",".join(map(str, range(40)))}
    out = subprocess.run(
        ["bash", str(SCRIPT), "all"], env=env, capture_output=True, text=True, check=True
    ).stdout
    pairs = re.findall(r"--served-model-name (\S+) .*?--port (\d+)", out)
    return {model: int(port) for model, port in pairs}


def test_open_proposers_run_on_the_scripts_servers(tmp_path: Path) -> None:
    overrides = ["endpoints=vllm_paper", "catalogue=paper_vllm", "moa=moa", "judge=none"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", [*overrides, f"cache.path={tmp_path / 'c.sqlite'}"])
    catalogue = resolve(cfg).catalogue
    spec = build_mixture(to_dict(cfg.moa), catalogue)
    addresses = spec.models()
    assert len(addresses) == 6
    ports = served()
    for address in addresses:
        endpoint, model = split_address(address)
        assert endpoint.startswith("vllm_")
        assert urlsplit(str(cfg.endpoints[endpoint].base_url)).port == ports[model]
    client = build_client(resolve(cfg), ledger_path=None)
    client.preflight(addresses)  # no API key needed, nothing contacted
    client.cache.close()


def test_gpt4o_stays_on_openai() -> None:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", ["endpoints=vllm_paper", "catalogue=paper_vllm", "moa=moa_gpt4o"])
    spec = build_mixture(to_dict(cfg.moa), resolve(cfg).catalogue)
    assert spec.final.model == "openai/gpt-4o-2024-05-13"
