"""check_pf_ode: measured orders of every solver, the table, JSON and the plots."""

import json
import os

import pytest
import torch

from logz.theory import ORDERS, check_pf_ode

# (schedule, method, K values) in the asymptotic regime of each solver
ORDER_CASES = [
    ("vp", "exp", (64, 128, 256, 512)),
    ("vp-linear", "exp", (64, 128, 256, 512)),
    ("ve", "exp", (128, 256, 512, 1024)),
    ("vp", "euler", (64, 128, 256, 512)),
    ("vp-linear", "heun", (32, 64, 128, 256)),
    ("vp", "heun", (32, 64, 128, 256)),
    ("vp-linear", "rk4", (16, 32, 64, 128)),
    ("ve", "rk4", (32, 64, 128, 256)),
]


@pytest.mark.parametrize("schedule,method,steps", ORDER_CASES)
def test_measured_order_matches_theory(schedule, method, steps):
    result = check_pf_ode(schedule, dim=6, steps=steps, method=method)
    (slope,) = result.slopes.values()
    assert abs(slope + ORDERS[method]) <= 0.15, (schedule, method, slope)


def test_float32_measures_the_same_first_order():
    result = check_pf_ode("vp-linear", dim=4, steps=(32, 64, 128, 256), dtype=torch.float32)
    (slope,) = result.slopes.values()
    assert abs(slope + 1) <= 0.15


def test_table_rows_and_bound_over_d_and_m(tmp_path):
    result = check_pf_ode("vp-linear", dims=(2, 8), steps=(8, 32), score_errors=(0.0, 0.2),
                          perturbation="lipschitz")
    assert len(result.rows) == 2 * 2 * 2 and result.holds
    for r in result.rows:
        assert r.bound >= r.w2 and r.bound_paper >= r.bound
        assert r.bound == pytest.approx(r.bound_init + r.bound_disc + r.bound_score)
        assert (r.w2_score > 0) == (r.M > 0)
    text = result.table()
    assert "W2" in text and "bound" in text and text.count("\n") >= len(result.rows) + 2
    doc = json.loads(json.dumps(result.to_dict()))
    assert len(doc["rows"]) == 8 and doc["holds"] is True
    paths = result.plot(tmp_path)
    assert {os.path.basename(p) for p in paths} == {"w2_vs_steps.png", "error_terms.png", "w2_vs_dim.png"}
    assert all(os.path.getsize(p) > 1000 for p in paths)


def test_runge_kutta_rows_have_no_bound():
    result = check_pf_ode("vp", dim=3, steps=(8, 16), method="heun")
    assert all(r.bound is None for r in result.rows) and result.holds
    assert "theorem is for method 'exp'" in result.table()


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown PF-ODE method"):
        check_pf_ode("vp", method="rk45")
    with pytest.raises(ValueError, match="unknown prior"):
        check_pf_ode("vp", prior="uniform")
    with pytest.raises(ValueError, match="K must be an integer >= 1"):
        check_pf_ode("vp", steps=(0, 4))
    with pytest.raises(ValueError, match="T must be finite and > 0"):
        check_pf_ode("vp", T=0.0)
