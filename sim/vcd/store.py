"""State plus its home on disk: ``state.json`` and the uploaded bytes under ``templates/``.

``state.json`` is rewritten atomically (temp file, fsync, rename) after every change, so a
simulator restarted on the same data dir finds its catalogs, templates, vApps and the bytes
of half-finished uploads again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import structlog

from sim.vcd.errors import VcdError
from sim.vcd.model import State
from sim.vcd.seed import DEFAULT_SEED, Seed, build_state

log = structlog.get_logger()

STATE_FILE = "state.json"


class Store:
    def __init__(self, data_dir: Path, state: State) -> None:
        self.data_dir = data_dir
        self.state = state

    @classmethod
    def open(cls, data_dir: Path, seed: Seed | None = None) -> Store:
        """Load ``state.json`` from ``data_dir``, or build the state from the seed."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / STATE_FILE
        if path.exists():
            state = State.model_validate_json(path.read_bytes())
            log.info("vcdsim.state_loaded", path=str(path), templates=len(state.templates))
        else:
            state = build_state(seed or DEFAULT_SEED)
        store = cls(data_dir, state)
        store.save()
        return store

    def save(self) -> None:
        path = self.data_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(self.state.model_dump_json(indent=1).encode())
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)

    def template_dir(self, template_id: str) -> Path:
        return self.data_dir / "templates" / template_id

    def file_path(self, template_id: str, name: str) -> Path:
        """Where a template's file lives. Names come from descriptors: no paths allowed."""
        if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
            raise VcdError(400, "BAD_REQUEST", f"Invalid file name {name!r}.")
        return self.template_dir(template_id) / name

    def remove_template_files(self, template_id: str) -> None:
        shutil.rmtree(self.template_dir(template_id), ignore_errors=True)

    def vapp_dir(self, vapp_id: str) -> Path:
        return self.data_dir / "vapps" / vapp_id

    def remove_vapp_files(self, vapp_id: str) -> None:
        shutil.rmtree(self.vapp_dir(vapp_id), ignore_errors=True)

    @staticmethod
    def copy_files(src: Path, dst: Path, names: list[str]) -> None:
        """Copy (hard-link where the file system allows) the named files from src to dst."""
        dst.mkdir(parents=True, exist_ok=True)
        for name in names:
            target = dst / name
            target.unlink(missing_ok=True)
            try:
                os.link(src / name, target)
            except OSError:
                shutil.copy2(src / name, target)
