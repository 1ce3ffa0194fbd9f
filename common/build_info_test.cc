#include "common/build_info.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::testing::ContainsRegex;

TEST(BuildInfoTest, NamesEveryRuntimeLibraryWithAVersion) {
  std::string info = BuildInfo();
  EXPECT_THAT(info, ContainsRegex("^clip 0\\.1\\.0-dev\n"));
  for (const char* lib : {"grpc\\+\\+", "protobuf", "libfuse", "zlib", "libcurl"}) {
    EXPECT_THAT(info, ContainsRegex(std::string("\n") + lib + " [0-9]+\\.[0-9]+")) << lib;
  }
  EXPECT_THAT(info, ContainsRegex("\nopenssl OpenSSL [0-9]"));
}

}  // namespace
}  // namespace clip
