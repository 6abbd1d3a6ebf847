"""Install shim: the metadata lives in setup.cfg.

A built wheel also carries ``l2hmc_theano_flags.pth`` at the top of site-packages: its one
line sets Theano's flags at the first ``import theano``, so that ``import pymc3`` works
before ``import l2hmc_theano`` (see ``src/l2hmc_theano_flags.py``).  An editable install
(``make``'s ``.venv``) gets it from the Makefile.
"""
import os

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithStartupFile(build_py):
    def run(self):
        super().run()
        with open(os.path.join(self.build_lib, "l2hmc_theano_flags.pth"), "w") as f:
            f.write("import l2hmc_theano_flags; l2hmc_theano_flags.install_import_hook()\n")


setup(cmdclass={"build_py": BuildWithStartupFile})
