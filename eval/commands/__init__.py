"""The commands a `task=` value names, each a function of resolved `Settings` (`eval.cli` routes
to them): `run`/`generate`/`judge` (run.py), `plan`, `rescore`, `cache_merge`, `report`, `view`,
`models`, and one prompt through a variant (prompt.py)."""
