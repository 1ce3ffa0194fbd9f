// Test servers for the registry client: Debian's docker-registry (Distribution v2)
// and the fault-injecting proxy (testdata/fault_proxy.py), each started in a private
// temp dir on a loopback port, stopped by PID when the object goes away.
//
//   auto registry = RegistryServer::Start({.tls = true, .htpasswd = true});
//   auto proxy = FaultProxy::Start((*registry)->url());
//
// Thread safety: not safe for concurrent use (tests own one each).
#ifndef CLIP_REGISTRY_TESTING_REGISTRY_SERVER_H_
#define CLIP_REGISTRY_TESTING_REGISTRY_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/testing/subprocess.h"

namespace clip::testing {

class RegistryServer {
 public:
  struct Options {
    bool tls = false;         // self-signed CA generated here; ca_file() trusts it
    bool htpasswd = false;    // basic auth with user() / password()
    bool mutual_tls = false;  // with tls: clients must present client_cert()
  };
  static absl::StatusOr<std::unique_ptr<RegistryServer>> Start(const Options& options);
  ~RegistryServer();

  std::string host() const;  // 127.0.0.1:<port>
  std::string url() const;   // http(s)://127.0.0.1:<port>
  const std::string& ca_file() const { return ca_file_; }
  std::string client_cert() const { return dir_ + "/client.pem"; }
  std::string client_key() const { return dir_ + "/client.key"; }
  static constexpr char kUser[] = "clipuser";
  static constexpr char kPassword[] = "s3cret-pass";

 private:
  RegistryServer() = default;
  std::string dir_;
  std::string ca_file_;
  int port_ = 0;
  bool tls_ = false;
  pid_t pid_ = -1;
};

class FaultProxy {
 public:
  static absl::StatusOr<std::unique_ptr<FaultProxy>> Start(const std::string& upstream_url);
  ~FaultProxy();

  std::string host() const;  // 127.0.0.1:<port>
  // POSTs `json` to the control path (e.g. "/__fault").
  absl::Status Control(const std::string& path, const std::string& json) const;
  // One counter of GET /__stats.
  absl::StatusOr<int> Stat(const std::string& name) const;

 private:
  FaultProxy() = default;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace clip::testing

#endif  // CLIP_REGISTRY_TESTING_REGISTRY_SERVER_H_
