#include "index/index_format.h"

#include <string>

#include "common/digest.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using index::v1::LayerIndex;

LayerIndex Small() {
  LayerIndex index;
  index.set_compression(index::v1::GZIP);
  index.set_layer_digest(Digest::Of("layer").ToString());
  index.set_compressed_size(1000);
  index.set_diff_id(Digest::Of("tar").ToString());
  index.set_uncompressed_size(4096);
  auto* root = index.add_entries();
  root->set_type(index::v1::DIRECTORY);
  auto* f = index.add_entries();
  f->set_name("file");
  f->set_type(index::v1::REGULAR);
  f->set_size(100);
  f->set_data_offset(512);
  auto* l = index.add_entries();
  l->set_name("link");
  l->set_type(index::v1::HARDLINK);
  l->set_link_entry(1);
  auto* cp = index.add_checkpoints();
  cp->set_compressed_offset(10);
  cp->set_span_sha256(std::string(32, 'a'));
  cp = index.add_checkpoints();
  cp->set_compressed_offset(500);
  cp->set_bits(3);
  cp->set_uncompressed_offset(2048);
  cp->set_window(std::string(100, 'w'));
  cp->set_span_sha256(std::string(32, 'b'));
  return index;
}

TEST(IndexFormatTest, RoundTrip) {
  std::string bytes = EncodeIndex(Small());
  auto back = DecodeIndex(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->SerializeAsString(), Small().SerializeAsString());
}

// Every single-byte corruption and every truncation is an error, never a crash or OK.
TEST(IndexFormatTest, EveryCorruptionAndTruncationIsRejected) {
  std::string bytes = EncodeIndex(Small());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (unsigned char flip : {0x01, 0x80, 0xff}) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ flip);
      auto r = DecodeIndex(bad);
      ASSERT_FALSE(r.ok()) << "byte " << i;
      if (i < 8 || i >= 12) {
        EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << i;
      }
    }
  }
  for (size_t len = 0; len < bytes.size(); ++len) {
    EXPECT_EQ(DecodeIndex(bytes.substr(0, len)).status().code(), absl::StatusCode::kDataLoss);
  }
  std::string newer = bytes;
  newer[8] = 2;
  EXPECT_EQ(DecodeIndex(newer).status().code(), absl::StatusCode::kUnimplemented);
}

// Well-framed but inconsistent payloads are caught by the invariants.
TEST(IndexFormatTest, InvariantsAreChecked) {
  auto expect_bad = [](LayerIndex index, const char* what) {
    EXPECT_EQ(DecodeIndex(EncodeIndex(index)).status().code(), absl::StatusCode::kDataLoss)
        << what;
  };
  LayerIndex i = Small();
  i.mutable_entries(1)->set_parent(2);
  expect_bad(i, "parent after child");
  i = Small();
  i.mutable_entries(2)->set_name("file");
  expect_bad(i, "duplicate name");
  i = Small();
  i.mutable_entries(1)->set_size(4000);
  expect_bad(i, "data beyond the layer");
  i = Small();
  i.mutable_entries(1)->set_name("a/b");
  expect_bad(i, "slash in name");
  i = Small();
  i.mutable_entries(2)->set_link_entry(0);
  expect_bad(i, "hardlink to a directory");
  i = Small();
  i.mutable_checkpoints(1)->set_uncompressed_offset(0);
  expect_bad(i, "checkpoints out of order");
  i = Small();
  i.mutable_checkpoints(1)->set_bits(8);
  expect_bad(i, "bits > 7");
  i = Small();
  i.mutable_checkpoints(0)->set_span_sha256("short");
  expect_bad(i, "short digest");
  i = Small();
  i.set_diff_id("sha256:nothex");
  expect_bad(i, "bad diff id");
  i = Small();
  i.clear_entries();
  expect_bad(i, "no root");
}

}  // namespace
}  // namespace clip
