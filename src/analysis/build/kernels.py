"""Kernels for notebook runs: the kernel manager, and a pool that starts them warm.

A kernel takes ~2 s to start and the notebooks' imports (pandas, statsmodels, matplotlib,
seaborn, the library) ~2 s more. `KernelPool` starts the next notebooks' kernels while others
run, forked from a template process that imported those libraries once (kernel_template.py),
so a notebook finds its kernel ready. Each kernel serves ONE notebook and is then shut down:
nothing a notebook does reaches another one. Where the template cannot serve, the pool imports
the libraries in each kernel after it starts.

Pre-importing must not change what a notebook shows. The imports run silently (no execution
count, no history, no names in the notebook's namespace), and a kernel whose imports would have
printed anything (a warning, a log line) is not used warm: the pool shuts it down and from then
on starts kernels without pre-imports, so that output appears in the notebook's cell as it
would in a cold kernel.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import functools
import importlib.machinery
import json
import os
import queue
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from analysis.build.kernel_template import (
    KernelTemplate,
    TemplateUnavailable,
    kernel_interpreter,
)

# The heavy modules a notebook is likely to use, loaded ahead in a warm kernel (the backend is
# matplotlib's inline one, which ipykernel sets through MPLBACKEND before any import). A build
# adds what its notebooks import (`modules_imported_by`), and what the library imports only
# when a function first runs: pandera's pandas checks, loaded by the first schema validation
# (with hypothesis, when it is installed).
PRELOADED_MODULES = (
    "numpy",
    "pandas",
    "scipy.stats",
    "statsmodels.genmod.generalized_linear_model",
    "statsmodels.regression.linear_model",
    "matplotlib.pyplot",
    "seaborn",
    "analysis.data",
    "analysis.models",
    "analysis.build.display",
    "analysis.core.findings",
    "pandera.backends.pandas.builtin_checks",
    # what every kernel imports as it starts, and the renderer of its first figure. Not
    # matplotlib_inline.backend_inline: imported in a kernel, it hooks the shown-at-the-end-of-
    # the-cell figures into IPython; imported in the template, where there is no IPython, it
    # cannot, and the kernel would not import it again (tests/test_kernels.py)
    "ipykernel.ipkernel",
    "matplotlib.backends.backend_agg",
)


def modules_imported_by(notebooks: Iterable[Path]) -> tuple[str, ...]:
    """The modules the code cells of ``notebooks`` import, in the order they first appear: for
    ``from X import a``, X, and X.a when a is a module. Nothing is imported to find out (a
    package's submodules are looked up on disk); cells that are not Python (magics) and
    relative imports are left out."""
    found: dict[str, None] = {}
    for path in notebooks:
        cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
        for cell in cells:
            if cell.get("cell_type") != "code":
                continue
            source = "".join(cell.get("source", ""))
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found.update(dict.fromkeys(alias.name for alias in node.names))
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found[node.module] = None
                    for alias in node.names:
                        if _is_module(f"{node.module}.{alias.name}"):
                            found[f"{node.module}.{alias.name}"] = None
    return tuple(found)


def _is_module(dotted: str) -> bool:
    """Whether ``dotted`` names a module on disk, found without executing any package."""
    spec, parts = None, dotted.split(".")
    for i in range(len(parts)):
        where = None if spec is None else spec.submodule_search_locations
        if i and not where:
            return False
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), where)
        if spec is None:
            return False
    return True


def preload_code(modules: Sequence[str]) -> str:
    """Code that imports ``modules`` in a kernel and leaves no name behind; it raises when the
    imports printed or warned anything (a cold kernel would have shown that in a cell). A
    module that fails to import is left out. Warnings are caught where they would be shown,
    not with ``catch_warnings``, which would also undo the warning filters the imports
    install."""
    return f"""
def _painanx_preload():
    import contextlib, importlib, io, warnings
    printed, shown = io.StringIO(), []
    show = warnings.showwarning
    warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            for name in {tuple(modules)!r}:
                try:
                    importlib.import_module(name)
                except Exception:  # the notebook's own import shows it, in its cell
                    pass
    finally:
        warnings.showwarning = show
    said = printed.getvalue() + "".join(shown)
    if said:
        raise RuntimeError("pre-importing printed: " + said[:500])
try:
    _painanx_preload()
finally:
    del _painanx_preload
"""


START_TIMEOUT_S = 120
# nbclient starts its kernels with an in-memory IPython history; pooled kernels do the same
KERNEL_ARGUMENTS = ["--HistoryManager.hist_file=:memory:"]


READY_IOPUB_WAIT_S = 0.2  # jupyter_client's wait for an IOPub message when a kernel starts


@functools.cache
def ready_on_idle_client_class():
    """jupyter_client's asynchronous kernel client, ready as soon as the kernel has answered
    ``kernel_info`` and reported idle after it on IOPub.

    jupyter_client's own ``wait_for_ready`` then goes on reading IOPub until it has been silent
    for 0.2 s (to drain the start-up messages): a fixed 0.2 s before every notebook's first
    cell. The idle status of the request is the kernel's last message about it, and IOPub is
    ordered, so every earlier message has arrived by then; nbclient ignores any message that is
    not about its own requests. Otherwise the same: a kernel that does not answer within a
    second is asked again, and one whose IOPub is not connected yet too (a subscriber misses
    what was published before it connected).
    """
    from jupyter_client.asynchronous import AsyncKernelClient

    class ReadyOnIdleKernelClient(AsyncKernelClient):
        async def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
            while True:
                self.kernel_info()
                try:
                    reply = await self.shell_channel.get_msg(timeout=1)
                except queue.Empty:
                    reply = None
                if reply is not None and reply["msg_type"] == "kernel_info_reply":
                    if await self._idle_after(reply["parent_header"].get("msg_id")):
                        self._handle_kernel_info_reply(reply)
                        return
                if not await self.is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

        async def _idle_after(self, request_id: str | None) -> bool:
            """Read IOPub up to the idle status of ``request_id``: False when nothing comes
            (IOPub not connected yet: ask again), True once it is read, or when IOPub falls
            silent after some message (as jupyter_client)."""
            seen = False
            while True:
                try:
                    msg = await self.iopub_channel.get_msg(timeout=READY_IOPUB_WAIT_S)
                except queue.Empty:
                    return seen
                seen = True
                if (
                    msg["msg_type"] == "status"
                    and msg["content"].get("execution_state") == "idle"
                    and msg["parent_header"].get("msg_id") == request_id
                ):
                    return True

    return ReadyOnIdleKernelClient


def kernel_manager_class(
    log_file,
    on_launch: Callable[[int], None] | None = None,
    template: KernelTemplate | None = None,
):
    """A kernel manager for one notebook run.

    The kernel talks over Unix sockets in the temp folder (IPC), not TCP ports: ports are picked
    by binding and releasing them, which races when many kernels start at once (parallel runs,
    parallel tests) and kills a kernel now and then. Its own stdout/stderr (start-up and shutdown
    chatter, crash messages) go to ``log_file`` instead of the terminal. ``on_launch`` receives
    the kernel's process group (so a second Ctrl-C can stop it). The clients it hands out are
    kept, so their sockets can be closed when the kernel is shut down. With a ``template``, the
    kernel is forked from it when it can serve (kernel_template.py), else started as usual.
    """
    # part of papermill's stack: imported with it, only when a notebook runs
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_client.provisioning import LocalProvisioner
    from traitlets import default

    class _ForkedProvisioner(LocalProvisioner):
        """Launches the kernel as a fork of the template; as usual when it cannot."""

        forked = False

        async def launch_kernel(self, cmd, **kwargs):
            try:
                cwd = str(kwargs.get("cwd") or os.getcwd())
                self.process = template.fork(cmd, kwargs["env"], cwd, kwargs["stdout"].fileno())
            except TemplateUnavailable:
                return await super().launch_kernel(cmd, **kwargs)
            self.forked = True
            self.pid = self.pgid = self.process.pid  # the child made its own session
            self.cwd = cwd
            return self.connection_info

    use_ipc = os.name == "posix"

    class _PainanxKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc" if use_ipc else "tcp"

        @default("ip")
        def _default_ip(self):
            if self.transport == "ipc":
                return os.path.join(
                    tempfile.gettempdir(), f"painanx-kernel-{uuid.uuid4().hex[:16]}"
                )
            return super()._ip_default()

        async def _async_pre_start_kernel(self, **kw):
            if template is not None and self.provisioner is None:
                self.kernel_id = self.kernel_id or str(uuid.uuid4())
                self.provisioner = _ForkedProvisioner(
                    kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self
                )
            return await super()._async_pre_start_kernel(**kw)

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw["stdout"] = kw["stderr"] = log_file
            info = await super()._async_launch_kernel(kernel_cmd, **kw)
            group = getattr(self.provisioner, "pgid", None)
            if on_launch is not None and group:
                on_launch(group)
            return info

        @default("client_factory")
        def _default_client_factory(self):
            return ready_on_idle_client_class()

        def client(self, **kwargs):
            kc = super().client(**kwargs)
            self.__dict__.setdefault("painanx_clients", []).append(kc)
            return kc

    return _PainanxKernelManager


def kernel_template(kernel_name: str, modules: Sequence[str]) -> KernelTemplate | None:
    """A template importing ``modules`` for the kernels of ``kernel_name`` (not launched yet);
    None when that kernel is not ipykernel's (its command cannot be forked)."""
    interpreter = kernel_interpreter(kernel_argv(kernel_name))
    return KernelTemplate(modules, interpreter) if interpreter else None


def kernel_argv(kernel_name: str) -> list[str]:
    """The command line of the kernel spec ``kernel_name`` (``{connection_file}`` unfilled)."""
    from jupyter_client.kernelspec import KernelSpecManager  # with papermill's stack, lazily

    return list(KernelSpecManager().get_kernel_spec(kernel_name).argv)


@dataclass(eq=False)  # one per kernel: kept in a set by identity
class PooledKernel:
    """A started kernel for one notebook: its manager, its process group and its log."""

    manager: object
    process_group: int | None
    log_file: object
    warm: bool
    forked: bool = False


class KernelPool:
    """Starts up to ``count`` kernels, ``size`` ahead of the notebooks that take them, in a
    thread of its own (``with KernelPool(...) as pool:``; `take` one per notebook, `release`
    it afterwards), each with ``preload`` imported: forked from a `KernelTemplate` that imported
    them once (``fork=True``, where it can serve), else imported in each kernel as it starts.
    Leaving the block shuts down every kernel it started, taken or not, and the template."""

    def __init__(
        self,
        *,
        kernel_name: str,
        cwd: Path,
        count: int,
        size: int,
        preload: Sequence[str] = PRELOADED_MODULES,
        fork: bool = True,
        template: KernelTemplate | None = None,
    ):
        self._kernel_name = kernel_name
        self._cwd = str(cwd)
        self._left_to_start = count
        self._size = max(1, size)
        self._preload = tuple(preload)
        # a template launched by the caller (who closes it), else one of the pool's own
        self._own_template = template is None
        if template is None and fork and self._preload:
            template = kernel_template(kernel_name, self._preload)
        self._template = template
        self._template_started: Future | None = None
        self._lock = threading.Lock()
        self._ready: deque[Future] = deque()
        self._alive: set[PooledKernel] = set()
        self._shutdowns: list[Future] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="painanx-kernels", daemon=True
        )

    def __enter__(self) -> KernelPool:
        self._thread.start()
        with self._lock:
            if self._template is not None:
                self._template_started = self._submit(self._start_template())
            for _ in range(self._size):
                self._start_one()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def take(self) -> PooledKernel:
        """The next started kernel (waiting for it if need be); another one starts ahead. A
        kernel that ended while it waited (a forked one whose template was stopped) is
        replaced once; a replacement that ended too is handed over, and its notebook fails
        saying so."""
        kernel = self._next_started()
        process = kernel.manager.provisioner.process
        if process is None or process.poll() is not None:
            self.release(kernel)
            kernel = self._next_started()
        return kernel

    def _next_started(self) -> PooledKernel:
        with self._lock:
            if not self._ready:
                self._start_one(force=True)
            future = self._ready.popleft()
            self._start_one()
        return future.result()

    def release(self, kernel: PooledKernel) -> None:
        """Shut a used kernel down (in the pool's thread; `close` waits for it)."""
        with self._lock:
            self._shutdowns.append(self._submit(self._shutdown(kernel)))

    def close(self) -> None:
        """Shut down every kernel still alive and stop the pool's thread."""
        if not self._thread.is_alive():
            return
        with self._lock:
            self._left_to_start = 0
            starting = list(self._ready)
            self._ready.clear()
        for future in starting:
            with contextlib.suppress(Exception):
                future.result()
        with self._lock:
            for kernel in list(self._alive):
                self._shutdowns.append(self._submit(self._shutdown(kernel)))
            shutdowns = list(self._shutdowns)
        for future in shutdowns:
            with contextlib.suppress(Exception):
                future.result(timeout=30)
        if self._template_started is not None:
            with contextlib.suppress(Exception):
                self._template_started.result()
            if self._own_template:
                self._template.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    # ------------------------------------------------------------------ in the pool's thread

    def _start_one(self, force: bool = False) -> None:
        if self._left_to_start <= 0 and not force:
            return
        self._left_to_start -= 1
        self._ready.append(self._submit(self._start()))

    def _submit(self, coroutine) -> Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def _start_template(self) -> None:
        await asyncio.to_thread(self._template.wait_until_ready)
        if (self._template.why_unavailable or "").startswith("importing printed"):
            self._preload = ()  # a cold kernel would show what the imports print

    async def _start(self) -> PooledKernel:
        if self._template_started is not None:
            await asyncio.wrap_future(self._template_started)
        modules = self._preload  # as it is now: another start may clear it while this one waits
        kernel = await self._launch()
        if kernel.forked:
            kernel.warm = True  # the template imported the modules before forking it
            return kernel
        if modules and not await self._warmed(kernel, modules):
            self._preload = ()  # its imports printed something: later kernels start cold
            await self._shutdown(kernel)
            kernel = await self._launch()
        return kernel

    async def _launch(self) -> PooledKernel:
        log_file = tempfile.TemporaryFile(mode="w+b")
        template = self._template if self._template and self._template.available else None
        manager = kernel_manager_class(log_file, template=template)(kernel_name=self._kernel_name)
        await manager.start_kernel(extra_arguments=list(KERNEL_ARGUMENTS), cwd=self._cwd)
        group = getattr(manager.provisioner, "pgid", None)
        forked = getattr(manager.provisioner, "forked", False)
        kernel = PooledKernel(manager, group, log_file, warm=False, forked=forked)
        with self._lock:
            self._alive.add(kernel)
        return kernel

    async def _warmed(self, kernel: PooledKernel, modules: Sequence[str]) -> bool:
        """Import the heavy libraries in the kernel; False when that printed anything or
        failed."""
        try:
            return await self._import_ahead(kernel, modules)
        except Exception:  # timed out, kernel died: it is replaced by a cold one
            return False

    async def _import_ahead(self, kernel: PooledKernel, modules: Sequence[str]) -> bool:
        client = kernel.manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=START_TIMEOUT_S)
            msg_id = client.execute(
                preload_code(modules), silent=True, store_history=False, allow_stdin=False
            )
            while True:
                reply = await client.get_shell_msg(timeout=START_TIMEOUT_S)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
        finally:
            client.stop_channels()
        kernel.warm = reply["content"]["status"] == "ok"
        return kernel.warm

    async def _shutdown(self, kernel: PooledKernel) -> None:
        with self._lock:
            if kernel not in self._alive:
                return
            self._alive.discard(kernel)
        manager = kernel.manager
        try:
            for client in manager.__dict__.get("painanx_clients", []):
                with contextlib.suppress(Exception):
                    client.stop_channels()
            if await manager.is_alive():
                await manager.shutdown_kernel(now=True)  # its notebook is done: free its memory now
            else:
                await manager.cleanup_resources()
        finally:
            kernel.log_file.close()
