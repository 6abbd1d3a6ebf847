"""The README's tutorial runs as written, in a fresh interpreter (as a user runs it)."""
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.rst"


def tutorial_code():
    text = README.read_text()
    section = text[text.index("Tutorial\n--------"):]
    block = re.search(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", section).group(1)
    return "\n".join(line[4:] for line in block.splitlines())


@pytest.mark.slow
def test_tutorial_runs(tmp_path):
    checks = """
assert idata.posterior["mu"].shape == (2, 500)
assert float(idata.sample_stats["accept"].mean()) > 0.3
print("TUTORIAL OK")
"""
    result = subprocess.run([sys.executable, "-c", tutorial_code() + checks], cwd=tmp_path,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TUTORIAL OK" in result.stdout
    assert (tmp_path / "schools.l2hmc.npz").exists()
