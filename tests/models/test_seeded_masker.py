"""The paired-comparison masker fixes one appearance draw per file content and run seed, so two model
versions can be compared on identical draws; a different run seed gives a different draw."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

_PHOTO = "faces/kate_winslet/1.jpg"


def test_the_same_run_seed_gives_the_same_mask_whatever_the_file_is_called(
    shared_data: Path, tmp_path: Path, load_tool: Callable[[str], ModuleType]
) -> None:
    seeded_masker = load_tool("seeded_masker")
    renamed = tmp_path / "renamed.jpg"
    shutil.copyfile(shared_data / _PHOTO, renamed)
    seeded_masker.main(["--seed", "1", str(shared_data / _PHOTO), str(tmp_path / "a.jpg")])
    seeded_masker.main(["--seed", "1", str(renamed), str(tmp_path / "b.jpg")])
    assert (tmp_path / "a.jpg").read_bytes() == (tmp_path / "b.jpg").read_bytes()


def test_another_run_seed_draws_another_appearance(
    shared_data: Path, tmp_path: Path, load_tool: Callable[[str], ModuleType]
) -> None:
    seeded_masker = load_tool("seeded_masker")
    seeded_masker.main(["--seed", "1", str(shared_data / _PHOTO), str(tmp_path / "a.jpg")])
    seeded_masker.main(["--seed", "2", str(shared_data / _PHOTO), str(tmp_path / "b.jpg")])
    assert (tmp_path / "a.jpg").read_bytes() != (tmp_path / "b.jpg").read_bytes()
