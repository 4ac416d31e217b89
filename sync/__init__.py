"""The daemon. Flat core: `cli`, `engine` (one cycle: `pull`, `build`, `reconcile`, `cycle_flow`),
`leases`, `daemon`, `health`, `metrics`, `logs`, `progress`, `report`, `demo`; sub-systems in
`state/` (the store), `doctor/` (read-only checks) and `webhooks/` (authenticated deliveries).
Imports every layer: `connectors`, `mapping`, `review`, `config` (and `sandbox` for the demo).
"""

from __future__ import annotations

__all__: list[str] = []
