// NginxCas: Debian's nginx as a remote span cache for tests: WebDAV PUT enabled under
// /cas/, files in a private temp dir, listening on a loopback port, one process
// (master_process off) stopped by PID.
//
// Thread safety: not safe for concurrent use.
#ifndef CLIP_CACHE_TESTING_NGINX_SERVER_H_
#define CLIP_CACHE_TESTING_NGINX_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace clip::testing {

class NginxCas {
 public:
  static absl::StatusOr<std::unique_ptr<NginxCas>> Start();
  ~NginxCas();
  std::string endpoint() const;                       // http://127.0.0.1:<port>
  std::string PathFor(const std::string& hex) const;  // the stored file

 private:
  NginxCas() = default;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace clip::testing

#endif  // CLIP_CACHE_TESTING_NGINX_SERVER_H_
