#include "snapshotter/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "fs/sealed_memfd.h"
#include "grpcpp/server_posix.h"
#include "snapshotter/image_fs_link.h"
#include "snapshotter/listen_address.h"
#include "snapshotter/registry_setup.h"

namespace clip {
namespace {

// The path a listening unix socket is bound to, if it is one.
std::string BoundPath(int fd) {
  sockaddr_un addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      addr.sun_family != AF_UNIX || len <= offsetof(sockaddr_un, sun_path)) {
    return "";
  }
  return std::string(addr.sun_path, strnlen(addr.sun_path, len - offsetof(sockaddr_un, sun_path)));
}

// clip-fd-holder beside this binary (an installation), or in Bazel's output tree.
std::string DefaultHolderBinary() {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return "clip-fd-holder";
  std::string dir(exe, static_cast<size_t>(n));
  dir = dir.substr(0, dir.rfind('/'));
  for (const std::string& candidate : {dir + "/clip-fd-holder", dir + "/../fs/clip-fd-holder"}) {
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return dir + "/clip-fd-holder";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(const DaemonConfig& config) {
  std::unique_ptr<Daemon> d(new Daemon(config));
  CLIP_RETURN_IF_ERROR(d->Init());
  return d;
}

absl::Status Daemon::TakeLock() {
  const std::string path = config_.root + "/daemon.lock";
  lock_fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) return ErrnoToStatus(errno, absl::StrCat("open ", path));
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) == 0) return absl::OkStatus();
  // The previous daemon is still on its way out (a handover finishing its requests).
  Log(LogLevel::kInfo, "daemon", "waiting for the previous daemon of this root to exit");
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    if (flock(lock_fd_, LOCK_EX | LOCK_NB) == 0) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(5));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("another daemon holds ", path, " (still running after 60 s)"));
}

void Daemon::ConnectFdStore(std::vector<HeldFd>* held) {
  if (!config_.takeover) return;
  if (config_.fd_store == "systemd" || (config_.fd_store == "auto" && getenv("NOTIFY_SOCKET"))) {
    fd_store_ = SystemdFdStore::FromEnvironment();
    if (fd_store_ == nullptr) {
      Log(LogLevel::kWarning, "daemon",
          "fd_store = \"systemd\" but $NOTIFY_SOCKET is unset: mounts will not survive a "
          "restart of this daemon");
      return;
    }
    absl::StatusOr<std::vector<HeldFd>> passed = fd_store_->List();
    if (passed.ok()) *held = *std::move(passed);
    Log(LogLevel::kInfo, "daemon",
        absl::StrCat("systemd's fd store keeps the mounts; it passed ", held->size(),
                     " fd(s) back"));
    return;
  }
  const std::string socket = config_.fd_holder_socket.empty() ? config_.root + "/fd-holder.sock"
                                                              : config_.fd_holder_socket;
  const std::string binary =
      config_.fd_holder_binary.empty() ? DefaultHolderBinary() : config_.fd_holder_binary;
  absl::StatusOr<std::unique_ptr<FdHolderClient>> h =
      FdHolderClient::ConnectOrStart(socket, binary);
  absl::StatusOr<std::vector<HeldFd>> listed =
      h.ok() ? (*h)->List() : absl::StatusOr<std::vector<HeldFd>>(h.status());
  if (h.ok() && !listed.ok()) {
    // Something listens at the holder's socket but does not speak its protocol (or
    // never answers): ignored, and a new holder takes the socket file. The process
    // itself is left as it is: it is not known to be ours.
    Log(LogLevel::kWarning, "daemon",
        absl::StrCat("the fd holder at ", socket, " (pid ", (*h)->pid(),
                     ") is unusable: ", listed.status().message(),
                     "; ignoring it and starting a new holder (layers are mounted again)"));
    h->reset();
    unlink(socket.c_str());
    unlink((socket + ".pid").c_str());
    h = FdHolderClient::ConnectOrStart(socket, binary);
    listed = h.ok() ? (*h)->List() : absl::StatusOr<std::vector<HeldFd>>(h.status());
  }
  if (!listed.ok()) {
    Log(LogLevel::kWarning, "daemon",
        absl::StrCat("no fd holder (", listed.status().message(),
                     "): mounts will not survive a restart of this daemon"));
    return;
  }
  holder_pid_ = (*h)->pid();
  fd_store_ = *std::move(h);
  *held = *std::move(listed);
}

absl::Status Daemon::Listen(std::vector<HeldFd>* held) {
  for (auto it = held->begin(); it != held->end(); ++it) {
    if (it->name != kHeldListenerName) continue;
    int fd = it->fd;
    held->erase(it);
    struct stat st;
    if (BoundPath(fd) == config_.address && lstat(config_.address.c_str(), &st) == 0 &&
        S_ISSOCK(st.st_mode)) {
      listener_ = fd;
      listener_taken_over_ = true;
      return absl::OkStatus();
    }
    close(fd);  // another address now, or its file is gone: a new socket
    if (fd_store_ != nullptr) (void)fd_store_->Drop(kHeldListenerName);
    break;
  }
  CLIP_ASSIGN_OR_RETURN(ClaimedListener claimed,
                        ClaimListeningAddress(config_.address, holder_pid_));
  listener_ = claimed.fd;
  listener_taken_over_ = claimed.taken_back;
  if (fd_store_ != nullptr) {
    absl::Status put = fd_store_->Put(kHeldListenerName, "", listener_);
    if (!put.ok()) Log(LogLevel::kWarning, "daemon", put.message());
  }
  return absl::OkStatus();
}

void Daemon::TakeOverCredentials(std::vector<HeldFd>* held) {
  for (auto it = held->begin(); it != held->end(); ++it) {
    if (it->name != kHeldCredentialsName) continue;
    const int fd = it->fd;
    held->erase(it);
    absl::StatusOr<std::string> bytes = ReadSealedMemfd(fd, 64 << 20);
    close(fd);
    absl::Status restored = bytes.ok() ? pulled_credentials_->Restore(*bytes) : bytes.status();
    if (config_.cri_image_proxy.empty()) {
      // No proxy now: no RemoveImage would ever drop them.
      Log(LogLevel::kInfo, "daemon",
          "the previous daemon's CRI pull credentials are dropped: cri_image_proxy is off");
      (void)fd_store_->Drop(kHeldCredentialsName);
    } else if (!restored.ok()) {
      Log(LogLevel::kWarning, "daemon",
          absl::StrCat("the previous daemon's CRI pull credentials are unusable (",
                       restored.message(),
                       "): lazy reads of private images fail until they are pulled again"));
      (void)fd_store_->Drop(kHeldCredentialsName);
    } else {
      Log(LogLevel::kInfo, "daemon",
          absl::StrCat("took over the CRI pull credentials of ", pulled_credentials_->hosts(),
                       " registry host(s) (in memory)"));
    }
    return;
  }
}

void Daemon::HandOverCredentials() {
  if (fd_store_ == nullptr) return;
  absl::MutexLock lock(&handover_mu_);
  const std::string bytes = pulled_credentials_->Serialize();
  absl::Status st;
  if (bytes == PulledCredentials().Serialize()) {  // none kept
    st = fd_store_->Drop(kHeldCredentialsName);
  } else if (absl::StatusOr<int> fd = SealedMemfd("clip-cri-credentials", bytes); !fd.ok()) {
    st = fd.status();
  } else {
    st = fd_store_->Put(kHeldCredentialsName, "", *fd);
    close(*fd);
  }
  if (!st.ok()) {
    Log(LogLevel::kWarning, "daemon",
        absl::StrCat("CRI pull credentials not handed to the fd store (", st.message(),
                     "): a restart of this daemon forgets them"));
  }
}

absl::Status Daemon::Init() {
  if (mkdir(config_.root.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, absl::StrCat("cannot create the root ", config_.root));
  }
  struct stat root;
  if (stat(config_.root.c_str(), &root) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("root ", config_.root));
  }
  if (!S_ISDIR(root.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("root ", config_.root, " exists and is not a directory"));
  }
  CLIP_RETURN_IF_ERROR(TakeLock());
  if (!config_.containerd_root.empty()) {
    // containerd 1.6's CRI reports <containerd root>/io.containerd.snapshotter.v1.clip as
    // the image filesystem (it ignores exports.root); kubelet stats it.
    absl::StatusOr<std::string> link = EnsureImageFsLink(config_.containerd_root, config_.root);
    if (link.ok()) {
      Log(LogLevel::kInfo, "daemon", absl::StrCat("image filesystem for containerd 1.6: ", *link));
    } else {
      Log(LogLevel::kWarning, "daemon",
          absl::StrCat("containerd 1.6 will report an image filesystem that does not exist: ",
                       link.status().message()));
    }
  }
  std::vector<HeldFd> held;
  ConnectFdStore(&held);

  // The lazy path: registry client (hosts.toml mirrors or plain-HTTP registries as
  // configured), span caches, one FUSE worker pool for every mounted layer.
  RegistryClient::Options ro = RegistryOptionsFrom(config_);
  // Credentials that came with kubelet's pulls through the CRI image proxy (memory only)
  // come first; the node's docker config for every other registry.
  pulled_credentials_ = std::make_shared<PulledCredentials>(ro.credentials);
  ro.credentials = pulled_credentials_;
  registry_ = std::make_unique<RegistryClient>(ro);
  TakeOverCredentials(&held);
  pulled_credentials_->set_on_change([this](bool forgot) {
    if (forgot) registry_->ForgetAuthorizations();  // Basic headers are the credentials
    HandOverCredentials();
  });
  DiskCache::Options disk_options;
  disk_options.root = config_.root + "/cache";
  disk_options.max_bytes = static_cast<uint64_t>(config_.cache_max_bytes);
  disk_options.metrics = &DefaultMetrics();
  CLIP_ASSIGN_OR_RETURN(disk_, DiskCache::Open(disk_options));
  memory_ = std::make_unique<MemoryCache>(static_cast<uint64_t>(config_.memory_cache_bytes),
                                          &DefaultMetrics());
  if (!config_.remote_cache.empty()) {
    RemoteCache::Options co;
    co.endpoint = config_.remote_cache;
    co.metrics = &DefaultMetrics();
    remote_cache_ = std::make_unique<RemoteCache>(co);
  }
  write_back_ = std::make_unique<WriteBack>(WriteBack::Options{});
  // Readahead jobs mostly wait (registry, disk): four threads keep a sequential
  // reader's next spans coming on two cores (2 threads: first read 214-266 MB/s, disk
  // cache 645-903 MB/s; 4: 287-305 and 863-1180 MB/s in bench_read).
  readahead_ = std::make_unique<ThreadPool>(4, 32);
  fuse_ = std::make_unique<FuseServer>(static_cast<int>(config_.fuse_workers), fd_store_.get());
  CLIP_RETURN_IF_ERROR(Listen(&held));
  const size_t held_mounts = held.size();
  fuse_->OfferHeld(std::move(held));
  RemoteLayers::Options lo;
  lo.index_store = config_.root + "/indexes";
  lo.tiers = CacheTiers{memory_.get(), disk_.get(), remote_cache_.get(), write_back_.get()};
  lo.tiers.readahead = readahead_.get();
  lo.tiers.readahead_spans = static_cast<int>(config_.readahead_spans);
  lo.remote_index = remote_cache_.get();
  CLIP_ASSIGN_OR_RETURN(lo.index_trust, ParseIndexTrust(config_.index_trust));
  lo.metrics = &DefaultMetrics();
  if (lo.index_trust != IndexTrust::kBound) {
    Log(lo.index_trust == IndexTrust::kReferrers ? LogLevel::kWarning : LogLevel::kInfo, "daemon",
        lo.index_trust == IndexTrust::kReferrers
            ? "index_trust = \"referrers\": any OCI referrer's or remote cache entry's clip "
              "index is believed, so anyone who can push to a registry or write to the remote "
              "cache decides what lazily mounted layers contain"
            : "index_trust = \"fleet\": clip indexes other nodes built are believed from the "
              "remote cache");
  }
  if (config_.access_profiles.enabled) {
    const DaemonConfig::AccessProfiles& ap = config_.access_profiles;
    replay_ = std::make_unique<ThreadPool>(static_cast<int>(ap.replay_concurrency), 4096);
    lo.profile_store = config_.root + "/profiles";
    lo.replay = replay_.get();
    lo.replay_options.max_run = static_cast<size_t>(ap.max_run_spans);
    lo.profile_quiet = absl::Seconds(ap.quiet_seconds);
    lo.profile_max = absl::Seconds(ap.max_seconds);
  }
  lo.index_on_first_use = config_.index_on_first_use;
  lo.local_trees = config_.local_trees;
  lo.passthrough = config_.local_trees && config_.passthrough;
  lo.passthrough_min_file_bytes = static_cast<uint64_t>(config_.passthrough_min_file_bytes);
  lo.index_options.small_file_interval = static_cast<uint64_t>(config_.index_small_file_interval);
  if (config_.background_fill.enabled) {
    BackgroundFill::Options fo;
    fo.concurrency = static_cast<int>(config_.background_fill.concurrency);
    fo.bytes_per_second = static_cast<uint64_t>(config_.background_fill.bytes_per_second);
    lo.fill = fo;
    lo.fill_delay = absl::Seconds(config_.background_fill.delay_seconds);
  }
  remote_ = std::make_unique<RemoteLayers>(*registry_, *fuse_, lo);
  // Opening restores every remote snapshot (taking over its live connection where the
  // holder has one) before the socket is served.
  CLIP_ASSIGN_OR_RETURN(snapshotter_, OverlaySnapshotter::Open(config_.root, remote_.get()));
  fuse_->DropUnclaimed();
  const size_t restored = remote_->mounted(), adopted = fuse_->adopted();
  if (restored > 0 || held_mounts > 0) {
    Log(adopted == restored ? LogLevel::kInfo : LogLevel::kWarning, "daemon",
        adopted == restored
            ? absl::StrCat("took over ", adopted, " live layer mount(s) from the fd holder")
            : absl::StrCat("took over ", adopted, " of ", restored,
                           " layer mount(s); falling back to remounting the others (no live "
                           "connection to take over: fd holder gone, reboot or unreadable "
                           "state): containers started before on those layers see ENOTCONN"));
  }
  AddMetrics();

  service_ = std::make_unique<SnapshotsService>(*snapshotter_);
  grpc::ServerBuilder builder;  // no port: connections come from our own listener
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (!server_) return absl::InternalError("cannot start the gRPC server");
  if (pipe2(wake_, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  acceptor_ = std::thread([this] { AcceptLoop(); });
  started_ = true;
  Log(LogLevel::kInfo, "daemon",
      absl::StrCat("serving snapshotter root=", config_.root, " address=", config_.address,
                   listener_taken_over_ ? " (listening socket taken over)" : ""));
  if (!config_.cri_image_proxy.empty()) {
    CLIP_ASSIGN_OR_RETURN(cri_image_proxy_,
                          CriImageProxy::Start(absl::StrCat("unix://", config_.cri_image_proxy),
                                               absl::StrCat("unix://", config_.cri_image_upstream),
                                               pulled_credentials_));
    Log(LogLevel::kInfo, "daemon",
        absl::StrCat("CRI image service proxy at ", config_.cri_image_proxy, ", forwarding to ",
                     config_.cri_image_upstream, " (kubelet --image-service-endpoint=unix://",
                     config_.cri_image_proxy, ")"));
  }
  return absl::OkStatus();
}

void Daemon::AddMetrics() {
  // Prometheus metrics: RPCs (service), FUSE ops (fs), registry bytes (registry) and the
  // cache tiers report into the process-wide registry themselves; mounts are sampled here.
  using Type = MetricsRegistry::Type;
  MetricsRegistry& metrics = DefaultMetrics();
  // Cache tiers count into the registry themselves (span_store.h).
  RemoteLayers* remote = remote_.get();
  collectors_.push_back(
      metrics.AddCollector("clip_mounted_layers", "Layers mounted lazily through FUSE",
                           Type::kGauge, [remote](auto* out) {
                             out->push_back({{}, static_cast<double>(remote->mounted())});
                           }));
  collectors_.push_back(metrics.AddCollector(
      "clip_layers", "Mounted layers by state: lazy, filling (background fill), local (a tree)",
      Type::kGauge, [remote](auto* out) {
        const RemoteLayers::States st = remote->states();
        out->push_back({{{"state", "lazy"}}, static_cast<double>(st.lazy)});
        out->push_back({{{"state", "filling"}}, static_cast<double>(st.filling)});
        out->push_back({{{"state", "local"}}, static_cast<double>(st.local)});
      }));
  collectors_.push_back(
      metrics.AddCollector("clip_cache_pending_writes",
                           "Span writes to the disk cache and the remote cache queued or in flight",
                           Type::kGauge, [write_back = write_back_.get()](auto* out) {
                             out->push_back({{}, static_cast<double>(write_back->Pending())});
                           }));
  if (!config_.metrics_address.empty()) {
    auto started = MetricsServer::Start(config_.metrics_address, &metrics);
    if (!started.ok()) {
      Log(LogLevel::kError, "daemon", absl::StrCat("metrics: ", started.status().message()));
      return;
    }
    metrics_server_ = *std::move(started);
    Log(LogLevel::kInfo, "daemon",
        absl::StrCat("metrics on ", metrics_server_->address(), "/metrics"));
  }
}

void Daemon::AcceptLoop() {
  for (;;) {
    pollfd fds[2] = {{listener_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int c = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) continue;
    grpc::AddInsecureChannelFromFd(server_.get(), c);  // gRPC owns it now
  }
}

void Daemon::StopServing() {
  if (acceptor_.joinable()) {
    // Stop accepting; the listening socket itself stays open in the holder, so calls
    // made until the next daemon runs wait in its backlog instead of being refused.
    (void)!write(wake_[1], "x", 1);
    acceptor_.join();
  }
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_->Wait();
  }
}

void Daemon::Handover() {
  if (stopped_) return;
  stopped_ = true;
  StopServing();
  if (fuse_) fuse_->Detach();  // finishes the requests in hand; unmounts nothing
  if (!started_) return;       // a failed start: nothing was served
  Log(LogLevel::kInfo, "daemon",
      fd_store_ ? absl::StrCat("handed ", remote_ ? remote_->mounted() : 0,
                               " layer mount(s) and the socket over to the fd holder")
                : "stopped without an fd holder: running containers lose their lazy layers");
}

void Daemon::StopAndUnmount() {
  if (stopped_) return;
  stopped_ = true;
  StopServing();
  remote_.reset();  // unmounts every lazy layer (and the holder lets go of each)
  if (fd_store_) (void)fd_store_->Quit();
  unlink(config_.address.c_str());
  Log(LogLevel::kInfo, "daemon", "stopped: every layer unmounted, fd holder ended");
}

Daemon::~Daemon() {
  // A daemon that failed to start hands over too: what it took from the holder (mounts
  // of running containers, the listener) stays there for the next one.
  if (fuse_ && !stopped_) Handover();
  cri_image_proxy_.reset();
  metrics_server_.reset();
  collectors_.clear();
  service_.reset();
  server_.reset();
  snapshotter_.reset();
  remote_.reset();
  fuse_.reset();
  if (listener_ >= 0) close(listener_);
  for (int fd : wake_) {
    if (fd >= 0) close(fd);
  }
  if (lock_fd_ >= 0) close(lock_fd_);  // the next daemon may start taking over
}

}  // namespace clip
