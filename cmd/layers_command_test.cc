// `clipctl layers` on a clip root made here: three lazily mounted layers (a snapshot each,
// with containerd's labels) - one with none of its spans on disk, one with some, one
// with its tree - and a mount table with the second's FUSE mount and two overlays over
// them: each line says lazy / filling n% / local, its bytes, its FUSE mount and readers;
// snapshots that are not lazy layers are not listed; a missing root is a clear error.
#include "cmd/layers_command.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "cache/disk_cache.h"
#include "cache/layer_doc_store.h"
#include "common/file_blob_reader.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "gtest/gtest.h"
#include "index/index_format.h"
#include "index/layer_indexer.h"
#include "index/span_source.h"
#include "snapshotter/metadata_store.h"
#include "snapshotter/snapshot_labels.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

TEST(LayersCommandTest, EachLayersStateBytesAndReaders) {
  const std::string fixtures = testing::MakeTempDir("layers");
  ASSERT_THAT(
      testing::RunCommand(absl::StrCat(
          "CLIP_FIXTURES_SKIP_REAL=1 bash ", getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
          "/index/testdata/make_layers.sh ", fixtures, " >/dev/null 2>&1")),
      IsOk());
  auto blob = FileBlobReader::Open(fixtures + "/posix.tar.gz").value();
  index::v1::LayerIndex index = BuildLayerIndex(*blob).value();
  ASSERT_GE(SpanCount(index), 2u);
  const Digest layer = Digest::Parse(index.layer_digest()).value();
  // Another layer, never read here: none of its spans on disk.
  auto other_blob = FileBlobReader::Open(fixtures + "/gnu.tar.gz").value();
  index::v1::LayerIndex other_index = BuildLayerIndex(*other_blob).value();
  const Digest other = Digest::Parse(other_index.layer_digest()).value();

  const std::string root = testing::MakeTempDir("root");
  LayerDocStore indexes(root + "/indexes");
  ASSERT_THAT(indexes.Create(), IsOk());
  ASSERT_THAT(indexes.Put(layer, EncodeCheckedIndex(index).value()), IsOk());
  ASSERT_THAT(indexes.Put(other, EncodeCheckedIndex(other_index).value()), IsOk());
  auto store = MetadataStore::Open(root + "/metadata.db").value();
  auto add = [&](const std::string& name, bool remote, const Digest& digest) {
    SnapshotRecord r;
    r.info.name = name;
    r.info.kind = SnapshotKind::kCommitted;
    if (remote) {
      r.info.labels = {{kRemoteLabel, "1"},
                       {kLayerDigestLabel, digest.ToString()},
                       {kImageRefLabel, "reg.example/app:" + name}};
    }
    int64_t id = 0;
    EXPECT_THAT(store->Transact([&](MetadataStore::Txn& txn) -> absl::Status {
      auto inserted = txn.Insert(r);
      if (inserted.ok()) id = *inserted;
      return inserted.status();
    }),
                IsOk());
    EXPECT_EQ(mkdir(absl::StrCat(root, "/snapshots").c_str(), 0700) == 0 || errno == EEXIST, true);
    EXPECT_EQ(mkdir(absl::StrCat(root, "/snapshots/", id).c_str(), 0700), 0);
    EXPECT_EQ(mkdir(absl::StrCat(root, "/snapshots/", id, "/fs").c_str(), 0700), 0);
    return id;
  };
  const int64_t lazy = add("lazy", true, other), filling = add("filling", true, layer),
                local = add("local", true, layer);
  add("unpacked", false, layer);
  store.reset();
  // One span of the layer in the disk cache (a file of 1000 bytes where it would be).
  const std::string span = DiskCache::PathIn(root + "/cache", GetSpanInfo(index, 0).digest);
  ASSERT_THAT(
      testing::RunCommand("mkdir -p $(dirname " + span + ") && head -c 1000 /dev/zero > " + span),
      IsOk());
  ASSERT_THAT(testing::RunCommand(absl::StrCat("mkdir -p ", root, "/snapshots/", local,
                                               "/tree/usr && head -c 100000 /dev/zero > ", root,
                                               "/snapshots/", local, "/tree/usr/f")),
              IsOk());
  const std::string fs = absl::StrCat(root, "/snapshots/", filling, "/fs");
  const std::string tree = absl::StrCat(root, "/snapshots/", local, "/tree");
  const std::string mountinfo =
      absl::StrCat("22 1 0:21 / /proc rw,nosuid - proc proc rw\n", "90 29 0:50 / ", fs,
                   " ro,nosuid,nodev,noatime - fuse.clip clip ro,user_id=0\n",
                   "91 29 0:51 / /run/c1/rootfs rw,relatime - overlay overlay rw,lowerdir=", tree,
                   ":", fs, ",upperdir=/x/fs,workdir=/x/work\n",
                   "92 29 0:52 / /run/c2/rootfs rw,relatime - overlay overlay rw,lowerdir=", tree,
                   ",upperdir=/y/fs,workdir=/y/work\n");

  auto listed = ListLayers(root, mountinfo);
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 3u);  // not the unpacked snapshot
  std::map<int64_t, LayerState> by_id;
  for (const LayerState& l : *listed) by_id[l.id] = l;
  EXPECT_EQ(by_id[lazy].state, "lazy");
  EXPECT_EQ(by_id[lazy].percent, 0);
  EXPECT_EQ(by_id[lazy].bytes, 0u);
  EXPECT_FALSE(by_id[lazy].fuse);
  EXPECT_EQ(by_id[lazy].readers, 0);
  EXPECT_EQ(by_id[filling].state, "filling");
  EXPECT_EQ(by_id[filling].percent, static_cast<int>(100 / SpanCount(index)));
  EXPECT_EQ(by_id[filling].bytes, 1000u);
  EXPECT_TRUE(by_id[filling].fuse);
  EXPECT_EQ(by_id[filling].readers, 1);
  EXPECT_EQ(by_id[local].state, "local");
  EXPECT_EQ(by_id[local].percent, 100);
  EXPECT_GE(by_id[local].bytes, 100000u);
  EXPECT_EQ(by_id[local].readers, 2);
  EXPECT_EQ(by_id[local].layer, layer.ToString());
  EXPECT_EQ(by_id[local].image, "reg.example/app:local");

  const std::string table = FormatLayers(*listed);
  EXPECT_NE(table.find("STATE"), std::string::npos) << table;
  EXPECT_NE(table.find(absl::StrCat("filling ", 100 / SpanCount(index), "%")), std::string::npos)
      << table;
  EXPECT_NE(table.find("reg.example/app:local"), std::string::npos) << table;

  EXPECT_THAT(ListLayers(root + "/none", ""), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace clip
