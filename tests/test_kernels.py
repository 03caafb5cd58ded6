"""What starting costs in `painanx run`: the pool of warm kernels (analysis.build.kernels: one
fresh kernel per notebook, the libraries imported ahead without a trace in the notebook, every
kernel shut down at the end), and what `painanx --help` and a rebuild with nothing to run
import. That pages are the same with and without the pool: tests/test_faults.py."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import psutil
from nbclient import NotebookClient
from site_fixtures import FIXTURES, PLAN
from typer.testing import CliRunner

from analysis.build import runner
from analysis.build.kernels import KernelPool
from analysis.cli import app

# what a notebook run needs, and nothing that runs no notebook should load
HEAVY = ("statsmodels", "seaborn", "matplotlib", "papermill", "nbconvert", "nbclient")

PROBE = (
    "import sys\n"
    "print(sorted(m for m in ('statsmodels.api', 'seaborn', 'this') if m in sys.modules),\n"
    "      [name for name in dir() if 'painanx' in name])"
)


def _run_probe(kernel) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)])
    return NotebookClient(nb, km=kernel.manager).execute()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_warm_kernel_has_the_libraries_and_a_fresh_namespace(tmp_path):
    with KernelPool(kernel_name="python3", cwd=tmp_path, count=1, size=1) as pool:
        kernel = pool.take()
        cell = _run_probe(kernel).cells[0]
        pool.release(kernel)
    assert kernel.warm
    assert cell.execution_count == 1  # the silent imports did not count as a cell
    assert cell.outputs[0]["text"] == "['seaborn', 'statsmodels.api'] []\n"


def test_imports_that_print_leave_the_kernels_cold(tmp_path):
    # importing `this` prints the Zen of Python: in a cold kernel that shows in a cell
    with KernelPool(kernel_name="python3", cwd=tmp_path, count=2, size=1, preload=["this"]) as pool:
        kernels = [pool.take(), pool.take()]
        outputs = [_run_probe(k).cells[0].outputs[0]["text"] for k in kernels]
        for kernel in kernels:
            pool.release(kernel)
    assert [k.warm for k in kernels] == [False, False]
    assert outputs == ["[] []\n", "[] []\n"]


def test_closing_the_pool_shuts_down_the_kernels_never_released(tmp_path):
    with KernelPool(kernel_name="python3", cwd=tmp_path, count=3, size=2, preload=()) as pool:
        kernels = [pool.take() for _ in range(3)]  # never released, as after an error
        pids = [k.manager.provisioner.pid for k in kernels]
        assert not any(_gone(pid) for pid in pids)
    assert all(_gone(pid) for pid in pids)


def _heavy_modules_after(code: str) -> str:
    script = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def test_help_imports_no_heavy_library():
    code = (
        "from analysis.cli import main\nsys.argv = ['painanx', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    assert _heavy_modules_after(code) == "[]"


def test_a_rebuild_with_nothing_to_run_imports_no_heavy_library(tmp_path):
    arguments = dict(
        notebooks_dir=str(FIXTURES),
        reports_dir=str(tmp_path / "reports"),
        plan_path=str(PLAN),
        project_root=str(tmp_path),
        sources=["synthetic"],
        only=["passing"],
        claims_hook=None,
        progress=False,
    )
    first = runner.build(**arguments, echo=lambda msg: None)
    assert {r.key: r.status for r in first.runs}["synthetic/passing"] == "ran"
    code = (
        "from analysis.build import runner\n"
        f"result = runner.build(**{arguments!r}, echo=lambda msg: None)\n"
        "assert not [r for r in result.runs if r.status == 'ran'], 'something re-ran'"
    )
    assert _heavy_modules_after(code) == "[]"


def test_no_warm_kernels_reaches_the_build(monkeypatch, tmp_path):
    asked = []

    def build(**kwargs):
        asked.append(kwargs["warm_kernels"])
        raise KeyboardInterrupt  # enough: the command ends here

    monkeypatch.setattr(runner, "build", build)
    for flag in ([], ["--no-warm-kernels"]):
        CliRunner().invoke(app, ["run", "--reports-dir", str(tmp_path), *flag])
    assert asked == [True, False]
