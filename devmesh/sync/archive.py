"""A sync plan's uploads as one tar stream, to be extracted at the container's ``/``.

Members are named by their container path without the leading ``/``. Owner root, files 0644
or 0755 by their execute bit, folders 0755 — as the build normalises its context. PAX format
keeps long names and sub-second modification times (reloaders that poll ``mtime`` see two
saves within one second). Each file is read whole through a descriptor opened without
following a final symbolic link, so a file swapped for a link after planning is not read
through it, and a file growing or shrinking while it is read cannot break the stream.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from devmesh.sync.changes import Upload

# Small archives stay in memory; a large change set spills to a temporary file.
SPOOL_LIMIT = 16 << 20


@dataclass
class Archive:
    """A tar stream ready to send: ``data`` positioned at 0, ``size`` bytes long."""

    data: IO[bytes]
    size: int
    files: int
    skipped: tuple[str, ...] = ()  # container paths that vanished or could not be read

    def read_all(self) -> bytes:
        self.data.seek(0)
        content = self.data.read()
        self.data.seek(0)
        return content

    def close(self) -> None:
        self.data.close()


def _read_file(upload: Upload) -> tuple[bytes, os.stat_result] | None:
    assert upload.local is not None
    try:
        fd = os.open(upload.local, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None  # gone, replaced by a link, or unreadable
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def build_archive(uploads: Sequence[Upload]) -> Archive:
    """The uploads as a tar stream (uploads in order: folders before what they hold)."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_LIMIT)  # noqa: SIM115
    files = 0
    skipped: list[str] = []
    with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for upload in uploads:
            info = tarfile.TarInfo(str(upload.path).lstrip("/"))
            info.uid = info.gid = 0
            info.mtime = upload.mtime  # PAX keeps the fraction
            if upload.kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif upload.kind == "symlink":
                info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, upload.link
                tar.addfile(info)
                files += 1
            else:
                read = _read_file(upload)
                if read is None:
                    skipped.append(str(upload.path))
                    continue
                content, st = read
                info.size = len(content)
                info.mode = 0o755 if st.st_mode & 0o111 else 0o644
                info.mtime = st.st_mtime
                tar.addfile(info, io.BytesIO(content))
                files += 1
    size = spool.tell()
    spool.seek(0)
    return Archive(spool, size, files, tuple(skipped))
