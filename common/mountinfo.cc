#include "common/mountinfo.h"

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace clip {
namespace {

std::string Unescape(absl::string_view s) {
  auto octal = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && octal(s[i + 1]) && octal(s[i + 2]) && octal(s[i + 3])) {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::string EscapeMountPath(absl::string_view path) {
  std::string out;
  for (char c : path) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\\') {
      absl::StrAppend(&out, "\\", absl::Dec(c / 64), absl::Dec(c / 8 % 8), absl::Dec(c % 8));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::vector<MountEntry> ParseMountinfo(absl::string_view mountinfo) {
  std::vector<MountEntry> out;
  for (absl::string_view line : absl::StrSplit(mountinfo, '\n', absl::SkipEmpty())) {
    // id parent major:minor root mountpoint options [optional...] - fstype source super
    const size_t dash = line.find(" - ");
    if (dash == absl::string_view::npos) continue;
    std::vector<absl::string_view> head = absl::StrSplit(line.substr(0, dash), ' ');
    std::vector<absl::string_view> tail = absl::StrSplit(line.substr(dash + 3), ' ');
    if (head.size() < 5 || tail.size() < 3) continue;
    MountEntry e{std::string(head[2]), Unescape(head[4]), std::string(tail[0]), {}};
    if (!absl::SimpleAtoi(head[0], &e.id) || !absl::SimpleAtoi(head[1], &e.parent)) continue;
    if (e.fstype == "overlay") {
      for (absl::string_view opt : absl::StrSplit(tail[2], ',')) {
        if (absl::ConsumePrefix(&opt, "lowerdir=")) {
          for (absl::string_view d : absl::StrSplit(opt, ':')) e.lowerdirs.push_back(Unescape(d));
        } else if (absl::ConsumePrefix(&opt, "lowerdir+=")) {
          e.lowerdirs.push_back(Unescape(opt));
        }
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::string ReadMountinfo() {
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const MountEntry* TopMountAt(const std::vector<MountEntry>& mounts, const std::string& mountpoint) {
  const MountEntry* top = nullptr;
  for (const MountEntry& e : mounts) {
    if (e.mountpoint != mountpoint) continue;
    bool covered = false;
    for (const MountEntry& above : mounts) {
      covered |= &above != &e && above.parent == e.id && above.mountpoint == mountpoint;
    }
    if (!covered) top = &e;
  }
  return top;
}

}  // namespace clip
