#!/usr/bin/env bash
# Issue 24's attack, end to end with the real programs (docker-registry, nginx as the
# fleet's remote cache, containerd 1.6 + runc, clip): the clip index of an image's layer
# forged (same layer digest, spans and checkpoints; /hello made setuid root) and offered
#   - in the remote cache, under the genuine index's digest and behind the layer's fleet
#     pointer (one write by any node),
#   - as a newer referrer of the image's manifest (through the sha256-<hex> tag fallback:
#     anyone with push rights),
#   - as the node's local store file, changed on disk.
# Under the default index_trust ("bound") no container ever sees the forged mode: the
# image pinned by its platform manifest (no binding can be reached) is pulled normally,
# the bound tag lazily with the genuine index; every refusal has its log line and its
# clip_index_refused_total{source,reason} count. A daemon with index_trust =
# "referrers" (the behaviour before bindings) believes the forged referrer: the check
# that the forgery is real.
set -uo pipefail
src="${TEST_SRCDIR}/${TEST_WORKSPACE}"
daemon="$src/snapshotter/containerd-clip-grpc"
clipctl="$src/cmd/clipctl"
forge="$src/test/forge_index"
source "$src/test/e2e_env.sh"
trap e2e_cleanup EXIT
t="$E2E_DIR"
error() { e2e_error "$@"; }
refused() {  # refused SOURCE REASON [N]: the daemon's count of such refusals
  curl -sf --unix-socket "$t/metrics${3:-}.sock" http://clip/metrics |
    awk -v s="$1" -v r="$2" 'index($0, "clip_index_refused_total{reason=\"" r "\",source=\"" s "\"}") == 1 {print $2}'
}
mode_seen() {  # mode_seen IMAGE NAME CTR: what a container of IMAGE sees of /hello
  $3 run --rm --snapshotter clip "$1" "$2" /hello /hello 2>&1 | sed -n 's|^/hello: present ||p'
}

mkdir -p "$t/base/etc"
gcc -static -O2 -o "$t/base/hello" "$src/test/testdata/hello.c" || error "gcc -static"
chmod 0755 "$t/base/hello"
echo base > "$t/base/etc/base"
python3 "$src/test/testdata/make_image.py" "$t/img" v1 /hello "$t/base" || error "image"
e2e_registry
reg="$E2E_REGISTRY"
skopeo copy --quiet --dest-tls-verify=false "oci:$t/img:v1" "docker://$reg/e2e/t:v1" || error "push"
"$clipctl" index --plain-http "$reg" --push "$reg/e2e/t:v1" >"$t/index.log" 2>&1 ||
  { error "clipctl index"; cat "$t/index.log"; }
grep -q "^bound $reg/e2e/t:v1 -> sha256:" "$t/index.log" || error "not bound: $(cat "$t/index.log")"

# The attacker: a forged index, pushed as a newer referrer, and written to the remote
# cache under the genuine index's digest and behind the layer's pointer.
"$forge" "$reg" "$reg/e2e/t:v1" 0 hello "$t/genuine" "$t/forged" --referrer >"$t/forge.out" ||
  error "forge_index"
field() { awk -v k="$1" '$1 == k {print $2}' "$t/forge.out"; }
layer=$(field layer) manifest=$(field manifest) genuine=$(field genuine) forged=$(field forged)
[ -n "$forged" ] && [ "$forged" != "$genuine" ] || error "no forgery: $(cat "$t/forge.out")"
e2e_nginx
cp "$t/forged" "$t/nginx/data/cas/${genuine#sha256:}"
cp "$t/forged" "$t/nginx/data/cas/${forged#sha256:}"
echo "$forged" >"$t/nginx/data/index/${layer#sha256:}"
printf 'plain_http = ["%s"]\nremote_cache = "%s"\nmetrics_address = "unix:%s"\n' \
  "$reg" "$E2E_NGINX" "$t/metrics.sock" >"$t/clip.toml"
e2e_clip "$daemon"
e2e_containerd

# pull_run STEP IMAGE SUMMARY [N]: clipctl pull of IMAGE by daemon N, whose summary
# must contain SUMMARY; a container of it must see the genuine /hello; then removed.
pull_run() {
  local step=$1 image=$2 want=$3 n=${4:-} out seen ctr_n="ctr -a $t/containerd${4:-}.sock -n $E2E_NS"
  out=$("$clipctl" pull -a "$t/containerd$n.sock" -n "$E2E_NS" --plain-http "$reg" "$image" 2>&1) ||
    error "$step: pull: $out"
  grep -q "$want" <<<"$out" || error "$step: expected '$want': $out"
  seen=$(mode_seen "$image" "c$RANDOM" "$ctr_n")
  echo "$step: $want; /hello $seen"
  [ "$seen" = "${5:-mode=755 uid=0}" ] || error "$step: /hello is '$seen'"
  $ctr_n images rm --sync "$image" >/dev/null || error "$step: images rm"
}
logged() { grep -q "$1" "$t/clip.log" || error "no log line: $1"; }
counted() { [ "$(refused "$1" "$2")" = "${3:-1}" ] || error "$1/$2 counted $(refused "$1" "$2")"; }

# 1. Pinned by its platform manifest: no binding is reachable, so every offer is
# refused and the layer is pulled normally.
pinned="$reg/e2e/t@$manifest"
pull_run "1. pinned by platform digest" "$pinned" "0 lazy, 1 unpacked"
logged "refused the index of $layer from remote_cache (unbound): offered $forged"
logged "refused the index of $layer from referrers (unbound)"
counted remote_cache unbound
counted referrers unbound

# 2. The bound tag: lazy, with the genuine index from the registry; the remote cache's
# entry under the genuine digest holds other bytes and is refused (and repaired).
pull_run "2. bound tag" "$reg/e2e/t:v1" "1 lazy, 0 unpacked"
logged "mounted $layer of $reg/e2e/t:v1 lazily at .*(index in the registry (bound)"
logged "refused the index of $layer from remote_cache (digest_mismatch)"
counted remote_cache digest_mismatch
cmp -s "$t/genuine" "$t/nginx/data/cas/${genuine#sha256:}" || error "remote cache entry not repaired"

# 3. The local store's copy changed on disk: refused, removed, found again (bound).
cp "$t/forged" "$t/clip/indexes/${layer#sha256:}"
pull_run "3. local store file changed" "$reg/e2e/t:v1" "1 lazy, 0 unpacked"
logged "refused the index of $layer from local_store (modified_on_disk)"
counted local_store modified_on_disk

# 4. index_trust = "referrers" believes any referrer (the daemon warns at start).
printf 'plain_http = ["%s"]\nindex_trust = "referrers"\nmetrics_address = "unix:%s"\n' \
  "$reg" "$t/metrics2.sock" >"$t/clip2.toml"
e2e_clip "$daemon" 2
e2e_containerd 2
grep -q 'WARNING daemon: index_trust = "referrers"' "$t/clip2.log" || error "no warning for referrers"
# The forgery shows under this trust: so the checks above would have seen it.
pull_run "4. index_trust = referrers" "$pinned" "1 lazy" 2 "mode=4755 uid=0"

if [ "$E2E_FAIL" -ne 0 ]; then
  echo "--- clip log"; grep -E "trust|remote:" "$t/clip.log" | tail -n 30
  echo "--- clip2 log"; tail -n 15 "$t/clip2.log" 2>/dev/null
fi
exit $E2E_FAIL
