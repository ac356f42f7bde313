"""``--param probe.name=value``: typed and range-checked before any job runs.

A parameter's type is its default's (int, float, bool, text); a value of another type, a
non-finite number, or one outside the parameter's range is refused with one line, so
``weights.msd_sample=0`` or ``-5`` (an empty or 5-value sample stored as a success),
``graph.n_prompts=1e12`` (runs until killed), ``weights.sample_seed=1e30`` (overflows the
BIGINT column, after the work is done) and ``nan`` or ``abc`` never reach a probe. A probe
name that does not exist (``weight.x`` for ``weights.x``) is refused, not ignored.

Ranges (documented in the README): counts are at least 1 (0 where the default 0 means
"automatic"); seeds lie in [0, 2**63); ``threads`` in [0, 1024]; sizes have the upper
bounds of ``UPPER`` (``MAX_COUNT`` otherwise); fractions of ``FRACTIONS`` lie in (0, 1].
``batch_size`` may be ``auto``.
"""
from __future__ import annotations

import math
import re
from typing import Any

from ingest.errors import TdwError

MAX_COUNT = 10**9
MAX_SEED = 2**63 - 1
MAX_TEXT = 10_000
UPPER = {"n_prompts": 100_000, "n_items": 1_000_000, "max_items": 1_000_000, "msd_sample": 100_000_000,
         "seq_len": 65_536, "prompt_len": 65_536, "item_len": 65_536, "logits_chunk_mb": 1 << 20,
         "n_permutations": 100_000, "grid": 1_000, "n_pairs": 10_000_000, "max_rows": 100_000_000,
         "batch_size": 1 << 20, "threads": 1024, "cpu_threads": 1024, "unmasking_items": 1_000_000,
         "perturb_prompts": 100_000}
FRACTIONS = {"rms_fraction", "grid_margin"}
AUTO = {"batch_size"}
_INT = re.compile(r"^[+-]?[0-9]+$")


def _int(probe: str, name: str, value: Any, default: int) -> int | str:
    what = f"--param {probe}.{name}"
    if name in AUTO and value == "auto":
        return value
    if isinstance(value, str) and _INT.match(value.strip()):
        value = int(value.strip())
    if type(value) is not int:
        raise TdwError(f"{what} must be an integer{' or auto' if name in AUTO else ''}, got {value!r}")
    low = 0 if ("seed" in name or "threads" in name or default == 0) else 1
    high = MAX_SEED if "seed" in name else UPPER.get(name, MAX_COUNT)
    if not low <= value <= high:
        raise TdwError(f"{what} must be between {low} and {high}, got {value}")
    return value


def _float(probe: str, name: str, value: Any, default: float) -> float:
    what = f"--param {probe}.{name}"
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise TdwError(f"{what} must be a number, got {value!r}") from None
    if type(value) not in (int, float) or not math.isfinite(value):
        raise TdwError(f"{what} must be a finite number, got {value!r}")
    high = 1.0 if name in FRACTIONS else 1e9
    low_ok = value >= 0 if name == "grid_margin" else value > 0 if default > 0 else value >= 0
    if not low_ok or value > high:
        raise TdwError(f"{what} must be {'positive' if default > 0 else 'non-negative'} and at most {high:g}, "
                       f"got {value}")
    return float(value)


def _bool(probe: str, name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise TdwError(f"--param {probe}.{name} must be true or false, got {value!r}")


def check_value(probe: str, name: str, value: Any, default: Any) -> Any:
    """``value`` converted to ``default``'s type and range-checked (see the module docstring)."""
    if value is None:
        return None
    if isinstance(default, bool):
        return _bool(probe, name, value)
    if isinstance(default, int):
        return _int(probe, name, value, default)
    if isinstance(default, float):
        return _float(probe, name, value, default)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TdwError(f"--param {probe}.{name} must be text, got {value!r}")
    text = str(value)
    if len(text) > MAX_TEXT or "\x00" in text:
        raise TdwError(f"--param {probe}.{name} must be text of at most {MAX_TEXT} characters without NUL")
    return text


def check_params(overrides: dict[str, dict], probes: dict[str, type]) -> dict[str, dict]:
    """Every override typed and checked; unknown probe or parameter names refused."""
    out: dict[str, dict] = {}
    for probe, values in overrides.items():
        if probe not in probes:
            raise TdwError(f"--param {probe}.…: no probe named {probe!r}; probes: {', '.join(probes)}")
        defaults = probes[probe].defaults
        for name, value in values.items():
            if name not in defaults:
                raise TdwError(f"probe {probe!r} has no parameter {name!r}; "
                               f"its parameters: {', '.join(sorted(defaults))}")
            out.setdefault(probe, {})[name] = check_value(probe, name, value, defaults[name])
    return out
