"""Test-only fault injection for worker processes (never on the service's own import path).

The hardening tests put this folder on ``PYTHONPATH`` of a worker they start; the interpreter
imports ``sitecustomize`` at start-up, and this module then patches ``workers.runner`` the moment it
is imported (torch is not loaded early: the Celery parent must stay free of it). Settings:

``DMASK_FAULT_CRASH_MARKER``
    A job whose original contains these bytes kills its process with ``os.abort()`` (SIGABRT, like a
    decoder segfault) every time: a poison job.
``DMASK_FAULT_SLOW_MARKER`` / ``DMASK_FAULT_SLOW_S``
    A video whose original contains these bytes is held for this many seconds inside the render and
    encode loop (its first progress report past 0.7: every frame analysed, the first output frame
    encoded, the rest not), reporting progress every 0.2 s, so a test can signal the worker while
    the decoder and encoder are open and the output is unfinished.
``DMASK_FAULT_LOST_COMMIT_MARKER``
    In the API process: the first upload whose Idempotency-Key contains this text is committed, then
    its COMMIT answer is "lost" (the connection error a PostgreSQL restart gives at that moment).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

CRASH = os.environ.get("DMASK_FAULT_CRASH_MARKER", "").encode()
SLOW = os.environ.get("DMASK_FAULT_SLOW_MARKER", "").encode()
SLOW_S = float(os.environ.get("DMASK_FAULT_SLOW_S", "0") or 0)
LOST_COMMIT = os.environ.get("DMASK_FAULT_LOST_COMMIT_MARKER", "")


def _held_mid_render(progress: Any) -> Any:
    """``progress`` that, at its first report from the render loop (models.api reports analysis up
    to 0.7, then 0.7 + 0.3 x frames written), holds the masking thread for ``SLOW_S`` seconds."""
    held = False

    def report(value: float) -> None:
        nonlocal held
        progress(value)
        if not held and 0.7 < value < 1.0:
            held = True
            end = time.monotonic() + SLOW_S
            while time.monotonic() < end:
                progress(value)
                time.sleep(0.2)

    return report


def _patch_runner(runner: Any) -> None:
    original = runner.mask_media

    def mask_media(settings: Any, src: Path, workdir: Path, progress: Any, record_id: str) -> Any:
        data = Path(src).read_bytes()
        if CRASH and CRASH in data:
            os.abort()
        if SLOW and SLOW in data:
            progress = _held_mid_render(progress)
        return original(settings, src, workdir, progress, record_id)

    runner.mask_media = mask_media


def _patch_media_service(service: Any) -> None:
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    original = service.record_upload
    lost: set[str] = set()

    def record_upload(
        session: Any, ctx: Any, principal: Any, record_id: str, received: Any, idem_key: Any
    ) -> Any:
        accepted = original(session, ctx, principal, record_id, received, idem_key)
        if idem_key and LOST_COMMIT in idem_key and idem_key not in lost:
            lost.add(idem_key)

            def lose_answer(_session: Any) -> None:
                raise OperationalError(
                    "COMMIT", {}, ConnectionError("server closed the connection unexpectedly")
                )

            event.listen(session, "after_commit", lose_answer, once=True)
        return accepted

    service.record_upload = record_upload


class _Finder(importlib.abc.MetaPathFinder):
    """Patches each target module right after it is first executed."""

    def __init__(self, targets: dict[str, Any]) -> None:
        self.targets = targets

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        patch = self.targets.pop(name, None)
        if patch is None:
            return None
        if not self.targets:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def patched_exec(module: Any) -> None:
            exec_module(module)
            patch(module)

        loader.exec_module = patched_exec  # type: ignore[method-assign]
        return spec


_targets: dict[str, Any] = {}
if CRASH or SLOW:
    _targets["workers.runner"] = _patch_runner
if LOST_COMMIT:
    _targets["services.media.service"] = _patch_media_service
if _targets:
    sys.meta_path.insert(0, _Finder(_targets))
