"""What the benchmark scripts share and that needs nothing but the standard library and NumPy
(so the nutpie scripts can use it from a venv without PyMC3): the nutpie scripts' environment,
the repository's commit, median cells of result tables, and writing a result file whole or not
at all.  NumPy is imported where it is used: :func:`nutpie_environment` runs before it loads."""
import os
import re
import shlex
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def nutpie_environment(argv, caches=True):
    """Before PyTensor, numba or NumPy load (they read these at import): one thread for OpenMP,
    OpenBLAS, MKL and numba, and (with ``caches``) PyTensor's and numba's caches under the value
    of ``--cache-dir`` in ``argv``, else ``caches/`` inside the running venv.  Returns that
    directory.  A variable already set is left as it is."""
    cache = os.path.join(sys.prefix, "caches")
    for i, arg in enumerate(argv):
        if arg == "--cache-dir" and i + 1 < len(argv):
            cache = os.path.abspath(argv[i + 1])
        elif arg.startswith("--cache-dir="):
            cache = os.path.abspath(arg.split("=", 1)[1])
    if caches:
        os.environ.setdefault("PYTENSOR_FLAGS", f"base_compiledir={cache}/pytensor")
        os.environ.setdefault("NUMBA_CACHE_DIR", f"{cache}/numba")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    return cache


def git_commit():
    """HEAD's short hash, "-dirty" with uncommitted changes to tracked files; "unknown" outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def command(script, argv):
    """The command line that ran ``script`` (a path under the repository) with ``argv``, quoted."""
    return "python " + " ".join(shlex.quote(a) for a in [script, *argv])


def median_cell(rows, key, fmt):
    """"median [min, max]" of ``rows``' ``key`` over the rows that did not fail (just the value for
    one; "failed" for none)."""
    import numpy as np

    values = [r[key] for r in rows if "failed" not in r]
    if not values:
        return "failed"
    text = format(float(np.median(values)), fmt)
    return text if len(values) == 1 else f"{text} [{format(min(values), fmt)}, {format(max(values), fmt)}]"


def table_rows(text, first_columns):
    """The rows of the markdown table in ``text`` whose header begins with ``first_columns`` (e.g.
    ``("posterior", "sampler")``), each a dict {column header: cell text}; the separator row is left out."""
    header, rows = None, []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if tuple(cells[:len(first_columns)]) == tuple(first_columns):
            header = cells
        elif header is not None and line.lstrip().startswith("|"):
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(dict(zip(header, cells)))
        else:
            header = None
    return rows


def leading_number(cell):
    """The number a cell starts with ("339 [282, 397]" -> 339.0), or None."""
    m = re.match(r"[-+0-9.e]+", cell or "")
    return float(m.group(0)) if m else None


def write_result(path, text):
    """Write ``text`` to ``path`` (relative to the repository unless absolute) through a temporary
    file renamed into place: a reader never sees half a result file."""
    path = path if os.path.isabs(path) else os.path.join(ROOT, path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp_" + os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def publish(text, out):
    """Print a result file's ``text`` and write it to ``out`` (if given)."""
    print(text)
    if out:
        write_result(out, text)


def chosen_samplers(parser, text, known):
    """The samplers of a comma-separated ``--samplers`` value; ``parser.error`` names any not in ``known``."""
    samplers = [s for s in text.split(",") if s]
    unknown = set(samplers) - set(known)
    if unknown:
        parser.error(f"unknown sampler(s) {', '.join(sorted(unknown))}: choose from {', '.join(known)}")
    return samplers
