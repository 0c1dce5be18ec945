"""``odernn methods`` and ``odernn show NAME``."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

from ..methods import KINDS
from ._table import format_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("methods", help="list the method catalogue",
                       description="List the built-in methods: name, kind, stages, order, "
                                   "embedded order, steps.")
    p.add_argument("--kind", choices=KINDS,
                   help="only methods of this kind")
    p.add_argument("--adaptive", action="store_true", help="only methods with embedded weights")
    p.add_argument("--summary", action="store_true", help="print counts per kind only")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_methods)

    s = sub.add_parser("show", help="show one method: coefficients, verified orders, citation")
    s.add_argument("name", help="method name or alias (case-insensitive), or a .json/.toml file")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--float", action="store_true", help="print float64 coefficients instead of exact ones")
    s.set_defaults(func=_show)


def _rows(kind: str | None, adaptive: bool) -> list[dict[str, Any]]:
    from ..methods import list_methods, method_info

    return [method_info(n) for n in list_methods(kind, adaptive=True if adaptive else None)]


def _methods(args: argparse.Namespace) -> int:
    rows = _rows(args.kind, args.adaptive)
    if args.summary:
        counts = Counter(r["kind"] for r in rows)
        summary = {k: counts.get(k, 0) for k in KINDS}
        summary["adaptive (embedded pair)"] = sum(1 for r in rows if r["embedded_order"] is not None)
        summary["total"] = len(rows)
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            print(format_table(["kind", "count"], [[k, v] for k, v in summary.items()]))
        return 0
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [[r["name"], r["kind"], r["stages"], r["order"],
              "" if r["embedded_order"] is None else r["embedded_order"], r["steps"]] for r in rows]
    print(format_table(["name", "kind", "stages", "order", "emb. order", "steps"], table))
    print(f"\n{len(rows)} methods")
    return 0


def _load(name: str):
    from pathlib import Path

    from ..methods import get_method, load_method

    if name.lower().endswith((".json", ".toml")) and Path(name).exists():
        return load_method(name)
    return get_method(name)


def _show(args: argparse.Namespace) -> int:
    from ..methods import LinearMultistep, verify_embedded_order, verify_order, verify_stage_order

    m = _load(args.name)
    info: dict[str, Any] = m.to_dict()
    info["kind"] = "multistep" if isinstance(m, LinearMultistep) else m.kind
    info["verified_order"] = verify_order(m)
    if isinstance(m, LinearMultistep):
        info["steps"] = m.steps
        info["explicit"] = m.explicit
    else:
        info["stages"] = m.stages
        info["verified_embedded_order"] = verify_embedded_order(m)
        info["verified_stage_order"] = verify_stage_order(m)
        info["fsal"] = m.fsal
        info["coefficients"] = m.coefficient_kind
    if args.float:
        if isinstance(m, LinearMultistep):
            info["alpha"], info["beta"] = m.alpha.tolist(), m.beta.tolist()
        else:
            info["A"], info["b"], info["c"] = m.A.tolist(), m.b.tolist(), m.c.tolist()
            if m.b_embedded is not None:
                info["b_embedded"] = m.b_embedded.tolist()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"{m.name}  ({info['kind']})")
    if m.aliases:
        print(f"  aliases: {', '.join(m.aliases)}")
    if isinstance(m, LinearMultistep):
        print(f"  steps: {m.steps}   explicit: {m.explicit}")
        print(f"  order: claimed {m.order}, verified {info['verified_order']}")
        print(f"  alpha: {info['alpha']}")
        print(f"  beta:  {info['beta']}")
    else:
        print(f"  stages: {m.stages}   FSAL: {m.fsal}   coefficients: {m.coefficient_kind}")
        emb = ""
        if m.b_embedded is not None:
            emb = f"; embedded: claimed {m.embedded_order}, verified {info['verified_embedded_order']}"
        print(f"  order: claimed {m.order}, verified {info['verified_order']}{emb}; "
              f"stage order {info['verified_stage_order']}")
        width = max(len(str(x)) for row in info["A"] for x in row)
        width = min(max(width, len(str(max(info["c"], key=lambda v: len(str(v)))))), 40)
        print("  Butcher tableau (c | A):")
        for ci, row in zip(info["c"], info["A"]):
            print("   " + f"{str(ci):>{width}} | " + " ".join(f"{str(x):>{width}}" for x in row))
        print("   " + "-" * (width + 2) + "+" + "-" * ((width + 1) * m.stages))
        print("   " + " " * width + " | " + " ".join(f"{str(x):>{width}}" for x in info["b"]))
        if m.b_embedded is not None:
            print("   " + " " * width + " | " + " ".join(f"{str(x):>{width}}" for x in info["b_embedded"])
                  + "   (embedded)")
    if m.citation:
        print(f"  citation: {m.citation}")
    if getattr(m, "description", ""):
        print(f"  {m.description}")
    return 0
