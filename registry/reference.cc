#include "registry/reference.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace clip {
namespace {

constexpr size_t kMaxNameLength = 255;

bool IsAlnumLower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
bool ValidComponent(absl::string_view c) {
  if (c.empty() || !IsAlnumLower(c.front()) || !IsAlnumLower(c.back())) return false;
  for (size_t i = 0; i < c.size();) {
    if (IsAlnumLower(c[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < c.size() && !IsAlnumLower(c[j])) ++j;
    absl::string_view sep = c.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == absl::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

// [\w][\w.-]{0,127}
bool ValidTag(absl::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    bool word = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
    if (!(word || (i > 0 && (c == '.' || c == '-')))) return false;
  }
  return true;
}

// host[:port] where host is a DNS name, IPv4 or [IPv6].
bool ValidDomain(absl::string_view d) {
  if (d.empty()) return false;
  if (d.front() == '[') {
    size_t close = d.find(']');
    if (close == absl::string_view::npos) return false;
    d = d.substr(close + 1);
    if (d.empty()) return true;
    if (d.front() != ':') return false;
    d.remove_prefix(1);
    return !d.empty() && d.find_first_not_of("0123456789") == absl::string_view::npos;
  }
  size_t colon = d.rfind(':');
  if (colon != absl::string_view::npos) {
    absl::string_view port = d.substr(colon + 1);
    if (port.empty() || port.find_first_not_of("0123456789") != absl::string_view::npos) {
      return false;
    }
    d = d.substr(0, colon);
  }
  for (absl::string_view label : absl::StrSplit(d, '.')) {
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<Reference> Reference::Parse(absl::string_view text) {
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid image reference \"", text.substr(0, 300), "\": ", why));
  };
  Reference ref;
  absl::string_view rest = text;
  size_t at = rest.find('@');
  if (at != absl::string_view::npos) {
    absl::StatusOr<Digest> d = Digest::Parse(rest.substr(at + 1));
    if (!d.ok()) {
      if (d.status().code() == absl::StatusCode::kUnimplemented) return d.status();
      return invalid("bad digest");
    }
    ref.digest_ = *d;
    rest = rest.substr(0, at);
  }
  // A tag follows the last ':' after the last '/' (a ':' before it is a port).
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != absl::string_view::npos && (slash == absl::string_view::npos || colon > slash)) {
    ref.tag_ = std::string(rest.substr(colon + 1));
    if (!ValidTag(ref.tag_)) return invalid("bad tag");
    rest = rest.substr(0, colon);
  }
  size_t first = rest.find('/');
  absl::string_view first_part = rest.substr(0, first);
  if (first != absl::string_view::npos &&
      (absl::StrContains(first_part, '.') || absl::StrContains(first_part, ':') ||
       first_part == "localhost")) {
    if (!ValidDomain(first_part)) return invalid("bad registry domain");
    ref.domain_ = std::string(first_part);
    rest = rest.substr(first + 1);
  } else {
    ref.domain_ = std::string(kDockerHub);
  }
  if (ref.domain_ == "index.docker.io") ref.domain_ = std::string(kDockerHub);
  if (rest.empty()) return invalid("empty repository");
  for (absl::string_view component : absl::StrSplit(rest, '/')) {
    if (!ValidComponent(component)) {
      return invalid("repository components must be lowercase [a-z0-9] separated by . _ __ -");
    }
  }
  ref.repository_ = std::string(rest);
  if (ref.domain_ == kDockerHub && !absl::StrContains(ref.repository_, '/')) {
    ref.repository_ = absl::StrCat("library/", ref.repository_);
  }
  if (ref.domain_.size() + 1 + ref.repository_.size() > kMaxNameLength) {
    return invalid("name longer than 255 characters");
  }
  if (ref.tag_.empty() && !ref.digest_) ref.tag_ = "latest";
  return ref;
}

std::string Reference::ManifestReference() const { return digest_ ? digest_->ToString() : tag_; }

std::string Reference::Name() const { return absl::StrCat(domain_, "/", repository_); }

std::string Reference::ToString() const {
  std::string out = Name();
  if (!tag_.empty()) absl::StrAppend(&out, ":", tag_);
  if (digest_) absl::StrAppend(&out, "@", digest_->ToString());
  return out;
}

Reference Reference::WithDigest(const Digest& digest) const {
  Reference r = *this;
  r.digest_ = digest;
  return r;
}

}  // namespace clip
