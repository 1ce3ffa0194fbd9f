"""clip_proto_library: .proto files to C++ (and gRPC) code with Debian's protoc.

Bazel 4's native proto rules need @com_google_protobuf, which cannot be fetched
offline, so this macro runs /usr/bin/protoc (and /usr/bin/grpc_cpp_plugin) in a
genrule and wraps the outputs in a cc_library.

Paths: the proto root is the package that calls the macro, so in //proto a file
`proto/containerd/types/mount.proto` is imported as "containerd/types/mount.proto"
and its header is included as "containerd/types/mount.pb.h". Well-known types
(google/protobuf/*.proto) come from /usr/include and link from libprotobuf.

Example:
    clip_proto_library(
        name = "snapshots_proto",
        srcs = ["containerd/services/snapshots/v1/snapshots.proto"],
        deps = [":mount_proto"],
        grpc = True,
    )
"""

def clip_proto_library(name, srcs, deps = [], grpc = False, visibility = None):
    """Declares <name> (cc_library) and <name>_srcs (the .proto files, transitively).

    Args:
      name: the cc_library's name.
      srcs: .proto files of this package.
      deps: other clip_proto_library targets of the same package that srcs import.
      grpc: also generate gRPC service stubs (.grpc.pb.{h,cc}).
      visibility: visibility of the cc_library, its sources and its generated files.
    """
    package = native.package_name()
    strip = len(package) + 1 if package else 0
    outs = []
    for src in srcs:
        if not src.endswith(".proto"):
            fail("clip_proto_library: %s is not a .proto file" % src)
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]

    native.filegroup(
        name = name + "_srcs",
        srcs = srcs + [d + "_srcs" for d in deps],
        visibility = visibility,
    )

    root = package if package else "."
    out_root = "$(GENDIR)/" + package if package else "$(GENDIR)"
    grpc_flags = ""
    if grpc:
        grpc_flags = ("--grpc_out=%s --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin" %
                      out_root)
    cmd = " ".join([
        "/usr/bin/protoc",
        "--proto_path=%s" % root,
        "--proto_path=/usr/include",
        "--cpp_out=%s" % out_root,
        grpc_flags,
    ] + ["%s/%s" % (root, s) for s in srcs])

    native.genrule(
        name = name + "_gen",
        srcs = [name + "_srcs"],
        outs = outs,
        cmd = cmd,
        message = "protoc %s" % name,
        visibility = visibility,
    )

    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        includes = ["."],
        deps = deps + ["@system//:protobuf"] + (["@system//:grpc++"] if grpc else []),
        visibility = visibility,
    )
