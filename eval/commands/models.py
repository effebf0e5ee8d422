"""`task=models`: which models an endpoint still serves, beside the catalogue, before any spend.

The paper's 2024 models are mostly gone from hosted APIs. Listing an endpoint's models is free
(`GET /v1/models` through the SDK), so this marks each catalogue model as served or no longer
served by its endpoint, with the shutdown date the list carries for a model being retired
(OpenAI's), and shows what else the endpoint serves, so a current model can be put in the
catalogue (with its price) and any variant run with it: where the list carries prices and a
context length (Together's), as a catalogue entry ready to paste.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from eval.commands.output import console
from eval.settings import Settings, build_client
from moa.catalogue import ModelEntry
from moa.errors import ConfigError
from moa.served import ServedModel
from moa.types import ModelError


def listable(settings: Settings, wanted: Sequence[str] | None) -> list[str]:
    """The endpoints to ask: those named, or every OpenAI-compatible one the catalogue uses."""
    endpoints = settings.endpoints
    if wanted:
        unknown = [e for e in wanted if e not in endpoints]
        if unknown:
            raise ConfigError(f"models.endpoints: unknown endpoint(s) {', '.join(unknown)}")
        return list(wanted)
    used = {address.split("/", 1)[0] for address in settings.catalogue_addresses}
    return [e for e in endpoints if e in used and endpoints[e].get("provider") == "openai"]


async def list_models(settings: Settings) -> int:
    catalogue = settings.catalogue
    names = listable(settings, settings.models_endpoints)
    client = build_client(settings, ledger_path=None)
    failed = 0
    try:
        for endpoint in names:
            api = client.endpoint(endpoint).api
            lister = getattr(api, "list_models", None)
            if lister is None or not hasattr(getattr(api, "inner", api), "list_models"):
                console.print(f"{endpoint}: its provider cannot list models")
                continue
            try:
                served = {m.id: m for m in await lister()}
            except ModelError as exc:
                console.print(f"[red]{endpoint}: cannot list its models: {escape(str(exc))}")
                failed += 1
                continue
            _show(endpoint, served, catalogue.on_endpoint(endpoint))
    finally:
        await client.aclose()
    return 1 if failed else 0


def _state(model: ServedModel | None) -> str:
    if model is None:
        return "[red]no longer served"
    return "yes" if model.shutdown is None else f"[yellow]yes, shutdown_date {model.shutdown}"


def entry_of(endpoint: str, model: ServedModel) -> str | None:
    """A catalogue entry for `model` as an override, when its listing carries its prices."""
    if model.price_in is None or model.price_out is None:
        return None
    name = model.id.rsplit("/", 1)[-1].lower()
    prices = f"price_in:{model.price_in:g},price_out:{model.price_out:g}"
    fields = f"address:{endpoint}/{model.id},{prices}"
    if model.context_length:
        fields += f",context_length:{model.context_length}"
    return f"'+catalogue.{name}={{{fields}}}'"


def _show(endpoint: str, served: dict[str, ServedModel], entries: list[ModelEntry]) -> None:
    table = Table(title=f"{endpoint}: {len(served)} models served")
    for column in ("catalogue name", "model id", "USD per M tokens in/out", "served"):
        table.add_column(column, overflow="fold")  # a narrow terminal folds an id, never cuts it
    for entry in entries:
        price = "-" if entry.price_in is None else f"{entry.price_in:g} / {entry.price_out:g}"
        table.add_row(entry.name, entry.model_id, price, _state(served.get(entry.model_id)))
    console.print(table)
    if not served:
        console.print(
            f"[yellow]{endpoint} lists no models: its /v1/models is empty. A self-hosted server "
            "(vLLM, llama.cpp, Ollama) lists what it was started with: check that it is the "
            f"server at endpoints.{endpoint}.base_url and that it has loaded a model"
        )
        return
    others = sorted(set(served) - {e.model_id for e in entries})
    if others:  # every id whole, one a line: each is a model address to copy
        console.print(f"also served, not in the catalogue ({len(others)}):")
        for model_id in others:
            model = served[model_id]
            line = f"  {endpoint}/{model_id}"
            if model.shutdown is not None:
                line += f"  (shutdown_date {model.shutdown})"
            if ready := entry_of(endpoint, model):
                line += f"  catalogue entry: {ready}"
            console.print(escape(line), soft_wrap=True)
