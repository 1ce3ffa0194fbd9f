#include "index/index_format.h"

#include <string>

#include "common/digest.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

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
  ASSERT_THAT(back, IsOk());
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
      ASSERT_THAT(r, ::testing::Not(IsOk())) << "byte " << i;
      if (i < 8 || i >= 12) {
        EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << i;
      }
    }
  }
  for (size_t len = 0; len < bytes.size(); ++len) {
    EXPECT_EQ(DecodeIndex(bytes.substr(0, len)).status().code(), absl::StatusCode::kDataLoss);
  }
}

// Header version, payload checksum: the bytes of `index` framed as format `version`.
std::string Reframed(std::string bytes, uint32_t version) {
  bytes[8] = static_cast<char>(version);
  bytes.resize(bytes.size() - Digest::kSize);
  Digest sum = Digest::Of(bytes);
  bytes.append(reinterpret_cast<const char*>(sum.bytes().data()), Digest::kSize);
  return bytes;
}

// Version 1 (string fields, same wire) is still read; versions this build does not know
// are refused with an error that says what to do.
TEST(IndexFormatTest, VersionsReadAndRefused) {
  std::string bytes = EncodeIndex(Small());
  EXPECT_EQ(static_cast<uint32_t>(bytes[8]), kIndexFormatVersion);
  auto v1 = DecodeIndex(Reframed(bytes, 1));
  ASSERT_THAT(v1, IsOk());
  EXPECT_EQ(v1->SerializeAsString(), Small().SerializeAsString());
  for (uint32_t version : {0u, kIndexFormatVersion + 1}) {
    auto r = DecodeIndex(Reframed(bytes, version));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnimplemented) << version;
    EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("re-index")) << version;
  }
}

// Every byte string the index stores from the tar is bytes: names that are not UTF-8
// (Latin-1, stray continuation bytes) round-trip exactly.
TEST(IndexFormatTest, NamesAreBytes) {
  LayerIndex index = Small();
  const std::string latin1 = "caf\xe9", odd = "\xff\xfe\x80name";
  index.mutable_entries(1)->set_name(latin1);
  index.mutable_entries(1)->set_uname("\xe9l\xe8ve");
  index.mutable_entries(1)->set_gname("gr\xfcppe");
  auto* x = index.mutable_entries(1)->add_xattrs();
  x->set_key("user." + odd);
  x->set_value("\xff");
  index.mutable_entries(2)->set_name(odd);
  index.mutable_entries(2)->set_link_target(latin1);
  auto* s = index.add_entries();
  s->set_name("symlink-\xe0");
  s->set_type(index::v1::SYMLINK);
  s->set_link_target("../\xc3(bad utf-8");
  auto checked = EncodeCheckedIndex(index);
  ASSERT_THAT(checked, IsOk());
  auto back = DecodeIndex(*checked);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(back->entries(1).name(), latin1);
  EXPECT_EQ(back->entries(1).uname(), "\xe9l\xe8ve");
  EXPECT_EQ(back->entries(1).xattrs(0).key(), "user." + odd);
  EXPECT_EQ(back->entries(2).name(), odd);
  EXPECT_EQ(back->entries(3).link_target(), "../\xc3(bad utf-8");
}

// What does not read back as built is never written or published.
TEST(IndexFormatTest, CheckedEncodingRefusesWhatDoesNotReadBack) {
  auto good = EncodeCheckedIndex(Small());
  ASSERT_THAT(good, IsOk());
  EXPECT_EQ(*good, EncodeIndex(Small()));
  LayerIndex bad = Small();
  bad.mutable_entries(1)->set_name("a/b");
  auto r = EncodeCheckedIndex(bad);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("does not read back"));
}

// Well-framed but inconsistent payloads are caught by the invariants.
TEST(IndexFormatTest, InvariantsAreChecked) {
  auto expect_bad = [](LayerIndex index, const char* what) {
    EXPECT_EQ(DecodeIndex(EncodeIndex(index)).status().code(), absl::StatusCode::kDataLoss) << what;
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
