"""Report sections: one builder per probe area, each returning a ``Section`` or None.

A builder reads the marts through ``Context`` (one read-only connection to the snapshot),
checks with ``ctx.has(table)`` that its marts exist and hold rows for the chosen models, and
draws matplotlib figures, one panel per model side by side (or one line per model where
curves compare better on shared axes). ``ctx.x(model, steps)`` puts steps on the report's
x axis: raw steps, or steps over the model's last step when normalised.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable

import duckdb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


@dataclass
class Figure:
    name: str
    png: bytes
    caption: str


@dataclass
class Section:
    key: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    note: str = ""


class Context:
    def __init__(self, con: duckdb.DuckDBPyConnection, models: list[str], normalise: bool,
                 graph_steps: list[int] | None):
        self.con, self.models, self.normalise, self.graph_steps = con, models, normalise, graph_steps
        self._has: dict[str, bool] = {}
        last = self.df("select model_id, max(step) as last_step from marts.dim_checkpoint "
                       "where list_contains($models, model_id) group by 1")
        self.last_step = dict(zip(last["model_id"], last["last_step"].astype(float)))
        cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        self.colors = {m: cycle[i % len(cycle)] for i, m in enumerate(models)}

    def df(self, sql: str, **params) -> pd.DataFrame:
        """``sql`` with ``$models`` bound to the chosen models (and any other named parameters)."""
        params = {"models": self.models, **params} if "$models" in sql else params
        return self.con.execute(sql, params).df()

    def has(self, table: str) -> bool:
        """``marts.<table>`` exists and holds rows for at least one chosen model."""
        if table not in self._has:
            exists = self.con.execute("select count(*) from information_schema.tables where "
                                      "table_schema = 'marts' and table_name = ?", [table]).fetchall()[0][0]
            self._has[table] = bool(exists) and self.con.execute(
                f"select count(*) from (select 1 from marts.{table} where list_contains($models, model_id) "
                "limit 1)", {"models": self.models}).fetchall()[0][0] > 0
        return self._has[table]

    def x(self, model: str, steps) -> np.ndarray:
        steps = np.asarray(steps, dtype=float)
        return steps / self.last_step[model] if self.normalise and self.last_step.get(model) else steps

    @property
    def xlabel(self) -> str:
        return "step / last step" if self.normalise else "step"

    def step_axis(self, ax) -> None:
        """Log-like x axis for raw steps (early checkpoints are log-spaced), linear when normalised."""
        if not self.normalise:
            ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel(self.xlabel)


def build_section(ctx: Context, key: str, title: str, figures: list[Figure],
                  tables: list[tuple[str, str, str]] = ()) -> Section | None:
    """A section of ``figures`` (None when there are none) and, for each (mart, caption, sql)
    whose mart holds rows for the chosen models, the table ``sql`` reads."""
    if not figures:
        return None
    section = Section(key, title, figures)
    section.tables += [(caption, ctx.df(sql)) for mart, caption, sql in tables if ctx.has(mart)]
    return section


def panels(n: int, width: float = 4.6, height: float = 3.6, sharey: bool = False):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), dpi=90, squeeze=False, sharey=sharey)
    return fig, list(axes[0])


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


from analysis.report_sections.weights import weights_section  # noqa: E402
from analysis.report_sections.params import params_section, phases_section  # noqa: E402
from analysis.report_sections.graph import graph_section  # noqa: E402
from analysis.report_sections.residual import residual_section  # noqa: E402

SECTIONS: list[Callable[[Context], Section | None]] = [
    weights_section, params_section, graph_section, residual_section, phases_section]
