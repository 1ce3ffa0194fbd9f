#!/usr/bin/env bash
# End to end with the real programs: docker-registry (behind a byte-counting proxy),
# containerd (E2E_CONTAINERD: 1.6 by default, 1.7, 2.1; e2e_env.sh) + runc with clip as
# proxy_plugins snapshotter, nginx as the fleet's remote cache, clipctl index --push and
# clipctl pull.
#   1. a lazily pulled 2-layer image runs, and the registry served a small part of it;
#      its files (names that are not UTF-8 included) equal containerd's overlayfs unpack;
#   2. a second image sharing both layers mounts only its own new layer; both run;
#   3. an image without an index still pulls (downloaded + unpacked) and runs;
#   4. images rm removes the lazy snapshots and their mounts;
#   5. a second clip daemon (own root, own disk cache, own containerd) sharing the
#      remote cache runs the first image without fetching a layer byte from the registry,
#      replaying the access profiles the first daemon recorded when A first ran.
#   6. a node's hosts directory whose hosts.toml lists the server again as a [host]
#      without push (issue 23): ctr pulls and pushes with it, and so does
#      clipctl index --push (the server entry, last, keeps every capability).
set -uo pipefail
src="${TEST_SRCDIR}/${TEST_WORKSPACE}"
daemon="$src/snapshotter/containerd-clip-grpc"
clipctl="$src/cmd/clipctl"
source "$src/test/e2e_env.sh"
trap e2e_cleanup EXIT
t="$E2E_DIR"
error() { e2e_error "$@"; }
layer_digests() {  # layer_digests LAYOUT: the manifest's layer digests (hex), one per line
  python3 - "$1" <<'PY'
import json, sys, os
layout = sys.argv[1]
idx = json.load(open(os.path.join(layout, "index.json")))
m = json.load(open(os.path.join(layout, "blobs/sha256", idx["manifests"][0]["digest"][7:])))
for l in m["layers"]:
    print(l["digest"][7:], l["size"])
PY
}

# Images: A = [base: static /hello, data: 8 MB not read by the container],
# B = A's layers + [extra], C = [other] (never indexed).
mkdir -p "$t/base/etc" "$t/data/etc" "$t/data/srv" "$t/extra/etc" "$t/other/etc"
gcc -static -O2 -o "$t/base/hello" "$src/test/testdata/hello.c" || error "gcc -static"
echo base > "$t/base/etc/base"
echo upper > "$t/data/etc/upper"
# Names that are not UTF-8 (Linux names are bytes): a file, a directory, a symlink's
# name and target, a hardlink (make_image.py's tarfile writes no xattrs; byte xattr
# names are covered by fs/mount_test).
e9=$(printf '\xe9') ff=$(printf '\xff')
mkdir -p "$t/data/srv/d$ff"; echo latin1 > "$t/data/srv/caf$e9"; echo in > "$t/data/srv/d$ff/x$e9"
ln -s "caf$e9" "$t/data/srv/ln-$ff"; ln "$t/data/srv/caf$e9" "$t/data/srv/hard-$e9"
head -c 8000000 /dev/urandom > "$t/data/srv/blob.bin"
echo extra > "$t/extra/etc/extra"
cp "$t/base/hello" "$t/other/hello"
echo other > "$t/other/etc/other"
python3 "$src/test/testdata/make_image.py" "$t/a" v1 /hello "$t/base" "$t/data" || error "image A"
python3 "$src/test/testdata/make_image.py" "$t/b" v1 /hello "$t/base" "$t/data" "$t/extra" || error "image B"
python3 "$src/test/testdata/make_image.py" "$t/c" v1 /hello "$t/other" || error "image C"

e2e_registry
for i in a b c; do
  skopeo copy --quiet --dest-tls-verify=false "oci:$t/$i:v1" "docker://$E2E_REGISTRY/e2e/$i:v1" ||
    error "push $i"
done
e2e_proxy "$src/registry/testdata/fault_proxy.py"
reg="$E2E_PROXY"
for i in a b; do
  "$clipctl" index --plain-http "$reg" --push "$reg/e2e/$i:v1" >"$t/index-$i.log" 2>&1 ||
    { error "clipctl index $i"; cat "$t/index-$i.log"; }
  # The tag now names the bound image index: clipctl pull and ctr run use it below.
  grep -q "^bound $reg/e2e/$i:v1 -> sha256:" "$t/index-$i.log" ||
    { error "clipctl index $i bound no image index"; cat "$t/index-$i.log"; }
done
e2e_nginx
printf 'plain_http = ["%s"]\nremote_cache = "%s"\nmetrics_address = "unix:%s"\n[access_profiles]\nquiet_seconds = 1\n' \
  "$reg" "$E2E_NGINX" "$t/metrics.sock" > "$t/clip.toml"
e2e_clip "$daemon"
e2e_containerd
ctr1="$E2E_CTR"
curl -sf -X POST -d '{}' "http://$reg/__reset" >/dev/null

# Bad input: clear errors, nothing left behind.
out=$("$clipctl" pull -a "$t/nonexistent.sock" --plain-http "$reg" "$reg/e2e/a:v1" 2>&1) &&
  error "pull without containerd succeeded"
grep -q "containerd" <<<"$out" || error "unclear error without containerd: $out"
out=$("$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" "Bad Ref" 2>&1) && error "bad ref accepted"
grep -qi "reference" <<<"$out" || error "unclear error for a bad reference: $out"
out=$("$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" "$reg/e2e/nope:v1" 2>&1) &&
  error "pull of a missing image succeeded"
[ -z "$($ctr1 images ls -q)" ] || error "a failed pull left an image record"

# 1. Lazy pull + run of A.
out=$("$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" "$reg/e2e/a:v1" 2>&1) ||
  error "clipctl pull A: $out"
grep -q "2 lazy, 0 unpacked" <<<"$out" || error "A not lazy: $out"
run=$($ctr1 run --rm --snapshotter clip "$reg/e2e/a:v1" a1 /hello /etc/base /etc/upper 2>&1)
grep -q "hello from a clip snapshot" <<<"$run" || error "A's container: $run"
grep -q "/etc/upper: present" <<<"$run" || error "A's second layer not visible: $run"
image_bytes=0 fetched=0
while read -r hex size; do
  image_bytes=$((image_bytes + size)); fetched=$((fetched + $(e2e_blob_bytes "$hex")))
done < <(layer_digests "$t/a")
echo "image A: layers $image_bytes bytes, registry served $fetched layer bytes for pull + run"
[ "$fetched" -gt 0 ] || error "no layer bytes fetched at all?"
[ $((fetched * 10)) -lt "$image_bytes" ] || error "fetched $fetched of $image_bytes layer bytes (>= 10%)"
# The daemon runs with --log-level debug: index lookups and every span's source are logged.
grep -q "DEBUG remote: index of sha256:[0-9a-f]*: not in the local store" "$t/clip.log" ||
  error "debug log lacks the index lookups"
grep -Eq "DEBUG cache: span [0-9]+ of sha256:[0-9a-f]+ \([0-9]+ bytes\) from registry in" "$t/clip.log" ||
  error "debug log lacks the span fetches"

# 1b. The lazily mounted image is identical to containerd's own overlayfs unpack of it
# (names that are not UTF-8 included): a container of each (its snapshot is safe from
# containerd's GC), its rootfs mounted and compared file by file (the upper is empty).
$ctr1 images pull --plain-http "$reg/e2e/a:v1" >/dev/null 2>&1 || error "ctr images pull (overlayfs) A"
for sn in clip overlayfs; do
  mkdir -p "$t/view-$sn"
  $ctr1 containers create --snapshotter "$sn" "$reg/e2e/a:v1" "view-$sn" >/dev/null ||
    error "container of A through $sn"
  eval "$($ctr1 snapshots --snapshotter "$sn" mounts "$t/view-$sn" "view-$sn")" || error "mount $sn view"
  # The layers' tars have no "./" member: the root's mtime is the unpacker's choice
  # (containerd: the time of unpack; clip: 0), so it is left out.
  python3 "$src/fs/testdata/tree_manifest.py" "$t/view-$sn" --no-dir-nlink |
    sed 's/^\(\. .*\) mtime=[0-9]*/\1/' > "$t/view-$sn.txt"
done
LC_ALL=C grep -aq "^srv/caf$e9 .*nlink=2 size=7" "$t/view-clip.txt" || error "clip view lacks srv/caf\\xe9"
LC_ALL=C grep -aq "^srv/ln-$ff .*target=caf$e9" "$t/view-clip.txt" || error "clip view lacks the symlink"
LC_ALL=C grep -aq "^srv/d$ff/x$e9 .*size=3" "$t/view-clip.txt" || error "clip view lacks srv/d\\xff/x\\xe9"
diff -u "$t/view-overlayfs.txt" "$t/view-clip.txt" > "$t/view.diff" ||
  { error "clip's view of A differs from containerd's overlayfs unpack:"; head -n 20 "$t/view.diff"; }
for sn in clip overlayfs; do
  umount "$t/view-$sn" || error "umount $sn view"
  $ctr1 containers rm "view-$sn" || error "rm $sn container"
done

# 2. B shares A's two layers: only its third is new; both images run.
out=$("$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" "$reg/e2e/b:v1" 2>&1) ||
  error "clipctl pull B: $out"
grep -q "1 lazy, 0 unpacked, 2 already present" <<<"$out" || error "B did not share A's layers: $out"
$ctr1 run -d --snapshotter clip "$reg/e2e/a:v1" a2 /hello >/dev/null 2>&1 || error "run A detached"
run=$($ctr1 run --rm --snapshotter clip "$reg/e2e/b:v1" b1 /hello /etc/base /etc/extra 2>&1)
grep -q "/etc/extra: present" <<<"$run" || error "B's container: $run"
mounts=$(grep -c "lazily at" "$t/clip.log")
[ "$mounts" -eq 3 ] || error "expected 3 lazy layer mounts for A+B, saw $mounts"
$ctr1 tasks kill -s KILL a2 >/dev/null 2>&1
e2e_wait "a2 stopped after SIGKILL" eval '$ctr1 tasks ls | awk '"'"'$1 == "a2" {print $3}'"'"' | grep -qx STOPPED'
$ctr1 tasks rm a2 >/dev/null 2>&1; $ctr1 containers rm a2 >/dev/null 2>&1

# 3. C has no index: downloaded and unpacked by clipctl pull, runs all the same.
out=$("$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" "$reg/e2e/c:v1" 2>&1) ||
  error "clipctl pull C: $out"
grep -q "0 lazy, 1 unpacked" <<<"$out" || error "C: $out"
run=$($ctr1 run --rm --snapshotter clip "$reg/e2e/c:v1" c1 /hello /etc/other 2>&1)
grep -q "/etc/other: present" <<<"$run" || error "C's container: $run"
ls=$($ctr1 images ls -q)
[ "$(grep -c e2e <<<"$ls")" -eq 3 ] || error "ctr images ls: $ls"

# 4. images rm: snapshots collected, FUSE mounts gone.
for i in a b c; do $ctr1 images rm --sync "$reg/e2e/$i:v1" >/dev/null || error "images rm $i"; done
left=$($ctr1 snapshots --snapshotter clip ls | tail -n +2)
[ -z "$left" ] || error "snapshots left after images rm: $left"
fuse=$(grep -c " $t/clip/.* fuse" /proc/mounts)
[ "$fuse" -eq 0 ] || error "$fuse FUSE mounts left after images rm"

# 5. A second host: own daemon, disk cache and containerd; the same remote cache.
for _ in $(seq 1 50); do [ -n "$(ls "$t/nginx/data/index")" ] && break; sleep 0.1; done
# A's first start recorded the spans it read, per layer, once its reads went quiet
# (1 s): into the daemon's store and the remote cache.
recorded=$(grep -c "recorded the access profile of sha256:" "$t/clip.log")
[ "$recorded" -ge 1 ] || error "no access profile recorded for A's first start"
[ -n "$(ls "$t/nginx/data/profile" 2>/dev/null)" ] || error "no access profile in the remote cache"
[ -n "$(ls "$t/clip/profiles" 2>/dev/null)" ] || error "no access profile in the local store"
# Published with the indexes: each profile is checked against the layer's index.
"$clipctl" index --plain-http "$reg" --push --profiles "$t/clip/profiles" "$reg/e2e/a:v1" \
  >"$t/index-a-profiles.log" 2>&1 || { error "clipctl index --push --profiles"; cat "$t/index-a-profiles.log"; }
published=$(grep -c "access profile: [0-9]* spans" "$t/index-a-profiles.log")
[ "$published" -eq "$recorded" ] || error "published $published access profiles, recorded $recorded"
# clipctl record: drops the earlier profiles, pulls A lazily, runs one container of it,
# removes the image (the daemon ends the recordings as it unmounts) and reports them.
out=$("$clipctl" record -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" --root "$t/clip" \
  -o "$t/recorded" "$reg/e2e/a:v1" -- /hello /etc/base 2>&1) || error "clipctl record: $out"
grep -q "hello from a clip snapshot" <<<"$out" || error "clipctl record: the container did not run: $out"
grep -q "recorded [1-9][0-9]* access profile(s) of $reg/e2e/a:v1" <<<"$out" || error "clipctl record: $out"
[ "$(ls "$t/recorded" | wc -l)" -ge 1 ] || error "clipctl record -o wrote no profile"
[ -z "$($ctr1 images ls -q)" ] || error "clipctl record left the image behind"
out=$("$clipctl" record -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" --root "$t/clip" \
  "$reg/e2e/c:v1" 2>&1) && error "clipctl record of an image without indexes succeeded"
grep -q "no lazily mounted layer" <<<"$out" || error "clipctl record without indexes: unclear: $out"
[ -z "$($ctr1 images ls -q)" ] || error "a failed clipctl record left the image it pulled"
# The caches' span writes are asynchronous: wait until host 1 has none pending.
pending() { curl -sf --unix-socket "$t/metrics.sock" http://clip/metrics |
  awk '/^clip_cache_pending_writes /{print $2}'; }
for _ in $(seq 1 100); do [ "$(pending)" = "0" ] && break; sleep 0.1; done
[ "$(pending)" = "0" ] || error "host 1 still has cache writes pending: $(pending)"
printf 'plain_http = ["%s"]\nremote_cache = "%s"\n[access_profiles]\nquiet_seconds = 1\n' \
  "$reg" "$E2E_NGINX" > "$t/clip2.toml"
e2e_clip "$daemon" 2
e2e_containerd 2
ctr2="$E2E_CTR"
curl -sf -X POST -d '{}' "http://$reg/__reset" >/dev/null
out=$("$clipctl" pull -a "$t/containerd2.sock" -n "$E2E_NS" --plain-http "$reg" "$reg/e2e/a:v1" 2>&1) ||
  error "host 2 pull: $out"
grep -q "2 lazy" <<<"$out" || error "host 2 not lazy: $out"
run=$($ctr2 run --rm --snapshotter clip "$reg/e2e/a:v1" h2 /hello /etc/upper 2>&1)
grep -q "/etc/upper: present" <<<"$run" || error "host 2 container: $run"
fetched2=0
while read -r hex size; do fetched2=$((fetched2 + $(e2e_blob_bytes "$hex"))); done < <(layer_digests "$t/a")
echo "host 2: registry served $fetched2 layer bytes (host 1: $fetched)"
[ "$fetched2" -eq 0 ] || error "host 2 fetched $fetched2 layer bytes from the registry"
replayed=$(grep -c "replaying the access profile of sha256:" "$t/clip2.log")
[ "$replayed" -eq "$recorded" ] || error "host 2 replayed $replayed access profiles, host 1 recorded $recorded"
$ctr2 images rm --sync "$reg/e2e/a:v1" >/dev/null

# 6. A node's hosts.toml (issue 23): the server listed again as a [host] without push.
# containerd tries the [host] tables in file order, then the server, which keeps every
# capability; pushes go there. ctr (a pull, then a push) and clipctl use the same file.
mkdir -p "$t/hosts/$E2E_REGISTRY"
cat >"$t/hosts/$E2E_REGISTRY/hosts.toml" <<TOML
server = "http://$E2E_REGISTRY"
[host."http://$E2E_REGISTRY"]
  capabilities = ["pull", "resolve"]
TOML
printf 'hosts_dir = "%s"\n' "$t/hosts" >"$t/hosts-clip.toml"
pushed="$E2E_REGISTRY/e2e/hosts:v1"
$ctr1 content fetch --hosts-dir "$t/hosts" "$E2E_REGISTRY/e2e/c:v1" >"$t/hosts-ctr.log" 2>&1 ||
  { error "ctr content fetch --hosts-dir"; tail -n 5 "$t/hosts-ctr.log"; }
$ctr1 images push --hosts-dir "$t/hosts" "$pushed" "$E2E_REGISTRY/e2e/c:v1" >>"$t/hosts-ctr.log" 2>&1 ||
  { error "ctr images push --hosts-dir"; tail -n 5 "$t/hosts-ctr.log"; }
curl -sf -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "http://$E2E_REGISTRY/v2/e2e/hosts/manifests/v1" || error "ctr's push is not in the registry"
out=$("$clipctl" index --config "$t/hosts-clip.toml" --push "$pushed" 2>&1) ||
  error "clipctl index --push with the hosts directory: $out"
subject=$(sed -n 's/^pushed .*(clip indexes of sha256:\([0-9a-f]*\))$/\1/p' <<<"$out")
[ -n "$subject" ] || error "clipctl index --push did not push: $out"
# docker-registry has no referrers API: the OCI 1.1 fallback tag lists the indexes.
curl -sf "http://$E2E_REGISTRY/v2/e2e/hosts/manifests/sha256-$subject" \
  -H 'Accept: application/vnd.oci.image.index.v1+json' | grep -q '"manifests"' ||
  error "no clip index artifact for $pushed after clipctl index --push"
$ctr1 images rm --sync "$pushed" "$E2E_REGISTRY/e2e/c:v1" >/dev/null 2>&1

if [ "$E2E_FAIL" -ne 0 ]; then
  echo "--- clip log"; tail -n 30 "$t/clip.log"
  echo "--- clip2 log"; tail -n 15 "$t/clip2.log" 2>/dev/null
  echo "--- containerd log"; tail -n 15 "$t/containerd.log"
fi
exit $E2E_FAIL
