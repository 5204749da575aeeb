"""The benchmark runner end to end on a tiny grid: files written, resume, failures, bad input."""

from __future__ import annotations

import csv
import json
import re

import pytest

from logz.bench import budgets
from logz.bench.report import PUBLISHED, markdown, mean_std, verdict, write_report
from logz.bench.runner import Cell, ResultStore, grid, run_cell, run_grid
from logz.cli import main

TINY = budgets.get("tiny")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Counting:
    """``run_cell`` that counts its calls and can raise on a given call number."""

    def __init__(self, raise_on: int | None = None, exc: type[BaseException] = RuntimeError):
        self.calls: list[str] = []
        self.raise_on, self.exc = raise_on, exc

    def __call__(self, cell: Cell, budget, **kwargs) -> dict:
        self.calls.append(cell.id)
        if self.raise_on is not None and len(self.calls) == self.raise_on:
            raise self.exc(f"injected failure in {cell.id}")
        return run_cell(cell, budget, **kwargs)


def _grid(out, run, samplers=("smc", "pis"), seeds=(0, 1)):
    return run_grid(["gmm9"], list(samplers), list(seeds), TINY, out, run=run, progress=False, command="test")


def test_tiny_grid_end_to_end_and_resume(tmp_path):
    out = tmp_path / "bench"
    run = Counting()
    records = _grid(out, run)
    assert len(run.calls) == 4 and len(records) == 4
    assert all(r["status"] == "ok" for r in records)
    r = next(r for r in records if r["sampler"] == "pis")
    # what every record carries: config, seed, versions, device, wall time, peak memory, estimates
    assert r["config"]["batch_size"] == TINY.batch_size and r["seed"] in (0, 1)
    assert r["torch_version"] and r["logz_version"] and r["device"] == "cpu"
    assert r["wall_seconds"] > 0 and r["peak_memory_mib"] > 0
    assert r["true_log_z"] == 0.0 and r["abs_error"] == pytest.approx(abs(r["log_z"]))
    assert len(r["curves"]["loss"]["value"]) == TINY.iterations
    assert {"sliced_w2", "mmd", "energy_w2", "mode_coverage"} <= set(r["metrics"])
    mc = r["metrics"]["mode_coverage"]  # per-mode occupation against the exact weights
    assert len(mc["fractions"]) == len(mc["expected"]) == len(mc["fraction_stderr"]) == 9
    assert sum(mc["fractions"]) == pytest.approx(1.0) and sum(mc["expected"]) == pytest.approx(1.0)
    assert mc["value"] == pytest.approx(0.5 * sum(abs(f - p) for f, p in zip(mc["fractions"], mc["expected"])))

    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(ln)["cell"] for ln in lines] == run.calls
    paths = write_report(out)
    rows = list(csv.DictReader(open(paths["csv"])))
    assert sorted(row["cell"] for row in rows) == sorted(run.calls)
    md = paths["markdown"].read_text()
    assert "## gmm9" in md and f"{PUBLISHED[('pis', 'gmm9')]['value']:g}" in md
    assert "Mode occupation (weight per mode" in md
    assert {p.name for p in paths["plots"]} == {"log_z_error.png", "training_gmm9.png",
                                                 "samples_gmm9.png", "energy_gmm9.png", "modes_gmm9.png"}
    for p in paths["plots"]:
        assert p.read_bytes()[:8] == PNG_MAGIC

    # resume: nothing re-run, nothing re-written
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    again = Counting()
    assert len(_grid(out, again)) == 4
    assert again.calls == []
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()} == mtimes
    assert len((out / "results.jsonl").read_text().splitlines()) == 4

    # a lost cell is the only one run again; a wider grid runs only the new cells
    ResultStore(out).cell_path(Cell("gmm9", "pis", 1)).unlink()
    third = Counting()
    _grid(out, third, seeds=(0, 1, 2))
    assert sorted(third.calls) == ["gmm9--pis--seed1", "gmm9--pis--seed2", "gmm9--smc--seed2"]
    assert not list(out.rglob("*.tmp"))


def test_interrupted_grid_keeps_finished_cells(tmp_path):
    out = tmp_path / "bench"
    run = Counting(raise_on=3, exc=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        _grid(out, run)
    stored = [r["cell"] for r in ResultStore(out).records()]
    assert sorted(stored) == sorted(run.calls[:2])
    resumed = Counting()
    _grid(out, resumed)
    assert sorted(resumed.calls) == sorted(set(c.id for c in grid(["gmm9"], ["smc", "pis"], [0, 1])) - set(stored))


def test_failed_cell_is_stored_reported_and_rerun(tmp_path):
    out = tmp_path / "bench"
    records = _grid(out, Counting(raise_on=1), samplers=("smc",))
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 1 and "injected failure" in failed[0]["error_message"]
    assert "## Failed cells" in markdown(records) and failed[0]["cell"] in markdown(records)
    again = Counting()
    _grid(out, again, samplers=("smc",))
    assert again.calls == [failed[0]["cell"]]


def test_changed_configuration_is_refused(tmp_path):
    out = tmp_path / "bench"
    _grid(out, Counting(), samplers=("smc",), seeds=(0,))
    with pytest.raises(ValueError, match="different"):
        run_grid(["gmm9"], ["smc"], [0], TINY.replace(eval_samples=32), out, progress=False)


@pytest.mark.parametrize("kind, kwargs", [
    ("target", {"targets": ["nope"]}), ("sampler", {"samplers": ["nope"]}), ("metric", {"metrics": ["nope"]})])
def test_unknown_names_list_the_valid_ones(tmp_path, kind, kwargs):
    args = {"targets": ["gmm9"], "samplers": ["smc"], "seeds": [0], "budget": TINY, "out": tmp_path, **kwargs}
    with pytest.raises(ValueError, match=f"unknown {kind}.*'nope'.*valid names:") as err:
        run_grid(progress=False, **args)
    valid = {"target": "funnel", "sampler": "dgfs", "metric": "sliced_w2"}[kind]
    assert valid in str(err.value)
    with pytest.raises(ValueError, match="valid names: quick, reference, sequential, tiny"):
        budgets.get("nope")


def test_cli_bad_input_and_report_only(tmp_path, capsys):
    assert main(["bench", "--samplers", "nope", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown sampler name(s) 'nope'" in err and "pis" in err
    assert main(["bench", "--metrics", "w3", "--out", str(tmp_path / "x")]) == 2
    assert "sliced_w2" in capsys.readouterr().err
    assert main(["bench", "--report-only", "--out", str(tmp_path / "empty")]) == 2
    out = tmp_path / "cli"
    assert main(["bench", "--budget", "tiny", "--targets", "funnel", "--samplers", "ais", "--seeds", "1",
                 "--metrics", "--no-plots", "--quiet", "--out", str(out)]) == 0
    rec = ResultStore(out).records()[0]
    assert rec["command"].startswith("logz bench --targets funnel --samplers ais --seeds 1")
    (out / "report.md").unlink()
    assert main(["bench", "--budget", "tiny", "--targets", "funnel", "--samplers", "ais", "--seeds", "1",
                 "--report-only", "--no-plots", "--out", str(out)]) == 0
    assert "## funnel" in (out / "report.md").read_text()


def test_reference_budget_matches_the_papers():
    b = budgets.get("reference")
    assert (b.iterations, b.eval_samples) == (5000, 2000)
    for sampler in ("pis", "dds", "dgfs", "tb"):
        c = b.sampler_config(sampler, "funnel")
        assert (c["num_steps"], c["hidden"], c["layers"]) == (100, 64, 2)
        assert 256 <= c["batch_size"] <= 300
    dgfs = b.sampler_config("dgfs", "funnel")
    # reference rates x10 with a cosine decay over the run (budgets.DGFS_LR_NOTE says why)
    assert (dgfs["lr_policy"], dgfs["lr_flow"], dgfs["dt"]) == (1e-3, 1e-2, 0.01)
    assert dgfs["lr_schedule"] == {"kind": "cosine", "total": 5000, "final_factor": 0.01}
    assert "lr_schedule" not in b.sampler_config("pis", "funnel")
    assert b.sampler_config("dgfs", "gmm9")["dt"] == pytest.approx(0.05)
    # the learned-variance variant runs on DGFS's own budget on gmm9 ...
    assert b.sampler_config("dgfs_lv", "gmm9") == b.sampler_config("dgfs", "gmm9")
    # ... with per-target overrides on the Funnel and Many-Well (budgets.OVERRIDE_NOTES)
    assert b.sampler_config("dgfs_lv", "funnel") == {**b.sampler_config("dgfs", "funnel"), "dt": 0.05}
    assert b.sampler_config("dgfs_lv", "manywell") == {
        **b.sampler_config("dgfs", "manywell"), "replay": True, "local_search": True, "replay_prioritized": "uniform"}
    assert "per-target overrides" in b.describe()
    assert b.train_iterations("smc") == 0 and b.sampler_config("smc", "funnel") == {}


def test_every_per_target_override_says_why_and_the_report_prints_it():
    from logz.bench.budgets import BUDGETS, OVERRIDE_NOTES
    from logz.bench.report import markdown

    pairs = {(s, t) for b in BUDGETS.values() for s, per in b.target_overrides.items() for t in per}
    assert pairs and pairs <= set(OVERRIDE_NOTES)
    rec = {"status": "ok", "sampler": "dgfs_lv", "target": "manywell", "seed": 0, "error": 0.1,
           "abs_error": 0.1, "budget": "reference", "dim": 32}
    text = markdown([rec])
    assert OVERRIDE_NOTES[("dgfs_lv", "manywell")] in text
    assert OVERRIDE_NOTES[("dgfs_lv", "funnel")] not in text  # only the pairs the report shows


def test_mode_table_flags_a_sampler_that_misses_a_well():
    from logz.bench.report import mode_table

    def rec(sampler, seed, fractions, kind="wells"):
        n = 2000
        return {"status": "ok", "sampler": sampler, "seed": seed, "metrics": {"mode_coverage": {
            "coverage": 1.0, "value": 0.0, "fractions": fractions, "expected": [0.8, 0.8],
            "fraction_stderr": [(0.8 * 0.2 / n) ** 0.5] * 2, "kind": kind}}}
    se = (0.8 * 0.2 / 2000) ** 0.5
    lines = mode_table("manywell", [rec("good", 0, [0.8, 0.8 + se]), rec("bad", 0, [0.8, 0.5])])
    assert lines[0].startswith("Mode occupation (right-well fraction per pair; exact 0.800")
    row = {ln.split(" | ")[0].strip("| "): ln for ln in lines if ln.startswith("| good") or ln.startswith("| bad")}
    assert "| 0 of 2 |" in row["good"] and "| 1 of 2 |" in row["bad"]
    assert "0.500 to 0.800" in row["bad"]
    assert mode_table("funnel", [{"status": "ok", "sampler": "pis", "metrics": {}}]) == []
    # the record's own kind decides the reading, not the target's name
    assert mode_table("manywell", [rec("good", 0, [0.8, 0.8], "mixture")])[0].startswith(
        "Mode occupation (weight per mode; exact 0.800")
    # records from before the kind field: exact weights summing to 1 are a mixture's
    from logz.bench.report import mode_kind
    old = rec("good", 0, [0.8, 0.8])
    del old["metrics"]["mode_coverage"]["kind"]
    assert mode_kind(old) == "wells"
    old["metrics"]["mode_coverage"]["expected"] = [0.25, 0.75]
    assert mode_kind(old) == "mixture"

    # seeds with different sample sizes: the seed-average's stderr combines each seed's own
    # (sqrt(s0^2 + s1^2) / 2), not the first seed's / sqrt(2); 2.5 pooled stderrs is not flagged
    small = rec("mixed", 1, None)
    small["metrics"]["mode_coverage"]["fraction_stderr"] = [2 * se] * 2
    pooled = (se ** 2 + (2 * se) ** 2) ** 0.5 / 2
    off = 0.8 + 2.5 * pooled
    big = rec("mixed", 0, [0.8, off])
    small["metrics"]["mode_coverage"]["fractions"] = [0.8, off]
    row = [ln for ln in mode_table("manywell", [big, small]) if ln.startswith("| mixed")][0]
    assert "| 2.5 | 0 of 2 |" in row


def test_summary_table_orders_rows_and_marks_the_published_comparison():
    from logz.bench.report import summary_table

    def rec(target, sampler, seed, error):
        return {"status": "ok", "target": target, "sampler": sampler, "seed": seed, "error": error,
                "abs_error": abs(error), "ess": 0.5, "metrics": {}}
    pub = PUBLISHED[("dgfs", "gmm9")]["value"]
    lines = summary_table([rec("manywell", "pis", 0, 0.1), rec("gmm9", "dgfs", 1, -2 * pub),
                           rec("gmm9", "dgfs", 0, 0.5 * pub), rec("gmm9", "smc", 0, 0.01)])
    rows = [ln.split(" | ")[:3] for ln in lines[2:] if ln]
    assert rows == [["| gmm9", "smc", "1"], ["| gmm9", "dgfs", "2"], ["| manywell", "pis", "1"]]
    dgfs = lines[3]
    assert f"{0.5 * pub:+.3f}, {-2 * pub:+.3f}" in dgfs and dgfs.endswith("| within 1 s.e. |")
    assert summary_table([{"status": "failed"}]) == []


def test_report_helpers():
    assert mean_std([1.0, 3.0]) == "2.000 ± 1.414" and mean_std([None]) == "" and mean_std([0.5]) == "0.500"
    pub = PUBLISHED[("pis", "gmm9")]["value"]
    assert verdict("pis", "gmm9", pub) == "yes" and verdict("pis", "gmm9", 2 * pub) == "no"
    # above by less than the standard error of the seed mean: not distinguishable at 3 seeds
    assert verdict("pis", "gmm9", [pub - 0.01, pub + 0.01, pub + 0.03]) == "within 1 s.e."
    assert verdict("pis", "gmm9", [pub + 0.01, pub + 0.011, pub + 0.012]) == "no"
    assert verdict("pis", "gmm9", [pub - 0.001, pub - 0.002]) == "yes"
    assert verdict("smc", "gmm9", 0.0) == ""


def test_target_without_exact_samples_runs_and_skips_the_sample_metrics(tmp_path):
    """Real-data targets (here the synthetic logistic regression) have a ``sample`` that raises:
    the cell must still finish, with the metrics that need exact samples marked skipped."""
    records = run_grid(["logistic"], ["smc"], [0], TINY, tmp_path / "b", progress=False, command="test",
                       metrics=["mmd", "sliced_w2"])
    (r,) = records
    assert r["status"] == "ok", r.get("error_message")
    assert r["true_log_z"] is None and r["abs_error"] is None
    assert set(r["metrics"]) == {"mmd", "sliced_w2"} and all("skipped" in m for m in r["metrics"].values())


def test_a_sampler_with_a_learned_log_flow_also_gets_the_smc_corrected_estimate(tmp_path):
    records = run_grid(["gmm9"], ["dgfs", "tb"], [0], TINY, tmp_path / "b", progress=False, command="test",
                       metrics=["mmd"])
    dgfs, tb = sorted(records, key=lambda r: r["sampler"])
    assert dgfs["status"] == tb["status"] == "ok"
    assert dgfs["stderr_smc"] > 0 and dgfs["error_smc"] == pytest.approx(dgfs["log_z_smc"] - dgfs["true_log_z"])
    assert dgfs["abs_error_smc"] == pytest.approx(abs(dgfs["error_smc"])) and dgfs["log_z_smc"] != dgfs["log_z"]
    assert "log_z_smc" not in tb  # TB learns no log-flow
    lines = markdown(records).splitlines()
    split = lambda ln: [c.strip() for c in re.split(r"(?<!\\)\|", ln.strip().strip("|"))]  # noqa: E731
    cols = split(next(ln for ln in lines if ln.startswith("| sampler")))
    i = cols.index("stderr")  # side by side with the plain importance-weighted estimate
    assert cols[i + 1:i + 4] == ["SMC-corrected \\|error\\|", "SMC signed error", "SMC stderr"]
    assert split(next(ln for ln in lines if ln.startswith("| dgfs ")))[i + 3] != ""
    assert split(next(ln for ln in lines if ln.startswith("| tb ")))[i + 3] == ""


def test_best_of_evaluations_is_the_smallest_error_over_training_and_final():
    from logz.bench.report import best_of_evaluations

    rec = {"true_log_z": 1.0, "log_z": 1.3, "evaluations": {"log_z": [0.5, 1.1, None, 2.0]}}
    assert best_of_evaluations(rec) == pytest.approx(0.1)
    assert best_of_evaluations({"true_log_z": 1.0, "log_z": 0.8}) == pytest.approx(0.2)  # no evaluations
    assert best_of_evaluations({"true_log_z": None, "log_z": 0.8}) is None


def test_late_evaluations_error_averages_the_second_half_and_the_final_model():
    from logz.bench.report import late_evaluations_error

    rec = {"true_log_z": 1.0, "log_z": 1.3, "iterations": 400,
           "evaluations": {"iteration": [100, 200, 300, 400], "log_z": [9.0, 9.0, 0.5, None]}}
    # iterations 300 (|0.5 - 1| = 0.5) and the final model (0.3); 100 and 200 are the first half
    assert late_evaluations_error(rec) == pytest.approx(0.4)
    assert late_evaluations_error({"true_log_z": 1.0, "log_z": 0.8}) == pytest.approx(0.2)
    assert late_evaluations_error({"true_log_z": None, "log_z": 0.8}) is None


def test_variants_follow_their_sampler_and_take_its_published_figure():
    """A sampler registered with variant_of= sorts right after the sampler it varies and is
    compared with that sampler's published figure (its source says so); others have none."""
    from logz import samplers
    from logz.bench.report import published, row_rank

    assert samplers.variant_of("dgfs_lv") == "dgfs" and samplers.variant_of("dgfs") is None
    samplers.register("pis_variant_for_test", lambda target, **config: samplers.get("pis", target, **config),
                      variant_of="pis")
    try:
        assert sorted(["tb", "pis_variant_for_test", "dgfs_lv", "dds", "pis", "dgfs", "zzz"], key=row_rank) == [
            "pis", "pis_variant_for_test", "dds", "dgfs", "dgfs_lv", "tb", "zzz"]
        p = published("pis_variant_for_test", "gmm9")
        assert p["value"] == PUBLISHED[("pis", "gmm9")]["value"] and "pis_variant_for_test varies" in p["source"]
        assert verdict("pis_variant_for_test", "gmm9", 2 * p["value"]) == "no"
        assert published("pis_variant_for_test", "no_such_target") is None and published("zzz", "gmm9") is None
    finally:
        samplers.unregister("pis_variant_for_test")


def test_versus_table_resolves_a_win_only_beyond_two_standard_errors():
    from logz.bench.report import difference, versus_table

    d, se = difference([1.0, 2.0, 3.0], [2.0, 4.0])
    assert d == pytest.approx(-1.0) and se == pytest.approx((1.0 / 3 + 2.0 / 2) ** 0.5)
    assert difference([1.0], [2.0, 3.0]) == (-1.5, None)

    def rec(sampler, seed, error):
        return {"status": "ok", "target": "gmm9", "sampler": sampler, "seed": seed, "error": error,
                "abs_error": abs(error), "log_z": error, "true_log_z": 0.0, "iterations": 10,
                "evaluations": {"iteration": [2, 8], "log_z": [5.0, error]}}  # iteration 2: not late

    far = [rec("dgfs", 0, 0.10), rec("dgfs", 1, 0.12), rec("pis", 0, 0.50), rec("pis", 1, 0.54)]
    near = [rec("dgfs_lv", 0, 0.40), rec("dgfs_lv", 1, 0.60)]
    lines = versus_table(far + near)
    row = {tuple(c.strip() for c in ln.split("|")[2:4]): ln for ln in lines if ln.startswith("| gmm9")}
    assert set(row) == {("dgfs (2)", "pis (2)"), ("dgfs_lv (2)", "pis (2)")}  # dgfs_lv: a variant of dgfs
    assert "| -0.410 ± 0.022 | lower by > 2 s.e. |" in row[("dgfs (2)", "pis (2)")]
    # -0.02 +- 0.10: not resolved; late evaluations = the final one only (the iteration-2 one is early)
    assert row[("dgfs_lv (2)", "pis (2)")].count("lower, within 2 s.e.") == 2
    assert versus_table(near) == []  # no baseline in the records


def test_mode_fractions_come_in_table_order():
    from logz.bench.report import mode_fractions, row_rank

    recs = [{"status": "ok", "sampler": s, "metrics": {"mode_coverage": {"fractions": [0.5, 0.5]}}}
            for s in ("tb", "dgfs", "pis", "dds")]
    assert list(mode_fractions(recs)) == sorted(["tb", "dgfs", "pis", "dds"], key=row_rank)
    assert list(mode_fractions(recs))[0] == "pis"
