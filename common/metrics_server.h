// MetricsServer: a minimal HTTP/1.1 server that exposes a MetricsRegistry for
// Prometheus at GET /metrics, on a loopback TCP port or a unix socket.
//
//   CLIP_ASSIGN_OR_RETURN(std::unique_ptr<MetricsServer> server,
//                         MetricsServer::Start("127.0.0.1:9102", &DefaultMetrics()));
//   // curl http://127.0.0.1:9102/metrics
//
// Responses: 200 with the rendered registry (Content-Type `text/plain; version=0.0.4`)
// for GET or HEAD of /metrics (a query string is ignored), 404 for other paths, 405
// for other methods, 400 for a malformed request line, 431 for a request over
// max_request_bytes. Every response carries `Connection: close`; request bodies are
// not read.
//
// Addresses: `127.0.0.1:9102`, `[::1]:9102`, `localhost:0` (port 0 picks a free port,
// see port()), `unix:/run/clip/metrics.sock`. The daemon runs as root, so TCP hosts
// that are not loopback (including an empty host, meaning all interfaces) are refused
// unless Options::allow_non_loopback is set; host names other than `localhost` are
// refused (give the address). A unix socket file left by a dead process is replaced; a
// socket some process still listens on, or a file that is not a socket, is an error.
//
// Thread safety: Start and the destructor run on the owner's thread; the server's own
// thread serves requests. port() and address() are constant. The registry must outlive
// the server; it is rendered on the server's thread.
#ifndef CLIP_COMMON_METRICS_SERVER_H_
#define CLIP_COMMON_METRICS_SERVER_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics.h"

namespace clip {

struct MetricsServerOptions {
  // Allow TCP hosts other than 127.0.0.0/8, ::1 and localhost.
  bool allow_non_loopback = false;
  // A connection must deliver its request and take its response within this time
  // (one deadline from accept, so a client trickling bytes cannot extend it).
  absl::Duration connection_timeout = absl::Seconds(10);
  // Largest request head (request line and headers) read.
  size_t max_request_bytes = 8192;
  // Connections served at once; further clients wait in the listen backlog.
  int max_connections = 16;
  // Permissions of a unix socket file.
  mode_t unix_socket_mode = 0660;
};

class MetricsServer {
 public:
  using Options = MetricsServerOptions;

  // Binds `address`, listens and starts serving on a thread. kInvalidArgument for a
  // malformed or refused address; the bind/listen errno mapped otherwise (e.g.
  // kAlreadyExists for a unix socket in use).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& address,
                                                              const MetricsRegistry* registry,
                                                              Options options = {});

  // Stops the thread, closes open connections and the listener, and removes the unix
  // socket file if it is still the one this server created.
  ~MetricsServer();

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound TCP port (useful after port 0); 0 for a unix socket.
  int port() const { return port_; }
  // The bound address in Start's syntax, e.g. `127.0.0.1:40123` or `unix:/run/x.sock`.
  const std::string& address() const { return address_; }

 private:
  MetricsServer(int listen_fd, int wake_fd, int port, std::string address, std::string unix_path,
                const MetricsRegistry* registry, Options options);

  void Serve();

  const int listen_fd_;
  const int wake_fd_;  // eventfd; written by the destructor to stop Serve
  const int port_;
  const std::string address_;
  const std::string unix_path_;  // empty for TCP
  dev_t unix_dev_ = 0;           // identity of the socket file we created
  ino_t unix_ino_ = 0;
  const MetricsRegistry* const registry_;
  const Options options_;
  std::thread thread_;
};

}  // namespace clip

#endif  // CLIP_COMMON_METRICS_SERVER_H_
