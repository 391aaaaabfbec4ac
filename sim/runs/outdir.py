"""Output folders: checked before any work, locked while a command writes them, never taken from the user.

Every command that writes a folder goes through ``claimed(out, ...)``, which

- refuses, in one line, a path that cannot be an output folder: the current folder or one above it, a path
  through a file, a parent where nothing can be created;
- refuses a folder that already exists and holds anything, unless ``resume`` (a batch completing itself: the
  batch checks it is the same batch) or ``force`` (replace it, allowed only for a folder that holds our own
  manifest and nothing else but the files that manifest and our reports name);
- holds a lock (``.NAME.lock`` beside the folder, an advisory ``flock`` the kernel drops if the process dies),
  so a second command writing the same folder is refused at once instead of computing the same work twice.

The checks run before simulating, so a bad ``--out`` costs nothing and leaves nothing that blocks a retry.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..state.scenario import ScenarioError

MANIFEST = "manifest.json"

#: files our commands add to a folder after its manifest was written (``sim report``, ``sim plot``)
ADDED_LATER = {"report.html", "figures"}

#: locks this process holds, by resolved folder path (a nested claim of the same folder is free)
_held: dict[Path, int] = {}


def _refuse(out: Path, why: str) -> ScenarioError:
    return ScenarioError(f"--out {out}: {why}")


def check_path(out: str | Path, folder: bool = True) -> Path:
    """The resolved folder (or file, ``folder=False``), after checking it could be created and written; raises
    ScenarioError otherwise. Creates nothing (a probe file is made and removed in the nearest existing parent)."""
    given = Path(out)
    path = given.resolve()
    cwd = Path.cwd().resolve()
    if path == cwd or path in cwd.parents:
        raise _refuse(given, "is the current folder or one above it; give the name of a new folder, e.g. outputs/mine")
    if folder and path.exists() and not path.is_dir():
        raise _refuse(given, "exists and is not a folder")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise _refuse(given, f"{parent} is a file, so no folder can be made inside it")
    for place in [parent] + ([path] if folder and path.is_dir() else []):  # an existing folder is written in too
        try:
            fd, probe = tempfile.mkstemp(prefix=f".{path.name}.probe-", dir=place)
        except OSError as exc:
            raise _refuse(given, f"cannot write in {place} ({exc.strerror or exc})") from None
        os.close(fd)
        os.unlink(probe)
    return path


def read_manifest(folder: str | Path, kinds: tuple[str, ...] = (), complete: bool = True) -> dict:
    """The manifest of a folder sim wrote, checked: valid JSON of ours, of one of ``kinds`` (if given) and, if
    ``complete``, with every file it lists present. Raises ScenarioError (one line) otherwise."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise ScenarioError(f"{folder}: no manifest.json; give a folder written by sim") from None
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"{folder}: manifest.json cannot be read ({type(exc).__name__}); the folder is damaged") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise ScenarioError(f"{folder}: manifest.json is not a manifest sim wrote")
    if kinds and manifest.get("kind") not in kinds:
        raise ScenarioError(f"{folder}: a {manifest.get('kind') or 'single run'} folder, where a {' or '.join(kinds)} folder is needed")
    missing = [name for name in manifest["files"] if complete and not (folder / name).exists()]
    if missing:
        raise ScenarioError(f"{folder}: {missing[0]} is missing, though manifest.json lists it; the folder is damaged")
    return manifest


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_png(path: Path) -> bool:
    """Whether the file at ``path`` is a PNG image (what our figures are), by its first bytes."""
    with Path(path).open("rb") as fh:
        return fh.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE


def arm_file(name: str) -> str:
    """The per-arm summary file of a portfolio arm: ``comparison_<name>.csv``, the name kept to safe characters."""
    return "comparison_" + "".join(c if c.isalnum() or c in "+-_." else "_" for c in name) + ".csv"


def foreign_entries(folder: Path) -> list[str]:
    """Entries of ``folder`` that our commands did not write, judged by its manifest (all of them if it has none)."""
    entries = sorted(p.name for p in folder.iterdir())
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        ours = set(manifest["files"]) | ADDED_LATER | {MANIFEST}
        assert "reoffsim" in manifest["versions"]
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        return entries
    foreign = []
    for name in entries:
        entry = folder / name
        if _temporary_of(name) in ours:
            continue
        if name not in ours:
            foreign.append(name)
        elif entry.is_dir():
            pattern = "*.png" if name == "figures" else "part-*.parquet"
            foreign += [f"{name}/{p.name}" for p in sorted(entry.iterdir())
                        if not (p.is_file() and (p.match(pattern) or Path(_temporary_of(p.name) or "/").match(pattern)))]
        elif name == "figures":
            foreign.append(name)
    return foreign


#: our temporary names: ``.NAME.tmp-SUFFIX`` (atomic writes of NAME) and ``.report.html.tmp``
_TEMPORARY = re.compile(r"\.(?P<name>[^/]+?)\.tmp(-[A-Za-z0-9_]+)?")


def _temporary_of(name: str) -> str | None:
    """The name a temporary file of ours stands for (``.timeseries.parquet.tmp-123`` -> ``timeseries.parquet``)."""
    m = _TEMPORARY.fullmatch(name)
    return m.group("name") if m else None


def check_existing(out: Path, force: bool, resume: bool, resumable: bool = False, shown: str | Path | None = None) -> bool:
    """Whether ``out`` exists with content that this command may act on; raises ScenarioError if not allowed.
    ``resume`` lets the caller check and complete it; ``force`` lets the caller replace it if it is ours.
    ``resumable``: the command has ``--resume`` (a batch), so the refusal offers it."""
    shown = out if shown is None else shown
    if not out.is_dir() or not any(out.iterdir()):
        return False
    if resume:
        return True
    foreign = foreign_entries(out)
    held = f"{foreign[0]!r}{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}" if foreign else ""
    if not force:
        resuming = "--resume to complete the batch in it, " if resumable else ""
        if foreign:
            raise _refuse(shown, f"already exists and holds {held}, which sim did not write (no sim manifest there lists it); choose another --out"
                          f"{' (or ' + resuming.rstrip(', ') + ')' if resumable else ''}: --force replaces only a folder sim wrote")
        raise _refuse(shown, f"already exists; choose another --out, or add {resuming}--force to replace it (it holds only what sim wrote)")
    if foreign:
        raise _refuse(shown, f"--force replaces only a folder sim wrote, and this one holds {held}, which sim did not write "
                      "(no sim manifest there lists it); nothing was changed")
    return True


def remove_ours(folder: Path) -> None:
    """Delete ``folder`` if it holds only what sim wrote (``--force`` for a batch, which writes in place)."""
    if not folder.exists():
        return
    foreign = foreign_entries(folder)
    if foreign:
        raise _refuse(folder, f"holds {foreign[0]!r}, which sim did not write; nothing was changed")
    shutil.rmtree(folder)


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold the folder's lock (``.NAME.lock`` beside it) for the block; refuse at once if another process has it."""
    out = out.resolve()
    if out in _held:
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out.parent / f".{out.name}.lock"
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _refuse(out, f"another sim command (pid {holder}) is writing this folder; wait for it to finish, or choose another --out") from None
            raise
        try:  # the holder before us may have removed the file after we opened it: then lock the new one
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held[out] = fd
    try:
        yield
    finally:
        del _held[out]
        try:
            os.unlink(lock_path)
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def claimed(out: str | Path, force: bool = False, resume: bool = False, resumable: bool = False) -> Iterator[Path]:
    """Check ``out`` (path, existing content, ``force``/``resume``) and hold its lock for the block; yields the
    resolved folder. Call it before simulating so that a refusal costs nothing."""
    path = check_path(out)
    with locked(path):
        check_existing(path, force, resume, resumable, shown=out)
        yield path
