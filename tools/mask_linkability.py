"""How linkable are a person's masks to each other? A finer measure than the eval tool's Mask2Mask rank-1.

Why: the eval tool's Mask2Mask is the rank-1 rate over 193 photo queries, so one query moves it by
0.005, and the bound (0.088) sits at the level the masks reach. One query is below what rank-1 can
resolve: the same rendering with the same appearance draws gave 0.083 on one machine and 0.093 on
another (float-level differences between CPUs move a few photos' nearest neighbours;
models/README.md, "Mask2Mask at one query"). This tool masks the shared photos with each variant's
command and reads every mask with the eval tool's recognisers, as its Mask2Mask does (mask against mask,
of other photos). Besides rank-1 it reports, per query, the AUC: the share of (same-person mask,
other-person mask) pairs in which the same person's mask is the nearer. 0.5 is no link. Every query
counts, not only the ones whose nearest neighbour flips; variants are compared per query on the same
photos, with a bootstrap over identities for the interval.

Run in the eval venv (it imports maskeval, nothing of models/):

    $DMASK_MASKEVAL_PYTHON tools/mask_linkability.py --data ../shared/data \\
        --variant 'landed=cd REPO && .venv/bin/python tools/seeded_masker.py --seed 1 {in} {out}' \\
        --variant 'change=cd WORKTREE && REPO/.venv/bin/python tools/seeded_masker.py --seed 1 {in} {out}' \\
        --out result.json

Masks and readings are cached (``--work``), so a rerun with one more variant masks only that one.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from maskeval import analyze, media, metrics

RECOGNISERS = ("dlib", "sface")
BOOTSTRAP = 2000


def mask_photos(command: str, data: Path, photos: list[str], out_dir: Path) -> dict[str, Path]:
    """Each photo masked by ``command`` (``{in}`` and ``{out}`` filled in); a photo whose masking
    fails is left out (the eval tool counts it as a masker failure)."""
    masks: dict[str, Path] = {}
    for rel in photos:
        dst = out_dir / rel
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            cmd = command.replace("{in}", shlex.quote(str(data / rel))).replace(
                "{out}", shlex.quote(str(dst))
            )
            if subprocess.run(cmd, shell=True, capture_output=True).returncode != 0 or not dst.exists():
                continue
        masks[rel] = dst
    return masks


def embeddings(data: Path, masks: dict[str, Path], cache: analyze.Cache) -> dict[str, dict[str, np.ndarray]]:
    """Each mask's embedding by each recogniser, read as the eval tool reads a masked photo."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for rel, dst in masks.items():
        src = str(data / rel)
        original = analyze.analyze_photo_original(src, cache)
        if not original.get("face"):
            continue
        masked = analyze.analyze_photo_masked(str(dst), original, media.file_sha1(src), cache)
        if "emb_dlib" in masked:
            out[rel] = {r: np.asarray(masked[f"emb_{r}"], np.float64) for r in RECOGNISERS}
    return out


def distance_matrix(emb: np.ndarray, recogniser: str) -> np.ndarray:
    """(n, n) distances between every pair of masks, by the recogniser's own distance; computed once
    per variant and recogniser, for every AUC taken from it."""
    distance, _ = metrics.RECOGNISERS[recogniser]
    return np.stack([np.asarray(distance(e, emb), np.float64) for e in emb])


def per_query(
    emb: np.ndarray, dist: np.ndarray, identity: np.ndarray, recogniser: str
) -> tuple[np.ndarray, np.ndarray]:
    """Rank-1 hit (the eval tool's own Mask2Mask rule, ``metrics.reid``) and AUC of each query mask
    against the other masks (NaN where the query's person has no other mask); ``dist`` is
    ``distance_matrix(emb, recogniser)``."""
    source = [f"p{k}" for k in range(len(identity))]  # every photo its own source, as the eval's photos
    ranked = metrics.reid(emb, identity, source, emb, identity, source, recogniser)["per_query"]
    hits = np.array([np.nan if q is None else float(q[0]) for q in ranked])
    return hits, query_aucs(dist, identity)


def query_aucs(dist: np.ndarray, identity: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
    """Per query, the share of (same-person mask, other-person mask) pairs in which the same person's
    is the nearer, over the other-person masks that ``counted[query]`` marks (all, without it; NaN
    where the query has no mate or no such other-person mask)."""
    n = len(identity)
    aucs = np.full(n, np.nan)
    for q in range(n):
        others = np.arange(n) != q
        mates = others & (identity == identity[q])
        strangers = others & ~mates & (True if counted is None else counted[q])
        if not mates.any() or not strangers.any():
            continue
        aucs[q] = float((dist[q, mates][:, None] < dist[q, strangers][None, :]).mean())
    return aucs


def by_source(dist: np.ndarray, identity: np.ndarray, source: np.ndarray) -> dict[str, float]:
    """Mean AUC against other people's masks from photos of the query's own source, and from other
    sources (``dist`` as ``distance_matrix`` gives it). Why: the shared photos come from a few
    collections, each person's from one, so a mask that keeps anything of how its collection
    photographs (framing, size, pose habits) links a person's masks without carrying the person;
    within one source that link is gone, and what is left is the person (or the eye signs the masks
    keep on purpose)."""
    same = source[:, None] == source[None, :]
    return {
        "auc_same_source": round(float(np.nanmean(query_aucs(dist, identity, same))), 4),
        "auc_other_source": round(float(np.nanmean(query_aucs(dist, identity, ~same))), 4),
    }


def paired_difference(
    base: np.ndarray, other: np.ndarray, identity: np.ndarray, seed: int = 0
) -> dict[str, Any]:
    """Mean per-query change from ``base`` to ``other``, with a 95% interval from resampling
    identities (a person's photos are not independent queries)."""
    ok = np.isfinite(base) & np.isfinite(other)
    diff, ids = other[ok] - base[ok], identity[ok]
    people = np.unique(ids)
    by_person = [diff[ids == p] for p in people]
    rng = np.random.default_rng(seed)
    boots = [
        np.concatenate([by_person[i] for i in rng.integers(0, len(people), len(people))]).mean()
        for _ in range(BOOTSTRAP)
    ]
    return {
        "mean": round(float(diff.mean()), 4),
        "ci95": [round(float(np.percentile(boots, 2.5)), 4), round(float(np.percentile(boots, 97.5)), 4)],
        "queries_up": int((diff > 0).sum()),
        "queries_down": int((diff < 0).sum()),
    }


def compare(
    readings: dict[str, dict[str, dict[str, np.ndarray]]],
    identities: dict[str, str],
    sources: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Rank-1 and mean AUC per variant and recogniser, on the photos every variant masked (with
    ``sources``, the AUC within and across sources too: ``by_source``); each variant after the first
    against the first, per query."""
    labels = list(readings)
    common = sorted(set.intersection(*(set(r) for r in readings.values())))
    identity = np.array([identities[p] for p in common], dtype=object)
    source = None if sources is None else np.array([sources[p] for p in common], dtype=object)
    result: dict[str, Any] = {"photos": len(common), "variants": {}, "against_" + labels[0]: {}}
    for recogniser in RECOGNISERS:
        scores = {}
        for label in labels:
            emb = np.stack([readings[label][p][recogniser] for p in common])
            dist = distance_matrix(emb, recogniser)
            hits, aucs = per_query(emb, dist, identity, recogniser)
            scores[label] = aucs
            row = result["variants"].setdefault(label, {})
            row[recogniser] = {
                "queries": int(np.isfinite(hits).sum()),
                "rank1": round(float(np.nanmean(hits)), 4),
                "mean_auc": round(float(np.nanmean(aucs)), 4),
            }
            if source is not None:
                row[recogniser].update(by_source(dist, identity, source))
        for label in labels[1:]:
            result["against_" + labels[0]].setdefault(label, {})[recogniser] = paired_difference(
                scores[labels[0]], scores[label], identity
            )
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the shared data (its manifest.json)")
    ap.add_argument("--variant", action="append", required=True, help="LABEL=COMMAND with {in} and {out}")
    ap.add_argument("--work", type=Path, default=Path("/tmp/dmask-linkability"), help="masks and readings")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    manifest = json.loads((args.data / "manifest.json").read_text())
    identities = {p["path"]: p["identity"] for p in manifest["photos"]}
    # a photo's source: the collection (repository) it was taken from
    sources = {p["path"]: p.get("source", {}).get("repo", "unknown") for p in manifest["photos"]}
    cache = analyze.Cache(str(args.work / "readings"))
    readings = {}
    for spec in args.variant:
        label, _, command = spec.partition("=")
        masks = mask_photos(command, args.data, list(identities), args.work / label)
        readings[label] = embeddings(args.data, masks, cache)
    result = {
        "what": __doc__.splitlines()[0],
        "variants_run": args.variant,
        **compare(readings, identities, sources),
    }
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
