#!/usr/bin/env bash
# End to end through containerd 2.1's transfer service (issue 24): `ctr image pull
# --snapshotter clip` of containerd 2.1.9 hands the whole pull to containerd, which
# unpacks to clip with the remote-snapshot labels (clip exports
# enable_remote_snapshot_annotations; the platforms to unpack for are its unpack_config:
# e2e_env.sh's version 3 config). containerd 2.1.9 is Debian sid's, unpacked by
# deploy/setup.sh, never installed (E2E_CONTAINERD=2.1, the default here; 1.x has no
# transfer service that unpacks to a proxy snapshotter).
# The clip daemon runs with the default index_trust ("bound").
#   1. an image published with `clipctl index --push` (its tag then names the bound
#      image index) is pulled lazily: every layer mounted lazily with an index the
#      binding proves, no layer blob in containerd's content store; a container reads a
#      file of it and checks its bytes;
#   2. an image published with --no-bind (a referrer only, no binding) is not lazy: the
#      daemon refuses the referrer's index, containerd downloads and unpacks the layers,
#      and the image runs all the same.
set -uo pipefail
start_ns=$(date +%s%N)
src="${TEST_SRCDIR}/${TEST_WORKSPACE}"
daemon="$src/snapshotter/containerd-clip-grpc"
clipctl="$src/cmd/clipctl"
E2E_CONTAINERD=${E2E_CONTAINERD:-2.1}
source "$src/test/e2e_env.sh"
trap e2e_cleanup EXIT
t="$E2E_DIR"
error() { e2e_error "$@"; }
finish() {
  if [ "$E2E_FAIL" -ne 0 ]; then
    echo "--- clip log"; tail -n 40 "$t/clip.log" 2>/dev/null
    echo "--- containerd log"; grep -v 'level=debug' "$t/containerd.log" 2>/dev/null | tail -n 20
  else
    echo "PASS: transfer service pulls: bound image lazy, unbound image refused and unpacked"
  fi
  echo "wall time: $((($(date +%s%N) - start_ns) / 1000000)) ms"
  exit "$E2E_FAIL"
}
fatal() { error "$@"; finish; }

[[ "$E2E_CONTAINERD" == 2.* ]] || fatal "E2E_CONTAINERD=$E2E_CONTAINERD: the transfer service pull needs 2.x"

# Images, two layers each: [static /reader, /etc/sums] and [/srv/data.bin, 4 MB of its
# own random bytes]; /etc/sums holds the data's SHA-256, which the reader checks.
declare -A layers  # image -> its layers' digests (hex)
gcc -static -O2 -pthread -o "$t/reader" "$src/test/testdata/reader.c" || fatal "gcc -static reader.c"
for i in bound unbound; do
  mkdir -p "$t/$i-1/etc" "$t/$i-2/srv"
  cp "$t/reader" "$t/$i-1/reader"
  head -c 4000000 /dev/urandom >"$t/$i-2/srv/data.bin"
  (cd "$t/$i-2" && sha256sum srv/data.bin) | sed 's#  #  /#' >"$t/$i-1/etc/sums"
  python3 "$src/test/testdata/make_image.py" "$t/img-$i" v1 /reader "$t/$i-1" "$t/$i-2" ||
    fatal "image $i"
  layers[$i]=$(e2e_layers "$t/img-$i" | cut -d' ' -f1)
  [ "$(wc -w <<<"${layers[$i]}")" -eq 2 ] || fatal "image $i has layers '${layers[$i]}'"
done

e2e_registry || fatal "docker-registry"
reg="$E2E_REGISTRY"
for i in bound unbound; do
  skopeo copy --quiet --dest-tls-verify=false "oci:$t/img-$i:v1" "docker://$reg/e2e/$i:v1" ||
    fatal "push $i"
done
"$clipctl" index --plain-http "$reg" --push "$reg/e2e/bound:v1" >"$t/index-bound.log" 2>&1 ||
  { cat "$t/index-bound.log"; fatal "clipctl index --push bound"; }
grep -q "^bound $reg/e2e/bound:v1 -> sha256:" "$t/index-bound.log" ||
  { cat "$t/index-bound.log"; fatal "clipctl index --push bound no image index"; }
"$clipctl" index --plain-http "$reg" --push --no-bind "$reg/e2e/unbound:v1" \
  >"$t/index-unbound.log" 2>&1 ||
  { cat "$t/index-unbound.log"; fatal "clipctl index --push --no-bind"; }
grep -q "^bound " "$t/index-unbound.log" && error "clipctl index --no-bind bound the image"

# The clip daemon: nothing configured but the plain-HTTP registry (index_trust "bound").
printf 'plain_http = ["%s"]\n' "$reg" >"$t/clip.toml"
e2e_clip "$daemon" || fatal "clip daemon"
# containerd 2.1 (its transfer service unpacks to clip and overlayfs, and hands clip the
# remote-snapshot labels), with a debug log: the transfer service's pulls show in it.
E2E_CONTAINERD_TOML=$'[debug]\n  level = "debug"'
e2e_containerd || fatal "containerd $E2E_CONTAINERD"
ctr=$E2E_CTR

# pull NAME: ctr's pull of e2e/NAME:v1 through the transfer service. containerd then
# resolves and verifies the image itself (in a client's pull, `ctr image pull --local`,
# ctr does that and containerd logs neither).
# Sets content: the digests in containerd's content store after the pull.
pull() {
  $ctr image pull --plain-http --snapshotter clip "$reg/e2e/$1:v1" >"$t/pull-$1.log" 2>&1 ||
    { tail -n 5 "$t/pull-$1.log"; fatal "ctr image pull $1"; }
  grep -q "msg=\"Verifying image pull\" .* name=\"$reg/e2e/$1:v1\"" "$t/containerd.log" ||
    error "ctr image pull $1 did not go through the transfer service"
  content=$($ctr content ls -q) || fatal "ctr content ls"
}

# 1. The bound image: lazy. The first layer's index comes from the registry through the
# binding, which brings the other layers' indexes along into the local store.
pull bound
for hex in ${layers[bound]}; do
  grep -Eq "mounted sha256:$hex of .* lazily at .* \(index in the (registry \(bound\)|local store)," \
    "$t/clip.log" || error "bound layer sha256:$hex was not mounted lazily with a proven index"
  grep -qx "sha256:$hex" <<<"$content" &&
    error "bound layer sha256:$hex is in containerd's content store: downloaded, not lazy"
done
run=$($ctr run --rm --snapshotter clip "$reg/e2e/bound:v1" bound1 /reader -m /etc/sums -n 1 2>&1)
grep -q "^reads=1 failed=0 wrong=0 " <<<"$run" || error "the bound image's container: $run"

# 2. The unbound image: its referrer is refused under "bound"; pulled normally.
pull unbound
for hex in ${layers[unbound]}; do
  grep -q "sha256:$hex of .* lazily at" "$t/clip.log" &&
    error "unbound layer sha256:$hex mounted lazily"
  grep -q "refused the index of sha256:$hex from referrers (unbound)" "$t/clip.log" ||
    error "the daemon did not log refusing the referrer's index of sha256:$hex"
  grep -qx "sha256:$hex" <<<"$content" ||
    error "unbound layer sha256:$hex is not in containerd's content store: not downloaded?"
done
run=$($ctr run --rm --snapshotter clip "$reg/e2e/unbound:v1" unbound1 /reader -m /etc/sums -n 1 2>&1)
grep -q "^reads=1 failed=0 wrong=0 " <<<"$run" || error "the unbound image's container: $run"

for i in bound unbound; do
  $ctr image rm --sync "$reg/e2e/$i:v1" >/dev/null || error "image rm $i"
done
finish
