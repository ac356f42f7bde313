"""`tdw report` on the toy warehouse: sections follow the marts, figures are real PNGs embedded
in a page that needs no network, unknown models are named, and (in headless Chromium) the
page loads without console errors and every plot decodes."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import duckdb
import matplotlib.image as mpimg
import pytest

from analysis.report import write_report
from ingest.errors import TdwError
from tests.conftest import TOY_MODELS
from warehouse.snapshot import snapshot_path

AREAS = {  # section key -> marts any one of which fills it
    "weights": ("fct_weight_density", "fct_msd"),
    "params": ("fct_perplexity", "fct_covariance_rank"),
    "graph": ("fct_node_centrality", "fct_edge_weight_distribution", "fct_graph_edges"),
    "residual": ("fct_residual_trajectory", "fct_residual_dynamics"),
    "phases": ("fct_phase_alignment", "fct_phases"),
}


@pytest.fixture(scope="module")
def report(built_warehouse, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    return write_report(built_warehouse, list(TOY_MODELS), out), built_warehouse


def marts_with_rows(warehouse: Path) -> set[str]:
    con = duckdb.connect(str(snapshot_path(warehouse)), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        ]
        return {n for n in names if con.execute(f"select count(*) from marts.{n}").fetchone()[0] > 0}
    finally:
        con.close()


def test_sections_follow_the_marts_that_hold_data(report):
    result, wh = report
    full = marts_with_rows(wh)
    expected = {key for key, marts in AREAS.items() if set(marts) & full}
    assert set(result.sections) == expected
    assert "weights" in expected


def test_figures_are_pngs_embedded_in_a_self_contained_page(report):
    result, _ = report
    page = result.html.read_text()
    assert result.figures and all(p.exists() and p.parent == result.html.parent for p in result.figures)
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == len(result.figures)
    for path, data in zip(result.figures, embedded):
        assert base64.b64decode(data) == path.read_bytes()
        img = mpimg.imread(path)
        assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0.01  # not blank
    # nothing to fetch at view time: no external scripts, styles, images or fonts
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page and "@import" not in page


def test_unknown_model_names_the_models_present(built_warehouse, tmp_path):
    with pytest.raises(TdwError, match=r"not in the warehouse: nobody/model-x; it holds: toy/neox-2l, toy/neox-3l"):
        write_report(built_warehouse, ["toy/neox-2l", "nobody/model-x"], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_normalised_steps_and_one_model(built_warehouse, tmp_path):
    result = write_report(built_warehouse, ["toy/neox-3l"], tmp_path / "one.html", normalise_steps=True)
    page = result.html.read_text()
    assert "fraction of each model's last step" in page and "toy/neox-2l" not in page
    assert result.figures


# ---- the browser test -------------------------------------------------------------------------


def chromium_binary() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    try:  # the test setup installs Debian's chromium where it can (root, apt reachable)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"],
            capture_output=True,
            timeout=240,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return shutil.which("chromium")


class Page:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id, self.events = 0, []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self.events.append(json.loads(self.ws.recv()))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = chromium_binary()
    if binary is None:
        pytest.skip(
            "Chromium is not installed and could not be installed (apt-get install chromium needs "
            "root and the Debian mirror)"
        )
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen(
        [
            binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            f"--user-data-dir={profile}",
            "--window-size=1400,1000",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = None
    for line in proc.stderr:  # Chromium prints its DevTools address once it listens
        if "DevTools listening on ws://" in line:
            port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
            break
    if port is None:
        proc.kill()
        pytest.fail("Chromium did not start its DevTools endpoint")
    yield port
    proc.terminate()
    proc.wait(timeout=20)


def test_report_renders_in_headless_chromium(report, browser, tmp_path_factory):
    result, _ = report
    targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{browser}/json/list", timeout=30).read())
    page = Page(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
    for domain in ("Page", "Runtime", "Log"):
        page.call(f"{domain}.enable")
    page.events.clear()
    page.call("Page.navigate", url=result.html.resolve().as_uri())
    page.wait_for("Page.loadEventFired")
    drawn = page.call(
        "Runtime.evaluate", expression="document.body.getAttribute('data-plots-drawn')", returnByValue=True
    )["result"]["value"]
    sizes = page.call(
        "Runtime.evaluate",
        returnByValue=True,
        expression=("Array.from(document.querySelectorAll('img.plot')).map(i => [i.naturalWidth, i.naturalHeight])"),
    )
    errors = [
        e
        for e in page.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    out = tmp_path_factory.mktemp("screenshot") / "report.png"
    out.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {out}")
    assert errors == []
    n = len(result.figures)
    assert drawn == f"{n}/{n}" and n > 0
    assert all(w > 100 and h > 100 for w, h in sizes["result"]["value"])
    assert mpimg.imread(out).shape[0] > 1000  # the whole page, not one viewport
