// The CRI image proxy between a client (kubelet's role) and a fake containerd image
// service: every call's bytes go through unchanged both ways (unknown fields and
// methods included), errors come back as containerd gave them, a PullImage's
// credentials are kept for the image's registry host (user/password or the `auth`
// form), and a RemoveImage (by id or name) drops them with the host's last image.
#include "snapshotter/cri_image_proxy.h"

#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
// A length-delimited field.
std::string Field(int number, const std::string& bytes) {
  return Varint(static_cast<uint64_t>(number) << 3 | 2) + Varint(bytes.size()) + bytes;
}

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}
std::string Bytes(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  std::string out;
  EXPECT_TRUE(b.Dump(&slices).ok());
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// containerd's image service, faked: records each call, answers PullImage with an
// image id (or, for an image named "*/private:*" pulled with a password other than
// "right", containerd's error for a registry's 401), fails
// "/runtime.v1.ImageService/ImageStatus" with NOT_FOUND, echoes the rest. `during_pull`
// records the password the snapshotter would use for reg.example while a pull runs.
class FakeImageService final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    class Call final : public grpc::ServerGenericBidiReactor {
     public:
      Call(FakeImageService* s, grpc::GenericCallbackServerContext* ctx) : s_(s), ctx_(ctx) {
        StartRead(&request_);
      }
      void OnReadDone(bool ok) override {
        if (!ok) return Finish(grpc::Status::CANCELLED);
        const std::string method = ctx_->method(), bytes = Bytes(request_);
        {
          absl::MutexLock lock(&s_->mu);
          s_->calls.emplace_back(method, bytes);
        }
        if (method == "/runtime.v1.ImageService/ImageStatus") {
          return Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "image \"x\" not found"));
        }
        if (method == "/runtime.v1.ImageService/PullImage") {
          absl::StatusOr<CriPull> pull = ParsePullImageRequest(bytes);
          if (s_->snapshotter != nullptr) {
            auto c = s_->snapshotter->Get("reg.example");
            absl::MutexLock lock(&s_->mu);
            s_->during_pull = c.ok() && c->has_value() ? (*c)->password : "";
          }
          if (pull.ok() && absl::StrContains(pull->image, "/private:") &&
              (!pull->credential || pull->credential->password != "right")) {
            return Finish(grpc::Status(grpc::StatusCode::UNKNOWN, kDenied));
          }
        }
        response_ = method == "/runtime.v1.ImageService/PullImage" ? Buffer(Field(1, "sha256:1d0e"))
                                                                   : Buffer(bytes);
        StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
      }
      void OnDone() override { delete this; }

     private:
      FakeImageService* s_;
      grpc::GenericCallbackServerContext* ctx_;
      grpc::ByteBuffer request_, response_;
    };
    return new Call(this, ctx);
  }
  static constexpr char kDenied[] =
      "failed to pull and unpack image \"reg.example/team/private:v1\": failed to resolve "
      "reference \"reg.example/team/private:v1\": unexpected status from HEAD request to "
      "https://reg.example/v2/team/private/manifests/v1: 401 Unauthorized";
  const CredentialStore* snapshotter = nullptr;
  absl::Mutex mu;
  std::vector<std::pair<std::string, std::string>> calls ABSL_GUARDED_BY(mu);
  std::string during_pull ABSL_GUARDED_BY(mu);
};

class CriImageProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Short paths (a unix socket's is at most 107 bytes; TEST_TMPDIR is longer).
    upstream_addr_ = absl::StrCat("unix:///tmp/clip-cri-up-", getpid(), ".sock");
    proxy_addr_ = absl::StrCat("unix:///tmp/clip-cri-proxy-", getpid(), ".sock");
    fake_.snapshotter = pulled_.get();
    grpc::ServerBuilder builder;
    builder.AddListeningPort(upstream_addr_, grpc::InsecureServerCredentials());
    builder.RegisterCallbackGenericService(&fake_);
    upstream_ = builder.BuildAndStart();
    ASSERT_NE(upstream_, nullptr);
    auto proxy = CriImageProxy::Start(proxy_addr_, upstream_addr_, pulled_);
    ASSERT_THAT(proxy, IsOk());
    proxy_ = *std::move(proxy);
    stub_ = std::make_unique<grpc::GenericStub>(
        grpc::CreateChannel(proxy_addr_, grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    proxy_.reset();
    if (upstream_) upstream_->Shutdown();
    for (const std::string& a : {upstream_addr_, proxy_addr_}) unlink(a.substr(7).c_str());
  }
  // Calls `method` through the proxy; the answer's bytes in *out.
  grpc::Status Call(const std::string& method, const std::string& request, std::string* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::ByteBuffer req = Buffer(request), resp;
    absl::Mutex mu;
    bool done = false;
    grpc::Status status;
    stub_->UnaryCall(&ctx, method, grpc::StubOptions(), &req, &resp, [&](grpc::Status s) {
      absl::MutexLock lock(&mu);
      status = std::move(s);
      done = true;
    });
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&done));
    if (status.ok()) *out = Bytes(resp);
    return status;
  }
  std::pair<std::string, std::string> LastCall() {
    absl::MutexLock lock(&fake_.mu);
    return fake_.calls.back();
  }

  std::string upstream_addr_, proxy_addr_;
  FakeImageService fake_;
  std::unique_ptr<grpc::Server> upstream_;
  std::shared_ptr<PulledCredentials> pulled_ = std::make_shared<PulledCredentials>();
  std::unique_ptr<CriImageProxy> proxy_;
  std::unique_ptr<grpc::GenericStub> stub_;
};

TEST_F(CriImageProxyTest, ForwardsEveryCallUnchangedAndKeepsPullCredentials) {
  // PullImage with a user and password, and a field this proxy does not know (99).
  const std::string spec = Field(1, "reg.example:5000/team/app:v1") + Field(99, "future");
  const std::string pull = Field(1, spec) + Field(2, Field(1, "alice") + Field(2, "s3cret")) +
                           Field(3, Field(1, "sandbox config"));
  std::string answer;
  ASSERT_TRUE(Call("/runtime.v1.ImageService/PullImage", pull, &answer).ok());
  EXPECT_EQ(LastCall(), std::make_pair(std::string("/runtime.v1.ImageService/PullImage"), pull));
  EXPECT_EQ(answer, Field(1, "sha256:1d0e"));
  auto cred = pulled_->Get("reg.example:5000");
  ASSERT_TRUE(cred.ok() && cred->has_value());
  EXPECT_EQ((*cred)->username, "alice");
  EXPECT_EQ((*cred)->password, "s3cret");

  // Any other method, unknown ones included: bytes both ways.
  const std::string fs = Field(7, "whatever the next CRI adds");
  ASSERT_TRUE(Call("/runtime.v1.ImageService/ImageFsInfo", fs, &answer).ok());
  EXPECT_EQ(answer, fs);
  // containerd's errors come back as they were.
  grpc::Status missing = Call("/runtime.v1.ImageService/ImageStatus", Field(1, spec), &answer);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(missing.error_message(), "image \"x\" not found");

  // RemoveImage by the id the pull answered: the host's last image, so its credentials go.
  ASSERT_TRUE(
      Call("/runtime.v1.ImageService/RemoveImage", Field(1, Field(1, "sha256:1d0e")), &answer)
          .ok());
  EXPECT_EQ(pulled_->hosts(), 0u);
  EXPECT_FALSE(pulled_->Get("reg.example:5000")->has_value());
}

TEST_F(CriImageProxyTest, AuthFormAndPullsWithoutCredentials) {
  const std::string auth = absl::Base64Escape("bob:pa:ss");
  const std::string pull = Field(1, Field(1, "reg.example/app:v2")) + Field(2, Field(3, auth));
  std::string answer;
  ASSERT_TRUE(Call("/runtime.v1.ImageService/PullImage", pull, &answer).ok());
  auto cred = pulled_->Get("reg.example");
  ASSERT_TRUE(cred.ok() && cred->has_value());
  EXPECT_EQ((*cred)->username, "bob");
  EXPECT_EQ((*cred)->password, "pa:ss");
  // A public image: nothing kept; removing by name drops bob's with its image.
  ASSERT_TRUE(
      Call("/runtime.v1.ImageService/PullImage", Field(1, Field(1, "public.example/x")), &answer)
          .ok());
  EXPECT_EQ(pulled_->hosts(), 1u);
  ASSERT_TRUE(Call("/runtime.v1.ImageService/RemoveImage", Field(1, Field(1, "reg.example/app:v2")),
                   &answer)
                  .ok());
  EXPECT_EQ(pulled_->hosts(), 0u);
}

TEST_F(CriImageProxyTest, CredentialsCountWhileThePullRunsAndGoIfItFails) {
  auto pull = [](const std::string& password) {
    return Field(1, Field(1, "reg.example/team/private:v1")) +
           Field(2, Field(1, "alice") + Field(2, password));
  };
  auto during = [&] {
    absl::MutexLock lock(&fake_.mu);
    return fake_.during_pull;
  };
  std::string answer;
  ASSERT_TRUE(Call("/runtime.v1.ImageService/PullImage", pull("right"), &answer).ok());
  EXPECT_EQ(during(), "right");  // containerd mounts the layers while it pulls
  // Wrong credentials: containerd's own error, unchanged (what kubelet shows without the
  // proxy); the snapshotter saw them only while the pull ran, and the right ones stay.
  grpc::Status denied = Call("/runtime.v1.ImageService/PullImage", pull("wrong"), &answer);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(denied.error_message(), FakeImageService::kDenied);
  EXPECT_EQ(during(), "wrong");
  EXPECT_EQ((*pulled_->Get("reg.example"))->password, "right");
  ASSERT_TRUE(Call("/runtime.v1.ImageService/RemoveImage",
                   Field(1, Field(1, "reg.example/team/private:v1")), &answer)
                  .ok());
  // Only wrong ones ever: nothing kept.
  EXPECT_FALSE(Call("/runtime.v1.ImageService/PullImage", pull("wrong"), &answer).ok());
  EXPECT_EQ(pulled_->hosts(), 0u);
}

TEST(CriMessagesTest, EveryAuthConfigField) {
  // username 1, password 2, auth 3 (ignored when a username is set), server_address 4,
  // identity_token 5, registry_token 6.
  auto pull = ParsePullImageRequest(
      Field(1, Field(1, "reg.example/app")) +
      Field(2, Field(1, "u") + Field(2, "p") + Field(3, absl::Base64Escape("x:y")) +
                   Field(4, "reg.example") + Field(5, "refresh") + Field(6, "bearer")));
  ASSERT_THAT(pull, IsOk());
  ASSERT_TRUE(pull->credential.has_value());
  EXPECT_EQ(pull->credential->username, "u");
  EXPECT_EQ(pull->credential->password, "p");
  EXPECT_EQ(pull->credential->identity_token, "refresh");
  EXPECT_EQ(pull->credential->registry_token, "bearer");
  EXPECT_EQ(pull->server_address, "reg.example");
}

TEST(CriMessagesTest, MalformedBytesAreErrors) {
  EXPECT_FALSE(ParsePullImageRequest(std::string("\x0a\x05", 2) + "ab").ok());  // field > message
  EXPECT_FALSE(ParseRemoveImageRequest("\x0a").ok());
  auto empty = ParsePullImageRequest("");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->credential.has_value());
}

}  // namespace
}  // namespace clip
