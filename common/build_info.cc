#include "common/build_info.h"

#define FUSE_USE_VERSION 314
#include <curl/curl.h>
#include <fuse_lowlevel.h>
#include <google/protobuf/stubs/common.h>
#include <grpcpp/grpcpp.h>
#include <openssl/crypto.h>
#include <zlib.h>

#include "absl/strings/str_cat.h"

namespace clip {

std::string BuildInfo() {
  return absl::StrCat("clip ", kClipVersion, "\n",       //
                      "grpc++ ", grpc::Version(), "\n",  //
                      "protobuf ",
                      google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION), "\n",
                      "libfuse ", fuse_pkgversion(), "\n",                            //
                      "zlib ", zlibVersion(), "\n",                                   //
                      "libcurl ", curl_version_info(CURLVERSION_NOW)->version, "\n",  //
                      "openssl ", OpenSSL_version(OPENSSL_VERSION), "\n");
}

}  // namespace clip
