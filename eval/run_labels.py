"""What made a run's numbers, in words: the endpoints that generated its answers, its judge, and
the model that really answered a name.

Every row of the report names the judge and the provider, so that numbers from different judges
or made on a fake model are never read as the same kind of number. A `local` endpoint answers
every model name with the embedded SmolLM2 (`provider_override=local` sends Qwen1.5-110B-Chat's
calls there): such a call is shown as `smollm2 (standing in for qwen1.5-110b)`, never under the
other model's name, and counted with SmolLM2's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eval.rundir import RunIdentity
from moa.catalogue import Catalogue, ModelEntry, unbilled_endpoints

LOCAL = "local"  # the provider of the embedded model (`moa.providers.local`)
EMBEDDED_ID = "smollm2-135m-instruct"  # its model id, as the catalogue's `smollm2` names it


def endpoints(identity: RunIdentity) -> list[str]:
    """The endpoints of a run's models (every layer's and the final agent's), sorted."""
    return sorted({a.model.split("/", 1)[0] for a in identity.agents})


def provider(identity: RunIdentity) -> str:
    """Where a run's answers were generated, e.g. `together, openai`, `scripted`, `replay`."""
    return ", ".join(endpoints(identity))


class Namer:
    """Names models as a person should read them: by catalogue name, and a name a `local`
    endpoint answers with the embedded model as the stand-in it is."""

    def __init__(self, catalogue: Catalogue, endpoints: Mapping[str, Mapping[str, Any]]) -> None:
        self.catalogue = catalogue
        self.local = {n for n, spec in endpoints.items() if spec.get("provider") == LOCAL}
        self.free = unbilled_endpoints(endpoints)  # whose calls are priced free

    def stands_in(self, address: str) -> bool:
        """Whether `address` is answered by the embedded model under another model's name."""
        endpoint, _, model_id = address.partition("/")
        return endpoint in self.local and model_id != EMBEDDED_ID

    def served(self, address: str) -> ModelEntry:
        """The model that answers `address`: the embedded model's entry (its size) for a stand-in
        (priced free: a `local` endpoint bills nothing)."""
        if not self.stands_in(address):
            return self.catalogue.by_address(address)
        endpoint = address.partition("/")[0]
        return self.catalogue.by_address(f"{endpoint}/{EMBEDDED_ID}")

    def __call__(self, address: str) -> str:
        """`qwen1.5-110b`; `smollm2 (standing in for qwen1.5-110b)` for a stand-in."""
        name = self.catalogue.by_address(address).name
        if not self.stands_in(address):
            return name
        return f"{self.served(address).name} (standing in for {name})"

    def provider(self, identity: RunIdentity) -> str:
        """`provider`, the stand-in said: `local (smollm2 standing in for the named models)`."""
        said = provider(identity)
        addresses = [a.model for a in identity.agents]
        if any(self.stands_in(a) for a in addresses):
            embedded = self.served(next(a for a in addresses if self.stands_in(a))).name
            said += f" ({embedded} standing in for the named models)"
        return said

    def shown(self, address: str) -> str:
        """An address as it is, a stand-in's as `smollm2 (standing in for qwen1.5-110b)`."""
        return self(address) if self.stands_in(address) else address

    def judge(self, address: str) -> str:
        """A judge's address, a stand-in said: `local/gpt-4-1106-preview: smollm2 (standing in
        for gpt-4-turbo)`."""
        return f"{address}: {self(address)}" if self.stands_in(address) else address
