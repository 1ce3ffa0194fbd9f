#include "registry/docker_config.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "rapidjson/document.h"

extern char** environ;

namespace clip {
namespace {

constexpr absl::Duration kHelperTimeout = absl::Seconds(10);

// The config keys that may name `host` ("https://index.docker.io/v1/" for docker.io).
std::vector<std::string> KeysFor(const std::string& host) {
  std::vector<std::string> keys = {host, "https://" + host, "http://" + host,
                                   "https://" + host + "/v1/", "https://" + host + "/v2/"};
  if (host == "docker.io" || host == "registry-1.docker.io" || host == "index.docker.io") {
    keys.insert(keys.begin(), "https://index.docker.io/v1/");
    keys.push_back("index.docker.io");
    keys.push_back("docker.io");
  }
  return keys;
}

// Runs `argv` with `input` on stdin; returns stdout. Bounded in time and output size.
absl::StatusOr<std::string> RunWithInput(const std::vector<std::string>& argv,
                                         const std::string& input, int* exit_code) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return absl::InternalError("pipe failed");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    return absl::NotFoundError(absl::StrCat("credential helper ", argv[0], " not found"));
  }
  // The input is a host name: far below the pipe buffer, so this never blocks. A
  // helper that exits without reading must not kill us with SIGPIPE: block it in this
  // thread for the write and consume any that became pending.
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  ssize_t written = write(in[1], input.data(), input.size());
  if (written < 0 && errno == EPIPE) {
    struct timespec zero = {0, 0};
    sigtimedwait(&pipe_set, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  close(in[1]);
  std::string output;
  absl::Time deadline = absl::Now() + kHelperTimeout;
  char buf[4096];
  for (;;) {
    int left = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (left <= 0) break;
    struct pollfd p = {out[0], POLLIN, 0};
    int n = poll(&p, 1, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    ssize_t r = read(out[0], buf, sizeof(buf));
    if (r <= 0) break;
    output.append(buf, static_cast<size_t>(r));
    if (output.size() > (1 << 20)) break;
  }
  close(out[0]);
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) == 0) {
    if (absl::Now() >= deadline) kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return output;
}

}  // namespace

std::string DockerConfigCredentials::DefaultPath() {
  if (const char* d = getenv("DOCKER_CONFIG"); d && *d) return absl::StrCat(d, "/config.json");
  const char* home = getenv("HOME");
  return absl::StrCat(home ? home : "/root", "/.docker/config.json");
}

absl::StatusOr<std::optional<Credential>> DockerConfigCredentials::FromHelper(
    const std::string& helper, const std::string& host) const {
  std::string program = absl::StrCat("docker-credential-", helper);
  if (helper.empty() || helper.find('/') != std::string::npos) {
    return absl::InvalidArgumentError("bad credential helper name");
  }
  if (!helper_dir_.empty()) program = absl::StrCat(helper_dir_, "/", program);
  int code = 0;
  CLIP_ASSIGN_OR_RETURN(std::string out, RunWithInput({program, "get"}, host, &code));
  if (code != 0) {
    // The protocol's "credentials not found" is a miss, not an error.
    if (absl::StrContains(out, "credentials not found")) return std::nullopt;
    return absl::UnavailableError(
        absl::StrCat("credential helper ", program, " failed for ", host, " (exit ", code, ")"));
  }
  rapidjson::Document doc;
  doc.Parse(out.data(), out.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("Secret") ||
      !doc["Secret"].IsString()) {
    return absl::InvalidArgumentError(
        absl::StrCat("credential helper ", program, " returned malformed output"));
  }
  Credential c;
  std::string user =
      doc.HasMember("Username") && doc["Username"].IsString() ? doc["Username"].GetString() : "";
  if (user == "<token>") {
    c.identity_token = doc["Secret"].GetString();
  } else {
    c.username = user;
    c.password = doc["Secret"].GetString();
  }
  return c;
}

absl::StatusOr<std::optional<Credential>> DockerConfigCredentials::Get(
    const std::string& host) const {
  std::ifstream f(path_);
  if (!f) return std::nullopt;  // No config: anonymous.
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return absl::InvalidArgumentError(absl::StrCat(path_, " is not valid JSON"));
  }
  std::vector<std::string> keys = KeysFor(host);
  if (doc.HasMember("credHelpers") && doc["credHelpers"].IsObject()) {
    for (const auto& key : keys) {
      auto it = doc["credHelpers"].FindMember(key.c_str());
      if (it != doc["credHelpers"].MemberEnd() && it->value.IsString()) {
        return FromHelper(it->value.GetString(), host);
      }
    }
  }
  if (doc.HasMember("auths") && doc["auths"].IsObject()) {
    for (const auto& key : keys) {
      auto it = doc["auths"].FindMember(key.c_str());
      if (it == doc["auths"].MemberEnd() || !it->value.IsObject()) continue;
      const auto& a = it->value;
      Credential c;
      if (a.HasMember("auth") && a["auth"].IsString()) {
        std::string decoded;
        if (!absl::Base64Unescape(a["auth"].GetString(), &decoded)) {
          return absl::InvalidArgumentError(absl::StrCat(path_, ": bad base64 in auths"));
        }
        size_t colon = decoded.find(':');
        if (colon == std::string::npos) {
          return absl::InvalidArgumentError(
              absl::StrCat(path_, ": auths entry is not user:password"));
        }
        c.username = decoded.substr(0, colon);
        c.password = decoded.substr(colon + 1);
      }
      if (a.HasMember("username") && a["username"].IsString())
        c.username = a["username"].GetString();
      if (a.HasMember("password") && a["password"].IsString())
        c.password = a["password"].GetString();
      if (a.HasMember("identitytoken") && a["identitytoken"].IsString()) {
        c.identity_token = a["identitytoken"].GetString();
      }
      if (!c.empty()) return c;
    }
  }
  if (doc.HasMember("credsStore") && doc["credsStore"].IsString()) {
    return FromHelper(doc["credsStore"].GetString(), host);
  }
  return std::nullopt;
}

}  // namespace clip
