"""What starting costs in `painanx run`: the pool of warm kernels (analysis.build.kernels: one
fresh kernel per notebook, the libraries imported ahead without a trace in the notebook, every
kernel shut down at the end), and what `painanx --help` and a rebuild with nothing to run
import. That pages are the same with and without the pool: tests/test_faults.py."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys

import nbformat
import psutil
import pytest
from nbclient import NotebookClient
from site_fixtures import FIXTURES, PLAN
from typer.testing import CliRunner

from analysis.build import runner
from analysis.build.kernel_template import KernelTemplate, TemplateUnavailable
from analysis.build.kernels import (
    PRELOADED_MODULES,
    KernelPool,
    modules_imported_by,
    ready_on_idle_client_class,
)
from analysis.cli import app

# what a notebook run needs, and nothing that runs no notebook should load
HEAVY = ("statsmodels", "seaborn", "matplotlib", "papermill", "nbconvert", "nbclient")

PROBE = (
    "import sys\n"
    "print(sorted(m for m in ('statsmodels.regression.linear_model', 'seaborn', 'this') if m in sys.modules),\n"
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
    assert cell.outputs[0]["text"] == "['seaborn', 'statsmodels.regression.linear_model'] []\n"


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


# ------------------------------------------------------------- kernels forked from a template

# what a notebook can see of the process it runs in; a forked kernel must show the same as a
# kernel started cold that imported the same libraries in its first cell
INTROSPECT = """
import importlib, json, os, signal, sys, threading, warnings
for name in {modules!r}:
    importlib.import_module(name)
import matplotlib.pyplot as plt
plt.close(plt.figure())  # the inline backend is loaded, and hooked into IPython, at a first figure
hooks = {{event: sorted(f.__qualname__ for f in functions)
         for event, functions in get_ipython().events.callbacks.items()}}
print(json.dumps(dict(hooks=hooks,
    argv0=sys.argv[0], argv_rest=sys.argv[3:], path=sys.path, cwd=os.getcwd(),
    threads=sorted(t.name for t in threading.enumerate()),
    signals=[str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)],
    filters=sorted(map(str, warnings.filters)), stdin=os.readlink("/proc/self/fd/0")[:5],
    own_session=os.getsid(0) == os.getpid(), environment=sorted(os.environ),
    modules=sorted(sys.modules), backend=sys.modules["matplotlib"].get_backend(),
)))
"""


def _introspect(tmp_path, **pool_options) -> tuple[dict, object]:
    code = INTROSPECT.format(modules=PRELOADED_MODULES)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    with KernelPool(kernel_name="python3", cwd=tmp_path, count=1, size=1, **pool_options) as pool:
        kernel = pool.take()
        done = NotebookClient(nb, km=kernel.manager).execute()
        pool.release(kernel)
    return json.loads(done.cells[0].outputs[0]["text"]), kernel


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "imported-after-start"])
def test_a_warm_kernel_looks_like_a_kernel_started_cold(tmp_path, fork):
    warm, kernel = _introspect(tmp_path, fork=fork)
    cold, cold_kernel = _introspect(tmp_path, preload=())
    assert kernel.forked == fork and kernel.warm
    assert not cold_kernel.forked and not cold_kernel.warm
    for key, value in cold.items():
        assert warm[key] == value, f"{key}: warm {warm[key]!r}, cold {value!r}"
    assert warm["stdin"] == "pipe:" and warm["own_session"]
    assert "analysis.build.kernel_template" not in warm["modules"]


def test_a_forked_kernel_is_its_own_process_and_ends_when_released(tmp_path):
    with KernelPool(kernel_name="python3", cwd=tmp_path, count=2, size=1) as pool:
        kernels = [pool.take(), pool.take()]
        pids = [k.manager.provisioner.pid for k in kernels]
        assert all(k.forked for k in kernels) and len(set(pids)) == 2
        assert [k.process_group for k in kernels] == pids  # a second Ctrl-C can stop each
        for kernel in kernels:
            pool.release(kernel)
    assert all(_gone(pid) for pid in pids)


def test_a_kernel_asked_for_other_blas_threads_is_not_forked(tmp_path, monkeypatch):
    with KernelTemplate(["numpy"]) as template:
        assert template.available, template.why_unavailable
        env = dict(os.environ, OPENBLAS_NUM_THREADS="7")
        with pytest.raises(TemplateUnavailable, match="OPENBLAS_NUM_THREADS"):
            template.fork([sys.executable, "-m", "ipykernel_launcher"], env, str(tmp_path), 1)
        with pytest.raises(TemplateUnavailable, match="not a launch of"):
            template.fork([sys.executable, "-m", "other_kernel"], dict(os.environ), "/", 1)


def test_kernels_end_with_their_template_and_the_next_ones_start_the_ordinary_way(tmp_path):
    with KernelPool(kernel_name="python3", cwd=tmp_path, count=2, size=1) as pool:
        first = pool.take()  # and the second one is forked ahead
        template = pool._template._process
        children = psutil.Process(template.pid).children()
        forked = [child.pid for child in children]
        template.kill()  # as the OOM killer might
        template.wait()
        psutil.wait_procs(children, timeout=10)
        second = pool.take()
        cell = _run_probe(second).cells[0]
        for kernel in (first, second):
            pool.release(kernel)
    assert first.forked and not second.forked and len(forked) == 2
    assert all(_gone(pid) for pid in forked)  # the kernels' parent poller ended them
    assert (
        cell.outputs[0]["text"] == "['seaborn', 'statsmodels.regression.linear_model'] []\n"
    )  # imported ahead


def test_a_template_whose_imports_print_is_not_used(tmp_path):
    with KernelTemplate(["this"]) as template:
        assert not template.available
        assert template.why_unavailable.startswith("importing printed: The Zen of Python")


def test_the_modules_notebooks_import_are_found_without_importing_them(tmp_path, monkeypatch):
    package = tmp_path / "never_run"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('a package was executed')\n")
    (package / "tool.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    cells = [
        nbformat.v4.new_code_cell("import json\nfrom never_run import tool, helper"),
        nbformat.v4.new_code_cell("%matplotlib inline\nimport not_seen"),  # a magic: not Python
        nbformat.v4.new_code_cell("def f():\n    import os.path\nfrom . import relative"),
        nbformat.v4.new_markdown_cell("import markdown_is_not_code"),
    ]
    notebook = tmp_path / "n.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    assert modules_imported_by([notebook]) == ("json", "never_run", "never_run.tool", "os.path")
    assert "never_run" not in sys.modules


def test_a_module_that_fails_to_import_is_left_out_and_fails_in_its_cell(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import no_such_module_x")])
    with KernelPool(
        kernel_name="python3", cwd=tmp_path, count=1, size=1, preload=["no_such_module_x", "json"]
    ) as pool:
        kernel = pool.take()
        done = NotebookClient(nb, km=kernel.manager, allow_errors=True).execute()
        pool.release(kernel)
    assert kernel.forked and kernel.warm
    assert done.cells[0].outputs[0]["ename"] == "ModuleNotFoundError"


def test_a_template_launched_for_a_build_with_nothing_to_run_is_stopped_at_once():
    template = KernelTemplate(PRELOADED_MODULES)
    template.launch()  # as `painanx run` does before it knows whether anything is out of date
    pid = template._process.pid
    template.close()  # killed while importing: no wait for its imports
    assert _gone(pid)
    assert not template.available
    template.wait_until_ready()  # a closed template is not launched again
    assert template._process is None


def test_what_the_imports_set_in_the_environment_reaches_a_forked_kernel(tmp_path, monkeypatch):
    """pandera sets SPARK_LOCAL_IP when imported; a kernel that imported it itself has it, so a
    forked kernel must too. A kernel asked for with another value of such a variable is
    started the ordinary way (the imports might have done otherwise)."""
    (tmp_path / "sets_env.py").write_text(
        "import os\nos.environ.setdefault('PAINANX_SET_BY_IMPORT', 'imported')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.delenv("PAINANX_SET_BY_IMPORT", raising=False)
    code = "import os\nprint(os.environ.get('PAINANX_SET_BY_IMPORT'))"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    with KernelPool(
        kernel_name="python3", cwd=tmp_path, count=1, size=1, preload=("sets_env",)
    ) as pool:
        kernel = pool.take()
        done = NotebookClient(nb, km=kernel.manager).execute()
        pool.release(kernel)
        template = pool._template
        env = dict(os.environ, PAINANX_SET_BY_IMPORT="other")
        launch = [*template.interpreter, "-m", "ipykernel_launcher"]
        with pytest.raises(TemplateUnavailable, match="PAINANX_SET_BY_IMPORT"):
            template.fork(launch, env, str(tmp_path), 1)
    assert kernel.forked
    assert done.cells[0].outputs[0]["text"] == "imported\n"


def test_a_kernel_client_is_ready_at_the_idle_status_of_its_kernel_info_request():
    """jupyter_client waits for 0.2 s of silence on IOPub before every notebook; the build's
    client stops reading at the idle status that closes its own kernel_info request (IOPub is
    ordered: nothing about that request comes after it)."""
    client_class = ready_on_idle_client_class()

    def status(state: str, parent: str) -> dict:
        return {
            "msg_type": "status",
            "content": {"execution_state": state},
            "parent_header": {"msg_id": parent},
        }

    class IOPub:
        def __init__(self, messages):
            self.messages = list(messages)

        async def get_msg(self, timeout=None):
            if not self.messages:
                raise AssertionError("read IOPub past the idle status of the request")
            message = self.messages.pop(0)
            if message is None:
                raise queue.Empty
            return message

    def idle_after(messages, request="info-2"):
        client = type("Probe", (client_class,), {"iopub_channel": None})()
        client.iopub_channel = iopub = IOPub(messages)
        return asyncio.run(client._idle_after(request)), iopub.messages

    startup = [status("starting", ""), status("busy", "info-1"), status("idle", "info-1")]
    ours = [status("busy", "info-2"), status("idle", "info-2")]
    assert idle_after([*startup, *ours, status("busy", "later")]) == (
        True,
        [status("busy", "later")],
    )
    assert idle_after([None]) == (False, [])  # IOPub not connected yet: ask again
    assert idle_after([status("busy", "info-2"), None]) == (True, [])  # silent: as jupyter_client
