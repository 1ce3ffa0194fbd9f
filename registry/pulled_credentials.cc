#include "registry/pulled_credentials.h"

#include <algorithm>

namespace clip {

void PulledCredentials::Keep(const std::string& host, const std::string& image,
                             const std::string& image_id, Credential credential) {
  absl::MutexLock lock(&mu_);
  by_host_[host] = std::move(credential);
  for (Image& i : images_) {
    if (i.host == host && (i.names.count(image) > 0 || i.names.count(image_id) > 0)) {
      i.names.insert(image);
      if (!image_id.empty()) i.names.insert(image_id);
      return;
    }
  }
  Image i{host, {image}};
  if (!image_id.empty()) i.names.insert(image_id);
  images_.push_back(std::move(i));
}

void PulledCredentials::Drop(const std::string& image) {
  absl::MutexLock lock(&mu_);
  images_.erase(std::remove_if(images_.begin(), images_.end(),
                               [&](const Image& i) { return i.names.count(image) > 0; }),
                images_.end());
  for (auto it = by_host_.begin(); it != by_host_.end();) {
    const bool used = std::any_of(images_.begin(), images_.end(),
                                  [&](const Image& i) { return i.host == it->first; });
    it = used ? std::next(it) : by_host_.erase(it);
  }
}

size_t PulledCredentials::hosts() const {
  absl::MutexLock lock(&mu_);
  return by_host_.size();
}

absl::StatusOr<std::optional<Credential>> PulledCredentials::Get(const std::string& host) const {
  {
    absl::MutexLock lock(&mu_);
    auto it = by_host_.find(host);
    if (it != by_host_.end()) return it->second;
  }
  if (fallback_ == nullptr) return std::nullopt;
  return fallback_->Get(host);
}

}  // namespace clip
