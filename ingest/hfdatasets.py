"""Evaluation texts from a Hugging Face ``datasets`` dataset: ``hf:<name>[:<config>]:<split>[:<column>]``.

The seed paper measured perplexity on the first 500 items of LAMBADA's test split; a
researcher names such a set as ``hf:EleutherAI/lambada_openai:en:test`` (with
``max_items=500``) instead of exporting it to a file. The spec's fields are separated by
colons and read positionally:

- ``hf:<name>:<split>`` — the dataset's default configuration;
- ``hf:<name>:<config>:<split>`` — a named configuration;
- ``hf:<name>:<config>:<split>:<column>`` — the text column (an empty config, as in
  ``hf:<name>::<split>:<column>``, is the default one). Without a column, ``text`` is
  read, or the only string column when there is no ``text``.

``<name>`` is a hub id, a local folder of data files, or a folder written by
``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``. Loading goes through
``datasets.load_dataset``, which reads the ``datasets`` cache when the hub is unreachable
or ``HF_HUB_OFFLINE=1`` / ``HF_DATASETS_OFFLINE=1`` is set (the Makefile sets the former):
a dataset loaded once online works offline after. Nothing here is downloaded in the tests.
Every failure — a malformed spec, an unknown dataset, config, split or column, a column
that is not text — is one ``TdwError`` line, raised when the probe's parameters are checked,
before any job runs.
"""

from __future__ import annotations

from pathlib import Path

from ingest.errors import TdwError

PREFIX = "hf:"


def parse_hf(spec: str) -> tuple[str, str | None, str, str | None]:
    """(name, config or None, split, column or None) of ``hf:...`` (the prefix optional)."""
    rest = spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec
    parts = rest.split(":")
    if len(parts) == 2:
        name, config, split, column = parts[0], "", parts[1], ""
    elif len(parts) in (3, 4):
        name, config, split = parts[:3]
        column = parts[3] if len(parts) == 4 else ""
    else:
        parts = []
    if not parts or not name.strip() or not split.strip():
        raise TdwError(
            f"malformed dataset spec {spec!r}: expected hf:<name>[:<config>]:<split>[:<column>] "
            "(hf:<name>::<split>:<column> for a column of the default config)"
        )
    return name.strip(), config.strip() or None, split.strip(), column.strip() or None


def _first_line(e: BaseException) -> str:
    """datasets' message on one line (it puts the available configs on a second one)."""
    text = "; ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())
    return text[:300] if text else type(e).__name__


def _load(name: str, config: str | None, split: str):
    try:
        import datasets
    except ImportError:
        raise TdwError("hf: evaluation sets need the `datasets` package (pip install datasets)") from None
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    folder = Path(name).expanduser()
    try:
        if folder.is_dir() and any((folder / f).is_file() for f in ("dataset_dict.json", "state.json")):
            loaded = datasets.load_from_disk(str(folder))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise TdwError(f"dataset {name!r} has no split {split!r} (splits: {', '.join(loaded)})")
                return loaded[split]
            return loaded  # one saved Dataset: the split names it in the marts only
        return datasets.load_dataset(name, config, split=split)
    except TdwError:
        raise
    except (datasets.exceptions.DatasetNotFoundError, FileNotFoundError, ConnectionError) as e:
        raise TdwError(
            f"dataset {name!r} not found: not on the hub (or the hub is unreachable) and not in the datasets "
            f"cache {datasets.config.HF_DATASETS_CACHE} ({_first_line(e)})"
        ) from None
    except ValueError as e:  # an unknown split or config: datasets says which exist
        raise TdwError(f"dataset {name!r}: {_first_line(e)}") from None
    except Exception as e:  # anything else datasets raises on a broken dataset
        raise TdwError(f"cannot load dataset {name!r}: {type(e).__name__}: {_first_line(e)}") from None


def hf_texts(spec: str, max_rows: int = 0) -> tuple[str, list[str]]:
    """(the set's name in the marts, its texts in dataset order; the first ``max_rows`` when > 0)."""
    name, config, split, column = parse_hf(spec)
    ds = _load(name, config, split)
    columns = list(ds.column_names)
    if column is None:
        strings = [c for c, f in ds.features.items() if getattr(f, "dtype", None) in ("string", "large_string")]
        column = "text" if "text" in columns else strings[0] if len(strings) == 1 else None
        if column is None:
            raise TdwError(f"dataset {name!r} has no 'text' column: name one (columns: {', '.join(columns)})")
    elif column not in columns:
        raise TdwError(f"dataset {name!r} has no column {column!r} (columns: {', '.join(columns)})")
    if max_rows:
        ds = ds.select(range(min(max_rows, len(ds))))
    texts = ds[column]
    if not all(isinstance(t, str) for t in texts):
        raise TdwError(f"dataset {name!r}: column {column!r} does not hold text")
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise TdwError(f"dataset {name!r} {split!r} {column!r} is empty")
    shown = Path(name).name if Path(name).expanduser().exists() else name  # a local folder: its name
    label = ":".join(x for x in (shown, config, split) if x)
    return label, texts
