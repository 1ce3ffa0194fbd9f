#!/usr/bin/env python3
"""Prints a manifest of a directory tree, one line per path, for exact comparisons.

Usage: tree_manifest.py ROOT [--tar-whiteouts] [--no-dir-nlink]

Each line: path, type, permission bits, uid, gid, size (regular files), mtime in ns,
link count, device numbers, sorted xattrs (hex values), symlink target, sha256 of the
content. Directory sizes are left out (filesystems differ). With --tar-whiteouts the
tree is a plain `tar -x` of a layer: `.wh.NAME` files become the whiteout overlayfs
expects (character device 0/0 named NAME, permissions not compared) and
`.wh..wh..opq` becomes `trusted.overlay.opaque=y` on its directory. --no-dir-nlink
leaves out directory link counts (overlayfs reports 1 for merged directories).
"""
import hashlib
import os
import stat
import sys


def xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for n in names:
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False).hex()
        except OSError as e:
            out[n] = "ERR%d" % e.errno
    return out


def manifest(root, tar_whiteouts, dir_nlink=True):
    lines = {}
    opaque_dirs = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames + ([""] if dirpath == root else [])):
            path = os.path.join(dirpath, name) if name else dirpath
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            mode = st.st_mode
            if tar_whiteouts and name == ".wh..wh..opq":
                opaque_dirs.add(os.path.relpath(dirpath, root))
                continue
            whiteout = tar_whiteouts and name.startswith(".wh.")
            if whiteout:
                rel = os.path.join(os.path.relpath(dirpath, root), name[4:])
                rel = os.path.normpath(rel)
                fields = [rel, "whiteout", "rdev=0:0"]
            else:
                kind = stat.S_IFMT(mode)
                f = [rel, "%o" % kind, "%04o" % stat.S_IMODE(mode), "uid=%d" % st.st_uid,
                     "gid=%d" % st.st_gid, "mtime=%d" % st.st_mtime_ns]
                if dir_nlink or not stat.S_ISDIR(mode):
                    f.append("nlink=%d" % st.st_nlink)
                if stat.S_ISREG(mode):
                    h = hashlib.sha256()
                    with open(path, "rb") as fh:
                        for chunk in iter(lambda: fh.read(1 << 20), b""):
                            h.update(chunk)
                    f += ["size=%d" % st.st_size, "sha256=" + h.hexdigest()]
                if stat.S_ISLNK(mode):
                    f += ["target=" + os.readlink(path)]
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                    f += ["rdev=%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))]
                if stat.S_ISCHR(mode) and st.st_rdev == 0:
                    f = [rel, "whiteout", "rdev=0:0"]  # as a whiteout, like the tar side
                fields = f
            lines[rel] = (fields, xattrs(path) if not whiteout else {})
    for d in opaque_dirs:
        if d in lines:
            lines[d][1]["trusted.overlay.opaque"] = b"y".hex()
    out = []
    for rel in sorted(lines):
        fields, xa = lines[rel]
        xs = ",".join("%s=%s" % (k, xa[k]) for k in sorted(xa))
        out.append(" ".join(fields) + (" xattrs=" + xs if xs else ""))
    return out


def main():
    root = sys.argv[1]
    tar = "--tar-whiteouts" in sys.argv[2:]
    dir_nlink = "--no-dir-nlink" not in sys.argv[2:]
    # Names need not be UTF-8: os gives them back with surrogate escapes; print the
    # original bytes.
    out = "\n".join(manifest(root, tar, dir_nlink)) + "\n"
    sys.stdout.buffer.write(out.encode("utf-8", "surrogateescape"))


if __name__ == "__main__":
    main()
