#!/usr/bin/env python3
"""Applies layer tarballs in order onto an empty directory the way containerd's
applier and overlayfs define the result: whiteouts `.wh.NAME` delete NAME from lower
layers, `.wh..wh..opq` hides everything lower layers had in that directory, a member
replaces what was there (a directory over a directory merges). Extended attributes
from PAX SCHILY.xattr.* records are set too (tarfile alone does not).

Usage: apply_layers.py DEST LAYER.tar.gz [LAYER.tar.gz ...]
"""
import os
import shutil
import sys
import tarfile


def remove(path):
    if os.path.islink(path) or not os.path.isdir(path):
        if os.path.lexists(path):
            os.unlink(path)
    else:
        shutil.rmtree(path)


def apply(dest, layer):
    with tarfile.open(layer) as tf:
        members = tf.getmembers()
        # Pass 1: whiteouts and opaque markers act on what lower layers left.
        for m in members:
            name = os.path.normpath(m.name.lstrip("/"))
            base = os.path.basename(name)
            parent = os.path.join(dest, os.path.dirname(name))
            if base == ".wh..wh..opq":
                if os.path.isdir(parent):
                    for child in os.listdir(parent):
                        remove(os.path.join(parent, child))
            elif base.startswith(".wh."):
                target = os.path.join(parent, base[4:])
                if os.path.lexists(target):
                    remove(target)
        # Pass 2: everything else.
        dirs = []
        for m in members:
            name = os.path.normpath(m.name.lstrip("/"))
            base = os.path.basename(name)
            if base.startswith(".wh."):
                continue
            target = os.path.join(dest, name) if name != "." else dest
            if os.path.lexists(target) and not (m.isdir() and os.path.isdir(target)
                                                and not os.path.islink(target)):
                remove(target)
            tf.extract(m, dest, set_attrs=not m.isdir(), numeric_owner=True)
            for k, v in m.pax_headers.items():
                if k.startswith("SCHILY.xattr."):
                    os.setxattr(target, k[13:], v.encode("utf-8", "surrogateescape"),
                                follow_symlinks=False)
            if m.issym():  # tarfile leaves symlink times alone
                ns = int(m.mtime * 1e9)
                os.utime(target, ns=(ns, ns), follow_symlinks=False)
            if m.isdir():
                dirs.append((m, target))
        # Directory attributes last, deepest first (creating children changes mtimes).
        for m, target in sorted(dirs, key=lambda x: -len(x[1])):
            os.chown(target, m.uid, m.gid)
            os.chmod(target, m.mode)
            os.utime(target, ns=(int(m.mtime * 1e9), int(m.mtime * 1e9)))


def main():
    dest = sys.argv[1]
    os.makedirs(dest, exist_ok=True)
    for layer in sys.argv[2:]:
        apply(dest, layer)


if __name__ == "__main__":
    main()
