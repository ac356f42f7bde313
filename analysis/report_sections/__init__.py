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
    def __init__(
        self, con: duckdb.DuckDBPyConnection, models: list[str], normalise: bool, graph_steps: list[int] | None
    ):
        self.con, self.models, self.normalise, self.graph_steps = con, models, normalise, graph_steps
        self._has: dict[str, bool] = {}
        last = self.df(
            "select model_id, max(step) as last_step from marts.dim_checkpoint "
            "where list_contains($models, model_id) group by 1"
        )
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
            exists = self.con.execute(
                "select count(*) from information_schema.tables where table_schema = 'marts' and table_name = ?",
                [table],
            ).fetchall()[0][0]
            self._has[table] = (
                bool(exists)
                and self.con.execute(
                    f"select count(*) from (select 1 from marts.{table} where list_contains($models, model_id) "
                    "limit 1)",
                    {"models": self.models},
                ).fetchall()[0][0]
                > 0
            )
        return self._has[table]

    def x(self, model: str, steps) -> np.ndarray:
        steps = np.asarray(steps, dtype=float)
        return steps / self.last_step[model] if self.normalise and self.last_step.get(model) else steps

    @property
    def xlabel(self) -> str:
        return "step / last step" if self.normalise else "step"

    @property
    def capability(self) -> dict[str, float]:
        """Each model's capability transition (fct_phase_alignment.capability_step), if any."""
        if not hasattr(self, "_capability"):
            self._capability = {}
            if self.has("fct_phase_alignment"):
                cols = self.df(
                    "select column_name from information_schema.columns where "
                    "table_schema = 'marts' and table_name = 'fct_phase_alignment'"
                )["column_name"]
                if "capability_step" in set(cols):
                    rows = self.df(
                        "select model_id, capability_step from marts.fct_phase_alignment "
                        "where list_contains($models, model_id) and capability_step is not null"
                    )
                    self._capability = dict(zip(rows["model_id"], rows["capability_step"].astype(float)))
        return self._capability

    def mark_capability(self, ax, models: list[str] | None = None, y: tuple[float, float] | None = None) -> None:
        """A dotted vertical line at each model's capability transition (the induction loss's
        half-drop): black on a one-model panel, else in the model's colour; within ``y`` (data
        units) when given."""
        chosen = models or self.models
        for model in chosen:
            if model in self.capability:
                at = self.x(model, [self.capability[model]])[0]
                color = "black" if len(chosen) == 1 else self.colors[model]
                label = f"{model}: capability transition"
                if y is None:
                    ax.axvline(at, ls=":", lw=1.3, color=color, label=label)
                else:
                    ax.vlines(at, *y, ls=":", lw=1.3, color=color, label=label)

    def step_axis(self, ax, linear: bool = False) -> None:
        """Log-like x axis for raw steps (early checkpoints are log-spaced), linear when normalised
        or when ``linear`` (a figure that must match a paper's linear axes, e.g. MSD)."""
        if not self.normalise and not linear:
            ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)  # steps start at 0: no negative decades
        ax.set_xlabel(self.xlabel)


def build_section(
    ctx: Context, key: str, title: str, figures: list[Figure], tables: list[tuple[str, str, str]] = ()
) -> Section | None:
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
