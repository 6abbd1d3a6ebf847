"""``python -m l2hmc_theano.train MODEL.py``: see :mod:`l2hmc_theano.cli` and ``--help``."""
import sys

from l2hmc_theano.cli import main

if __name__ == "__main__":
    sys.exit(main())
