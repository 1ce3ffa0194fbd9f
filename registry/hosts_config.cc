#include "registry/hosts_config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "toml++/toml.h"

namespace clip {
namespace {

// containerd's docker.IsLocalhost: "localhost" or a loopback address, port aside.
bool IsLocalhost(absl::string_view host) {
  if (absl::StartsWith(host, "[")) {
    host = host.substr(1, host.find(']') - 1);
  } else if (std::count(host.begin(), host.end(), ':') == 1) {
    host = host.substr(0, host.find(':'));
  }
  if (host == "localhost") return true;
  const std::string h(host);
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  }
  return false;
}

// The server when hosts.toml names none (or there is no hosts.toml): the registry
// itself, with every capability.
RegistryEndpoint DefaultServer(const std::string& domain) {
  RegistryEndpoint ep;
  if (domain == Reference::kDockerHub) {
    ep.host = "registry-1.docker.io";
  } else {
    ep.host = domain;
    if (IsLocalhost(domain)) {
      ep.scheme = "http";
      ep.tls.insecure_skip_verify = true;
    }
  }
  return ep;
}

absl::Status ApplyUrl(absl::string_view url, bool override_path, RegistryEndpoint* ep) {
  std::string with_scheme =
      absl::StrContains(url, "://") ? std::string(url) : absl::StrCat("https://", url);
  absl::string_view u = with_scheme;
  size_t s = u.find("://");
  ep->scheme = absl::AsciiStrToLower(u.substr(0, s));
  if (ep->scheme != "http" && ep->scheme != "https") {
    return absl::InvalidArgumentError(absl::StrCat("unsupported scheme in ", url));
  }
  absl::string_view rest = u.substr(s + 3);
  size_t slash = rest.find('/');
  ep->host = std::string(rest.substr(0, slash));
  std::string path = slash == absl::string_view::npos ? "" : std::string(rest.substr(slash));
  while (!path.empty() && path.back() == '/') path.pop_back();
  // containerd appends /v2 unless override_path says the path is complete.
  if (override_path) {
    ep->path_prefix = path;
  } else {
    ep->path_prefix = absl::EndsWith(path, "/v2") ? path : path + "/v2";
  }
  if (ep->host.empty()) return absl::InvalidArgumentError(absl::StrCat("no host in ", url));
  return absl::OkStatus();
}

// Absent or empty: all three (containerd's default).
absl::Status ApplyCapabilities(const toml::table& t, RegistryEndpoint* ep) {
  toml::node_view<const toml::node> caps = t["capabilities"];
  if (!caps) return absl::OkStatus();
  const toml::array* list = caps.as_array();
  if (list == nullptr) return absl::InvalidArgumentError("capabilities must be a list");
  if (list->empty()) return absl::OkStatus();
  ep->pull = ep->resolve = ep->push = false;
  for (const toml::node& c : *list) {
    std::optional<std::string> name = c.value<std::string>();
    const std::string cap = absl::AsciiStrToLower(name.value_or(""));
    if (cap == "pull") {
      ep->pull = true;
    } else if (cap == "resolve") {
      ep->resolve = true;
    } else if (cap == "push") {
      ep->push = true;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown capability \"", cap, "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyTls(const toml::table& t, const std::string& base_dir, RegistryEndpoint* ep) {
  auto abs = [&](std::string p) {
    return p.empty() || p[0] == '/' || base_dir.empty() ? p : absl::StrCat(base_dir, "/", p);
  };
  if (auto ca = t["ca"]; ca) {
    if (auto s = ca.value<std::string>()) {
      ep->tls.ca_file = abs(*s);
    } else if (auto* arr = ca.as_array(); arr && !arr->empty()) {
      if (auto first = (*arr)[0].value<std::string>()) ep->tls.ca_file = abs(*first);
    } else {
      return absl::InvalidArgumentError("ca must be a path or a list of paths");
    }
  }
  if (auto sv = t["skip_verify"].value<bool>()) ep->tls.insecure_skip_verify = *sv;
  if (auto client = t["client"]; client) {
    if (auto s = client.value<std::string>()) {
      ep->tls.client_cert = abs(*s);  // A combined PEM with the key.
    } else if (auto* arr = client.as_array(); arr && !arr->empty()) {
      const toml::node& first = (*arr)[0];
      if (auto* pair = first.as_array(); pair && !pair->empty()) {
        ep->tls.client_cert = abs((*pair)[0].value_or(std::string()));
        if (pair->size() > 1) ep->tls.client_key = abs((*pair)[1].value_or(std::string()));
      } else if (auto s2 = first.value<std::string>()) {
        ep->tls.client_cert = abs(*s2);
      }
    } else {
      return absl::InvalidArgumentError("client must be a path or a list of [cert, key]");
    }
  }
  return absl::OkStatus();
}

// One endpoint from a [host] table or, with url empty, the top level (the server).
absl::StatusOr<RegistryEndpoint> ParseEndpoint(const std::string& domain, const std::string& url,
                                               const toml::table& t, const std::string& base_dir) {
  RegistryEndpoint ep;
  if (url.empty()) {
    RegistryEndpoint ignored;  // Checked, then all capabilities (containerd's order).
    CLIP_RETURN_IF_ERROR(ApplyCapabilities(t, &ignored));
    ep = DefaultServer(domain);
  } else {
    CLIP_RETURN_IF_ERROR(ApplyUrl(url, t["override_path"].value_or(false), &ep));
    CLIP_RETURN_IF_ERROR(ApplyCapabilities(t, &ep));
  }
  const bool local_default = url.empty() && ep.tls.insecure_skip_verify;
  CLIP_RETURN_IF_ERROR(ApplyTls(t, base_dir, &ep));
  // containerd fills a missing server after parsing: all capabilities, and for
  // localhost skip_verify whatever the file says.
  if (local_default) ep.tls.insecure_skip_verify = true;
  return ep;
}

// containerd's hostDirectory: "host:port" is also looked for as "host_port_".
std::vector<std::string> CandidateDirs(const std::string& domain) {
  std::vector<std::string> dirs;
  size_t colon = domain.rfind(':');
  if (colon != std::string::npos && colon > 0) {
    dirs.push_back(absl::StrCat(domain.substr(0, colon), "_", domain.substr(colon + 1), "_"));
  }
  dirs.push_back(domain);
  dirs.push_back("_default");
  return dirs;
}

}  // namespace

absl::StatusOr<std::vector<RegistryEndpoint>> ParseHostsToml(const std::string& domain,
                                                             const std::string& text,
                                                             const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", std::string(e.description())));
  }
  const size_t slash = path.rfind('/');
  const std::string base_dir = slash == std::string::npos ? "" : path.substr(0, slash);
  auto in_file = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  };
  std::vector<RegistryEndpoint> out;
  // [host."..."] tables in file order (toml++ sorts keys; the source position does not).
  if (toml::node_view<toml::node> hosts_node = root["host"]; hosts_node) {
    toml::table* hosts = hosts_node.as_table();
    if (!hosts) return absl::InvalidArgumentError(absl::StrCat(path, ": host must be a table"));
    std::vector<std::pair<toml::source_position, std::string>> order;
    for (auto& [key, node] : *hosts)
      order.emplace_back(node.source().begin, std::string(key.str()));
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
      return a.first.line != b.first.line ? a.first.line < b.first.line
                                          : a.first.column < b.first.column;
    });
    for (const auto& [pos, url] : order) {
      const toml::table* t = (*hosts)[url].as_table();
      if (!t) return absl::InvalidArgumentError(absl::StrCat(path, ": bad [host] table"));
      if (url.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": empty [host] URL"));
      absl::StatusOr<RegistryEndpoint> ep = ParseEndpoint(domain, url, *t, base_dir);
      if (!ep.ok()) return in_file(ep.status());
      out.push_back(*std::move(ep));
    }
  }
  // The server: always the last endpoint, whatever the [host] tables say.
  std::string server;
  if (toml::node_view<toml::node> s = root["server"]; s) {
    std::optional<std::string> value = s.value<std::string>();
    if (!value) return absl::InvalidArgumentError(absl::StrCat(path, ": server must be a URL"));
    server = *value;
  }
  absl::StatusOr<RegistryEndpoint> ep = ParseEndpoint(domain, server, root, base_dir);
  if (!ep.ok()) return in_file(ep.status());
  out.push_back(*std::move(ep));
  return out;
}

absl::StatusOr<std::vector<RegistryEndpoint>> HostsDirectory::Load(
    const std::string& domain) const {
  // The first directory that exists is the domain's, with or without a hosts.toml
  // (containerd's HostDirFromRoot).
  for (const std::string& dir : CandidateDirs(domain)) {
    const std::string dir_path = absl::StrCat(config_path_, "/", dir);
    struct stat st;
    if (stat(dir_path.c_str(), &st) != 0) continue;
    const std::string path = dir_path + "/hosts.toml";
    std::ifstream f(path);
    if (!f) break;
    std::stringstream ss;
    ss << f.rdbuf();
    return ParseHostsToml(domain, ss.str(), path);
  }
  return std::vector<RegistryEndpoint>{DefaultServer(domain)};
}

std::vector<RegistryEndpoint> HostsDirectory::Endpoints(const std::string& domain) const {
  absl::StatusOr<std::vector<RegistryEndpoint>> eps = Load(domain);
  if (!eps.ok()) {
    std::cerr << "clip: ignoring hosts configuration: " << eps.status().message() << "\n";
    return {DefaultServer(domain)};
  }
  return *std::move(eps);
}

}  // namespace clip
