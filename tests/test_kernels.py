"""The pool of warm kernels (analysis.build.kernels): one fresh kernel per notebook, the
libraries imported ahead without a trace in the notebook, every kernel shut down at the end.
That pages are the same with and without the pool: tests/test_faults.py."""

from __future__ import annotations

import nbformat
import psutil
from nbclient import NotebookClient

from analysis.build.kernels import KernelPool

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
