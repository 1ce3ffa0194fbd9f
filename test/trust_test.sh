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
mode_seen() {  # mode_seen IMAGE NAME [CTR]: what a container of IMAGE sees of /hello
  ${3:-$ctr} run --rm --snapshotter clip "$1" "$2" /hello /hello 2>&1 | sed -n 's|^/hello: present ||p'
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
ctr="$E2E_CTR"

# 1. Pinned by its platform manifest: no binding is reachable, so every offer is
# refused and the layer is pulled normally.
pinned="$reg/e2e/t@$manifest"
out=$("$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" "$pinned" 2>&1) ||
  error "pull by platform digest: $out"
grep -q "0 lazy, 1 unpacked" <<<"$out" || error "a forged index was used: $out"
seen=$(mode_seen "$pinned" p1)
echo "1. pinned by platform digest: not lazy; /hello $seen"
[ "$seen" = "mode=755 uid=0" ] || error "pinned image: /hello is '$seen'"
grep -q "refused the index of $layer from remote_cache (unbound): offered $forged" "$t/clip.log" ||
  error "no log line for the remote cache's forged index"
grep -q "refused the index of $layer from referrers (unbound)" "$t/clip.log" ||
  error "no log line for the forged referrer"
[ "$(refused remote_cache unbound)" = 1 ] || error "remote_cache/unbound: $(refused remote_cache unbound)"
[ "$(refused referrers unbound)" = 1 ] || error "referrers/unbound: $(refused referrers unbound)"
$ctr images rm --sync "$pinned" >/dev/null || error "images rm pinned"

# 2. The bound tag: lazy, with the genuine index from the registry; the remote cache's
# entry under the genuine digest holds other bytes and is refused (and repaired).
out=$("$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" "$reg/e2e/t:v1" 2>&1) ||
  error "pull of the bound tag: $out"
grep -q "1 lazy, 0 unpacked" <<<"$out" || error "bound image not lazy: $out"
grep -q "mounted $layer of $reg/e2e/t:v1 lazily at .*(index in the registry (bound)" "$t/clip.log" ||
  error "the bound index did not come from the registry"
seen=$(mode_seen "$reg/e2e/t:v1" b1)
echo "2. bound tag: lazy (genuine index from the registry); /hello $seen"
[ "$seen" = "mode=755 uid=0" ] || error "bound image: /hello is '$seen'"
grep -q "refused the index of $layer from remote_cache (digest_mismatch)" "$t/clip.log" ||
  error "no log line for the remote cache's wrong bytes"
[ "$(refused remote_cache digest_mismatch)" = 1 ] || error "remote_cache/digest_mismatch"
cmp -s "$t/genuine" "$t/nginx/data/cas/${genuine#sha256:}" || error "remote cache entry not repaired"
$ctr images rm --sync "$reg/e2e/t:v1" >/dev/null || error "images rm bound"

# 3. The local store's copy changed on disk: refused, removed, found again (bound).
cp "$t/forged" "$t/clip/indexes/${layer#sha256:}"
out=$("$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" "$reg/e2e/t:v1" 2>&1) ||
  error "pull after the local change: $out"
grep -q "1 lazy, 0 unpacked" <<<"$out" || error "not lazy after the local change: $out"
seen=$(mode_seen "$reg/e2e/t:v1" b2)
echo "3. local store file changed: refused, lazy again; /hello $seen"
[ "$seen" = "mode=755 uid=0" ] || error "after the local change: /hello is '$seen'"
grep -q "refused the index of $layer from local_store (modified_on_disk)" "$t/clip.log" ||
  error "no log line for the changed local file"
[ "$(refused local_store modified_on_disk)" = 1 ] || error "local_store/modified_on_disk"
$ctr images rm --sync "$reg/e2e/t:v1" >/dev/null || error "images rm bound (2)"

# 4. index_trust = "referrers" believes any referrer: the forged mode shows, so the
# checks above would have seen it. The daemon warns at start.
printf 'plain_http = ["%s"]\nindex_trust = "referrers"\nmetrics_address = "unix:%s"\n' \
  "$reg" "$t/metrics2.sock" >"$t/clip2.toml"
e2e_clip "$daemon" 2
e2e_containerd 2
grep -q 'WARNING daemon: index_trust = "referrers"' "$t/clip2.log" || error "no warning for referrers"
out=$("$clipctl" pull -a "$t/containerd2.sock" -n "$E2E_NS" --plain-http "$reg" "$pinned" 2>&1) ||
  error "pull with index_trust = referrers: $out"
grep -q "1 lazy" <<<"$out" || error "referrers mode did not take the referrer: $out"
seen=$(mode_seen "$pinned" r1 "$E2E_CTR")
echo "4. index_trust = referrers: the forged referrer is believed; /hello $seen"
[ "$seen" = "mode=4755 uid=0" ] || error "referrers mode: /hello is '$seen' (the forgery did not show)"
$E2E_CTR images rm --sync "$pinned" >/dev/null || error "images rm (referrers)"
if [ "$E2E_FAIL" -ne 0 ]; then
  echo "--- clip log"; grep -E "trust|remote:" "$t/clip.log" | tail -n 30
  echo "--- clip2 log"; tail -n 15 "$t/clip2.log" 2>/dev/null
fi
exit $E2E_FAIL
