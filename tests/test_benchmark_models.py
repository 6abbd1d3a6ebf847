"""benchmarks/models.py's hard-geometry models: their log densities are the stated closed forms."""
import importlib.util
import pathlib
import sys

import numpy as np
import pytest
from scipy import stats

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("bench_models", ROOT / "benchmarks" / "models.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def test_funnel_logp_is_neals_funnel(models):
    model = models.funnel(5)
    rng = np.random.default_rng(0)
    logp = model.logp
    for _ in range(3):
        v, x = rng.normal(0, 3), rng.normal(0, 2, size=4)
        expected = stats.norm.logpdf(v, 0, 3) + stats.norm.logpdf(x, 0, np.exp(v / 2)).sum()
        assert logp({"v": v, "x": x}) == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="dim must be >= 2"):
        models.funnel(1)


def test_banana_logp_is_the_twisted_gaussian(models):
    model = models.banana()
    b, sd = models.BANANA_B, models.BANANA_SD
    for x1, x2 in ((0.0, 0.0), (12.0, 1.5), (-7.0, -3.0)):
        expected = stats.norm.logpdf(x1, 0, sd) + stats.norm.logpdf(x2, b * (x1 ** 2 - sd ** 2), 1)
        assert model.logp({"x1": x1, "x2": x2}) == pytest.approx(expected, rel=1e-10)
