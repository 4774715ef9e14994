"""Atomic outputs: write into a temporary sibling, then rename into place.

A failed step therefore never leaves a half-written file or directory behind: either the
complete output exists or nothing does.

An output folder is also never allowed to cost the user a file: :func:`check_out_dir` decides,
once for every command, whether an existing folder may be replaced. Every folder written by
:func:`atomic_dir` carries a marker (:data:`OUTPUT_MARKER`, naming the command that wrote it), so a
rerun of the same command replaces its own output, while a folder that holds anything else is
replaced only on ``--overwrite`` — and the working folder, the home folder or a folder that holds
the command's inputs never.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from sagestack.errors import ConfigError
from sagestack.paths import nearest_existing

# The file every atomic_dir output carries: {"written_by": "sagestack", "command": ..., "files": [...]}.
OUTPUT_MARKER = ".sagestack-output.json"


def _files(folder: Path) -> dict[str, list[int]]:
    """Every file under ``folder`` (links included, not followed) by relative POSIX path, with its
    size and modification time (ns): what the marker records, so a file edited since is the user's."""
    found = {}
    for root, dirs, names in os.walk(folder):
        for name in names + [d for d in dirs if (Path(root) / d).is_symlink()]:
            path = Path(root) / name
            stat = path.lstat()
            found[path.relative_to(folder).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return dict(sorted(found.items()))


def _written_by(folder: Path) -> tuple[str, dict] | None:
    """The command and the files recorded in ``folder``'s output marker; None when sagestack did not write it."""
    try:
        marker = json.loads((folder / OUTPUT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("written_by") != "sagestack":
        return None
    files = marker.get("files")
    return str(marker.get("command") or ""), files if isinstance(files, dict) else {}


def _check_parent(target: Path, option: str) -> None:
    """The nearest existing folder above ``target`` must be a folder sagestack may write in."""
    parent = nearest_existing(target)
    if not parent.is_dir():
        raise ConfigError(f"{option} {target}: {parent} is not a folder; choose a path under a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {target}: {parent} is not writable; choose a folder you can write in")


def _contains(folder: Path, path: Path) -> bool:
    return path == folder or folder in path.parents


def check_out_dir(target: Path, *, command: str, overwrite: bool = False, protect: Iterable[Path] = (),
                  inside: Iterable[Path] = (), option: str = "--out") -> None:
    """Refuse an output folder whose replacement could lose files sagestack did not write.

    Call it before the work starts (so a long job fails at once); :func:`atomic_dir` calls it
    again just before it replaces the folder.

    A missing or empty ``target`` is fine, and so is a previous output of the same ``command``
    that holds only the files sagestack wrote there, as it wrote them (its marker lists them with
    their sizes and times: a file added or edited since is the user's). Anything else needs
    ``overwrite``. Whatever ``overwrite`` says, the
    target may not be, or contain, the working folder, the user's home folder, the filesystem
    root, any of ``protect`` (the command's inputs) or the sagestack home: replacing it would
    delete them.

    Args:
        target: the output folder.
        command: the command that writes it, as the user types it (e.g. ``"train fasttext"``).
        overwrite: the user passed ``--overwrite``.
        protect: paths the output must not contain (the command's input files or folders).
        inside: the sagestack home: the output must not contain it either, and inside it
            ``overwrite`` does not apply (its state is not the user's to replace by accident; a
            console job still writes its own outputs there).
        option: the option that named ``target``, for the message.

    Raises:
        ConfigError: one line naming the folder, what it holds and the fix.
    """
    target = Path(target)
    try:
        resolved = target.expanduser().resolve()
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"{option} {target}: cannot resolve the path ({exc}); choose another folder") from None
    guarded = [(Path.cwd().resolve(), "the working folder"), (Path.home().resolve(), "your home folder"),
               (Path(resolved.anchor), "the filesystem root")]
    guarded += [(Path(p).expanduser().resolve(), f"the input {p}") for p in protect if p is not None]
    guarded += [(Path(p).expanduser().resolve(), f"the sagestack home {p}") for p in inside if p is not None]
    for path, what in guarded:
        if _contains(resolved, path):
            held = "is" if path == resolved else "contains"
            raise ConfigError(f"{option} {target} {held} {what}; the output replaces the whole folder, "
                              f"so choose a new folder for it (e.g. {option} {command.split()[-1]}-out)")
    for folder in inside:
        if overwrite and folder is not None and Path(folder).expanduser().resolve() in resolved.parents:
            raise ConfigError(f"{option} {target} lies inside the sagestack home {folder}, whose state --overwrite "
                              "must not replace; choose a folder outside it")
    _check_parent(target, option)
    if not target.exists() and not target.is_symlink():
        return
    if target.is_symlink():
        raise ConfigError(f"{option} {target} is a link; sagestack does not replace links, choose another folder")
    if not target.is_dir():
        if not overwrite:
            raise ConfigError(f"{option} {target} exists and is not a folder; choose another folder or pass --overwrite")
        return
    if overwrite:
        return
    entries = sorted(p.name for p in target.iterdir())
    if not entries:
        return
    written = _written_by(target)
    if written is not None and written[0] != command:
        raise ConfigError(f"{option} {target} holds the output of `sagestack {written[0]}`, not of `sagestack {command}`; "
                          "choose another folder or pass --overwrite")
    if written is not None:
        entries = [f for f, seen in _files(target).items() if f != OUTPUT_MARKER and written[1].get(f) != seen]
        if not entries:
            return
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise ConfigError(f"{option} {target} exists and holds files sagestack did not write ({shown}); "
                      "choose another folder or pass --overwrite")


def check_out_file(target: Path, *, overwrite: bool = False, option: str = "--out") -> None:
    """Refuse an output file that would replace a file the user has, unless ``overwrite``.

    A file carries no marker of who wrote it, so any existing file counts as the user's.

    Raises:
        ConfigError: ``target`` is a folder, or an existing file without ``overwrite``.
    """
    target = Path(target)
    if target.is_dir():
        raise ConfigError(f"{option} {target} is a folder; pass the path of the file to write")
    _check_parent(target, option)
    if target.exists() and not overwrite:
        raise ConfigError(f"{option} {target} exists; choose another file name or pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_dir(target: Path, *, command: str, overwrite: bool = False, protect: Iterable[Path] = ()) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` only if the block succeeds.

    The output carries :data:`OUTPUT_MARKER` naming ``command``; an existing ``target`` is
    replaced only as :func:`check_out_dir` allows (checked before and again after the block),
    and the old folder is removed only after the new one is in place.

    Args:
        target: the final directory.
        command: the command writing it (e.g. ``"bias"``), recorded in the marker.
        overwrite: the user passed ``--overwrite``: replace a folder sagestack did not write.
        protect: paths the output must not contain (see :func:`check_out_dir`).

    Yields:
        A fresh directory next to ``target`` to write into.

    Raises:
        ConfigError: ``target`` may not be replaced.
    """
    target = Path(target)
    check_out_dir(target, command=command, overwrite=overwrite, protect=protect)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; the output should look like any other directory
    try:
        yield tmp
        marker = {"written_by": "sagestack", "command": command, "files": _files(tmp)}
        (tmp / OUTPUT_MARKER).write_text(json.dumps(marker), encoding="utf-8")
        # Again now: the user may have put files there while the job ran.
        check_out_dir(target, command=command, overwrite=overwrite, protect=protect)
        if target.exists() or target.is_symlink():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            tmp.rename(target)
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        else:
            tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path that is renamed to ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp makes 0600; the result should look like any other file
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def private_file(stem: str, suffix: str, text: str, *, folder: Path | None = None) -> Path:
    """A file holding ``text`` that only this user can read, written once per content.

    For what may carry a password (a ``feature_store.yaml``, the settings a pipeline's steps read). It lives in
    ``folder`` (default: a folder of the user's own under the temp directory, for processes whose home may be a
    read-only volume), mode 0700, the file 0600. The name is ``stem-<digest>suffix``, the digest keyed by a
    random key kept in that folder, so equal contents give one path (a pipeline's step cache stays valid) while
    a name seen elsewhere (in a run's recorded parameters) tells nothing of the content.

    Raises:
        SagestackError: the folder cannot be made, belongs to another user or others may read it.
    """
    import hmac
    import secrets

    from sagestack.errors import SagestackError

    in_temp = folder is None
    folder = Path(tempfile.gettempdir()) / f"sagestack-{os.getuid()}" if in_temp else folder
    refused = (f"{folder} is not a folder of this user's own that only they can read; remove it"
               + (", or set TMPDIR to a folder of your own" if in_temp else ""))
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = folder.lstat()
    except (FileExistsError, NotADirectoryError):
        raise SagestackError(refused) from None
    if not folder.is_dir() or folder.is_symlink() or status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise SagestackError(refused)
    key_file = folder / "key"
    if not key_file.is_file():
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")  # mode 0600
        try:
            os.write(fd, secrets.token_bytes(32))
            os.close(fd)
            os.link(tmp, key_file)  # the first process's key wins; a key is never replaced
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    digest = hmac.new(key_file.read_bytes(), text.encode(), "sha256").hexdigest()[:20]
    path = folder / f"{stem}-{digest}{suffix}"
    if path.is_file():
        os.utime(path)  # in use: an age-based clean-up of the temp directory should not take it
    else:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")  # mode 0600
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    return path
