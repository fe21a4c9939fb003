"""How long the fuzz targets run: briefly in `make test`, longer on demand.

GATEWAY_FUZZ_EXAMPLES sets hypothesis' examples per target (default 40). The
short default run is derandomised, so `make test` is repeatable on any machine;
a longer run (the variable set) explores new inputs each time and keeps what it
finds in hypothesis' example database (.hypothesis/). No per-example deadline:
a loaded 2-core machine must not turn a slow example into a failure.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_EXAMPLES = os.environ.get("GATEWAY_FUZZ_EXAMPLES")

FUZZ = settings(
    max_examples=int(_EXAMPLES) if _EXAMPLES else 40,
    deadline=None,
    derandomize=_EXAMPLES is None,
    database=None if _EXAMPLES is None else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
    print_blob=True,
)
