"""benchmarks/paper_table.py --quick: the whole protocol runs end to end and writes its outputs.

The budget (100 training steps, 50 chains x 300 steps) makes nothing certain about
efficiency, so this checks the plumbing: every sampler row is finite and counts its
gradients right, the mixture's draws stay on both modes, the files are complete.
"""
import importlib.util
import math
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("paper_table", ROOT / "benchmarks" / "paper_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_run_writes_a_finite_table_and_plots(tmp_path):
    # One target keeps the compile time down (~1 min); the others share every code path
    # but their training options, which tests/test_training.py covers.
    results = load_script().main(["--quick", "--targets", "mog", "--out-dir", str(tmp_path)])
    assert set(results) == {"mog"}
    for name, (target, rows, best) in results.items():
        samplers = [r["sampler"] for r in rows]
        assert samplers == [f"HMC eps={e:g}" for e in target.hmc_grid] + [
            "L2HMC", "L2HMC preconditioned", "L2HMC defaults", "PyMC3 HamiltonianMC", "PyMC3 NUTS"]
        for r in rows:
            for key in ("ess_step", "ess_worst_dim", "bulk_step", "bulk_sq_step", "ess_grad", "ess_second"):
                assert math.isfinite(r[key]) and r[key] > 0, (name, r["sampler"], key, r[key])
            assert 0 <= r["accept"] <= 1
            if r["sampler"] == "L2HMC defaults":  # its own T, chosen by warm-up
                assert r["grads_step"] == int(r["grads_step"]) >= 2 and r["kept"] in ("trained", "hmc")
            elif r["sampler"] != "PyMC3 NUTS":
                # T = 10 leapfrog steps per MH step, PyMC3's HamiltonianMC included.
                assert r["grads_step"] == pytest.approx(10.0)
        assert best["bulk_step"] == max(r["bulk_step"] for r in rows if r["sampler"].startswith("HMC"))
        assert next(r for r in rows if r["sampler"] == "L2HMC")["train_seconds"] > 0
        assert next(r for r in rows if r["sampler"] == "L2HMC defaults")["train_seconds"] > 0
    # Chains start from exact draws: the mixture's chains, together, keep both modes populated.
    mog_l2hmc = next(r for r in results["mog"][1] if r["sampler"] == "L2HMC")
    assert 0.2 < mog_l2hmc["right_share"] < 0.8

    table = (tmp_path / "table.md").read_text()
    assert table.count("\n") == 2 + len(results)
    assert "2-d MoG" in table
    assert (tmp_path / "details.md").read_text().count("\n") == 2 + sum(len(r[1]) for r in results.values())
    for png in ("autocorrelation.png", "mixture.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Written through temporary files: only the finished ones are left.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "autocorrelation.png", "details.md", "mixture.png", "table.md"]
