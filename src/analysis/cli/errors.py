"""One line instead of a traceback when the operating system or the network says no.

`OneLineErrorGroup` is the class of the root ``painanx`` command, so it wraps every
subcommand, present and future: an ``OSError`` (a folder where a file should be, a read-only
or full disk, a refused connection; ``requests`` errors are OSErrors too) becomes one line
naming the path or URL and what to do, with exit code 1. ``painanx --debug ...`` or
``PAINANX_DEBUG=1`` lets the traceback through.
"""

from __future__ import annotations

import errno

import typer
from typer.core import TyperGroup

DEBUG_ENV = "PAINANX_DEBUG"

_WRITE_ELSEWHERE = "choose a folder you may write to, or change its permissions"
_FREE_SPACE = "free some space or choose another disk"
_NETWORK = "check the network connection and the address, then try again"
_WHAT_TO_DO = {
    errno.EISDIR: "give the path of a file, not of a folder",
    errno.ENOTDIR: "move that file or choose another path",
    errno.EEXIST: "move the file out of the way or choose another path",
    errno.EACCES: _WRITE_ELSEWHERE,
    errno.EPERM: _WRITE_ELSEWHERE,
    errno.EROFS: "the disk is read-only: choose a folder on a writable disk",
    errno.ENOSPC: _FREE_SPACE,
    errno.EDQUOT: _FREE_SPACE,
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "choose a shorter path",
    errno.ECONNREFUSED: _NETWORK,
    errno.ECONNRESET: _NETWORK,
    errno.ETIMEDOUT: _NETWORK,
    errno.ENETUNREACH: _NETWORK,
    errno.EHOSTUNREACH: _NETWORK,
}


def describe_os_error(exc: OSError) -> str:
    """``<path or URL>: <what went wrong> - <what to do>``, on one line."""
    request = getattr(exc, "request", None)  # requests' errors carry the request they failed
    url = getattr(request, "url", None)
    name = exc.filename if exc.filename is not None else exc.filename2
    if url is not None:
        where, what, advice = url, type(exc).__name__, _NETWORK
    else:
        where = name
        what = exc.strerror or str(exc) or type(exc).__name__
        advice = _WHAT_TO_DO.get(exc.errno, "check the path and try again")
    text = f"{where}: {what} - {advice}" if where is not None else f"{what} - {advice}"
    return " ".join(str(text).split())


class OneLineErrorGroup(TyperGroup):
    """The root command: OS and network errors of any subcommand end as one line, exit 1."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if ctx.params.get("debug"):
                raise
            typer.echo(
                f"Error: {describe_os_error(exc)} (painanx --debug ... shows the traceback)",
                err=True,
            )
            raise typer.Exit(1) from None
