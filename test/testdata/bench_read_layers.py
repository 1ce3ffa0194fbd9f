#!/usr/bin/env python3
"""Builds the three layer directories of bench_read.sh's image from this machine's files
(offline, deterministic for a given machine), and the lists of files its workloads read.

Usage: bench_read_layers.py OUT_DIR

  OUT/l1   a deep /usr tree of Python installations: /usr/bin/python3.11,
           /usr/lib/python3.11, /usr/lib/python3/dist-packages, and the Google Cloud SDK's
           bundled Python 3.12 and its Python library (lib/third_party, lib/surface)
  OUT/l2   ~373 MB of large real ELF binaries and libraries from /usr/lib, /usr/bin and
           /usr/libexec (largest first, 2-40 MB each, one copy of identical files), kept
           at their own paths
  OUT/l3   5000 small files, 64 B - 16 KiB (log-uniform), half text (slices of Python
           sources), half binary (slices of shared libraries), in a deep tree under
           /srv/small
  OUT/l1.list, OUT/seq.list, OUT/small.list   regular files of l1, l2, l3 (paths
           relative to the image's root, one per line, in read order)
"""
import os
import random
import stat
import subprocess
import sys

L1_PATHS = [
    "usr/bin/python3.11",
    "usr/lib/python3.11",
    "usr/lib/python3/dist-packages",
    "usr/lib/google-cloud-sdk/platform/bundledpythonunix",
    "usr/lib/google-cloud-sdk/lib/third_party",
    "usr/lib/google-cloud-sdk/lib/surface",
]
L2_TARGET = 373_000_000
L2_MIN, L2_MAX = 2 << 20, 40_000_000
SMALL_FILES = 5000


def copy(dest, paths):
    """Host files (paths relative to /) into a layer directory, metadata kept."""
    os.makedirs(dest, exist_ok=True)
    tar = subprocess.Popen(["tar", "-C", "/", "-cf", "-", "--null", "-T", "-"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    untar = subprocess.Popen(["tar", "-C", dest, "-xf", "-"], stdin=tar.stdout)
    tar.stdout.close()
    tar.stdin.write(b"".join(p.encode() + b"\0" for p in paths))
    tar.stdin.close()
    if tar.wait() != 0 or untar.wait() != 0:
        sys.exit("copying into %s failed" % dest)


def regular_files(layer):
    out = []
    for root, dirs, files in os.walk(layer):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            if stat.S_ISREG(os.lstat(p).st_mode):
                out.append(os.path.relpath(p, layer))
    return out


def write_list(path, names):
    for n in names:
        if "\n" in n:
            sys.exit("file name with a newline: %r" % n)
    with open(path, "w") as f:
        f.writelines(n + "\n" for n in names)


def layer1(out):
    paths = [p for p in L1_PATHS if os.path.lexists("/" + p)]
    for p in L1_PATHS:
        if p not in paths:
            print("bench_read_layers: %s missing on this machine, left out" % p, file=sys.stderr)
    copy(os.path.join(out, "l1"), paths)
    # Merged /usr, as Debian 12.
    os.symlink("usr/lib", os.path.join(out, "l1", "lib"))
    os.symlink("python3.11", os.path.join(out, "l1", "usr", "bin", "python3"))
    write_list(os.path.join(out, "l1.list"), regular_files(os.path.join(out, "l1")))


def layer2(out):
    skip = tuple("/" + p for p in L1_PATHS) + ("/usr/lib/google-cloud-sdk/lib",)
    cand = []
    for top in ("/usr/lib", "/usr/bin", "/usr/libexec"):
        for root, dirs, files in os.walk(top):
            if root.startswith(skip):
                dirs[:] = []
                continue
            dirs.sort()
            for f in files:
                p = os.path.join(root, f)
                try:
                    st = os.lstat(p)
                    if not stat.S_ISREG(st.st_mode) or not L2_MIN <= st.st_size <= L2_MAX:
                        continue
                    with open(p, "rb") as fh:
                        if fh.read(4) != b"\x7fELF":
                            continue
                except OSError:
                    continue
                cand.append((st.st_size, p, st.st_ino))
    cand.sort(key=lambda c: (-c[0], c[1]))
    inodes, sizes, chosen, total = set(), set(), [], 0
    for size, p, ino in cand:
        # Hardlinks and same-size copies (Mesa's dri drivers, versioned symlink targets)
        # would be the same bytes again.
        if ino in inodes or size in sizes or total + size > L2_TARGET:
            continue
        inodes.add(ino)
        sizes.add(size)
        chosen.append(p[1:])
        total += size
        if total > L2_TARGET - L2_MIN:
            break
    copy(os.path.join(out, "l2"), chosen)
    write_list(os.path.join(out, "seq.list"), chosen)
    return total


def layer3(out):
    rng = random.Random(20261203)
    texts = sorted(os.path.join(r, f) for r, _, fs in os.walk("/usr/lib/python3.11")
                   for f in fs if f.endswith(".py") and os.path.getsize(os.path.join(r, f)) > 20000)
    bins = sorted(os.path.join(r, f) for r, _, fs in os.walk("/usr/lib/x86_64-linux-gnu")
                  for f in fs if ".so" in f and os.path.isfile(os.path.join(r, f))
                  and not os.path.islink(os.path.join(r, f))
                  and os.path.getsize(os.path.join(r, f)) > 100000)
    if not texts or not bins:
        sys.exit("no source files for the small-file layer")
    cache = {}

    def source(path):
        if path not in cache:
            with open(path, "rb") as f:
                cache[path] = f.read(4 << 20)
        return cache[path]

    names = []
    for i in range(SMALL_FILES):
        size = int(64 * 256 ** rng.random())  # 64 B .. 16 KiB, log-uniform
        text = rng.random() < 0.5
        data = source(rng.choice(texts if text else bins))
        off = rng.randrange(0, max(1, len(data) - size))
        body = data[off:off + size]
        while len(body) < size:
            body += data[:size - len(body)]
        depth = rng.randint(2, 6)
        d = os.path.join("srv", "small", *("d%d" % rng.randrange(4) for _ in range(depth)))
        name = os.path.join(d, "f%04d%s" % (i, rng.choice([".py", ".txt", ".json"]) if text
                                              else rng.choice([".bin", ".so", ".dat"])))
        full = os.path.join(out, "l3", name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(body)
        names.append(name)
    write_list(os.path.join(out, "small.list"), sorted(names))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    layer1(out)
    total = layer2(out)
    layer3(out)
    print("layer 2: %d bytes in %d files" % (total, len(open(os.path.join(out, "seq.list")).readlines())))


if __name__ == "__main__":
    main()
