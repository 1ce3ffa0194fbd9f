// CriImageProxy: an optional CRI image service in front of containerd's, so private
// images are lazy on Kubernetes. kubelet hands the credentials of imagePullSecrets and
// credential-provider plugins to containerd in each PullImage; a snapshotter never sees
// them. Pointed at this proxy (kubelet --image-service-endpoint), kubelet's image calls
// pass through clip: every call is forwarded to containerd unchanged (its bytes and
// deadline, whatever the method), and the answer comes back unchanged. On the way, a
// PullImage's AuthConfig goes to PulledCredentials for the image's registry host (memory
// only, never logged), which the lazy reads of that image's layers use; a successful
// RemoveImage drops it with the host's last image.
//
//   auto pulled = std::make_shared<PulledCredentials>(docker_config);
//   CLIP_ASSIGN_OR_RETURN(auto proxy, CriImageProxy::Start(
//       "unix:///run/containerd-clip-grpc/cri-image.sock",
//       "unix:///run/containerd/containerd.sock", pulled));
//
// Only the fields it needs are read from the wire (runtime.v1 field numbers); the rest
// passes as bytes, so newer CRI versions pass through too.
//
// Thread safety: Start/destruction from one thread; calls are served concurrently.
#ifndef CLIP_SNAPSHOTTER_CRI_IMAGE_PROXY_H_
#define CLIP_SNAPSHOTTER_CRI_IMAGE_PROXY_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/server.h"
#include "registry/pulled_credentials.h"

namespace clip {

// The parts of runtime.v1 messages the proxy reads (wire format; unknown fields skipped).
struct CriPull {
  std::string image;                     // PullImageRequest.image.image
  std::string server_address;            // PullImageRequest.auth.server_address
  std::optional<Credential> credential;  // from auth: username/password, auth, the tokens
};
// kInvalidArgument when the bytes are not a well-formed message.
absl::StatusOr<CriPull> ParsePullImageRequest(absl::string_view bytes);
absl::StatusOr<std::string> ParsePullImageResponse(absl::string_view bytes);   // image_ref
absl::StatusOr<std::string> ParseRemoveImageRequest(absl::string_view bytes);  // image.image

class CriImageProxy {
 public:
  // Listens on `listen` (a gRPC address, e.g. unix:///path) and forwards to `upstream`.
  static absl::StatusOr<std::unique_ptr<CriImageProxy>> Start(
      const std::string& listen, const std::string& upstream,
      std::shared_ptr<PulledCredentials> credentials);
  ~CriImageProxy();

  class Service;

 private:
  CriImageProxy() = default;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_CRI_IMAGE_PROXY_H_
