#include "common/status_macros.h"

#include <memory>
#include <string>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

int g_calls = 0;

absl::Status Fails() {
  ++g_calls;
  return absl::DataLossError("bad magic");
}
absl::Status Succeeds() {
  ++g_calls;
  return absl::OkStatus();
}
absl::StatusOr<std::unique_ptr<int>> MakeInt(bool ok) {
  ++g_calls;
  if (!ok) return absl::NotFoundError("no int");
  return std::make_unique<int>(7);
}

absl::Status ReturnIfError(bool fail, int* reached) {
  CLIP_RETURN_IF_ERROR(Succeeds());
  if (fail) CLIP_RETURN_IF_ERROR(Fails());
  *reached = 1;
  return absl::OkStatus();
}

absl::StatusOr<int> AssignOrReturn(bool ok) {
  CLIP_ASSIGN_OR_RETURN(std::unique_ptr<int> p, MakeInt(ok));  // Move-only value.
  int sum = *p;
  CLIP_ASSIGN_OR_RETURN(p, MakeInt(ok));  // Assignment to an existing variable.
  return sum + *p;
}

TEST(StatusMacrosTest, ReturnIfErrorPropagatesTheStatus) {
  g_calls = 0;
  int reached = 0;
  absl::Status s = ReturnIfError(true, &reached);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), "bad magic");
  EXPECT_EQ(reached, 0);
  EXPECT_EQ(g_calls, 2);  // Each expression evaluated exactly once.
}

TEST(StatusMacrosTest, ReturnIfErrorContinuesOnOk) {
  int reached = 0;
  EXPECT_THAT(ReturnIfError(false, &reached), IsOk());
  EXPECT_EQ(reached, 1);
}

TEST(StatusMacrosTest, AssignOrReturn) {
  g_calls = 0;
  absl::StatusOr<int> v = AssignOrReturn(true);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(*v, 14);
  EXPECT_EQ(g_calls, 2);
  absl::StatusOr<int> e = AssignOrReturn(false);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kNotFound);
}

TEST(WithContextTest, PrefixesTheMessageKeepsCodeAndPayloads) {
  absl::Status s = absl::NotFoundError("no such file");
  s.SetPayload("type.test/x", absl::Cord("payload"));
  absl::Status w = WithContext(s, "/var/lib/x");
  EXPECT_EQ(w.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(w.message(), "/var/lib/x: no such file");
  ASSERT_TRUE(w.GetPayload("type.test/x").has_value());
  EXPECT_EQ(std::string(*w.GetPayload("type.test/x")), "payload");
  EXPECT_THAT(WithContext(absl::OkStatus(), "ignored"), IsOk());
}

}  // namespace
}  // namespace clip
