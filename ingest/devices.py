"""Devices and dtypes for the probes that run a model.

``--device auto`` means CUDA when a GPU is there (locally: torch sees one; on Ray: the
cluster declares GPU resources), else the CPU. Asking for CUDA where there is none is an
error before any job starts. The model's dtype is the user's choice: float32 by default
(every measure in METHODS.md is specified in float32); bfloat16 or float16 halve the memory
of large models but change the measures themselves (perplexity, graph edge weights and
residual metrics move in their third or fourth significant digit), so the dtype is a probe
parameter and part of every job's lineage, never silently mixed within one series.
"""

from __future__ import annotations

from ingest.errors import TdwError

DTYPES = ("float32", "bfloat16", "float16", "float64")
DEVICES = ("auto", "cpu", "cuda")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_device(name: str, have_gpu: bool | None = None) -> str:
    """'cpu', 'cuda' or 'cuda:N' from what the user asked; ``have_gpu`` defaults to torch's view."""
    name = str(name)
    if name not in DEVICES and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise TdwError(f"unknown device {name!r}; use one of: auto, cpu, cuda, cuda:N")
    if have_gpu is None and name != "cpu":
        have_gpu = cuda_available()
    if name == "auto":
        return "cuda" if have_gpu else "cpu"
    if name.startswith("cuda") and not have_gpu:
        raise TdwError(f"device {name!r} requested but no CUDA GPU is available")
    return name


def torch_dtype(name: str):
    import torch

    if name not in DTYPES:
        raise TdwError(f"unknown dtype {name!r}; use one of: {', '.join(DTYPES)}")
    return getattr(torch, name)


def device_of(module):
    """The device of a model (plain or nnsight-wrapped): where its inputs must go."""
    return next(module.parameters()).device


def load(checkpoint, params: dict):
    """The checkpoint's model on the job's device, in the job's dtype (shared per checkpoint)."""
    return checkpoint.load_model(
        dtype=torch_dtype(str(params.get("dtype", "float32"))), device=resolve_device(str(params.get("device", "cpu")))
    )


def apply(
    params_by: dict[str, dict], defaults_by: dict[str, dict], explicit: dict[str, dict], device: str, dtype: str | None
) -> None:
    """Set the resolved device (and the dtype, when given) on every probe that has those
    parameters, unless ``--param probe.device=…`` set them for that probe explicitly."""
    if dtype is not None and dtype not in DTYPES:
        raise TdwError(f"unknown dtype {dtype!r}; use one of: {', '.join(DTYPES)}")
    for name, params in params_by.items():
        given = explicit.get(name, {})
        if "device" in defaults_by[name] and "device" not in given:
            params["device"] = device
        if dtype is not None and "dtype" in defaults_by[name] and "dtype" not in given:
            params["dtype"] = dtype
        if "dtype" in params:
            torch_dtype(str(params["dtype"]))
