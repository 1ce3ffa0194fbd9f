#include "registry/testing/registry_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/http_client.h"
#include "common/status_macros.h"
#include "common/testing/subprocess.h"

extern char** environ;

namespace clip::testing {

absl::StatusOr<std::unique_ptr<RegistryServer>> RegistryServer::Start(const Options& options) {
  std::unique_ptr<RegistryServer> s(new RegistryServer());
  s->dir_ = MakeTempDir("srv");
  s->tls_ = options.tls;
  CLIP_ASSIGN_OR_RETURN(s->port_, PickFreePort());
  std::string cfg = absl::StrCat(
      "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
      "storage:\n  filesystem:\n    rootdirectory: ",
      s->dir_,
      "/data\n  delete:\n    enabled: true\n"
      "http:\n  addr: 127.0.0.1:",
      s->port_, "\n");
  if (options.tls) {
    s->ca_file_ = s->dir_ + "/ca.pem";
    CLIP_RETURN_IF_ERROR(
        RunCommand(
            absl::StrCat(
                "cd ", s->dir_,
                " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=clip-test-ca"
                " -keyout ca.key -out ca.pem 2>/dev/null"
                " && openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1"
                " -keyout server.key -out server.csr 2>/dev/null"
                " && printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext"
                " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key"
                " -CAcreateserial -days 2 -extfile san.ext -out server.pem 2>/dev/null"
                " && openssl req -newkey rsa:2048 -nodes -subj /CN=clip-client"
                " -keyout client.key -out client.csr 2>/dev/null"
                " && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key"
                " -CAcreateserial -days 2 -out client.pem 2>/dev/null"))
            .status());
    absl::StrAppend(&cfg, "  tls:\n    certificate: ", s->dir_, "/server.pem\n    key: ", s->dir_,
                    "/server.key\n");
    if (options.mutual_tls) absl::StrAppend(&cfg, "    clientcas:\n      - ", s->ca_file_, "\n");
  }
  if (options.htpasswd) {
    CLIP_RETURN_IF_ERROR(RunCommand(absl::StrCat("htpasswd -Bbn ", kUser, " ", kPassword, " > ",
                                                 s->dir_, "/htpasswd"))
                             .status());
    absl::StrAppend(&cfg, "auth:\n  htpasswd:\n    realm: clip-test\n    path: ", s->dir_,
                    "/htpasswd\n");
  }
  std::ofstream(s->dir_ + "/config.yml") << cfg;
  CLIP_ASSIGN_OR_RETURN(s->pid_, Spawn({"docker-registry", "serve", s->dir_ + "/config.yml"},
                                       s->dir_ + "/registry.log"));
  HttpClient http;
  for (int i = 0; i < 100; ++i) {
    HttpRequest req;
    req.url = s->url() + "/v2/";
    req.tls.ca_file = s->ca_file_;
    if (options.mutual_tls) {
      req.tls.client_cert = s->client_cert();
      req.tls.client_key = s->client_key();
    }
    auto resp = http.Do(req);
    if (resp.ok() && (resp->status == 200 || resp->status == 401)) return s;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::UnavailableError(absl::StrCat("docker-registry did not come up: ",
                                             ReadFileOrEmpty(s->dir_ + "/registry.log")));
}

RegistryServer::~RegistryServer() {
  Stop(pid_);
  (void)RunCommand(absl::StrCat("rm -rf '", dir_, "'"));
}

std::string RegistryServer::host() const { return absl::StrCat("127.0.0.1:", port_); }
std::string RegistryServer::url() const {
  return absl::StrCat(tls_ ? "https://" : "http://", host());
}

absl::StatusOr<std::unique_ptr<FaultProxy>> FaultProxy::Start(const std::string& upstream_url) {
  std::unique_ptr<FaultProxy> p(new FaultProxy());
  std::string dir = MakeTempDir("proxy");
  std::string script = absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                                    "/registry/testdata/fault_proxy.py");
  std::string log = dir + "/proxy.out";
  CLIP_ASSIGN_OR_RETURN(p->pid_, Spawn({"python3", "-u", script, upstream_url}, log));
  for (int i = 0; i < 100; ++i) {
    std::string out = ReadFileOrEmpty(log);
    if (out.rfind("PORT ", 0) == 0 && out.find('\n') != std::string::npos &&
        absl::SimpleAtoi(out.substr(5, out.find('\n') - 5), &p->port_)) {
      return p;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::UnavailableError(absl::StrCat("fault proxy did not start: ", ReadFileOrEmpty(log)));
}

FaultProxy::~FaultProxy() { Stop(pid_); }

std::string FaultProxy::host() const { return absl::StrCat("127.0.0.1:", port_); }

absl::Status FaultProxy::Control(const std::string& path, const std::string& json) const {
  HttpClient http;
  HttpRequest req;
  req.method = "POST";
  req.url = absl::StrCat("http://", host(), path);
  req.body = json;
  CLIP_ASSIGN_OR_RETURN(HttpResponse resp, http.Do(req));
  if (resp.status != 200) return absl::InternalError("proxy control failed");
  return absl::OkStatus();
}

absl::StatusOr<int> FaultProxy::Stat(const std::string& name) const {
  HttpClient http;
  HttpRequest req;
  req.url = absl::StrCat("http://", host(), "/__stats");
  CLIP_ASSIGN_OR_RETURN(HttpResponse resp, http.Do(req));
  std::string key = absl::StrCat("\"", name, "\": ");
  size_t at = resp.body.find(key);
  if (at == std::string::npos) return absl::NotFoundError(name);
  int v = 0;
  std::string rest = resp.body.substr(at + key.size());
  if (!absl::SimpleAtoi(rest.substr(0, rest.find_first_of(",}")), &v)) {
    return absl::InternalError("bad stats");
  }
  return v;
}

}  // namespace clip::testing
