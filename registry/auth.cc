#include "registry/auth.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace clip {

absl::StatusOr<Challenge> ParseChallenge(absl::string_view h) {
  auto bad = [] { return absl::InvalidArgumentError("malformed WWW-Authenticate header"); };
  h = absl::StripAsciiWhitespace(h);
  size_t sp = h.find(' ');
  Challenge c;
  c.scheme = absl::AsciiStrToLower(h.substr(0, sp));
  if (c.scheme.empty()) return bad();
  if (sp == absl::string_view::npos) return c;
  absl::string_view rest = h.substr(sp + 1);
  while (!rest.empty()) {
    rest = absl::StripLeadingAsciiWhitespace(rest);
    size_t eq = rest.find('=');
    if (eq == absl::string_view::npos || eq == 0) return bad();
    std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(rest.substr(0, eq)));
    rest.remove_prefix(eq + 1);
    std::string value;
    if (!rest.empty() && rest.front() == '"') {
      size_t i = 1;
      for (; i < rest.size() && rest[i] != '"'; ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        value.push_back(rest[i]);
      }
      if (i >= rest.size()) return bad();
      rest.remove_prefix(i + 1);
    } else {
      size_t end = rest.find(',');
      value = std::string(absl::StripAsciiWhitespace(rest.substr(0, end)));
      rest.remove_prefix(end == absl::string_view::npos ? rest.size() : end);
    }
    c.params[key] = value;
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (!rest.empty()) {
      if (rest.front() != ',') return bad();
      rest.remove_prefix(1);
    }
  }
  return c;
}

std::string BasicAuthorization(const Credential& credential) {
  return absl::StrCat(
      "Basic ", absl::Base64Escape(absl::StrCat(credential.username, ":", credential.password)));
}

std::optional<std::string> TokenCache::Get(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = tokens_.find(key);
  if (it == tokens_.end() || it->second.second <= absl::Now()) return std::nullopt;
  return it->second.first;
}

void TokenCache::Put(const std::string& key, std::string token, absl::Time expires) {
  absl::MutexLock lock(&mu_);
  tokens_[key] = {std::move(token), expires};
}

void TokenCache::Erase(const std::string& key) {
  absl::MutexLock lock(&mu_);
  tokens_.erase(key);
}

void TokenCache::Clear() {
  absl::MutexLock lock(&mu_);
  tokens_.clear();
}

}  // namespace clip
