"""Scoring a human study: can people tell the model's glyphs from people's (Wilson intervals; 50 % = they
cannot), do they read both as the class asked for, and do readers agree (Fleiss' kappa, pairwise agreement).
Pure maths on the judgement dicts of devagen.human_study.judgements."""

from __future__ import annotations

import math
from collections import Counter
from itertools import combinations
from typing import Any, Optional, Sequence

from ..core.classes import CLASS_NAMES
from .human_study import GENERATED, REAL

Z95 = 1.959964  # the normal quantile of a two-sided 95 % interval


def wilson(hits: int, n: int, z: float = Z95) -> tuple[Optional[float], Optional[float]]:
    """Wilson score interval of a proportion hits/n (None, None when n is 0)."""
    if n == 0:
        return None, None
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(hits: int, n: int) -> dict[str, Any]:
    """{share, low, high, hits, n}: a share with its 95 % Wilson interval (None share when n is 0)."""
    low, high = wilson(hits, n)
    return {"share": hits / n if n else None, "low": low, "high": high, "hits": hits, "n": n}


def _share(rows: Sequence[dict], keep: Any, hit: Any) -> dict[str, Any]:
    """proportion of rows passing hit among rows passing keep."""
    kept = [r for r in rows if keep(r)]
    return proportion(sum(1 for r in kept if hit(r)), len(kept))


def summary(rows: Sequence[dict]) -> dict[str, Any]:
    """One reader's (or the pooled) figures: origin accuracy, how often the model passed as a person, reading
    accuracy on generated and real glyphs (an unanswered class does not count), origin accuracy per confidence."""
    said = lambda r: r["said"] is not None  # noqa: E731 - short predicates read best inline
    read = lambda r: r["read"] is not None  # noqa: E731
    return {
        "answered": sum(1 for r in rows if said(r) or read(r)),
        "origin": _share(rows, said, lambda r: r["said"] == r["origin"]),
        "generated_passed_as_person": _share(rows, lambda r: said(r) and r["origin"] == GENERATED,
                                             lambda r: r["said"] == REAL),
        "read_generated": _share(rows, lambda r: read(r) and r["origin"] == GENERATED, lambda r: r["read"] == r["label"]),
        "read_real": _share(rows, lambda r: read(r) and r["origin"] == REAL, lambda r: r["read"] == r["label"]),
        "origin_by_confidence": {str(c): _share(rows, lambda r, c=c: said(r) and r["confidence"] == c,
                                                lambda r: r["said"] == r["origin"]) for c in (1, 2, 3)},
    }


def per_class(rows: Sequence[dict]) -> dict[str, dict[str, Any]]:
    """summary's origin and reading shares for each class shown (pooled over readers), by class name."""
    out = {}
    for label in sorted({r["label"] for r in rows}):
        mine = [r for r in rows if r["label"] == label]
        whole = summary(mine)
        out[CLASS_NAMES[label]] = {k: whole[k] for k in ("origin", "read_generated", "read_real")}
    return out


def fleiss_kappa(ratings: Sequence[Sequence[Any]]) -> Optional[float]:
    """Fleiss' kappa of items (rows) each rated by the same number (>= 2) of raters; None when undefined
    (fewer than 2 raters or items, or every rating one category)."""
    if len(ratings) < 2 or len(ratings[0]) < 2:
        return None
    raters = len(ratings[0])
    counts = [Counter(row) for row in ratings]
    agree = sum((sum(n * n for n in c.values()) - raters) / (raters * (raters - 1)) for c in counts) / len(ratings)
    totals = Counter()
    for c in counts:
        totals.update(c)
    chance = sum((n / (raters * len(ratings))) ** 2 for n in totals.values())
    return None if chance >= 1 else (agree - chance) / (1 - chance)


def pairwise_agreement(ratings: Sequence[Sequence[Any]]) -> Optional[float]:
    """Share of (item, pair of raters) whose ratings match; None with fewer than 2 raters or no items."""
    pairs = [row[a] == row[b] for row in ratings for a, b in combinations(range(len(row)), 2)]
    return sum(pairs) / len(pairs) if pairs else None


def agreement(by_reader: dict[str, Sequence[dict]], field: str) -> dict[str, Any]:
    """Fleiss' kappa and pairwise agreement of `field` ("said" or "read") over the items every reader answered."""
    readers = list(by_reader)
    items = len(next(iter(by_reader.values()), []))
    rows = [[by_reader[r][i][field] for r in readers] for i in range(items)]
    rows = [row for row in rows if all(v is not None for v in row)]
    return {"items": len(rows), "fleiss_kappa": fleiss_kappa(rows) if len(readers) > 1 else None,
            "pairwise": pairwise_agreement(rows) if len(readers) > 1 else None}


def score(by_reader: dict[str, Sequence[dict]]) -> dict[str, Any]:
    """The whole result: per reader and pooled summaries, per class, agreement; headline scalars on top."""
    pooled_rows = [r for rows in by_reader.values() for r in rows]
    pooled = summary(pooled_rows)
    origin_agreement = agreement(by_reader, "said")
    return {"readers": len(by_reader), "judgements": pooled["origin"]["n"],
            "origin_accuracy": pooled["origin"]["share"], "origin_ci_low": pooled["origin"]["low"],
            "origin_ci_high": pooled["origin"]["high"], "read_generated": pooled["read_generated"]["share"],
            "read_real": pooled["read_real"]["share"], "origin_kappa": origin_agreement["fleiss_kappa"],
            "pooled": pooled, "per_reader": {name: summary(rows) for name, rows in by_reader.items()},
            "per_class": per_class(pooled_rows),
            "agreement": {"origin": origin_agreement, "class": agreement(by_reader, "read")}}


HEADLINE_KEYS = ("readers", "judgements", "origin_accuracy", "origin_ci_low", "origin_ci_high", "read_generated",
                 "read_real", "origin_kappa")  # reports/metrics/human.json
