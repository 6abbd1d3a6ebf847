"""The README's tutorial runs as written."""
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.rst"


def tutorial_code():
    text = README.read_text()
    section = text[text.index("Tutorial\n--------"):]
    block = re.search(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", section).group(1)
    return "\n".join(line[4:] for line in block.splitlines())


@pytest.mark.slow
def test_tutorial_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(tutorial_code(), str(README), "exec"), namespace)
    idata = namespace["idata"]
    assert idata.posterior["mu"].shape == (2, 500)
    assert (tmp_path / "schools.l2hmc.npz").exists()
    assert float(idata.sample_stats["accept"].mean()) > 0.3
