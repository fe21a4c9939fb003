"""Byte sizes as administrators write them: `25MB`, `10 MiB`, `512KB`, `1048576`.

K/M/G are binary (1024-based) whether written `MB` or `MiB`: a file that the
sender's desktop shows as "25 MB" must not be refused by a 25 MB limit.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024,
          "M": 1024**2, "MB": 1024**2, "MIB": 1024**2,
          "G": 1024**3, "GB": 1024**3, "GIB": 1024**3}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"bad size {value!r}: expected e.g. 25MB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"bad size {value!r}: must not be negative")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m and m.group(2).upper() in _UNITS:
            return int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    raise ValueError(f"bad size {value!r}: expected a number with an optional unit "
                     "(B, KB, MB, GB), e.g. 25MB")


def format_size(n: int) -> str:
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= factor and n % (factor // 1024 or 1) == 0:
            value = n / factor
            return f"{value:g}{unit}"
    return f"{n}B"


ByteSize = Annotated[int, BeforeValidator(parse_size)]
