"""``python -m l2hmc_theano.train MODEL.py``: see :mod:`l2hmc_theano.cli` and ``--help``.

Imported rather than run, this module puts the function :func:`l2hmc_theano.train` in its own
place in ``sys.modules``, so that ``import l2hmc_theano.train`` leaves the package's ``train``
the function (Python binds a submodule's import to the package attribute of the same name)."""
import sys

if __name__ == "__main__":
    from l2hmc_theano.cli import main

    sys.exit(main())
else:
    from l2hmc_theano.fit import train

    sys.modules[__name__] = train
