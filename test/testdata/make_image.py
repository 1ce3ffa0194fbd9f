#!/usr/bin/env python3
"""Builds a small OCI image layout offline: one gzip layer per directory given, in
order, an image config with their DiffIDs, a manifest and index.json.

Usage: make_image.py OUT_LAYOUT TAG CMD LAYER_DIR [LAYER_DIR ...]
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d


def main():
    layout, tag, cmd, dirs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    os.makedirs(layout, exist_ok=True)
    layers, diff_ids = [], []
    for d in dirs:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for root, subdirs, files in os.walk(d):
                subdirs.sort()
                for name in sorted(subdirs) + sorted(files):
                    path = os.path.join(root, name)
                    tf.add(path, arcname=os.path.relpath(path, d), recursive=False)
        tar = raw.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        gz = gzip.compress(tar, compresslevel=6, mtime=0)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": blob(layout, gz), "size": len(gz)})
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": [cmd], "Env": ["PATH=/"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": blob(layout, config), "size": len(config)},
        "layers": layers,
    }).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": blob(layout, manifest), "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


if __name__ == "__main__":
    main()
