"""tools/mask_linkability.py: the per-query AUC that tells how linkable a person's masks are.

Run in the eval tool's interpreter (the tool reads masks with its recognisers), on embeddings made up
so that the answer is known: masks that carry their person score a link, masks that carry nothing
score none."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tools import phantoms

TOOLS = Path(__file__).resolve().parents[2] / "tools"

SCRIPT = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import mask_linkability as ml

rng = np.random.default_rng(0)
identity = np.repeat(np.array([f"p{k}" for k in range(8)], dtype=object), 4)
centres = rng.normal(size=(8, 128))
linked = np.repeat(centres, 4, axis=0) + 0.3 * rng.normal(size=(32, 128))
unlinked = rng.normal(size=(32, 128))
out = {}
for name, emb in (("linked", linked), ("unlinked", unlinked)):
    hits, aucs = ml.per_query(emb, ml.distance_matrix(emb, "dlib"), identity, "dlib")
    out[name] = [float(np.mean(hits)), float(np.mean(aucs))]
_, base = ml.per_query(unlinked, ml.distance_matrix(unlinked, "dlib"), identity, "dlib")
_, more = ml.per_query(linked, ml.distance_matrix(linked, "dlib"), identity, "dlib")
out["difference"] = ml.paired_difference(base, more, identity)
# eight people from two collections; each mask carries its collection and nothing of its person
source = np.array(["a"] * 16 + ["b"] * 16, dtype=object)
by_collection = np.repeat(rng.normal(size=(2, 128)), 16, axis=0) + 0.3 * rng.normal(size=(32, 128))
out["source_only"] = ml.by_source(ml.distance_matrix(by_collection, "dlib"), identity, source)
out["person"] = ml.by_source(ml.distance_matrix(linked, "dlib"), identity, source)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def scores() -> dict:
    python = phantoms.maskeval_python()
    if python is None:
        pytest.fail("maskeval is not installed: run scripts/test, which sets it up from ../shared/eval")
    done = subprocess.run([str(python), "-c", SCRIPT, str(TOOLS)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_masks_that_carry_their_person_are_linked(scores: dict) -> None:
    rank1, auc = scores["linked"]
    assert rank1 == 1.0 and auc == 1.0


def test_masks_that_carry_nothing_of_their_person_are_linked_at_chance(scores: dict) -> None:
    _, auc = scores["unlinked"]
    assert abs(auc - 0.5) < 0.1


def test_a_paired_change_is_reported_with_its_interval(scores: dict) -> None:
    diff = scores["difference"]
    low, high = diff["ci95"]
    assert low <= diff["mean"] <= high and low > 0.3
    assert diff["queries_up"] > diff["queries_down"]


def test_masks_that_carry_only_their_photos_source_are_linked_across_sources_not_within(scores: dict) -> None:
    split = scores["source_only"]
    assert split["auc_other_source"] == 1.0
    assert abs(split["auc_same_source"] - 0.5) < 0.1


def test_masks_that_carry_their_person_are_linked_within_a_source_too(scores: dict) -> None:
    assert scores["person"] == {"auc_same_source": 1.0, "auc_other_source": 1.0}
