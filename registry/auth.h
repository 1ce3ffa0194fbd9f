// Registry authentication: credentials, `WWW-Authenticate` challenges, and the token
// flow of the distribution spec (anonymous or with credentials, Bearer tokens cached
// until they expire, refreshed on 401).
//
//   CLIP_ASSIGN_OR_RETURN(Challenge c, ParseChallenge(resp.Header("www-authenticate")));
//
// Credentials and tokens never appear in logs or error messages.
//
// Thread safety: ParseChallenge is pure; TokenCache is safe for concurrent use.
#ifndef CLIP_REGISTRY_AUTH_H_
#define CLIP_REGISTRY_AUTH_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace clip {

struct Credential {
  std::string username;
  std::string password;
  // An OAuth2 refresh token ("identitytoken" in docker's config); used instead of the
  // password in the token flow when set.
  std::string identity_token;
  // A bearer token for the registry itself, sent as it is when the registry asks for
  // one (CRI's AuthConfig.registry_token); no token server is asked.
  std::string registry_token;
  bool empty() const {
    return username.empty() && password.empty() && identity_token.empty() && registry_token.empty();
  }
};

// Where credentials for a registry host come from (docker config, helpers, static).
class CredentialStore {
 public:
  virtual ~CredentialStore() = default;
  // nullopt when there are none for `host` (anonymous access).
  virtual absl::StatusOr<std::optional<Credential>> Get(const std::string& host) const = 0;
};

// Fixed credentials by registry host (from flags or the daemon's configuration).
class StaticCredentials final : public CredentialStore {
 public:
  explicit StaticCredentials(std::map<std::string, Credential> by_host)
      : by_host_(std::move(by_host)) {}
  absl::StatusOr<std::optional<Credential>> Get(const std::string& host) const override {
    auto it = by_host_.find(host);
    if (it == by_host_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::map<std::string, Credential> by_host_;
};

struct Challenge {
  std::string scheme;                         // lowercase: "bearer" or "basic"
  std::map<std::string, std::string> params;  // realm, service, scope, error, ...
};

// Parses one `WWW-Authenticate` header value. kInvalidArgument when malformed.
absl::StatusOr<Challenge> ParseChallenge(absl::string_view header);

// "Basic <base64(user:password)>".
std::string BasicAuthorization(const Credential& credential);

// Bearer tokens by (realm, service, scope), until expiry.
class TokenCache {
 public:
  std::optional<std::string> Get(const std::string& key) const;
  void Put(const std::string& key, std::string token, absl::Time expires);
  void Erase(const std::string& key);
  void Clear();

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::pair<std::string, absl::Time>> tokens_ ABSL_GUARDED_BY(mu_);
};

}  // namespace clip

#endif  // CLIP_REGISTRY_AUTH_H_
