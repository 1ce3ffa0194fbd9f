#include "common/testing/status_matchers.h"

#include "gtest/gtest.h"

namespace clip::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(StatusMatchersTest, MatchStatusAndStatusOr) {
  EXPECT_THAT(absl::OkStatus(), IsOk());
  EXPECT_THAT(absl::StatusOr<int>(3), IsOk());
  EXPECT_THAT(absl::NotFoundError("x"), Not(IsOk()));
  EXPECT_THAT(absl::StatusOr<int>(absl::DataLossError("torn")),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(absl::DataLossError("torn span"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("span")));
  EXPECT_THAT(absl::DataLossError("torn"), Not(StatusIs(absl::StatusCode::kNotFound)));
  EXPECT_THAT(absl::DataLossError("torn"),
              Not(StatusIs(absl::StatusCode::kDataLoss, HasSubstr("span"))));
  EXPECT_THAT(absl::OkStatus(), Not(StatusIs(absl::StatusCode::kUnknown)));
}

TEST(StatusMatchersTest, FailuresPrintTheStatus) {
  ::testing::StringMatchResultListener listener;
  EXPECT_FALSE(::testing::ExplainMatchResult(IsOk(), absl::InternalError("boom"), &listener));
  EXPECT_THAT(listener.str(), HasSubstr("boom"));
  EXPECT_EQ(::testing::DescribeMatcher<absl::Status>(StatusIs(absl::StatusCode::kNotFound)),
            "is NOT_FOUND error");
}

}  // namespace
}  // namespace clip::testing
