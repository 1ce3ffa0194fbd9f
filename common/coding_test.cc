#include "common/coding.h"

#include "gtest/gtest.h"

namespace clip {
namespace {

TEST(CodingTest, LittleEndianWhateverTheHost) {
  std::string out;
  PutFixed32(&out, 0x01020304u);
  PutFixed64(&out, 0x1122334455667788ull);
  ASSERT_EQ(out.size(), 12u);
  EXPECT_EQ(out.substr(0, 4), std::string("\x04\x03\x02\x01", 4));
  EXPECT_EQ(out.substr(4), std::string("\x88\x77\x66\x55\x44\x33\x22\x11", 8));
  EXPECT_EQ(DecodeFixed32(out.data()), 0x01020304u);
  EXPECT_EQ(DecodeFixed64(out.data() + 4), 0x1122334455667788ull);
}

TEST(CodingTest, ExtremesRoundTrip) {
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{0x80}, ~uint64_t{0}, uint64_t{1} << 63}) {
    std::string out;
    PutFixed64(&out, v);
    EXPECT_EQ(DecodeFixed64(out.data()), v);
    out.clear();
    PutFixed32(&out, static_cast<uint32_t>(v));
    EXPECT_EQ(DecodeFixed32(out.data()), static_cast<uint32_t>(v));
  }
}

}  // namespace
}  // namespace clip
