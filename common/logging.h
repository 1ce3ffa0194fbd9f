// Logging: one line per event on stderr, `<time> <LEVEL> <component>: <message>`,
// plus a rate limiter for failures that can repeat thousands of times a second (a
// broken remote cache, a registry outage).
//
//   Log(LogLevel::kWarning, "cache.remote", absl::StrCat("GET failed: ", status.message()));
//   static RateLimitedLog limited(absl::Seconds(10));
//   limited.Log(LogLevel::kWarning, "cache.remote", "PUT failed");  // at most 1 per 10 s
//
// Callers never pass credentials; messages carry status texts that are already free of
// them (see RedactUrl).
//
// Thread safety: all functions are safe for concurrent use; each line is one write(2).
#ifndef CLIP_COMMON_LOGGING_H_
#define CLIP_COMMON_LOGGING_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace clip {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void Log(LogLevel level, absl::string_view component, absl::string_view message);

class RateLimitedLog {
 public:
  using Clock = absl::Time (*)();
  // `now` is the clock (tests pass a fake one).
  explicit RateLimitedLog(absl::Duration interval, Clock now = &absl::Now)
      : interval_(interval), now_(now) {}
  // Logs unless a line went out less than `interval` ago; the next line that goes out
  // says how many were suppressed in between. Returns whether it logged.
  bool Log(LogLevel level, absl::string_view component, absl::string_view message);

 private:
  const absl::Duration interval_;
  const Clock now_;
  absl::Mutex mu_;
  absl::Time last_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace clip

#endif  // CLIP_COMMON_LOGGING_H_
