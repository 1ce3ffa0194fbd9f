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
#include "common/status_macros.h"
#include "common/http_client.h"

extern char** environ;

namespace clip::testing {
namespace {

std::string TempDir() {
  const char* t = getenv("TEST_TMPDIR");
  std::string tmpl = absl::StrCat(t ? t : "/tmp", "/srvXXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) abort();
  return tmpl;
}

// Starts `argv` in its own session with stdout+stderr to `log`.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return absl::InternalError(absl::StrCat("spawn ", argv[0], " failed: ", rc));
  return pid;
}

void Stop(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 50; ++i) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return;
    absl::SleepFor(absl::Milliseconds(100));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

absl::StatusOr<int> PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    return absl::InternalError("no free port");
  }
  int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

absl::StatusOr<std::string> RunCommand(const std::string& command) {
  FILE* p = popen(command.c_str(), "r");
  if (!p) return absl::InternalError("popen failed");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  if (rc != 0) return absl::InternalError(absl::StrCat("`", command, "` exited ", rc));
  return out;
}

absl::StatusOr<std::unique_ptr<RegistryServer>> RegistryServer::Start(const Options& options) {
  std::unique_ptr<RegistryServer> s(new RegistryServer());
  s->dir_ = TempDir();
  s->tls_ = options.tls;
  CLIP_ASSIGN_OR_RETURN(s->port_, PickFreePort());
  std::string cfg = absl::StrCat(
      "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
      "storage:\n  filesystem:\n    rootdirectory: ", s->dir_, "/data\n  delete:\n    enabled: true\n"
      "http:\n  addr: 127.0.0.1:", s->port_, "\n");
  if (options.tls) {
    s->ca_file_ = s->dir_ + "/ca.pem";
    CLIP_RETURN_IF_ERROR(
        RunCommand(absl::StrCat(
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
  return absl::UnavailableError(
      absl::StrCat("docker-registry did not come up: ", ReadAll(s->dir_ + "/registry.log")));
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
  std::string dir = TempDir();
  std::string script = absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                                    "/registry/testdata/fault_proxy.py");
  std::string log = dir + "/proxy.out";
  CLIP_ASSIGN_OR_RETURN(p->pid_, Spawn({"python3", "-u", script, upstream_url}, log));
  for (int i = 0; i < 100; ++i) {
    std::string out = ReadAll(log);
    if (out.rfind("PORT ", 0) == 0 && out.find('\n') != std::string::npos &&
        absl::SimpleAtoi(out.substr(5, out.find('\n') - 5), &p->port_)) {
      return p;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::UnavailableError(absl::StrCat("fault proxy did not start: ", ReadAll(log)));
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
