"""A gs://-style object store for the tests: Beam ``FileSystem`` with scheme ``objstore://``.

Object-store semantics, as GCS and S3 have them: a flat namespace of objects named by key, no
directories (``has_dirs`` is False, ``mkdirs`` does nothing, a "directory" exists only as the
common prefix of object keys and is never itself an object), listing by key prefix, rename as
copy then delete. The objects are kept as files under ``OBJSTORE_ROOT`` (a module variable the
test sets) so that every part of one process sees the same store. Importing this module
registers the scheme with Beam (Beam finds ``FileSystem`` subclasses when it resolves a path).
"""

from __future__ import annotations

import hashlib
import os
import shutil

from apache_beam.io.filesystem import (
    BeamIOError,
    CompressedFile,
    CompressionTypes,
    FileMetadata,
    FileSystem,
)

OBJSTORE_ROOT = ""
SCHEME = "objstore"


def _local(path: str) -> str:
    assert OBJSTORE_ROOT, "set tests.objectstore.OBJSTORE_ROOT first"
    return os.path.join(OBJSTORE_ROOT, path[len(SCHEME) + 3 :])


class ObjectStoreFileSystem(FileSystem):
    @classmethod
    def scheme(cls):
        return SCHEME

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/"), *(p.strip("/") for p in paths)])

    def split(self, path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass  # no directories in an object store

    def has_dirs(self):
        return False

    def _keys(self):
        for dirpath, _, files in os.walk(OBJSTORE_ROOT):
            for name in files:
                key = os.path.relpath(os.path.join(dirpath, name), OBJSTORE_ROOT)
                yield f"{SCHEME}://{key}"

    def _list(self, dir_or_prefix):
        for path in self._keys():
            if path.startswith(dir_or_prefix):
                local = _local(path)
                yield FileMetadata(path, os.path.getsize(local), os.path.getmtime(local))

    def _open(self, path, mode, compression_type):
        compression_type = FileSystem._get_compression_type(path, compression_type)
        raw = open(_local(path), mode)
        if compression_type == CompressionTypes.UNCOMPRESSED:
            return raw
        return CompressedFile(raw, compression_type=compression_type)

    def create(self, path, mime_type="application/octet-stream", compression_type="auto"):
        os.makedirs(os.path.dirname(_local(path)), exist_ok=True)
        return self._open(path, "wb", compression_type)

    def open(self, path, mime_type="application/octet-stream", compression_type="auto"):
        if not self.exists(path):
            raise BeamIOError("Open failed", {path: FileNotFoundError(path)})
        return self._open(path, "rb", compression_type)

    def copy(self, source_file_names, destination_file_names):
        for source, destination in zip(source_file_names, destination_file_names, strict=True):
            os.makedirs(os.path.dirname(_local(destination)), exist_ok=True)
            shutil.copyfile(_local(source), _local(destination))

    def rename(self, source_file_names, destination_file_names):
        self.copy(source_file_names, destination_file_names)
        self.delete(source_file_names)

    def exists(self, path):
        return os.path.isfile(_local(path))  # a prefix is not an object

    def size(self, path):
        return os.path.getsize(_local(path))

    def last_updated(self, path):
        return os.path.getmtime(_local(path))

    def checksum(self, path):
        with open(_local(path), "rb") as handle:
            return hashlib.md5(handle.read()).hexdigest()

    def metadata(self, path):
        return FileMetadata(path, self.size(path), self.last_updated(path))

    def delete(self, paths):
        missing = {p: FileNotFoundError(p) for p in paths if not self.exists(p)}
        if missing:
            raise BeamIOError("Delete failed", missing)
        for path in paths:
            os.remove(_local(path))
