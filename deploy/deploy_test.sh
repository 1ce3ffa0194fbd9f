#!/usr/bin/env bash
# Checks the deployment files against the real tools that read them: the daemon's own
# config parser (--check-config), containerd's config loader (the proxy_plugins stanza
# and CRI settings), systemd-analyze (the unit), and the DaemonSet's essentials.
set -uo pipefail
src="${TEST_SRCDIR}/${TEST_WORKSPACE}"
daemon="$src/snapshotter/containerd-clip-grpc"
d="$src/deploy"
t="$(mktemp -d)"
trap 'rm -rf "$t"' EXIT
fail=0
error() { echo "FAIL: $*"; fail=1; }

"$daemon" --config "$d/config.toml" --check-config || error "deploy/config.toml rejected"
printf 'roots = "/x"\n' > "$t/bad.toml"
"$daemon" --config "$t/bad.toml" --check-config >/dev/null 2>&1 && error "a typo passed --check-config"
for bad in 'fuse_workers = 0' 'memory_cache_bytes = -5'; do
  printf '%s\n' "$bad" > "$t/bad.toml"
  out=$("$daemon" --config "$t/bad.toml" --check-config 2>&1) && error "--check-config took: $bad"
  grep -q "${bad%% *}" <<<"$out" || error "unclear --check-config error for $bad: $out"
done
grep -q '^memory_cache_bytes = 33554432' "$d/config.toml" || error "config.toml lacks memory_cache_bytes"
grep -q '^fuse_workers = 4' "$d/config.toml" || error "config.toml lacks fuse_workers"

# containerd parses the stanza and keeps the proxy plugin and the CRI settings.
dump=$(containerd --config "$d/containerd-config.toml" config dump 2>&1) || error "containerd: $dump"
grep -q '\[proxy_plugins.clip\]' <<<"$dump" || error "proxy_plugins.clip missing from containerd's view"
# (containerd 1.6 ignores exports; 1.7+ reads them: check the file itself.)
grep -q 'root = "/var/lib/containerd-clip-grpc"' "$d/containerd-config.toml" || error "no exports.root"
grep -q 'snapshotter = "clip"' <<<"$dump" || error "CRI snapshotter not clip"
grep -q 'disable_snapshot_annotations = false' <<<"$dump" || error "CRI annotations disabled"
# The version 3 stanza, as containerd 2.1 loads it (Debian sid's, unpacked privately by
# deploy/setup.sh): the proxy plugin with its exports, the transfer service's unpack
# platforms, and the CRI images plugin's snapshotter. (2.1's dump quotes keys singly.)
c2=/opt/clip-deps/containerd-2.1.9/usr/bin/containerd
if [ ! -x "$c2" ]; then
  error "containerd 2.1 missing at $c2 (deploy/setup.sh unpacks it)"
else
  dump3=$("$c2" --config "$d/containerd-config-v3.toml" config dump 2>&1) || error "containerd 2.1: $dump3"
  for want in "enable_remote_snapshot_annotations = 'true'" "root = '/var/lib/containerd-clip-grpc'" \
    "snapshotter = 'clip'"; do
    grep -qF "$want" <<<"$dump3" || error "containerd 2.1's view of containerd-config-v3.toml lacks: $want"
  done
  python3 - "$dump3" <<'PY' || error "containerd 2.1: unpack_config or CRI images settings"
import sys, tomllib
c = tomllib.loads(sys.argv[1])
p = c["plugins"]
unpack = {(u["platform"], u["snapshotter"]) for u in p["io.containerd.transfer.v1.local"]["unpack_config"]}
assert ("linux/amd64", "clip") in unpack and ("linux/amd64", "overlayfs") in unpack, unpack
assert p["io.containerd.cri.v1.images"]["snapshotter"] == "clip"
assert c["proxy_plugins"]["clip"]["address"] == "/run/containerd-clip-grpc/containerd-clip-grpc.sock"
PY
fi
# The daemon's socket in the stanzas is the daemon's default address.
for f in containerd-config.toml containerd-config-v3.toml; do
  grep -q "$(sed -n 's/^address = \(.*\)/address = \1/p' "$d/config.toml")" "$d/$f" ||
    error "$f and config.toml disagree on the socket"
done

# The unit, with ExecStart pointing at the built binary.
sed "s|/usr/local/bin/containerd-clip-grpc|$daemon|" "$d/systemd/containerd-clip-grpc.service" \
  > "$t/containerd-clip-grpc.service"
out=$(systemd-analyze verify "$t/containerd-clip-grpc.service" 2>&1 | grep -v -e modprobe -e 'containerd.service' -e 'Documentation')
[ -z "$out" ] || error "systemd-analyze: $out"
for k in 'Type=notify' 'KillMode=process' 'Restart=always' 'FileDescriptorStoreMax=16384' 'NotifyAccess=main'; do
  grep -qx "$k" "$d/systemd/containerd-clip-grpc.service" || error "unit lacks $k"
done

python3 - "$d/kubernetes/clip-daemonset.yaml" <<'PY' || error "DaemonSet"
import sys, yaml
docs = [x for x in yaml.safe_load_all(open(sys.argv[1])) if x]
ds = next(x for x in docs if x["kind"] == "DaemonSet")
pod = ds["spec"]["template"]["spec"]
cs = {c["name"]: c for c in pod["containers"]}
c = cs["clip"]
# The fd holder is a container of its own sharing the daemon's run directory.
h = cs["fd-holder"]
assert "clip-fd-holder" in h["command"][0], "fd holder command"
sock = h["command"][h["command"].index("--socket") + 1]
assert any(sock.startswith(m["mountPath"] + "/") for m in h["volumeMounts"]), "holder socket dir"
assert any(sock.startswith(m["mountPath"] + "/") for m in c["volumeMounts"]), "daemon sees the holder"
assert 'fd_holder_socket = "%s"' % sock in next(x for x in docs if x["kind"] == "ConfigMap")["data"]["config.toml"]
assert c["securityContext"]["privileged"] is True, "not privileged"
mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
assert "/dev/fuse" in mounts, "no /dev/fuse"
assert mounts["/var/lib/containerd-clip-grpc"].get("mountPropagation") == "Bidirectional", "root propagation"
vols = {v["name"]: v for v in pod["volumes"]}
for m in c["volumeMounts"] + h["volumeMounts"]:
    assert m["name"] in vols, "volume %s undefined" % m["name"]
PY
python3 -c '
import sys, yaml
docs = [x for x in yaml.safe_load_all(open(sys.argv[1])) if x]
print(next(x for x in docs if x["kind"] == "ConfigMap")["data"]["config.toml"])' \
  "$d/kubernetes/clip-daemonset.yaml" > "$t/cm.toml"
"$daemon" --config "$t/cm.toml" --check-config >/dev/null || error "the DaemonSet's config.toml rejected"
# Every shared library the daemon links directly (NEEDED; apt brings what those need)
# comes from a package the image installs (the base image has libc, libstdc++ and
# libgcc): a new -dev dependency needs its runtime package in the image.
# (and the sanitizer runtimes of the suite's ASan build are not the image's business).
base_pkgs="libc6 libstdc++6 libgcc-s1 libasan8 libubsan1"
# The packages the image gets: those listed in its apt-get install, and their dependencies.
listed=$(sed -n '/apt-get install/,/rm -rf/p' "$d/Dockerfile" | tr ' \\' '\n\n' |
  grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vE '^(apt-get|install|rm|no-install-recommends)$')
installed=" $(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances $listed 2>/dev/null | grep -v '^ ' |
  sed 's/:amd64$//' | sort -u | tr '\n' ' ') "
while read -r lib; do
  pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1)
  [ -z "$pkg" ] && pkg=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1)
  [ -n "$pkg" ] || { error "no Debian package owns $lib"; continue; }
  case " $base_pkgs " in *" $pkg "*) continue ;; esac
  case "$installed" in *" $pkg "*) ;; *) error "the daemon links $lib ($pkg), which the Dockerfile does not install" ;; esac
done < <(ldd "$daemon" | awk -v needed="$(readelf -d "$daemon" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')" \
  'BEGIN { n = split(needed, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }
   $3 ~ /^\// && ($1 in want) { print $3 }')
docker_file_bins=$(grep -c 'containerd-clip-grpc' "$d/Dockerfile")
[ "$docker_file_bins" -ge 1 ] || error "Dockerfile does not ship the daemon"
grep -q 'fs/clip-fd-holder' "$d/Dockerfile" || error "Dockerfile does not ship the fd holder"

[ $fail -eq 0 ] && echo "deploy files ok"
exit $fail
