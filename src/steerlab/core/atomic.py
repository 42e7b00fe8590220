"""Safe, atomic writes: a reader never sees a half-written file or folder, and saving never
destroys what steerlab did not write.

Every verb that saves goes through :func:`atomic_dir` (artifact-like folders) or
:func:`atomic_file` (single files). Before anything is written the target is checked:

- a folder that holds only files of the kind being written (``owned`` names: a previous artifact,
  checkpoint, value model, ...) is replaced only with ``overwrite=True``, and then atomically;
- an empty folder is used as if absent;
- a folder with any other file, an existing file where a folder goes (or a folder where a file
  goes), the current directory or one of its parents, and a path under a file are refused with a
  clear :class:`~steerlab.errors.OutputError`.

New files and folders follow the user's umask (``tempfile`` alone would leave 0700 / 0600).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from steerlab.errors import OutputError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _follow_umask(folder: Path) -> None:
    """Give every file under ``folder`` the user's default permissions (some writers, such as
    safetensors, create files readable by their owner only)."""
    mode = 0o666 & ~_umask()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


def _check_parent(target: Path) -> None:
    """Refuse a target that is the working directory (or above it) or that sits under a file."""
    if target.name in ("", ".", ".."):
        raise OutputError(f"cannot write to {str(target)!r}: name a new file or folder, e.g. ./out")
    resolved = target.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise OutputError(f"cannot write to {target}: it is the current directory or one of its parents")
    for parent in resolved.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"cannot write to {target}: {parent} is a file, not a folder")
            break


def check_dir_target(target: str | os.PathLike[str], owned: Collection[str] | None, *, overwrite: bool,
                     what: str = "artifact") -> None:
    """Raise :class:`OutputError` unless writing a ``what`` folder at ``target`` loses nothing.

    ``owned`` lists the file names such a folder holds; an existing folder made only of those is a
    previous ``what`` (replaced with ``overwrite=True``); anything else in it belongs to the user.
    ``owned=None`` is for steerlab's private cache only: everything there is steerlab's.
    """
    target = Path(target)
    _check_parent(target)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise OutputError(f"{target} exists and is not a folder; steerlab will not replace it with a {what} "
                          "folder: choose another path")
    if not target.is_dir():
        return
    entries = sorted(p.name for p in target.iterdir())
    if not entries:
        return
    foreign = [] if owned is None else [e for e in entries if e not in owned]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputError(f"{target} already holds files steerlab did not write ({shown}); it is not a {what}. "
                          "Choose another path (nothing was written)")
    if not overwrite:
        raise OutputError(f"{target} already holds a {what}; pass overwrite=True (CLI: --overwrite) to replace "
                          "it, or choose another path")


def check_file_target(target: str | os.PathLike[str], *, overwrite: bool, what: str = "file") -> None:
    """Raise :class:`OutputError` unless writing a ``what`` file at ``target`` loses nothing."""
    target = Path(target)
    _check_parent(target)
    if target.is_dir():
        raise OutputError(f"{target} is a folder; give a file path for the {what}")
    if target.exists() and not overwrite:
        raise OutputError(f"{target} already exists; pass overwrite=True (CLI: --overwrite) to replace it, "
                          "or choose another path")


@contextmanager
def atomic_dir(target: str | os.PathLike[str], owned: Collection[str] | None, *, overwrite: bool = False,
               what: str = "artifact") -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``target`` in one rename.

    ``target`` is checked first (:func:`check_dir_target`). On any exception the temporary folder
    is deleted and ``target`` is left as it was. Files written into the folder must be named in
    ``owned``, so that a later save recognises the folder as its own.
    """
    target = Path(target)
    check_dir_target(target, owned, overwrite=overwrite, what=what)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        stray = [] if owned is None else sorted(p.name for p in tmp.iterdir() if p.name not in owned)
        if stray:  # a programming error: the next save would refuse this folder as foreign
            raise RuntimeError(f"atomic_dir wrote files it does not own: {stray}")
        _follow_umask(tmp)
        if target.is_dir():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "x")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)  # only ever the previous copy of an owned folder
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_file(target: str | os.PathLike[str], *, overwrite: bool = False, what: str = "file") -> Iterator[Path]:
    """Yield a temporary path next to ``target``; renamed over it only if the block succeeds.

    ``target`` is checked first (:func:`check_file_target`); an existing file is replaced only with
    ``overwrite=True``.
    """
    target = Path(target)
    check_file_target(target, overwrite=overwrite, what=what)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # again: a writer may have replaced the file
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def prepare_folder(out: str | os.PathLike[str], names: Collection[str], *, overwrite: bool,
                   what: str = "results") -> Path:
    """Check (:func:`check_folder`) and create a results folder; returns it.

    Callers then write each file with :func:`atomic_file` (``overwrite=True``: checked here).
    """
    folder = check_folder(out, names, overwrite=overwrite, what=what)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def check_folder(out: str | os.PathLike[str], names: Collection[str], *, overwrite: bool,
                 what: str = "results") -> Path:
    """Raise :class:`OutputError` unless ``names`` can be written into the results folder ``out``
    (a report folder, ``annotate``'s output) without losing anything: the folder may hold other
    files, which are never touched; each of ``names`` replaces an earlier one only with
    ``overwrite=True``. Creates nothing."""
    folder = Path(out)
    _check_parent(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file; give a folder for the {what}")
    existing = sorted(n for n in names if (folder / n).exists())
    if existing and not overwrite:
        raise OutputError(f"{folder} already holds {', '.join(existing)}; pass overwrite=True (CLI: --overwrite) "
                          "to replace them, or choose another folder")
    clash = [n for n in existing if (folder / n).is_dir()]
    if clash:
        raise OutputError(f"{folder / clash[0]} is a folder; steerlab will not replace it with a file")
    return folder
