"""Summary of the SCLD / CMCD accuracy grid (``logz bench --budget sequential``): per target and sampler the
final model's mean |log Z error| +- std over seeds, the error bars' coverage (final estimates
and every periodic evaluation, each against its own standard error), wall time per cell.

    python results/sequential_grid/summarize.py results/sequential_grid > results/sequential_grid/summary.md
"""
import glob
import json
import statistics
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "results/sequential_grid")
cells = [json.load(open(f)) for f in sorted(glob.glob(str(root / "cells" / "*.json")))]
by_target: dict = {}
for r in cells:
    by_target.setdefault((r["target"], r["sampler"]), []).append(r)


def mean_std(v):
    return f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


print("| target | sampler | truth (source) | seeds | final mean \\|error\\| ± std | final errors (± SE) | within 3 SE: final | within 3 SE: all evaluations | flagged (final) | train s / cell | eval s / cell |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
totals: dict = {}  # sampler -> [final within, final, evaluations within, evaluations, unflagged final misses]
for (target, sampler), rs in sorted(by_target.items()):
    ok = [r for r in rs if r.get("status") == "ok"]
    failed = len(rs) - len(ok)
    if not ok:
        print(f"| {target} | {sampler} | | 0 ({failed} failed) | | | | | | | |")
        continue
    truth = ok[0]["true_log_z"]
    errs = [r["log_z"] - truth for r in ok]
    within = [abs(r["log_z"] - truth) <= 3 * r["stderr"] for r in ok]
    ev_ok = ev_n = 0
    for r in ok:
        ev = r.get("evaluations") or {}
        for lz, se in zip(ev.get("log_z", []), ev.get("stderr", [])):
            if lz is None or not se:
                continue
            ev_n += 1
            ev_ok += abs(lz - truth) <= 3 * se
    t = totals.setdefault(sampler, [0, 0, 0, 0, 0])
    t[0] += sum(within); t[1] += len(ok); t[2] += ev_ok; t[3] += ev_n
    t[4] += sum(1 for r, w in zip(ok, within) if not w and r.get("reliable") is not False)
    flagged = sum(1 for r in ok if r.get("reliable") is False)
    pairs = ", ".join(f"{e:+.3f} ± {r['stderr']:.3f}" for e, r in zip(errs, ok))
    src = ok[0].get("true_log_z_source", "")
    print(f"| {target} | {sampler} | {truth:.3f} ({src}) | {len(ok)}{f' ({failed} failed)' if failed else ''} | "
          f"{mean_std([abs(e) for e in errs])} | {pairs} | {sum(within)}/{len(ok)} | {ev_ok}/{ev_n} | "
          f"{flagged}/{len(ok)} | {statistics.mean(r['train_seconds'] for r in ok):.0f} | "
          f"{statistics.mean(r.get('eval_seconds') or 0 for r in ok):.0f} |")
print()
for sampler, (fo, f, eo, e, miss) in sorted(totals.items()):
    print(f"Coverage over all {sampler} cells: final estimates {fo}/{f} within 3 SE "
          f"({miss} outside and not flagged); periodic evaluations {eo}/{e}.  ")

# the error-vs-iterations curve: every periodic evaluation and the final estimate, over seeds
print()
print("Error against training iterations (periodic evaluations; mean |error| ± std over seeds, mean SE):")
print()
for (target, sampler), rs in sorted(by_target.items()):
    ok = [r for r in rs if r.get("status") == "ok"]
    if not ok:
        continue
    truth = ok[0]["true_log_z"]
    at: dict = {}
    for r in ok:
        ev = r.get("evaluations") or {}
        for it, lz, se in zip(ev.get("iteration", []), ev.get("log_z", []), ev.get("stderr", [])):
            if lz is not None and se:
                at.setdefault(it, []).append((abs(lz - truth), se))
    cells = [f"{it}: {mean_std([e for e, _ in v])} (SE {statistics.mean(s for _, s in v):.3f}, {len(v)})"
             for it, v in sorted(at.items())]
    print(f"- {target} / {sampler}: " + "; ".join(cells))
