#include "cmd/doctor_probes.h"

#include <cstring>
#include <string>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/unknown_field_set.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

TEST(DecodePluginsTest, ReadsTypeIdExportsAndInitError) {
  using google::protobuf::UnknownFieldSet;
  UnknownFieldSet entry, status, plugin, response;
  entry.AddLengthDelimited(1, "root");
  entry.AddLengthDelimited(2, "/var/lib/clip");
  status.AddVarint(1, 2);
  status.AddLengthDelimited(2, "dial failed");
  plugin.AddLengthDelimited(1, "io.containerd.snapshotter.v1");
  plugin.AddLengthDelimited(2, "clip");
  plugin.AddLengthDelimited(3, "io.containerd.metadata.v1");  // requires: ignored
  std::string bytes;
  entry.SerializeToString(&bytes);
  plugin.AddLengthDelimited(5, bytes);
  status.SerializeToString(&bytes);
  plugin.AddLengthDelimited(7, bytes);
  plugin.SerializeToString(&bytes);
  response.AddLengthDelimited(1, bytes);
  response.SerializeToString(&bytes);
  absl::StatusOr<std::vector<RunningContainerd::Plugin>> p = DecodePluginsResponse(bytes);
  ASSERT_THAT(p, IsOk());
  ASSERT_EQ(p->size(), 1u);
  EXPECT_EQ((*p)[0].type, "io.containerd.snapshotter.v1");
  EXPECT_EQ((*p)[0].id, "clip");
  EXPECT_EQ((*p)[0].exports.at("root"), "/var/lib/clip");
  EXPECT_EQ((*p)[0].init_error, "dial failed");
  EXPECT_THAT(DecodePluginsResponse(std::string("\x0a\x05\x0a", 3)),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(FuseInitTest, ReadsVersionAndFlags) {
  // fuse_in_header (40 bytes) + fuse_init_in as Linux 6.18 sends it (7.45).
  std::string init(104, '\0');
  auto put = [&](size_t at, uint32_t v) { std::memcpy(init.data() + at, &v, sizeof(v)); };
  put(0, 104);
  put(4, 26);  // FUSE_INIT
  put(40, 7);
  put(44, 45);
  put(52, 0x73fffffb);  // flags, with FUSE_INIT_EXT
  put(56, 0x5fd);       // flags2: passthrough (bit 5), has_resend (bit 7)
  absl::StatusOr<KernelFuse> k = ParseFuseInit(init);
  ASSERT_THAT(k, IsOk());
  EXPECT_EQ(k->minor, 45);
  EXPECT_EQ(k->resend, true);
  EXPECT_EQ(k->passthrough, true);
  put(52, 0x3fffffb);  // no FUSE_INIT_EXT: flags2 means nothing (before 7.36)
  k = ParseFuseInit(init);
  ASSERT_THAT(k, IsOk());
  EXPECT_EQ(k->resend, false);
  EXPECT_EQ(k->passthrough, false);
  put(4, 1);
  EXPECT_THAT(ParseFuseInit(init), StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace clip
