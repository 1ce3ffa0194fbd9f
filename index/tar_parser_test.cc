#include "index/tar_parser.h"

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

// A ustar header block with a correct checksum.
std::string Header(const std::string& name, char type, uint64_t size, uint32_t mode = 0644,
                   const std::string& link = "") {
  std::string h(512, '\0');
  std::memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 100));
  std::string num = absl::StrFormat("%07o", mode);
  std::memcpy(&h[100], num.data(), 7);
  std::memcpy(&h[108], "0000000", 7);
  std::memcpy(&h[116], "0000000", 7);
  num = absl::StrFormat("%011o", size);
  std::memcpy(&h[124], num.data(), 11);
  std::memcpy(&h[136], "14000000000", 11);
  h[156] = type;
  std::memcpy(&h[157], link.data(), std::min<size_t>(link.size(), 100));
  std::memcpy(&h[257],
              "ustar\0"
              "00",
              8);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  num = absl::StrFormat("%06o", sum);
  std::memcpy(&h[148], num.data(), 6);
  h[154] = '\0';
  return h;
}

std::string Data(const std::string& bytes) {
  std::string d = bytes;
  d.resize((bytes.size() + 511) / 512 * 512, '\0');
  return d;
}

std::string PaxRecord(const std::string& key, const std::string& value) {
  std::string body = absl::StrCat(" ", key, "=", value, "\n");
  size_t len = body.size() + 1;
  while (absl::StrCat(len).size() + body.size() != len) ++len;
  return absl::StrCat(len, body);
}

std::string Archive() {
  std::string pax = PaxRecord("path", std::string(300, 'p')) + PaxRecord("mtime", "12.5") +
                    PaxRecord("SCHILY.xattr.user.a", "1");
  std::string a = Header("dir/", '5', 0, 0755);
  a += Header("dir/file", '0', 5) + Data("hello");
  a += Header("././@PaxHeader", 'x', pax.size()) + Data(pax);
  a += Header("short", '0', 700) + Data(std::string(700, 'z'));
  a += Header("././@LongLink", 'L', 201) + Data(std::string(200, 'l') + '\0');
  a += Header("trunc", '2', 0, 0777, "target");
  a += std::string(1024, '\0');
  return a;
}

std::vector<TarMember> Parse(const std::string& archive, size_t chunk, absl::Status* status) {
  std::vector<TarMember> members;
  TarParser parser([&](const TarMember& m) {
    members.push_back(m);
    return absl::OkStatus();
  });
  *status = absl::OkStatus();
  for (size_t pos = 0; pos < archive.size() && status->ok(); pos += chunk) {
    *status = parser.Feed(absl::string_view(archive).substr(pos, chunk));
  }
  if (status->ok()) *status = parser.Finish();
  return members;
}

TEST(TarParserTest, MembersAndExtensions) {
  absl::Status s;
  auto m = Parse(Archive(), 1 << 20, &s);
  ASSERT_THAT(s, IsOk());
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].type, TarType::kDirectory);
  EXPECT_EQ(m[1].path, "dir/file");
  EXPECT_EQ(m[1].size, 5u);
  EXPECT_EQ(m[1].data_offset, 1024u);
  EXPECT_EQ(m[2].path, std::string(300, 'p'));
  EXPECT_EQ(m[2].mtime_sec, 12);
  EXPECT_EQ(m[2].mtime_nsec, 500000000u);
  ASSERT_EQ(m[2].xattrs.size(), 1u);
  EXPECT_EQ(m[2].xattrs[0].second, "1");
  EXPECT_EQ(m[3].type, TarType::kSymlink);
  EXPECT_EQ(m[3].path, std::string(200, 'l'));
  EXPECT_EQ(m[3].linkname, "target");
}

// Any chunking of the stream gives the same members at the same offsets.
TEST(TarParserTest, ChunkingInvariance) {
  absl::Status whole_status;
  auto whole = Parse(Archive(), 1 << 20, &whole_status);
  for (size_t chunk : {1, 7, 511, 512, 513, 4096}) {
    absl::Status s;
    auto m = Parse(Archive(), chunk, &s);
    ASSERT_THAT(s, IsOk()) << chunk << ": " << s;
    ASSERT_EQ(m.size(), whole.size());
    for (size_t i = 0; i < m.size(); ++i) {
      EXPECT_EQ(m[i].path, whole[i].path);
      EXPECT_EQ(m[i].data_offset, whole[i].data_offset) << chunk;
    }
  }
}

TEST(TarParserTest, CorruptionIsDataLoss) {
  std::string bad = Archive();
  bad[10] ^= 1;  // Name byte: checksum no longer matches.
  absl::Status s;
  Parse(bad, 512, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);

  std::string truncated = Archive().substr(0, 1024 + 100);
  Parse(truncated, 512, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);

  std::string pax = "99 path=x\n";
  Parse(Header("p", 'x', pax.size()) + Data(pax), 512, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);

  std::string octal = Header("f", '0', 0);
  octal[124] = '9';
  Parse(octal, 512, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
}

TEST(TarParserTest, LimitsAndUnsupported) {
  absl::Status s;
  Parse(Header("p", 'x', TarParser::kMaxMetadataSize + 1), 512, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  Parse(Header("s", 'S', 0), 512, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  std::string sparse = PaxRecord("GNU.sparse.major", "1");
  Parse(Header("p", 'x', sparse.size()) + Data(sparse) + Header("f", '0', 0), 512, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
}

TEST(TarParserTest, NulInPaxPathIsRejected) {
  std::string pax = PaxRecord("path", std::string("a\0b", 3));
  absl::Status s;
  Parse(Header("p", 'x', pax.size()) + Data(pax) + Header("f", '0', 0), 512, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

TEST(TarParserTest, Base256Size) {
  std::string h = Header("big", '0', 0);
  // Size 1 encoded as GNU base-256 (high bit set), checksum recomputed.
  std::memset(&h[124], 0, 12);
  h[124] = static_cast<char>(0x80);
  h[135] = 1;
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::string num = absl::StrFormat("%06o", sum);
  std::memcpy(&h[148], num.data(), 6);
  h[154] = '\0';
  absl::Status s;
  auto m = Parse(h + Data("x") + std::string(1024, '\0'), 512, &s);
  ASSERT_THAT(s, IsOk());
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].size, 1u);
}

}  // namespace
}  // namespace clip
