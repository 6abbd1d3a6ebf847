"""``python -m l2hmc_theano.train``: trains a model file; every error is one clear line."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pymc3 as pm
import l2hmc_theano
from l2hmc_theano.cli import main

MODEL = """
import numpy as np
import pymc3 as pm
with pm.Model() as model:
    mu = pm.Normal("mu", 0, 1)
    sd = pm.HalfNormal("sd", 1)
    pm.Normal("y", mu, sd, observed=np.array([0.1, 0.5, -0.3]))
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def run_main(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "source, extra, message",
    [
        (None, [], "model file '.*missing.py' does not exist"),
        ("import pymc3 as pm\nx = 1\n", [], "no pm.Model found in"),
        ("import pymc3 as pm\na = pm.Model()\nb = pm.Model()\n", [], r"several models \(a, b\): choose one with --model-name"),
        ("import pymc3 as pm\na = pm.Model()\n", ["--model-name", "c"], "has no pm.Model named 'c'"),
        ("import pymc3 as pm\nwith pm.Model() as model:\n    pm.Normal('m', 0, 1)\n    pm.Bernoulli('z', 0.5)\n",
         [], r"discrete free variable.*z \(BinaryGibbsMetropolis\).*compound step"),
        ("raise RuntimeError('boom')\n", [], "importing .* failed: RuntimeError: boom"),
        ("import pymc3 as pm\nwith pm.Model() as model:\n    r = pm.HalfNormal('r', 1)\n"
         "    pm.Exponential('y', r, observed=[-1.0])\n", ["--no-progressbar"],
         "L2HMC cannot start: the model's log density is not finite at its initial point: y: log density -inf"),
        (MODEL, ["--out", "{tmp}/no/such/dir/s.npz"], "output directory .* does not exist"),
        (MODEL, ["--scaled-jump"], "--scaled-jump rescales the paper's loss: add --paper-loss"),
    ],
)
def test_errors_are_one_line_and_write_nothing(tmp_path, capsys, source, extra, message):
    path = str(tmp_path / "missing.py") if source is None else write(tmp_path, "m.py", source)
    before = set(os.listdir(tmp_path))
    code, out, err = run_main(capsys, [path, "--train-steps", "1"] + [e.format(tmp=tmp_path) for e in extra])
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    import re

    assert re.search(message, lines[0]), lines[0]
    assert set(os.listdir(tmp_path)) == before


def test_build_model_function_is_found(tmp_path):
    from l2hmc_theano.cli import find_model

    path = write(tmp_path, "b.py", """
        import pymc3 as pm
        def build_model():
            with pm.Model() as m:
                pm.Normal("w", 0, 1, shape=3)
            return m
    """)
    assert [v.name for v in find_model(path).free_RVs] == ["w"]


@pytest.mark.parametrize("args", [["--hidden", "3"], ["--train-steps", "0"], ["--step-size", "-1"],
                                  ["--learning-rate", "nan"], ["--burn-in-weight", "-1"]])
def test_bad_options_exit_2(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        main([write(tmp_path, "m.py", MODEL)] + args)
    assert exit_info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # undo line wrapping
    for option in ("--out", "--train-steps", "--batch-size", "--n-steps", "--hidden", "--learning-rate",
                   "--seed", "--model-name", "--compare", "--burn-in-weight", "--fresh-draws", "--scaled-jump",
                   "--constant-forces", "--keep-trained", "--centred", "--sample", "--idata"):
        assert option in text
    assert "(default: 5000)" in text and "(default: 10,10)" in text


def test_training_options_reach_the_sampler(tmp_path, monkeypatch, capsys):
    from l2hmc_theano.sampler import L2HMCSampler

    seen = {}

    def fake_train(self, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop before anything is saved

    monkeypatch.setattr(L2HMCSampler, "train", fake_train)
    with pytest.raises(KeyboardInterrupt):
        main([write(tmp_path, "m.py", MODEL), "--burn-in-weight", "0.5", "--scaled-jump", "--paper-loss",
              "--constant-forces", "--train-steps", "7", "--no-progressbar"])
    assert (seen["burn_in_weight"], seen["scaled_jump"], seen["constant_forces"], seen["train_steps"]) == (
        0.5, True, True, 7)
    assert seen["fresh_draws"] == "standard"
    assert seen["compare_hmc"] is True
    assert sorted(os.listdir(tmp_path)) == ["m.py"]
    with pytest.raises(KeyboardInterrupt):
        main([write(tmp_path, "m.py", MODEL), "--no-progressbar", "--keep-trained", "--fresh-draws", "chains"])
    assert (seen["burn_in_weight"], seen["scaled_jump"], seen["constant_forces"]) == (0.0, False, False)
    assert seen["compare_hmc"] is False and seen["fresh_draws"] == "chains"


FUNNEL = """
import pymc3 as pm
with pm.Model() as model:
    v = pm.Normal("v", 0, 3)
    pm.Normal("x", 0, pm.math.exp(v / 2), shape=3)
"""


def test_a_funnel_is_non_centred_unless_told_centred(tmp_path, monkeypatch, capsys):
    from l2hmc_theano.sampler import L2HMCSampler

    seen = []

    def fake_train(self, **kwargs):
        seen.append(self.energy_target.noncentring)
        raise KeyboardInterrupt

    monkeypatch.setattr(L2HMCSampler, "train", fake_train)
    path = write(tmp_path, "funnel.py", FUNNEL)
    for extra in ([], ["--centred"]):
        with pytest.raises(KeyboardInterrupt):
            main([path, "--no-progressbar", *extra])
    assert seen[0].names == ["x"] and seen[1] is None
    out = capsys.readouterr().out
    assert "non-centring x" in out


def test_sample_writes_the_training_chains_draws_as_netcdf(tmp_path, capsys):
    import arviz as az

    model_file = write(tmp_path, "m.py", MODEL)
    idata_path = tmp_path / "draws.nc"
    code, out, err = run_main(capsys, [model_file, "--train-steps", "20", "--batch-size", "30", "--warmup-iterations",
                                       "70", "--sample", "6", "--idata", str(idata_path), "--no-progressbar"])
    assert code in (0, None), err
    idata = az.from_netcdf(str(idata_path))
    assert idata.posterior.sizes["chain"] == 30 and idata.posterior.sizes["draw"] == 6
    assert set(idata.posterior.data_vars) == {"mu", "sd"} and float(idata.posterior["sd"].min()) > 0
    assert "written to" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["draws.nc", "m.l2hmc.npz", "m.py"]
    code, _, err = run_main(capsys, [model_file, "--idata", str(tmp_path / "x.nc")])
    assert code == 1 and "add --sample N" in err


def test_importing_the_command_module_keeps_train_the_function():
    """``import l2hmc_theano.train`` binds the package's ``train``; it must stay the function (in a
    fresh interpreter, so that the import is not already done)."""
    code = ("import l2hmc_theano, l2hmc_theano.fit, l2hmc_theano.train; "
            "assert l2hmc_theano.train is l2hmc_theano.fit.train, l2hmc_theano.train; "
            "from l2hmc_theano import train; assert callable(train); print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_the_command_module_runs_as_a_program():
    result = subprocess.run([sys.executable, "-m", "l2hmc_theano.train", "--help"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "MODEL" in result.stdout.upper(), result.stderr


@pytest.mark.slow
def test_trains_saves_compares_and_the_file_samples(tmp_path):
    model_file = write(tmp_path, "tiny.py", MODEL)
    env = {k: v for k, v in os.environ.items()}
    result = subprocess.run(
        [sys.executable, "-m", "l2hmc_theano.train", model_file, "--train-steps", "40", "--batch-size", "16",
         "--no-progressbar", "--compare", "--compare-draws", "200", "--seed", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "trained 40 iterations" in result.stdout and "final acceptance" in result.stdout
    # The label says what was kept, and each sampler's phase is announced before it runs.
    kept_hmc = "kept plain HMC" in result.stdout
    assert kept_hmc or "kept the trained networks" in result.stdout
    mine = "HMC (kept)" if kept_hmc else "L2HMC"
    assert f"{mine} / NUTS ESS per gradient" in result.stdout
    assert "NUTS: compiling, then 2 chains x 200 draws" in result.stdout
    assert f"{mine}: compiling, then 2 chains x 200 draws" in result.stdout
    saved = tmp_path / "tiny.l2hmc.npz"
    assert saved.exists() and sorted(os.listdir(tmp_path)) == ["tiny.l2hmc.npz", "tiny.py"]
    namespace = {}
    exec(MODEL, namespace)
    with namespace["model"]:
        idata = pm.sample(100, tune=20, chains=1, step=l2hmc_theano.L2HMC(sampler=str(saved)),
                          random_seed=0, return_inferencedata=True, progressbar=False,
                          compute_convergence_checks=False)
    assert np.isfinite(idata.posterior["mu"].values).all()
    assert float(idata.sample_stats["accept"].mean()) > 0.2
