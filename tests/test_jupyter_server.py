"""The researchers' path: a real Jupyter server (what `make lab` starts) on 127.0.0.1 runs a
notebook through its own kernel API (REST + websocket), with the notebook's default parameters."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("jupyter_server", reason="JupyterLab is in the dev extra (make install)")
from tornado.websocket import websocket_connect  # a jupyter_server dependency

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_data_overview.ipynb"
TOKEN = uuid.uuid4().hex
START_S, CELL_S = 90, 180  # bounds: the server's start, each cell's run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, path: str, method: str = "GET", body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{base}{path}", data=data, method=method,
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read()
    return json.loads(text) if text else None


@pytest.fixture
def server(tmp_path):
    """A Jupyter server on a free loopback port, rooted in a copy of the notebook's folder."""
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    port = _free_port()
    env = {**os.environ, "PAINANX_HOME": str(tmp_path)}  # outputs go under tmp_path/reports
    log = (tmp_path / "server.log").open("w")
    as_root = ["--allow-root"] if os.geteuid() == 0 else []  # CI runs as root
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}", *as_root],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while True:
            try:
                _api(base, "/api/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"jupyter_server did not answer on {base} within {START_S} s: "
                        + (tmp_path / "server.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.5)
        yield base, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def _run_cells(base: str, kernel_id: str, sources: list[str]) -> list[dict]:
    """Each cell's execute_reply content plus its error outputs, in order."""
    url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels?token={TOKEN}"
    conn = await websocket_connect(url)
    session = uuid.uuid4().hex
    replies = []
    try:
        for source in sources:
            msg_id = uuid.uuid4().hex
            header = {"msg_id": msg_id, "username": "test", "session": session,
                      "msg_type": "execute_request", "version": "5.3"}  # fmt: skip
            content = {"code": source, "silent": False, "store_history": True,
                       "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}  # fmt: skip
            await conn.write_message(json.dumps({"header": header, "parent_header": {},
                "metadata": {}, "content": content, "channel": "shell", "buffers": []}))  # fmt: skip
            reply, idle = None, False
            while reply is None or not idle:
                raw = await asyncio.wait_for(conn.read_message(), timeout=CELL_S)
                if raw is None:
                    raise RuntimeError("the kernel's websocket closed")
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "execute_reply":
                    reply = msg["content"]
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
            replies.append(reply)
    finally:
        conn.close()
    return replies


def test_a_notebook_runs_through_a_real_jupyter_server(server):
    base, root = server
    assert _api(base, "/api/contents/" + NOTEBOOK.name)["type"] == "notebook"
    kernel = _api(base, "/api/kernels", "POST", {"name": "python3", "path": ""})
    try:
        nb = nbformat.read(NOTEBOOK, as_version=4)
        cells = [c.source for c in nb.cells if c.cell_type == "code"]
        replies = asyncio.run(_run_cells(base, kernel["id"], cells))
    finally:
        _api(base, f"/api/kernels/{kernel['id']}", "DELETE")
    failed = [
        (i, r.get("ename"), r.get("evalue")) for i, r in enumerate(replies) if r["status"] != "ok"
    ]
    assert not failed
    assert len(replies) == len(cells)
    sample = root / "reports" / "synthetic" / "tables" / "01_sample.csv"  # default output_dir
    assert sample.is_file() and sample.read_text().count("\n") > 1
