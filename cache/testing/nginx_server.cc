#include "cache/testing/nginx_server.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/http_client.h"
#include "common/status_macros.h"
#include "common/testing/subprocess.h"

namespace clip::testing {

absl::StatusOr<std::unique_ptr<NginxCas>> NginxCas::Start() {
  std::unique_ptr<NginxCas> n(new NginxCas());
  n->dir_ = MakeTempDir("nginx");
  CLIP_ASSIGN_OR_RETURN(n->port_, PickFreePort());
  CLIP_RETURN_IF_ERROR(RunCommand(absl::StrCat("mkdir -p ", n->dir_, "/data/cas ", n->dir_,
                                               "/data/index ", n->dir_, "/tmp"))
                           .status());
  const std::string& d = n->dir_;
  std::ofstream(d + "/nginx.conf") << absl::StrCat(
      "daemon off;\nmaster_process off;\nuser root root;\nworker_processes 1;\n", "pid ", d,
      "/nginx.pid;\nerror_log ", d, "/error.log warn;\n", "events { worker_connections 256; }\n",
      "http {\n  access_log off;\n  client_max_body_size 0;\n", "  client_body_temp_path ", d,
      "/tmp/body;\n  proxy_temp_path ", d, "/tmp/proxy;\n", "  fastcgi_temp_path ", d,
      "/tmp/fastcgi;\n  uwsgi_temp_path ", d, "/tmp/uwsgi;\n", "  scgi_temp_path ", d,
      "/tmp/scgi;\n", "  server {\n    listen 127.0.0.1:", n->port_, ";\n    root ", d, "/data;\n",
      "    location /cas/ {\n      dav_methods PUT;\n      create_full_put_path on;\n",
      "      dav_access user:rw;\n    }\n",
      "    location /index/ {\n      dav_methods PUT;\n      create_full_put_path on;\n",
      "      dav_access user:rw;\n    }\n",
      "    location /profile/ {\n      dav_methods PUT;\n      create_full_put_path on;\n",
      "      dav_access user:rw;\n    }\n  }\n}\n");
  CLIP_ASSIGN_OR_RETURN(n->pid_,
                        Spawn({"nginx", "-p", d, "-c", d + "/nginx.conf"}, d + "/out.log"));
  HttpClient http;
  for (int i = 0; i < 100; ++i) {
    HttpRequest req;
    req.url = n->endpoint() + "/cas/probe";
    auto resp = http.Do(req);
    if (resp.ok() && resp->status == 404) return n;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::UnavailableError(
      absl::StrCat("nginx did not come up: ", ReadFileOrEmpty(d + "/error.log"),
                   ReadFileOrEmpty(d + "/out.log")));
}

NginxCas::~NginxCas() {
  Stop(pid_);
  (void)RunCommand(absl::StrCat("rm -rf '", dir_, "'"));
}

std::string NginxCas::endpoint() const { return absl::StrCat("http://127.0.0.1:", port_); }
std::string NginxCas::PathFor(const std::string& hex) const {
  return absl::StrCat(dir_, "/data/cas/", hex);
}

}  // namespace clip::testing
