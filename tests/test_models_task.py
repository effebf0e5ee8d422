"""`task=models`: what an endpoint still serves, beside the catalogue, through the real SDK."""

from __future__ import annotations

from tests.kit.cli import MOA_BENCH, environment, run
from tests.kit.fakeserver import FakeServer, ModelProfile, serve_in_thread


def test_the_catalogue_models_an_endpoint_no_longer_serves_are_marked() -> None:
    server = FakeServer(profiles={"Qwen/Qwen1.5-72B-Chat": ModelProfile()})
    server.serves = {"Qwen/Qwen2.5-72B-Instruct-Turbo", "meta-llama/Llama-3.3-70B-Instruct"}
    with serve_in_thread(server) as url:
        done = run(
            [MOA_BENCH, "task=models", "models.endpoints=[together]",
             f"endpoints.together.base_url={url}"],
            environment(COLUMNS="160"),
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if "│" in line}
    assert "yes" in lines["qwen1.5-72b"] and "no longer served" in lines["qwen1.5-110b"]
    assert "no longer served" in lines["dbrx"]
    assert "also served, not in the catalogue (2):" in done.stdout
    assert "  together/Qwen/Qwen2.5-72B-Instruct-Turbo\n" in done.stdout  # an address, whole
    assert server.log == []  # listing is not a call


def test_ids_are_never_cut_and_an_empty_list_is_explained() -> None:
    server = FakeServer(profiles={"Qwen/Qwen1.5-72B-Chat": ModelProfile()})
    long_id = "some-organisation/a-model-with-a-very-long-name-Instruct-2507-FP8-dynamic"
    server.serves = {long_id, *(f"org/model-{n}" for n in range(30))}
    with serve_in_thread(server) as url:
        listed = run(
            [MOA_BENCH, "task=models", "models.endpoints=[together]",
             f"endpoints.together.base_url={url}"],
            environment(COLUMNS="60"),
        )  # fmt: skip
    with serve_in_thread(FakeServer()) as url:  # a server that lists no model
        empty = run(
            [MOA_BENCH, "task=models", "models.endpoints=[together]",
             f"endpoints.together.base_url={url}"],
            environment(COLUMNS="60"),
        )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "..." not in listed.stdout and "…" not in listed.stdout
    assert f"together/{long_id}" in listed.stdout.replace("\n", "")
    assert all(f"together/org/model-{n}\n" in listed.stdout for n in range(30))
    assert empty.returncode == 0, empty.stderr
    said = " ".join(empty.stdout.split())
    assert "together lists no models: its /v1/models is empty" in said
    assert "endpoints.together.base_url" in said


def test_an_endpoint_that_cannot_be_listed_is_named() -> None:
    done = run(
        [MOA_BENCH, "task=models", "models.endpoints=[together]",
         "endpoints.together.base_url=http://127.0.0.1:9/v1"],
        environment(),
    )  # fmt: skip
    assert done.returncode == 1
    assert "together: cannot list its models" in done.stdout and "refused" in done.stdout
