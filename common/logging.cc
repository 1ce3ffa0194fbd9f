#include "common/logging.h"

#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace clip {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

const char* Name(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARNING";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?";
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }

void Log(LogLevel level, absl::string_view component, absl::string_view message) {
  if (static_cast<int>(level) < g_level.load(std::memory_order_relaxed)) return;
  std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()), " ",
                   Name(level), " ", component, ": ", message, "\n");
  (void)!write(STDERR_FILENO, line.data(), line.size());
}

bool RateLimitedLog::Log(LogLevel level, absl::string_view component, absl::string_view message) {
  uint64_t suppressed;
  {
    absl::MutexLock lock(&mu_);
    absl::Time now = now_();
    if (now - last_ < interval_) {
      ++suppressed_;
      return false;
    }
    last_ = now;
    suppressed = suppressed_;
    suppressed_ = 0;
  }
  if (suppressed == 0) {
    clip::Log(level, component, message);
  } else {
    clip::Log(level, component, absl::StrCat(message, " (", suppressed, " similar suppressed)"));
  }
  return true;
}

}  // namespace clip
