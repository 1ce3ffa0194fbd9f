// gMock matchers for absl::Status and absl::StatusOr<T>: a failed check prints the
// status itself (code and message), and an error check says which error it expects.
//
//   EXPECT_THAT(DecodeIndex(bytes), IsOk());
//   EXPECT_THAT(DecodeIndex(truncated), StatusIs(absl::StatusCode::kDataLoss));
//   EXPECT_THAT(store.Put(d, x), StatusIs(absl::StatusCode::kNotFound, HasSubstr("mkdir")));
//
// Thread safety: matchers are values; use them as gMock's.
#ifndef CLIP_COMMON_TESTING_STATUS_MATCHERS_H_
#define CLIP_COMMON_TESTING_STATUS_MATCHERS_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"

namespace clip::testing {

inline const absl::Status& StatusOf(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, negation ? "is an error" : "is OK") {
  const absl::Status& s = StatusOf(arg);
  if (!s.ok()) *result_listener << "status " << s;
  return s.ok();
}

MATCHER_P(StatusIs, code,
          absl::StrCat(negation ? "is not " : "is ", absl::StatusCodeToString(code), " error")) {
  const absl::Status& s = StatusOf(arg);
  *result_listener << "status " << s;
  return s.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           absl::StrCat(negation ? "is not " : "is ", absl::StatusCodeToString(code),
                        " error with a message that ",
                        ::testing::DescribeMatcher<std::string>(message_matcher, negation))) {
  const absl::Status& s = StatusOf(arg);
  *result_listener << "status " << s;
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

}  // namespace clip::testing

#endif  // CLIP_COMMON_TESTING_STATUS_MATCHERS_H_
