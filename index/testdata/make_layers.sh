#!/usr/bin/env bash
# Builds the layer fixtures of the index tests in OUTDIR with GNU tar, gzip, pigz and
# Python's tarfile (no binary fixture is committed):
#   tree/            a root filesystem with every entry type and attribute, and
#                    names, link targets and an xattr name that are not UTF-8
#   gnu.tar.gz       tar --format=gnu
#   posix.tar.gz     tar --format=posix --xattrs (PAX: ns mtimes, SCHILY.xattr.*)
#   posix.tar        the same, uncompressed
#   pigz.tar.gz      pigz, independent blocks
#   multi.tar.gz     the posix tar cut in three, each part gzipped, concatenated
#   python.tar.gz    Python tarfile: PAX long names/links, ./ and / prefixes,
#                    duplicates (the later wins), implicit parents, base-256 numbers
#   sparse.tar.gz    GNU sparse member (must be rejected)
#   real.tar.gz      a few hundred MB of real files from this machine's /usr
#   dotdot.tar.gz    a member named ../evil (must be rejected)
set -euo pipefail
out=$1
mkdir -p "$out"
cd "$out"
rm -rf tree && mkdir tree && cd tree

mkdir -p usr/bin etc/app "dir with space" deep/a/b/c/d/e/f/g/h/i/j
printf 'hello\n' > etc/hello.txt
: > empty
head -c 511 /dev/urandom > b511
head -c 512 /dev/urandom > b512
head -c 513 /dev/urandom > b513
head -c 700000 /dev/urandom > usr/bin/random700k          # > 512 KiB: own checkpoint
head -c 3000000 /dev/urandom > usr/bin/random3m
seq 1 900000 > etc/app/seq.txt                            # ~6 MB, compressible
python3 -c "import sys; sys.stdout.write('x' * 5000000)" > etc/app/zeros.txt
ln -s ../etc/hello.txt usr/bin/rel-link
ln -s /etc/hello.txt usr/bin/abs-link
ln -s does/not/exist dangling
ln etc/hello.txt usr/bin/hard1
ln etc/hello.txt usr/bin/hard2
mknod chardev c 1 3
mknod blockdev b 7 0
mkfifo fifo
install -m 4755 /dev/null setuid
install -m 2710 /dev/null setgid
mkdir -m 1777 sticky
chmod 0600 b511
chown 1234:5678 b512
chown 4000000:4000001 b513                                   # > 2^21: PAX/base-256 ids
touch -h -d '2020-01-02 03:04:05.123456789' etc/hello.txt usr/bin/rel-link
touch -d '1969-07-20 20:17:40.5' empty                      # before the epoch
long=$(printf 'n%.0s' $(seq 1 150))
echo long > "deep/a/b/c/d/e/f/g/h/i/j/$long"
ln -s "deep/a/b/c/d/e/f/g/h/i/j/$long" long-link
echo unicode > "dir with space/éàü-名前.txt"
# Names that are not UTF-8 (Linux names are bytes): Latin-1 in a file, a directory, a
# file inside it, a symlink's name and target, a hardlink and an xattr name.
latin1=$(printf 'caf\xe9')
mkdir "bytes-$(printf '\xff\xfe')"
printf 'latin-1 name\n' > "$latin1"
printf 'inside\n' > "bytes-$(printf '\xff\xfe')/$(printf '\xe9t\xe9')"
ln -s "$latin1" "link-$(printf '\xe0')"
ln "$latin1" "hard-$(printf '\xe9')"
python3 - <<'PY'
import os
os.setxattr(b"caf\xe9", b"user.na\xefve", b"\xff\x00value")
PY
python3 - <<'PY'
import os
os.setxattr("etc/hello.txt", "user.comment", b"hi there")
os.setxattr("usr/bin/random700k", "security.capability",
            bytes.fromhex("0100000200200000000000000000000000000000"))
os.setxattr("etc/app", "user.dir", b"\x00\x01binary")
PY
# Overlay whiteouts and an opaque directory, as a diff layer carries them.
mkdir -p removed opaque-dir
: > removed/.wh.gone
: > opaque-dir/.wh..wh..opq
echo kept > opaque-dir/kept
cd ..

tar --format=gnu -C tree -czf gnu.tar.gz .
tar --format=posix --xattrs --xattrs-include='*' -C tree -cf posix.tar .
gzip -c -6 posix.tar > posix.tar.gz
pigz -c -b 128 -p 2 posix.tar > pigz.tar.gz
python3 - <<'PY'
import gzip, zlib
data = open("posix.tar", "rb").read()
third = len(data) // 3
with open("multi.tar.gz", "wb") as f:
    for part, level in ((data[:third], 1), (data[third:2 * third], 9), (data[2 * third:], 6)):
        f.write(gzip.compress(part, compresslevel=level))
PY

python3 - <<'PY'
import io, tarfile, time

def add(tf, name, data=b"", **kw):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    for k, v in kw.items():
        setattr(ti, k, v)
    tf.addfile(ti, io.BytesIO(data) if data else None)

with tarfile.open("python.tar.gz", "w:gz", format=tarfile.PAX_FORMAT) as tf:
    add(tf, "./", type=tarfile.DIRTYPE, mode=0o755, mtime=1000)
    add(tf, "./implicit/parent/file.txt", b"in an implicit dir\n", mode=0o640, mtime=1700000000.25)
    add(tf, "/abs/leading-slash.txt", b"absolute\n", mode=0o644)
    add(tf, "dup.txt", b"first version\n", mode=0o600)
    add(tf, "dup.txt", b"second version wins\n", mode=0o644)
    add(tf, "dir-then-file", type=tarfile.DIRTYPE, mode=0o755)
    add(tf, "dir-then-file/child", b"removed with its dir\n")
    add(tf, "dir-then-file", b"now a file\n", mode=0o644)
    add(tf, "a" * 120 + "/" + "b" * 120 + "/long-name.txt", b"pax long name\n")
    add(tf, "link-long", type=tarfile.SYMTYPE, linkname="t" * 300)
    add(tf, "big-uid", b"x", uid=9999999, gid=8888888, uname="someone", gname="group")
    add(tf, "hl-target", b"target data\n")
    add(tf, "hl-link", type=tarfile.LNKTYPE, linkname="hl-target")
    add(tf, "dev/null-like", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
    add(tf, "dev/loop-like", type=tarfile.BLKTYPE, devmajor=7, devminor=123)
    add(tf, "large-file", b"L" * (600 * 1024))
    add(tf, "xattr-file", b"x", pax_headers={"SCHILY.xattr.user.k": "v",
                                            "SCHILY.xattr.security.selinux": "ctx"})
    # Not UTF-8: tarfile writes PAX `path`/`linkpath` with hdrcharset=BINARY.
    add(tf, "py-caf\udce9/\udcff-file", b"binary pax name\n")
    add(tf, "py-link-\udce9", type=tarfile.SYMTYPE, linkname="py-caf\udce9/\udcff-file")

with tarfile.open("python-gnu.tar.gz", "w:gz", format=tarfile.GNU_FORMAT) as tf:
    add(tf, "g" * 200 + "/file", b"gnu long name\n")
    add(tf, "gnu-link", type=tarfile.SYMTYPE, linkname="l" * 200)
    add(tf, "gnu-big-uid", b"y", uid=3000000, gid=3000001)

with tarfile.open("dotdot.tar.gz", "w:gz") as tf:
    add(tf, "ok.txt", b"fine\n")
    add(tf, "../evil", b"escape\n")
PY

rm -rf sparse-src && mkdir sparse-src
truncate -s 4M sparse-src/holes && printf 'data' | dd of=sparse-src/holes bs=1 seek=1000000 conv=notrunc status=none
tar --format=gnu --sparse -C sparse-src -czf sparse.tar.gz .
rm -rf sparse-src

# Real files: headers, Python's standard library and GCC's support files
# (skipped with CLIP_FIXTURES_SKIP_REAL=1 by tests that do not use it).
if [ "${CLIP_FIXTURES_SKIP_REAL:-}" != "1" ]; then
  tar -C / --format=posix -cf - usr/include usr/lib/python3.11 usr/lib/gcc 2>/dev/null |
    gzip -1 > real.tar.gz
fi
