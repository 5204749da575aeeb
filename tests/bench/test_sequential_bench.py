"""CMCD / SCLD in the bench: their budgets, published figures with sources, stored references for
targets without an exact log Z, and the side-by-side table at equal iterations (synthetic records)."""

from __future__ import annotations

import json
import statistics

import pytest

from logz.bench import budgets
from logz.bench.compare import error_at, error_curves, iteration_table, load_records, write_comparison
from logz.bench.report import PUBLISHED, SEQUENTIAL_PUBLISHED_NOTE, markdown, published
from logz.bench.runner import ResultStore
from logz.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- budgets -----------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["cmcd", "scld"])
def test_reference_and_sequential_budgets_run_cmcd_scld_on_the_papers_steps(sampler):
    ref, seq = budgets.get("reference"), budgets.get("sequential")
    for b in (ref, seq):
        c = b.sampler_config(sampler, "funnel")
        # the reference code's 128 steps and 2 x 64 nets; batch 256 where the code runs 2000
        assert (c["num_steps"], c["hidden"], c["layers"], c["batch_size"]) == (128, 64, 2, 256)
        assert c["eval_samples"] == 2000 and b.eval_samples == 2000
    assert ref.train_iterations(sampler) == 5000 and ref.sampler_config(sampler, "funnel")["eval_every"] == 500
    assert seq.train_iterations(sampler) == 500 and seq.sampler_config(sampler, "funnel")["eval_every"] == 100
    # the sequential budget evaluates at every iteration the stored reference grid evaluates, up to its end
    assert all(it % seq.eval_every == 0 for it in range(ref.eval_every, seq.iterations + 1, ref.eval_every))
    # every notable setting of the reference code is stated, with where this machine forces less
    for word in ("128 steps", "batch 2000", "n_sim", "batch 256", "5000"):
        assert word in budgets.SEQUENTIAL_NOTE
    assert budgets.SAMPLER_NOTES[sampler] == budgets.SEQUENTIAL_NOTE


def test_sequential_budget_leaves_classical_and_other_learned_samplers_as_the_reference_has_them():
    ref, seq = budgets.get("reference"), budgets.get("sequential")
    for sampler in ("smc", "ais"):
        assert seq.sampler_config(sampler, "funnel") == {} == ref.sampler_config(sampler, "funnel")
        assert seq.train_iterations(sampler) == 0
    for sampler in ("pis", "dds"):  # same network and path as the stored grid; only the length differs
        a, b = seq.sampler_config(sampler, "gmm9"), ref.sampler_config(sampler, "gmm9")
        assert {k: v for k, v in a.items() if k != "eval_every"} == {k: v for k, v in b.items() if k != "eval_every"}


def test_the_report_prints_the_budget_note_and_the_published_note_for_cmcd_scld():
    rec = {"status": "ok", "sampler": "scld", "target": "funnel", "seed": 0, "error": 0.1, "abs_error": 0.1,
           "budget": "sequential", "dim": 10}
    text = markdown([rec])
    assert budgets.SEQUENTIAL_NOTE in text and SEQUENTIAL_PUBLISHED_NOTE in text
    assert SEQUENTIAL_PUBLISHED_NOTE not in markdown([{**rec, "sampler": "pis"}])


# -- published figures -------------------------------------------------------------------------
def test_every_published_figure_has_a_source_and_cmcd_cites_its_paper():
    for key, p in PUBLISHED.items():
        assert p["source"] and isinstance(p["verified"], bool) and p["value"] > 0, key
    cmcd = published("cmcd", "funnel")
    assert cmcd is not None and "2307.01050" in cmcd["source"]
    # no SCLD number was found in the sources: none is shown, and the note says so
    assert all(published("scld", t) is None for t in ("funnel", "manywell", "gmm9", "lgcp", "sonar", "ionosphere"))
    assert "2412.07081" in SEQUENTIAL_PUBLISHED_NOTE and "left empty" in SEQUENTIAL_PUBLISHED_NOTE


# -- stored references -------------------------------------------------------------------------
def test_targets_without_exact_log_z_use_the_stored_references(tmp_path, monkeypatch):
    from logz.bench import reference
    from logz.bench.runner import reference_log_z

    class Data:
        name, log_Z, data_sha256 = "sonar", None, "abc"

    table = {"sonar": {"log_z": -108.36, "sampler": "smc", "num_samples": 20000, "data_sha256": "abc"}}
    path = tmp_path / "refs.json"
    path.write_text(json.dumps(table))
    monkeypatch.setenv(reference.REFERENCE_FILE_ENV, str(path))
    value, source = reference_log_z(Data(), "sonar", None)  # no file given: the stored one is used
    assert value == -108.36 and str(path) in source
    Data.data_sha256 = "other"  # a stored reference for other data is not used by default ...
    assert reference_log_z(Data(), "sonar", None) == (None, "none (the stored reference was computed on different data)")
    with pytest.raises(ValueError, match="different data"):  # ... and a given file says so
        reference_log_z(Data(), "sonar", path)
    monkeypatch.setenv(reference.REFERENCE_FILE_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="LOGZ_REFERENCE_FILE"):
        reference.default_reference_file()


def test_the_project_stores_references_for_ionosphere_sonar_lgcp(monkeypatch):
    from logz.bench.reference import REFERENCE_FILE_ENV, default_reference_file

    monkeypatch.delenv(REFERENCE_FILE_ENV, raising=False)
    path = default_reference_file()
    if path is None:
        pytest.skip("not a source checkout: no results/references.json beside the package")
    table = json.loads(path.read_text())
    assert {"ionosphere", "sonar", "lgcp"} <= set(table)
    for rec in table.values():  # each with the command that made it and its standard error
        assert rec["command"].startswith(("python -m logz.bench.reference", "LOGZ_DATA_DIR="))
        assert rec["stderr"] > 0


# -- side by side at equal iterations ----------------------------------------------------------
def _record(target, sampler, budget, seed, iterations, every, errors, final, truth=0.0):
    its = list(range(every, iterations + 1, every))
    assert len(its) == len(errors)
    return {"cell": f"{target}--{sampler}--seed{seed}", "target": target, "sampler": sampler, "seed": seed,
            "budget": budget, "budget_description": f"budget `{budget}`: {iterations} iterations",
            "status": "ok", "iterations": iterations, "true_log_z": truth, "true_log_z_source": "exact",
            "log_z": truth + final, "error": final, "abs_error": abs(final), "dim": 2,
            "evaluations": {"iteration": its, "log_z": [truth + e for e in errors], "stderr": [0.01] * len(its)}}


def _synthetic():
    """A stored 'reference' grid (PIS, DDS: 2000 iterations, evaluated every 500, 3 and 2 seeds) and
    a new 'sequential' SCLD run (1000 iterations, every 100, 2 seeds), errors chosen by hand."""
    ref = [_record("gmm9", "pis", "reference", s, 2000, 500, [0.5 + s, -0.4, 0.3, 0.2], 0.25) for s in range(3)]
    ref += [_record("gmm9", "dds", "reference", s, 2000, 500, [0.2, -0.1 * (s + 1), 0.05, 0.04], 0.03)
            for s in range(2)]
    new = [_record("gmm9", "scld", "sequential", s, 1000, 100, [0.3 - 0.02 * k - 0.01 * s for k in range(10)],
                   final=0.1) for s in range(2)]
    new.append({"cell": "gmm9--smc--seed0", "target": "gmm9", "sampler": "smc", "seed": 0, "budget": "sequential",
                "status": "ok", "iterations": 0, "true_log_z": 0.0, "log_z": 0.01})  # no training: no curve
    return ref, new


def test_errors_at_an_iteration_come_from_that_evaluation_or_the_final_model():
    ref, new = _synthetic()
    assert error_at(ref[1], 500) == pytest.approx(1.5) and error_at(ref[1], 1000) == pytest.approx(-0.4)
    assert error_at(ref[1], 700) is None
    r = {**new[0], "evaluations": {"iteration": [100], "log_z": [0.3], "stderr": [0.1]}}
    assert error_at(r, 1000) == pytest.approx(0.1)  # the last iteration, without an evaluation: the final model
    assert error_at({**r, "true_log_z": None}, 100) is None


def test_side_by_side_table_gives_mean_std_and_seeds_at_equal_iterations():
    ref, new = _synthetic()
    curves = error_curves(ref + new)["gmm9"]
    assert set(curves) == {("pis", "reference"), ("dds", "reference"), ("scld", "sequential")}  # smc: no curve
    assert curves[("pis", "reference")][500] == [0.5, 1.5, 2.5]
    lines = iteration_table(ref + new)
    text = "\n".join(lines)
    header = next(line for line in lines if line.startswith("| sampler (budget)"))
    # default columns: the iterations two or more rows share (500 and 1000), not SCLD's every 100
    assert header.split("|")[2:5] == [" 500 ", " 1000 ", " 1500 "]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in lines
            if line.startswith("| ") and "(" in line.split("|")[1] and not line.startswith("| sampler")}
    pis500 = [0.5, 1.5, 2.5]
    assert rows["pis (reference)"][0] == f"{statistics.mean(pis500):.3f} ± {statistics.stdev(pis500):.3f} (3)"
    assert rows["dds (reference)"][1] == f"{statistics.mean([0.1, 0.2]):.3f} ± {statistics.stdev([0.1, 0.2]):.3f} (2)"
    scld500 = [0.3 - 0.02 * 4, 0.3 - 0.02 * 4 - 0.01]
    assert rows["scld (sequential)"][0] == f"{statistics.mean(scld500):.3f} ± {statistics.stdev(scld500):.3f} (2)"
    assert rows["scld (sequential)"][2] == ""  # SCLD stopped at 1000 iterations
    assert "budget `sequential`: 1000 iterations" in text and "log Z = 0.0000 (exact)" in text
    # explicit columns
    lines = iteration_table(ref + new, iterations=[100, 2000])
    header = next(line for line in lines if line.startswith("| sampler (budget)"))
    assert header.split("|")[2:4] == [" 100 ", " 2000 "]


def _store(root, records):
    store = ResultStore(root)
    for r in records:
        store.save(r)


def test_compare_cli_writes_the_table_and_one_plot_per_target(tmp_path, capsys):
    ref, new = _synthetic()
    _store(tmp_path / "ref", ref)
    _store(tmp_path / "new", new)
    assert len(load_records([tmp_path / "new", tmp_path / "ref"])) == len(ref) + len(new)
    assert main(["bench", "--out", str(tmp_path / "new"), "--compare", str(tmp_path / "ref")]) == 0
    text = (tmp_path / "new" / "side_by_side.md").read_text()
    assert "| scld (sequential) |" in text and "| pis (reference) |" in text
    png = tmp_path / "new" / "errors_vs_iterations_gmm9.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.name in text
    assert "side by side:" in capsys.readouterr().out
    assert main(["bench", "--out", str(tmp_path / "new"), "--compare", str(tmp_path / "nothing")]) == 2
    assert "no stored records" in capsys.readouterr().err
    paths = write_comparison([tmp_path / "ref"], tmp_path / "only_ref", iterations=[1000], plots=False)
    assert paths["plots"] == [] and "| 1000 |" in paths["markdown"].read_text()
    paths = write_comparison([tmp_path / "ref"], tmp_path / "a" / "new" / "dir")  # --out need not exist
    assert [p.name for p in paths["plots"]] == ["errors_vs_iterations_gmm9.png"]


def _data_dir():
    import os
    from pathlib import Path

    from logz.targets.data import DATA_DIR_ENV

    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


def test_tiny_cmcd_scld_cells_on_a_data_target_are_compared_with_the_stored_reference(tmp_path, monkeypatch):
    from logz.bench.reference import REFERENCE_FILE_ENV, default_reference_file
    from logz.bench.runner import run_grid
    from logz.targets.data import DATA_DIR_ENV

    data = _data_dir()
    monkeypatch.delenv(REFERENCE_FILE_ENV, raising=False)
    path = default_reference_file()
    if not (data / "ionosphere.csv").is_file() or path is None:
        pytest.skip("needs the shared data (LOGZ_DATA_DIR) and a source checkout's results/references.json")
    monkeypatch.setenv(DATA_DIR_ENV, str(data))
    records = run_grid(["ionosphere"], ["cmcd", "scld"], [0], budgets.get("tiny"), tmp_path, metrics=[],
                       progress=False)
    stored = json.loads(path.read_text())["ionosphere"]["log_z"]
    for r in records:  # no --reference-file given: the project's stored value, named in the record
        assert r["status"] == "ok" and r["true_log_z"] == stored  # by its path in the project, as on every machine
        assert "samples, results/references.json)" in r["true_log_z_source"], r["true_log_z_source"]
        assert r["error"] == pytest.approx(r["log_z"] - stored)
