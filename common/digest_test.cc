#include "common/digest.h"

#include <string>

#include "absl/container/flat_hash_set.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

constexpr char kEmpty[] = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(DigestTest, KnownVectors) {
  EXPECT_EQ(Digest::Of("").ToString(), kEmpty);
  EXPECT_EQ(Digest().ToString(), kEmpty);
  EXPECT_EQ(Digest::Of("abc").Hex(), kAbc);
  // FIPS 180-2 two-block vector.
  EXPECT_EQ(Digest::Of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").Hex(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(DigestTest, ParseAndPrintRoundTrip) {
  auto d = Digest::Parse(std::string("sha256:") + kAbc);
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(*d, Digest::Of("abc"));
  EXPECT_EQ(d->Hex(), kAbc);
  auto h = Digest::ParseHex(kAbc);
  ASSERT_THAT(h, IsOk());
  EXPECT_EQ(*h, *d);
  EXPECT_EQ(Digest::FromBytes(d->bytes()), *d);
}

TEST(DigestTest, RejectsMalformed) {
  std::string upper = std::string("sha256:") + kAbc;
  upper[10] = 'A';
  for (const std::string& bad :
       {std::string(""), std::string("sha256"), std::string("sha256:"), std::string(":abc"),
        std::string("sha256:") + std::string(kAbc).substr(1), std::string("sha256:") + kAbc + "0",
        std::string("sha256:") + std::string(63, 'a') + "g", upper,
        std::string("sha256:") + std::string(kAbc).substr(0, 10) + std::string(1, '\0') +
            std::string(kAbc).substr(11)}) {
    EXPECT_EQ(Digest::Parse(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(Digest::Parse(std::string("sha512:") + kAbc).status().code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(Digest::ParseHex(std::string("sha256:") + kAbc).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DigestTest, StreamingEqualsOneShotAndResets) {
  std::string data;
  for (int i = 0; i < 100000; ++i) data.push_back(static_cast<char>(i * 7919 % 251));
  Sha256Hasher h;
  for (size_t pos = 0; pos < data.size(); pos += 1237)
    h.Update(absl::string_view(data).substr(pos, 1237));
  EXPECT_EQ(h.bytes_hashed(), data.size());
  EXPECT_EQ(h.Finish(), Digest::Of(data));
  EXPECT_EQ(h.bytes_hashed(), 0u);
  h.Update("abc");
  EXPECT_EQ(h.Finish().Hex(), kAbc);  // Reusable after Finish.
  Sha256Hasher moved = std::move(h);
  moved.Update("abc");
  EXPECT_EQ(moved.Finish().Hex(), kAbc);
}

TEST(DigestTest, Hashable) {
  absl::flat_hash_set<Digest> set = {Digest::Of("a"), Digest::Of("b"), Digest::Of("a")};
  EXPECT_EQ(set.size(), 2u);
  EXPECT_TRUE(set.contains(Digest::Of("b")));
  EXPECT_LT(std::min(Digest::Of("a"), Digest::Of("b")), std::max(Digest::Of("a"), Digest::Of("b")));
}

}  // namespace
}  // namespace clip
