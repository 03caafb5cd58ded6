"""Kernels forked from a template process that has already imported the notebooks' libraries.

Importing pandas, statsmodels, matplotlib, seaborn and the library costs a kernel ~1.5 s of CPU;
on a 2-core machine, 16 kernels doing it cost more than all the notebooks' own cells. The
template (`python -m analysis.build.kernel_template`) imports them once, then forks one child
per kernel: the child starts an IPython kernel exactly as ``python -m ipykernel_launcher`` would
(its own session, working directory, environment, standard streams and arguments), with the
libraries already in memory, shared copy-on-write with the template. Each child serves one
notebook and is never reused, as with any other kernel.

A kernel must not behave differently for having been forked. The template therefore refuses to
serve, and the build starts kernels the ordinary way, when the imports printed or warned
anything (a cold kernel would show that in a cell), when they left a thread running (a fork
copies only the forking thread), or when a kernel is asked for with a different value of a
variable the imports read once (BLAS threads, matplotlib's backend, hash seed).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence

# variables read once when the libraries are imported: a kernel asked for with another value
# than the template's is started the ordinary way
IMPORT_TIME_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "MPLBACKEND",
    "PYTHONHASHSEED",
    "PYTHONPATH",
)
# what ipykernel sets before a notebook can import matplotlib (kernelapp.init_gui_pylab)
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
LAUNCHER = ["-m", "ipykernel_launcher"]
MESSAGE_BYTES = 1 << 20
READY_TIMEOUT_S = 120


class TemplateUnavailable(RuntimeError):
    """The template cannot start this kernel (the message says why); start it the ordinary
    way."""


def kernel_environment(environ: dict[str, str]) -> dict[str, str]:
    """The environment a kernel's imports see: the launch environment with ipykernel's
    matplotlib backend, which ipykernel sets before any notebook code runs."""
    env = dict(environ)
    if not env.get("MPLBACKEND"):
        env["MPLBACKEND"] = INLINE_BACKEND
    return env


class KernelTemplate:
    """The build's handle on a template process (``with KernelTemplate(modules) as t:``).

    `fork` starts a kernel and returns a `ForkedProcess`; it raises `TemplateUnavailable` when
    the template cannot serve that kernel, and the caller starts it the ordinary way.
    """

    def __init__(self, modules: Sequence[str], interpreter: Sequence[str] = (sys.executable,)):
        self.modules = tuple(modules)
        self.interpreter = list(interpreter)  # the python and its options, as the kernel spec
        self.why_unavailable: str | None = "not started"
        self._env: dict[str, str] = {}
        # variables the imports set, changed (or removed: None), e.g. pandera's for pyspark
        self._set_by_imports: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen | None = None
        self._answered = False  # the template said whether its imports can be shared
        self._closed = False
        self._log = tempfile.TemporaryFile(mode="w+b")

    def __enter__(self) -> KernelTemplate:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def available(self) -> bool:
        return self.why_unavailable is None

    def start(self) -> None:
        """Start the template and wait until its imports are done (or refused)."""
        self.launch()
        self.wait_until_ready()

    def launch(self) -> None:
        """Start the template process; it imports the modules while the build goes on."""
        if os.name != "posix" or not hasattr(os, "fork"):
            self.why_unavailable = "forking needs a POSIX system"
            return
        if self._process is not None or self._closed:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._env = kernel_environment(dict(os.environ))
        try:
            self._process = subprocess.Popen(
                [*self.interpreter, "-m", __name__, str(theirs.fileno()), *self.modules],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                env=self._env,
                start_new_session=True,  # a Ctrl-C in the terminal is the build's to handle
            )
        finally:
            theirs.close()
        self._sock = ours
        self.why_unavailable = "still importing"
        self._answered = False

    def wait_until_ready(self) -> None:
        """Wait until the template's imports are done (or refused); `available` says which."""
        self.launch()
        if self._sock is None or self._answered:
            return
        self._sock.settimeout(READY_TIMEOUT_S)
        try:
            reply = json.loads(self._sock.recv(MESSAGE_BYTES) or b"{}")
        except (OSError, ValueError) as exc:
            reply = {"why": f"no answer ({exc})"}
        self._sock.settimeout(None)
        self._answered = True
        self._set_by_imports = reply.get("environment", {})
        self.why_unavailable = (
            None if reply.get("ready") else (reply.get("why") or f"it stopped: {self.log_tail()}")
        )
        if not self.available:
            self.close()

    def fork(self, cmd: list[str], env: dict[str, str], cwd: str, output_fd: int) -> ForkedProcess:
        """A kernel started from ``cmd`` (python [options] -m ipykernel_launcher ...) in ``cwd``
        with ``env``, its stdout and stderr going to ``output_fd``."""
        if not self.available:
            raise TemplateUnavailable(self.why_unavailable)
        prefix = [*self.interpreter, *LAUNCHER]
        if cmd[: len(prefix)] != prefix:
            raise TemplateUnavailable(f"not a launch of {' '.join(prefix)}: {cmd}")
        env = kernel_environment(env)
        # the imports read these, and set some: the kernel must start from the template's values
        # (or, for one the imports set, from the value they set)
        differ = [v for v in IMPORT_TIME_VARIABLES if env.get(v) != self._env.get(v)]
        differ += [
            v
            for v, set_to in self._set_by_imports.items()
            if env.get(v) not in (self._env.get(v), set_to)
        ]
        if differ:
            raise TemplateUnavailable(f"the kernel asks for other values of {differ}")
        env = {k: v for k, v in {**env, **self._set_by_imports}.items() if v is not None}
        request = json.dumps(
            {"argv": list(cmd[len(prefix) :]), "env": env, "cwd": str(cwd)}
        ).encode()
        with self._lock:
            if self._sock is None:
                raise TemplateUnavailable("the template was closed")
            try:
                socket.send_fds(self._sock, [request], [output_fd])
                reply = json.loads(self._sock.recv(MESSAGE_BYTES) or b"{}")
            except (OSError, ValueError) as exc:
                self.why_unavailable = f"the template stopped answering ({exc})"
                raise TemplateUnavailable(self.why_unavailable) from None
        if "pid" not in reply:
            raise TemplateUnavailable(reply.get("why", "no kernel started"))
        return ForkedProcess(int(reply["pid"]))

    def close(self) -> None:
        """Stop the template (its kernels are stopped by their own managers); one that never
        served, at once."""
        self._closed = True
        if self._process is not None and not self._answered:
            self._process.kill()
        if self._sock is not None:
            self._sock.close()  # the template exits when its socket closes
            self._sock = None
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self.available:
            self.why_unavailable = "closed"

    def log_tail(self, chars: int = 2000) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-chars:].strip()


def kernel_interpreter(argv: Sequence[str]) -> list[str] | None:
    """The python and its options from a kernel spec's ``argv`` that runs ipykernel_launcher,
    else None (another kind of kernel: no template)."""
    argv = list(argv)
    for i in range(len(argv) - 1):
        if argv[i : i + 2] == LAUNCHER:
            return argv[:i] or None
    return None


class ForkedProcess:
    """The parts of `subprocess.Popen` a kernel provisioner uses, for a kernel the template
    forked. The template reaps its children, so an ended kernel simply disappears; its exit
    status is not passed back (0 is reported)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = 0
            except PermissionError:  # the pid was reused by another user's process
                self.returncode = 0
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


# ----------------------------------------------------------------------- the template process


def _import_quietly(modules: tuple[str, ...]) -> str | None:
    """Import ipykernel and ``modules``; why they cannot be shared, or None. A module that
    fails to import is left out (the notebook that imports it meets the error in its cell).
    Warnings are caught where they would be shown, so the filters the imports install stay
    installed (as in a kernel that imports them itself)."""
    printed, shown = io.StringIO(), []
    show = warnings.showwarning
    warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            importlib.import_module("ipykernel.kernelapp")
            for name in modules:
                with contextlib.suppress(Exception):  # the notebook's own import shows it
                    importlib.import_module(name)
    except Exception as exc:  # ipykernel itself: kernels start the ordinary way
        return f"importing failed: {type(exc).__name__}: {exc}"
    finally:
        warnings.showwarning = show
    said = printed.getvalue() + "".join(shown)
    if said:
        return "importing printed: " + said[:500]
    if threading.active_count() != 1:
        return f"importing left threads running: {[t.name for t in threading.enumerate()]}"
    return None


def _serve(sock: socket.socket, launcher: str) -> None:
    """Fork a kernel for each request until the build closes the socket."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped as they end
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MESSAGE_BYTES, 1)
        except OSError:
            return
        if not data:
            return
        request = json.loads(data)
        request["launcher"] = launcher  # sys.argv[0] of `python -m ipykernel_launcher`
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            _become_kernel(sock, request, fds[0], ready_w)  # never returns
        os.close(ready_w)
        for fd in fds:
            os.close(fd)
        started = os.read(ready_r, 1) == b"1"  # the child has its own session now
        os.close(ready_r)
        reply = {"pid": pid} if started else {"why": "the forked kernel did not start"}
        sock.send(json.dumps(reply).encode())


def _become_kernel(sock: socket.socket, request: dict, output_fd: int, ready_w: int) -> None:
    """In the forked child: become ``python -m ipykernel_launcher ARGV`` and exit with it."""
    code = 1
    try:
        sock.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setsid()
        stdin_r, _ = os.pipe()  # like the pipe jupyter_client gives a kernel: reads wait
        os.dup2(stdin_r, 0)
        os.close(stdin_r)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["JPY_PARENT_PID"] = str(os.getppid())  # the kernel ends if the template does
        sys.argv = [request["launcher"], *request["argv"]]
        if "numpy" in sys.modules:  # a fresh process draws numpy's global seed from the OS
            sys.modules["numpy"].random.seed()
        os.write(ready_w, b"1")
        os.close(ready_w)
        from ipykernel import kernelapp

        # what ipykernel reads from JPY_PARENT_PID when it is imported, in a fresh process
        kernelapp.IPKernelApp.launch_instance(parent_handle=os.getppid())
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # shown in the kernel log, then the child ends
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def main(argv: list[str]) -> None:
    fd, modules = int(argv[0]), tuple(argv[1:])
    sock = socket.socket(fileno=fd)
    if sys.path and (sys.path[0] in ("", os.getcwd())):
        del sys.path[0]  # as ipykernel_launcher does; the kernel puts '' back
    before = dict(os.environ)
    why = _import_quietly(modules)
    if why:
        sock.send(json.dumps({"ready": False, "why": why}).encode())
        return
    # debugpy (ipykernel's debugger, imported as each kernel starts) logs platform.platform(),
    # whose processor field runs `uname -p` in a subprocess: a fork of the whole kernel. The
    # answer is cached in `platform`; found once here, every kernel has it.
    platform.uname().processor  # noqa: B018
    # what the imports did to the environment: the build passes it on to each kernel, as a
    # kernel that imported them itself would have it
    environment = {
        k: os.environ.get(k) for k in {*before, *os.environ} if before.get(k) != os.environ.get(k)
    }
    gc.collect()
    # the imported objects are never traversed by the collector, in the template or in the
    # kernels, so their pages stay shared instead of being copied by each kernel
    gc.freeze()
    sock.send(json.dumps({"ready": True, "environment": environment}).encode())
    _serve(sock, importlib.util.find_spec(LAUNCHER[1]).origin)
    # the build closed the socket and waits for this process to end: skip the interpreter's
    # teardown of every library object (~0.1 s); there is nothing to save
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
