"""The background worker of ``tdw.trainer.TdwCallback``: ``python -m tdw.live REQUEST_JSON``.

It reads step numbers on stdin, one a line, ingests each checkpoint of the request's
directory in that order (``warehouse.watch.serve_steps``: the plan ``tdw ingest`` would
build), writes one JSON record a step on stdout, and exits when stdin closes — after the
queue is empty. It runs at a lower CPU priority (``nice``) than the training that started
it. Kept apart from ``tdw.trainer`` so the worker never imports the Trainer.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from warehouse.paths import confine_warehouse
    from warehouse.pipeline import IngestRequest
    from warehouse.watch import emit_json, serve_steps

    spec = json.loads(argv[0])
    nice = int(spec.pop("nice", 0))
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass
    emit = emit_json(sys.stdout)
    try:
        spec["warehouse"] = confine_warehouse(Path(spec["warehouse"]))
        req = IngestRequest(**spec)
    except Exception as e:  # a TdwError, or a field the request does not know
        emit({"fatal": str(e).splitlines()[0] if str(e) else type(e).__name__})
        return 1
    return serve_steps(req, sys.stdin, emit)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
