"""What an endpoint's model list says about one model, beyond its id.

Providers put more in `GET /v1/models` than the id: OpenAI a `shutdown_date` for a model it is
retiring, Together its prices and context length. These decide whether a run can finish (a
model shut down mid-run) and what a catalogue entry for a current model holds, so they are kept
when the list is read, in whichever of the providers' forms they come.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServedModel:
    id: str
    shutdown: dt.date | None = None  # the day the provider stops serving it, if it said
    price_in: float | None = None  # USD per million tokens, where the list carries prices
    price_out: float | None = None
    context_length: int | None = None

    @classmethod
    def from_listing(cls, item: Mapping[str, Any]) -> ServedModel:
        """One entry of a model list, OpenAI's or Together's; unknown fields are ignored."""
        pricing = item.get("pricing")
        prices = pricing if isinstance(pricing, Mapping) else {}
        context = item.get("context_length")
        return cls(
            id=str(item["id"]),
            shutdown=_day(item.get("shutdown_date")),
            price_in=_number(prices.get("input")),
            price_out=_number(prices.get("output")),
            context_length=int(context) if isinstance(context, int | float) and context else None,
        )


def _day(value: object) -> dt.date | None:
    """A date given as Unix seconds or as ISO text (a date, or a time of day in UTC)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC).date()
    if isinstance(value, str) and value:
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
