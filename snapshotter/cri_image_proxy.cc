#include "snapshotter/cri_image_proxy.h"

#include <unistd.h>

#include <chrono>
#include <functional>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "registry/reference.h"

namespace clip {

namespace {

using google::protobuf::internal::WireFormatLite;

constexpr char kPullImage[] = "/runtime.v1.ImageService/PullImage";
constexpr char kRemoveImage[] = "/runtime.v1.ImageService/RemoveImage";

// Calls `field` with the number and bytes of each length-delimited field of a message;
// skips the others. kInvalidArgument when the bytes are not a well-formed message.
absl::Status ForEachField(absl::string_view bytes,
                          const std::function<void(int, const std::string&)>& field) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) {
      if (in.CurrentPosition() == static_cast<int>(bytes.size())) return absl::OkStatus();
      break;
    }
    if (WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t size = 0;
      std::string value;
      if (!in.ReadVarint32(&size) || !in.ReadString(&value, static_cast<int>(size))) break;
      field(WireFormatLite::GetTagFieldNumber(tag), value);
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      break;
    }
  }
  return absl::InvalidArgumentError("not a well-formed CRI message");
}

// The string field `number` of a message (empty when absent).
absl::StatusOr<std::string> StringField(absl::string_view bytes, int number) {
  std::string out;
  absl::Status st = ForEachField(bytes, [&](int n, const std::string& v) {
    if (n == number) out = v;
  });
  if (!st.ok()) return st;
  return out;
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

}  // namespace

absl::StatusOr<CriPull> ParsePullImageRequest(absl::string_view bytes) {
  CriPull pull;
  std::string spec, auth;
  absl::Status st = ForEachField(bytes, [&](int n, const std::string& v) {
    if (n == 1) spec = v;  // ImageSpec image
    if (n == 2) auth = v;  // AuthConfig auth
  });
  if (!st.ok()) return st;
  absl::StatusOr<std::string> image = StringField(spec, 1);
  if (!image.ok()) return image.status();
  pull.image = *image;
  Credential c;
  std::string encoded;
  st = ForEachField(auth, [&](int n, const std::string& v) {
    switch (n) {
      case 1:
        c.username = v;
        break;
      case 2:
        c.password = v;
        break;
      case 3:
        encoded = v;
        break;  // base64("user:password")
      case 4:
        pull.server_address = v;
        break;
      case 5:
        c.identity_token = v;
        break;
      case 6:
        c.registry_token = v;
        break;
      default:
        break;
    }
  });
  if (!st.ok()) return st;
  std::string decoded;
  if (c.username.empty() && !encoded.empty() && absl::Base64Unescape(encoded, &decoded)) {
    const size_t colon = decoded.find(':');
    if (colon != std::string::npos) {
      c.username = decoded.substr(0, colon);
      c.password = decoded.substr(colon + 1);
    }
  }
  if (!c.empty()) pull.credential = std::move(c);
  return pull;
}

absl::StatusOr<std::string> ParsePullImageResponse(absl::string_view bytes) {
  return StringField(bytes, 1);
}

absl::StatusOr<std::string> ParseRemoveImageRequest(absl::string_view bytes) {
  absl::StatusOr<std::string> spec = StringField(bytes, 1);
  if (!spec.ok()) return spec.status();
  return StringField(*spec, 1);
}

class CriImageProxy::Service final : public grpc::CallbackGenericService {
 public:
  Service(std::shared_ptr<grpc::Channel> upstream, std::shared_ptr<PulledCredentials> credentials)
      : stub_(std::move(upstream)), credentials_(std::move(credentials)) {}

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new Call(this, ctx);
  }

 private:
  struct Pull {
    uint64_t id;
    std::string image;
    std::string host;
  };

  // One call: its request read, forwarded as it is, its answer returned as it is.
  class Call final : public grpc::ServerGenericBidiReactor {
   public:
    Call(Service* service, grpc::GenericCallbackServerContext* ctx) : service_(service), ctx_(ctx) {
      StartRead(&request_);
    }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request message"));
        return;
      }
      if (ctx_->method() == kPullImage) pull_ = service_->PullStarts(request_);
      upstream_.set_deadline(ctx_->deadline());
      service_->stub_.UnaryCall(&upstream_, ctx_->method(), grpc::StubOptions(), &request_,
                                &response_, [this](grpc::Status st) { Answer(std::move(st)); });
    }
    void OnDone() override { delete this; }

   private:
    void Answer(grpc::Status st) {
      if (pull_) service_->PullEnded(*pull_, st.ok(), response_);
      if (!st.ok()) {
        Finish(st);
        return;
      }
      if (ctx_->method() == kRemoveImage) service_->Removed(request_);
      StartWriteAndFinish(&response_, grpc::WriteOptions(), st);
    }

    Service* const service_;
    grpc::GenericCallbackServerContext* const ctx_;
    grpc::ClientContext upstream_;
    grpc::ByteBuffer request_;
    grpc::ByteBuffer response_;
    std::optional<Pull> pull_;  // a PullImage with credentials
  };

  // A PullImage with credentials: they count from PullStarts on (containerd mounts the
  // image's layers while it pulls).
  std::optional<Pull> PullStarts(const grpc::ByteBuffer& request) {
    absl::StatusOr<CriPull> pull = ParsePullImageRequest(Flatten(request));
    if (!pull.ok() || !pull->credential) return std::nullopt;
    absl::StatusOr<Reference> ref = Reference::Parse(pull->image);
    if (!ref.ok()) return std::nullopt;
    const std::string host = ref->domain();
    return Pull{credentials_->Pulling(host, pull->image, *std::move(pull->credential)), pull->image,
                host};
  }
  void PullEnded(const Pull& pull, bool ok, const grpc::ByteBuffer& response) {
    absl::StatusOr<std::string> id =
        ok ? ParsePullImageResponse(Flatten(response)) : absl::StatusOr<std::string>("");
    credentials_->Pulled(pull.id, ok, id.ok() ? *id : "");
    if (ok) {
      Log(LogLevel::kInfo, "cri",
          absl::StrCat("keeping the pull credentials of ", pull.image, " for ", pull.host,
                       " in memory until the image is removed"));
    }
  }
  void Removed(const grpc::ByteBuffer& request) {
    absl::StatusOr<std::string> image = ParseRemoveImageRequest(Flatten(request));
    if (image.ok() && !image->empty() && credentials_->Drop(*image)) {
      Log(LogLevel::kInfo, "cri", absl::StrCat("dropped the pull credentials of ", *image));
    }
  }

  grpc::GenericStub stub_;
  const std::shared_ptr<PulledCredentials> credentials_;
};

absl::StatusOr<std::unique_ptr<CriImageProxy>> CriImageProxy::Start(
    const std::string& listen, const std::string& upstream,
    std::shared_ptr<PulledCredentials> credentials) {
  if (absl::StartsWith(listen, "unix://")) unlink(listen.substr(7).c_str());  // a stale socket
  std::unique_ptr<CriImageProxy> proxy(new CriImageProxy());
  proxy->service_ = std::make_unique<Service>(
      grpc::CreateChannel(upstream, grpc::InsecureChannelCredentials()), std::move(credentials));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(proxy->service_.get());
  builder.SetMaxReceiveMessageSize(16 << 20);
  proxy->server_ = builder.BuildAndStart();
  if (proxy->server_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot serve the CRI image proxy at ", listen));
  }
  return proxy;
}

CriImageProxy::~CriImageProxy() {
  if (server_ != nullptr)
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

}  // namespace clip
