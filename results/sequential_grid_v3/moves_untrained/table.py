"""Table of the untrained moves study from its logs (argv: log files)."""
import re, sys, statistics as st
pat = re.compile(r"^(\{.*\}) seed (\d+): ([+-][\d.]+) \+- ([\d.]+) rel (\w+) (\d+)s")
print("| target | moves per beta | seeds | mean \\|error\\| | mean SE | mean z | max \\|z\\| | flagged | s / estimate |")
print("|---|---|---|---|---|---|---|---|---|")
for path in sys.argv[1:]:
    rows = {}
    for line in open(path):
        m = pat.match(line)
        if m:
            rows.setdefault(m[1], []).append((float(m[3]), float(m[4]), m[5] == "False", int(m[6])))
    for cfg, r in rows.items():
        z = [e / s for e, s, _, _ in r]
        moves = re.search(r'"moves_per_beta": (\d+)', cfg)
        print(f"| {path.split('/')[-1][:-4]} | {moves[1] if moves else 'SMC default'} | {len(r)} | {st.mean(abs(e) for e, *_ in r):.3f} | "
              f"{st.mean(s for _, s, *_ in r):.3f} | {st.mean(z):+.2f} | {max(abs(x) for x in z):.1f} | {sum(f for *_, f, _ in r)} | "
              f"{st.mean(t for *_, t in r):.0f} |")
