#include "cmd/layers_command.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cache/disk_cache.h"
#include "cache/layer_doc_store.h"
#include "common/digest.h"
#include "common/mountinfo.h"
#include "common/status_macros.h"
#include "index/index_format.h"
#include "index/span_source.h"
#include "snapshotter/metadata_store.h"
#include "snapshotter/overlay_snapshotter.h"
#include "snapshotter/snapshot_labels.h"

namespace clip {

namespace {

struct Mounts {
  std::set<std::string> fuse;                    // mountpoints of clip's FUSE mounts
  std::vector<std::vector<std::string>> lowers;  // each overlay's lowerdirs
};

Mounts Summarize(absl::string_view mountinfo) {
  Mounts m;
  for (MountEntry& e : ParseMountinfo(mountinfo)) {
    if (e.fstype == "fuse.clip") m.fuse.insert(e.mountpoint);
    if (e.fstype == "overlay") m.lowers.push_back(std::move(e.lowerdirs));
  }
  return m;
}

bool IsDir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

absl::StatusOr<std::vector<LayerState>> ListLayers(const std::string& root,
                                                   absl::string_view mountinfo) {
  const std::string db = root + "/metadata.db";
  if (!IsDir(root) || access(db.c_str(), F_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("no clip root at ", root, " (no ", db, ")"));
  }
  CLIP_ASSIGN_OR_RETURN(std::unique_ptr<MetadataStore> store, MetadataStore::Open(db));
  std::vector<SnapshotRecord> remote;
  CLIP_RETURN_IF_ERROR(store->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
    CLIP_ASSIGN_OR_RETURN(
        remote, txn.Select("id IN (SELECT snapshot_id FROM labels WHERE key = ?)", {kRemoteLabel}));
    return absl::OkStatus();
  }));
  const Mounts mounts = Summarize(mountinfo);
  const LayerDocStore indexes(root + "/indexes");
  std::vector<LayerState> out;
  for (const SnapshotRecord& r : remote) {
    LayerState l;
    l.snapshot = r.info.name;
    l.id = r.id;
    auto label = [&](const char* key) {
      auto it = r.info.labels.find(key);
      return it == r.info.labels.end() ? std::string() : it->second;
    };
    l.layer = label(kLayerDigestLabel);
    l.image = label(kImageRefLabel);
    const std::string dir = absl::StrCat(root, "/snapshots/", r.id);
    const std::string fs = dir + "/fs", tree = dir + "/tree";
    l.fuse = mounts.fuse.count(fs) > 0;
    for (const auto& lowers : mounts.lowers) {
      l.readers += std::any_of(lowers.begin(), lowers.end(),
                               [&](const std::string& d) { return d == fs || d == tree; });
    }
    if (IsDir(tree)) {
      l.state = "local";
      l.percent = 100;
      if (absl::StatusOr<SnapshotUsage> u = DiskUsage(tree); u.ok()) {
        l.bytes = static_cast<uint64_t>(u->size);
      }
      out.push_back(std::move(l));
      continue;
    }
    l.state = "lazy";
    absl::StatusOr<Digest> digest = Digest::Parse(l.layer);
    absl::StatusOr<std::optional<std::string>> bytes =
        digest.ok() ? indexes.Get(*digest)
                    : absl::StatusOr<std::optional<std::string>>(std::nullopt);
    absl::StatusOr<index::v1::LayerIndex> index =
        bytes.ok() && bytes->has_value()
            ? DecodeIndex(**bytes)
            : absl::StatusOr<index::v1::LayerIndex>(absl::NotFoundError("no index"));
    if (index.ok() && SpanCount(*index) > 0) {
      size_t on_disk = 0;
      for (size_t s = 0; s < SpanCount(*index); ++s) {
        struct stat st;
        const std::string path = DiskCache::PathIn(root + "/cache", GetSpanInfo(*index, s).digest);
        if (stat(path.c_str(), &st) != 0) continue;
        ++on_disk;
        l.bytes += static_cast<uint64_t>(st.st_size);
      }
      l.percent = static_cast<int>(on_disk * 100 / SpanCount(*index));
      if (on_disk > 0) l.state = "filling";
    }
    out.push_back(std::move(l));
  }
  return out;
}

std::string FormatLayers(const std::vector<LayerState>& layers) {
  std::string out = absl::StrFormat("%-4s %-19s %-12s %12s %-4s %7s  %s\n", "ID", "LAYER", "STATE",
                                    "BYTES", "FUSE", "READERS", "IMAGE");
  for (const LayerState& l : layers) {
    const std::string state =
        l.state == "filling" ? absl::StrCat("filling ", l.percent, "%") : l.state;
    absl::StrAppendFormat(&out, "%-4d %-19s %-12s %12d %-4s %7d  %s\n", l.id, l.layer.substr(0, 19),
                          state, l.bytes, l.fuse ? "up" : "-", l.readers, l.image);
  }
  return out;
}

}  // namespace clip
