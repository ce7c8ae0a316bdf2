"""Model store: the real huggingface-hub download code against a local stand-in for the hub.

The hub itself cannot be reached from the test machine, so a small HTTP server on 127.0.0.1
speaks the endpoints `hf_hub_download` and `snapshot_download` use (file resolve with HEAD and
ranged GET, and the repo tree listing); everything on our side — and the hub client — is real.
The server drops the first transfer of each file halfway (the client must retry without
corrupting the file), and one test leaves the partial file a killed `pull` leaves behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from labdesk.errors import ModelError
from labdesk.models.store import list_models, parse_ref, pull_model, resolve_model
from labdesk.recipes import ModelRef
from labdesk.workspace import Workspace

REPO = "tiny-org/stories-GGUF"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.ranges: list[str] = []
        self.cut_once: set[str] = set(files)  # each file's first GET is cut short


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _file(self) -> tuple[str, bytes] | None:
            prefix = f"/{REPO}/resolve/{COMMIT}/"
            if not self.path.startswith(prefix):
                return None
            name = self.path[len(prefix) :]
            return (name, hub.files[name]) if name in hub.files else None

        def _head(self, name: str, data: bytes, status: int, length: int) -> None:
            self.send_response(status)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")

        def do_HEAD(self) -> None:
            found = self._file()
            if found is None:
                self.send_error(404)
                return
            self._head(*found, 200, len(found[1]))
            self.end_headers()

        def do_GET(self) -> None:
            if self.path.startswith(f"/api/models/{REPO}/tree/{COMMIT}"):
                listing = [
                    {"type": "file", "path": name, "size": len(data), "oid": f"{i:040x}"}
                    for i, (name, data) in enumerate(hub.files.items())
                ]
                body = json.dumps(listing).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            found = self._file()
            if found is None:
                self.send_error(404)
                return
            name, data = found
            start = 0
            if rng := self.headers.get("Range"):
                hub.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0])
                self._head(name, data, 206, len(data) - start)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self._head(name, data, 200, len(data))
            self.end_headers()
            if name in hub.cut_once and len(data) > 1000:
                hub.cut_once.discard(name)
                self.wfile.write(data[start : start + (len(data) - start) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            # The client may go away early (it knows the size and stops reading).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data[start:])

    return Handler


@pytest.fixture
def hub(stories_gguf: Path) -> Iterator[tuple[str, FakeHub]]:
    fake = FakeHub(
        {
            "stories260K.gguf": stories_gguf.read_bytes(),
            "config.json": b'{"model_type": "llama"}',
            "model.safetensors": os.urandom(5000),
            "run_me.py": b"print('never downloaded')",
        }
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", fake
    server.shutdown()
    server.server_close()


def _cli(
    args: list[str], home: Path, endpoint: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = os.environ | {"LABDESK_HOME": str(home), "HF_ENDPOINT": endpoint} | env
    return subprocess.run(
        [sys.executable, "-m", "labdesk", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


def test_pull_resumes_verifies_and_resolves(
    hub: tuple[str, FakeHub], tmp_path: Path, stories_gguf: Path
) -> None:
    endpoint, fake = hub
    home = tmp_path / "home"
    ref = ModelRef(repo=REPO, revision=COMMIT, file="stories260K.gguf")
    ws = Workspace.open(home)
    with pytest.raises(ModelError, match="not downloaded") as err:
        resolve_model(ref, ws, want="gguf")
    assert f"labdesk models pull {REPO}@{COMMIT}:stories260K.gguf" in str(err.value)

    # What a pull killed halfway leaves: the partial file.
    partial = home / "models" / "hub" / REPO.replace("/", "--") / COMMIT / "stories260K.gguf.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(fake.files["stories260K.gguf"][:600_000])

    run = _cli(["models", "pull", f"{REPO}@{COMMIT}:stories260K.gguf"], home, endpoint)
    assert run.returncode == 0, run.stderr
    # Resumed where the killed pull stopped, then again where the server dropped the line.
    assert fake.ranges == ["bytes=600000-", "bytes=892688-"]
    assert not partial.exists()
    path = resolve_model(ref, ws, want="gguf")
    assert path.read_bytes() == stories_gguf.read_bytes()

    run = _cli(["models", "pull", f"{REPO}@{COMMIT}"], home, endpoint)
    assert run.returncode == 0, run.stderr
    folder = resolve_model(ModelRef(repo=REPO, revision=COMMIT), ws, want="hf")
    assert (folder / "model.safetensors").read_bytes() == fake.files["model.safetensors"]
    assert not (folder / "run_me.py").exists()  # code is never fetched

    listing = _cli(["models", "list"], home, endpoint)
    assert REPO in listing.stdout and "MiB" in listing.stdout
    assert [m.files for m in list_models(ws) if m.name == REPO] == [3]  # gguf + config + weights


def test_sha256_mismatch_removes_the_file(hub: tuple[str, FakeHub], tmp_path: Path) -> None:
    endpoint, _ = hub
    import huggingface_hub.constants as hf_constants

    ws = Workspace.open(tmp_path / "home")
    ref = ModelRef(repo=REPO, revision=COMMIT, file="config.json", sha256="0" * 64)
    saved = hf_constants.ENDPOINT
    try:
        hf_constants.ENDPOINT = endpoint
        with pytest.raises(ModelError, match="sha256 mismatch"):
            pull_model(ref, ws, want="gguf")
        with pytest.raises(ModelError, match="not downloaded"):
            resolve_model(ref, ws, want="gguf")  # the bad file was removed
        good = ref.model_copy(
            update={"sha256": hashlib.sha256(b'{"model_type": "llama"}').hexdigest()}
        )
        assert pull_model(good, ws, want="gguf").read_bytes() == b'{"model_type": "llama"}'
    finally:
        hf_constants.ENDPOINT = saved


def test_offline_pull_is_a_clear_error(tmp_path: Path) -> None:
    run = _cli(
        ["models", "pull", f"{REPO}@{COMMIT}:stories260K.gguf"],
        tmp_path / "home",
        "http://127.0.0.1:9",
        HF_HUB_OFFLINE="1",
    )
    assert run.returncode == 1
    assert "cannot download: offline mode" in run.stderr and "path:" in run.stderr
    assert "Traceback" not in run.stderr


def test_local_paths_and_kinds(stories_gguf: Path, tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "home")
    assert resolve_model(ModelRef(path=str(stories_gguf)), ws, want="gguf") == stories_gguf
    hf = stories_gguf.parent / "hf"
    assert resolve_model(ModelRef(path=str(hf)), ws, want="hf") == hf
    with pytest.raises(ModelError, match=r"config\.json"):
        resolve_model(ModelRef(path=str(tmp_path)), ws, want="hf")
    # A GGUF wanted as training weights is converted; transformers cannot read this one's
    # 512-token vocabulary, which must come back as a clear error, not a traceback.
    with pytest.raises(ModelError, match="transformers cannot read this GGUF"):
        resolve_model(ModelRef(path=str(stories_gguf)), ws, want="hf")
    with pytest.raises(ModelError, match="add `file:"):
        resolve_model(ModelRef(repo=REPO, revision=COMMIT), ws, want="gguf")
    with pytest.raises(ModelError, match="not a model reference"):
        parse_ref("just-a-name")
