"""The report's sections, in the order the report shows them.

Apart from the package's ``__init__`` (the ``Context``, ``Section`` and drawing helpers
every builder imports), so that neither imports the other below its definitions."""

from __future__ import annotations

from collections.abc import Callable

from analysis.report_sections import Context, Section
from analysis.report_sections.graph import graph_section
from analysis.report_sections.params import params_section, phases_section
from analysis.report_sections.residual import residual_section
from analysis.report_sections.weights import weights_section

SECTIONS: list[Callable[[Context], Section | None]] = [
    weights_section,
    params_section,
    graph_section,
    residual_section,
    phases_section,
]
