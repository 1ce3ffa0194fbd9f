#!/usr/bin/env bash
# Real FUSE mounts of layers made by GNU tar, compared with `tar -x --xattrs` of the same
# layers (type, mode, owner, size, mtime ns, nlink, rdev, xattrs, link target, content
# digest); overlayfs over several mounted layers compared with the layers applied in
# order; mmap reads; many threads reading random ranges; unmount while busy; a corrupt
# blob gives EIO, not a hang. Everything it mounts or starts is undone on exit, also on
# SIGTERM (a Bazel timeout) or SIGINT.
set -uo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
clipctl="$root/cmd/clipctl"
manifest="$root/fs/testdata/tree_manifest.py"
apply="$root/fs/testdata/apply_layers.py"
work="$(mktemp -d "${TEST_TMPDIR:-/tmp}/fsXXXXXX")"
declare -a pids=() mounts=()
fail=0

cleanup() {
  local i p
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    grep -qF " ${mounts[$i]// /\\040} " /proc/mounts && umount -l "${mounts[$i]}"
  done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
}
trap cleanup EXIT
trap 'echo "FAIL: SIGTERM (a Bazel timeout?)"; exit 143' TERM
trap 'exit 130' INT

error() { echo "FAIL: $*"; fail=1; }

# mount_layer LAYER MOUNTPOINT: indexes the layer, mounts it, waits for the mount.
mount_layer() {
  local layer=$1 mnt=$2
  mkdir -p "$mnt"
  "$clipctl" index build --layer "$layer" -o "$layer.idx" >/dev/null || { error "index $layer"; return 1; }
  "$clipctl" mount --index "$layer.idx" --layer "$layer" "$mnt" 2>>"$work/clipctl.log" &
  pids+=($!)
  mounts+=("$mnt")
  last_pid=$!
  for _ in $(seq 1 300); do
    grep -qF " ${mnt// /\\040} fuse.clip " /proc/mounts && return 0
    kill -0 "$last_pid" 2>/dev/null || break
    sleep 0.1
  done
  error "mount of $layer did not appear (30 s)"
  return 1
}

# unmount_layer MOUNTPOINT PID: SIGTERM, the process must exit and the mount go.
unmount_layer() {
  local mnt=$1 pid=$2
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && error "clipctl $pid did not exit on SIGTERM"
  wait "$pid" 2>/dev/null || error "clipctl $pid exited non-zero"
  grep -qF " ${mnt// /\\040} fuse.clip " /proc/mounts && error "$mnt still mounted"
  return 0
}

CLIP_FIXTURES_SKIP_REAL=1 bash "$root/index/testdata/make_layers.sh" "$work/layers" >/dev/null 2>&1 || error "fixtures"

# 1. Each layer: mount == tar -x, plus mmap and concurrent reads.
for name in gnu.tar.gz posix.tar.gz pigz.tar.gz multi.tar.gz posix.tar; do
  layer="$work/layers/$name"
  mnt="$work/m-$name"
  mount_layer "$layer" "$mnt" || continue
  pid=$last_pid
  x="$work/x-$name"
  mkdir -p "$x"
  tar --xattrs --xattrs-include='*' --numeric-owner -xpf "$layer" -C "$x" || error "tar -x $name"
  python3 "$manifest" "$mnt" > "$work/mnt-$name.txt"
  python3 "$manifest" "$x" --tar-whiteouts > "$work/tar-$name.txt"
  if ! diff -u "$work/tar-$name.txt" "$work/mnt-$name.txt" > "$work/diff-$name.txt"; then
    error "$name: mount differs from tar -x:"; head -n 40 "$work/diff-$name.txt"
  fi
  [ "$(wc -l < "$work/mnt-$name.txt")" -gt 40 ] || error "$name: manifest too short"
  python3 - "$mnt" "$x" <<'PY' || error "$name: mmap / concurrent reads"
import mmap, os, random, sys, threading
mnt, ref = sys.argv[1], sys.argv[2]
big = "etc/app/seq.txt"
with open(os.path.join(mnt, big), "rb") as f, open(os.path.join(ref, big), "rb") as g:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    want = g.read()
    assert m[:] == want, "mmap content differs"
    assert m[123456:123999] == want[123456:123999]
files = ["etc/app/seq.txt", "etc/app/zeros.txt", "usr/bin/random3m", "usr/bin/random700k"]
data = {p: open(os.path.join(ref, p), "rb").read() for p in files}
errors = []
def worker(seed):
    rng = random.Random(seed)
    fds = {p: os.open(os.path.join(mnt, p), os.O_RDONLY) for p in files}
    for _ in range(200):
        p = rng.choice(files)
        off = rng.randrange(len(data[p]))
        n = rng.randrange(1, 300000)
        got = os.pread(fds[p], n, off)
        if got != data[p][off:off + n]:
            errors.append((p, off, n))
    for fd in fds.values():
        os.close(fd)
threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
assert not errors, errors[:3]
PY
  unmount_layer "$mnt" "$pid"
done

# 2. overlayfs over three mounted layers == the layers applied in order.
mk="$work/ovl-src"
mkdir -p "$mk/l1/a/keep" "$mk/l1/b" "$mk/l1/c/old" "$mk/l2/a" "$mk/l2/c" "$mk/l3/a"
echo base > "$mk/l1/a/file"; echo keep > "$mk/l1/a/keep/k"; echo x > "$mk/l1/b/x"
echo y > "$mk/l1/b/y"; echo old > "$mk/l1/c/old/o"; ln -s file "$mk/l1/a/link"
echo changed > "$mk/l2/a/file"; : > "$mk/l2/b/.wh.x" 2>/dev/null || { mkdir -p "$mk/l2/b"; : > "$mk/l2/b/.wh.x"; }
: > "$mk/l2/c/.wh..wh..opq"; echo new > "$mk/l2/c/new"; ln "$mk/l2/a/file" "$mk/l2/a/hard"
: > "$mk/l3/.wh.b"; echo top > "$mk/l3/a/top"; mknod "$mk/l3/a/null" c 1 3
python3 -c "import os; os.setxattr('$mk/l3/a/top', 'user.k', b'v')"
# Names that are not UTF-8 in two layers: a file and a directory in l1, a whiteout of
# one of them, a byte-named file with a byte-named xattr and a symlink to it in l2.
e9=$(printf '\xe9') ff=$(printf '\xff')
echo old > "$mk/l1/a/old-$e9"; mkdir -p "$mk/l1/d$ff"; echo in > "$mk/l1/d$ff/x$e9"
: > "$mk/l2/a/.wh.old-$e9"; echo new > "$mk/l2/a/new-$ff"; ln -s "new-$ff" "$mk/l2/a/ln-$e9"
python3 -c 'import os,sys; os.setxattr(sys.argv[1].encode() + b"/l2/a/new-\xff", b"user.\xe9", b"\xe0")' "$mk"
find "$mk" -exec touch -h -d @1700000000 {} +
for i in 1 2 3; do
  tar --format=posix --xattrs --xattrs-include='*' -C "$mk/l$i" -czf "$work/l$i.tar.gz" .
done
for i in 1 2 3; do mount_layer "$work/l$i.tar.gz" "$work/ml$i"; done
ovl="$work/ovl"
mkdir -p "$ovl"
if mount -t overlay overlay -o "lowerdir=$work/ml3:$work/ml2:$work/ml1" "$ovl"; then
  mounts+=("$ovl")
  python3 "$apply" "$work/applied" "$work/l1.tar.gz" "$work/l2.tar.gz" "$work/l3.tar.gz"
  python3 "$manifest" "$ovl" --no-dir-nlink > "$work/ovl.txt"
  python3 "$manifest" "$work/applied" --no-dir-nlink > "$work/applied.txt"
  if ! diff -u "$work/applied.txt" "$work/ovl.txt" > "$work/ovl.diff"; then
    error "overlay differs from applied layers:"; head -n 40 "$work/ovl.diff"
  fi
  [ "$(wc -l < "$work/ovl.txt")" -ge 10 ] || error "overlay manifest too short"
  grep -q '^a/top .*xattrs=user.k=76' "$work/ovl.txt" || error "top layer xattr missing"
  grep -q '^a/file .*sha256=' "$work/ovl.txt" || error "a/file missing"
  grep -q '^b ' "$work/ovl.txt" && error "whiteout of b not honoured"
  grep -q '^c/old' "$work/ovl.txt" && error "opaque c not honoured"
  python3 - "$ovl" <<'PY' || error "names that are not UTF-8 differ through overlayfs"
import os, sys
o = os.fsencode(sys.argv[1])
a = sorted(os.listdir(o + b"/a"))
assert b"new-\xff" in a and b"ln-\xe9" in a and b"old-\xe9" not in a, a
assert os.readlink(o + b"/a/ln-\xe9") == b"new-\xff"
assert os.listxattr(o + b"/a/new-\xff") == ["user.\udce9"], os.listxattr(o + b"/a/new-\xff")
assert os.getxattr(o + b"/a/new-\xff", b"user.\xe9") == b"\xe0"
assert open(o + b"/d\xff/x\xe9", "rb").read() == b"in\n"
PY
  # A layer without any xattr (l1) answers getxattr ENOSYS once: the kernel then says
  # EOPNOTSUPP itself, with no round trip; layers with xattrs (l2) answer ENODATA.
  python3 - "$work/ml1" "$work/ml2" <<'PY' || error "getxattr of an xattr-free layer"
import errno, os, sys
for _ in range(3):
    try:
        os.getxattr(sys.argv[1] + "/a/file", "trusted.overlay.opaque")
        raise SystemExit("ml1: getxattr succeeded")
    except OSError as e:
        assert e.errno == errno.EOPNOTSUPP, e
assert os.listxattr(sys.argv[1] + "/a/file") == []
try:
    os.getxattr(sys.argv[2] + "/a/file", "user.missing")
    raise SystemExit("ml2: getxattr succeeded")
except OSError as e:
    assert e.errno == errno.ENODATA, e
assert os.getxattr(sys.argv[2] + "/c", "trusted.overlay.opaque") == b"y"
PY
  umount "$ovl" || error "umount overlay"
else
  error "overlay mount failed"
fi
for i in 1 2 3; do unmount_layer "$work/ml$i" "${pids[$(( ${#pids[@]} - 4 + i ))]}"; done

# 2b. Every mount gets a readahead window of 4096 KiB (the kernel's default is 128),
# also at a mountpoint whose name mountinfo escapes.
mnt="$work/with space"
mount_layer "$work/layers/posix.tar.gz" "$mnt" && {
  pid=$last_pid
  ra=$(cat "/sys/class/bdi/$(mountpoint -d "$mnt")/read_ahead_kb")
  [ "$ra" = 4096 ] || error "readahead window of $mnt is $ra KiB, not 4096"
  cmp -s "$mnt/usr/bin/random3m" <(tar -xzOf "$work/layers/posix.tar.gz" ./usr/bin/random3m 2>/dev/null || tar -xzOf "$work/layers/posix.tar.gz" usr/bin/random3m) ||
    error "random3m read through a 4 MiB readahead window differs"
  unmount_layer "$mnt" "$pid"
}

# 3. Unmount while busy: a held file does not block shutdown or hang the holder.
mnt="$work/busy"
mount_layer "$work/layers/posix.tar.gz" "$mnt" && {
  pid=$last_pid
  exec 7< "$mnt/etc/app/seq.txt"
  head -c 10 <&7 >/dev/null
  unmount_layer "$mnt" "$pid"
  timeout 10 cat <&7 >/dev/null 2>&1; rc=$?
  [ "$rc" -eq 124 ] && error "read from an fd of an unmounted layer hung"
  exec 7<&-
}

# 4. A corrupt blob: reads fail with EIO quickly, other files still read.
cp "$work/layers/posix.tar.gz" "$work/corrupt.tar.gz"
"$clipctl" index build --layer "$work/corrupt.tar.gz" -o "$work/corrupt.tar.gz.idx" >/dev/null
size=$(stat -c %s "$work/corrupt.tar.gz")
printf '\xff\xff\xff\xff' | dd of="$work/corrupt.tar.gz" bs=1 seek=$((size / 2)) conv=notrunc status=none
mnt="$work/corrupt"
mkdir -p "$mnt"
"$clipctl" mount --index "$work/corrupt.tar.gz.idx" --layer "$work/corrupt.tar.gz" "$mnt" 2>>"$work/clipctl.log" &
pid=$!; pids+=($pid); mounts+=("$mnt")
for _ in $(seq 1 300); do grep -q " $mnt fuse.clip " /proc/mounts && break; sleep 0.1; done
grep -q " $mnt fuse.clip " /proc/mounts || error "mount of the corrupt layer did not appear (30 s)"
eio=0
for f in etc/app/seq.txt etc/app/zeros.txt usr/bin/random3m usr/bin/random700k; do
  out=$(timeout 20 cat "$mnt/$f" 2>&1 >/dev/null); rc=$?
  [ "$rc" -eq 124 ] && error "read of $f hung"
  case "$out" in *"Input/output error"*) eio=1 ;; esac
done
[ "$eio" -eq 1 ] || error "no EIO from a corrupt blob"
grep -q "read of" "$work/clipctl.log" || error "the failed read was not logged"
timeout 10 cat "$mnt/etc/hello.txt" >/dev/null || error "an intact file failed to read"
unmount_layer "$mnt" "$pid"

if [ "$fail" -ne 0 ]; then
  echo "--- clipctl log"; tail -n 20 "$work/clipctl.log"
fi
exit $fail
