#include "registry/pulled_credentials.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace clip {

namespace {

constexpr absl::string_view kMagic = "clip-pulled-credentials 1\n";

void PutNetstring(std::string* out, absl::string_view s) {
  absl::StrAppend(out, s.size(), ":", s, ",");
}

// Reads one netstring from the front of `in`; false when there is none.
bool TakeNetstring(absl::string_view* in, std::string* out) {
  const size_t colon = in->find(':');
  if (colon == absl::string_view::npos || colon == 0 || colon > 10) return false;
  uint64_t n = 0;
  const size_t rest = in->size() - colon - 1;  // the bytes and the comma
  if (!absl::SimpleAtoi(in->substr(0, colon), &n) || n >= rest) return false;
  if ((*in)[colon + 1 + n] != ',') return false;
  out->assign(in->data() + colon + 1, n);
  in->remove_prefix(colon + 1 + n + 1);
  return true;
}

}  // namespace

uint64_t PulledCredentials::Pulling(const std::string& host, const std::string& image,
                                    Credential credential) {
  uint64_t pull;
  {
    absl::MutexLock lock(&mu_);
    pull = next_pull_++;
    images_.push_back(Image{pull, host, std::move(credential), {image}});
  }
  Changed(false);
  return pull;
}

void PulledCredentials::Pulled(uint64_t pull, bool ok, const std::string& image_id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = std::find_if(images_.begin(), images_.end(),
                           [&](const Image& i) { return i.pull == pull; });
    if (it == images_.end()) return;
    if (!ok) {
      images_.erase(it);
    } else {
      Image done = std::move(*it);
      images_.erase(it);
      done.pull = 0;
      if (!image_id.empty()) done.names.insert(image_id);
      // An image pulled again (same host, a name in common) is now this pull's.
      images_.erase(std::remove_if(images_.begin(), images_.end(),
                                   [&](const Image& i) {
                                     if (i.pull != 0 || i.host != done.host) return false;
                                     return std::any_of(
                                         i.names.begin(), i.names.end(),
                                         [&](const std::string& n) { return done.names.count(n); });
                                   }),
                    images_.end());
      images_.push_back(std::move(done));
    }
  }
  Changed(!ok);
}

bool PulledCredentials::Drop(const std::string& image) {
  size_t before;
  {
    absl::MutexLock lock(&mu_);
    before = images_.size();
    images_.erase(std::remove_if(images_.begin(), images_.end(),
                                 [&](const Image& i) { return i.names.count(image) > 0; }),
                  images_.end());
    if (images_.size() == before) return false;
  }
  Changed(true);
  return true;
}

size_t PulledCredentials::hosts() const {
  absl::MutexLock lock(&mu_);
  std::set<std::string> hosts;
  for (const Image& i : images_) hosts.insert(i.host);
  return hosts.size();
}

absl::StatusOr<std::optional<Credential>> PulledCredentials::Get(const std::string& host) const {
  {
    absl::MutexLock lock(&mu_);
    for (auto it = images_.rbegin(); it != images_.rend(); ++it) {
      if (it->host == host) return it->credential;
    }
  }
  if (fallback_ == nullptr) return std::nullopt;
  return fallback_->Get(host);
}

std::string PulledCredentials::Serialize() const {
  std::string out(kMagic);
  absl::MutexLock lock(&mu_);
  PutNetstring(&out, absl::StrCat(std::count_if(images_.begin(), images_.end(),
                                                [](const Image& i) { return i.pull == 0; })));
  for (const Image& i : images_) {
    if (i.pull != 0) continue;  // a pull in flight ends with this process
    for (const std::string* s : {&i.host, &i.credential.username, &i.credential.password,
                                 &i.credential.identity_token, &i.credential.registry_token}) {
      PutNetstring(&out, *s);
    }
    PutNetstring(&out, absl::StrCat(i.names.size()));
    for (const std::string& n : i.names) PutNetstring(&out, n);
  }
  return out;
}

absl::Status PulledCredentials::Restore(const std::string& serialized) {
  absl::string_view in(serialized);
  if (in.substr(0, kMagic.size()) != kMagic) {
    return absl::DataLossError("pulled credentials: not version 1 of their serialized form");
  }
  in.remove_prefix(kMagic.size());
  std::string count;
  uint32_t images = 0;
  if (!TakeNetstring(&in, &count) || !absl::SimpleAtoi(count, &images)) {
    return absl::DataLossError("pulled credentials: truncated or malformed");
  }
  std::vector<Image> restored;
  for (uint32_t k = 0; k < images; ++k) {
    Image i;
    uint32_t names = 0;
    if (!TakeNetstring(&in, &i.host) || !TakeNetstring(&in, &i.credential.username) ||
        !TakeNetstring(&in, &i.credential.password) ||
        !TakeNetstring(&in, &i.credential.identity_token) ||
        !TakeNetstring(&in, &i.credential.registry_token) || !TakeNetstring(&in, &count) ||
        !absl::SimpleAtoi(count, &names) || names > in.size()) {
      return absl::DataLossError("pulled credentials: truncated or malformed");
    }
    for (uint32_t k = 0; k < names; ++k) {
      std::string name;
      if (!TakeNetstring(&in, &name)) {
        return absl::DataLossError("pulled credentials: truncated or malformed");
      }
      i.names.insert(std::move(name));
    }
    restored.push_back(std::move(i));
  }
  if (!in.empty()) return absl::DataLossError("pulled credentials: bytes after the last image");
  {
    absl::MutexLock lock(&mu_);
    images_.insert(images_.begin(), std::make_move_iterator(restored.begin()),
                   std::make_move_iterator(restored.end()));
  }
  Changed(false);
  return absl::OkStatus();
}

}  // namespace clip
