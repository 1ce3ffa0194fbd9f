#!/usr/bin/python3
"""A small Kubernetes CRI v1 client for //test:cri_test (kubelet's side of the calls).

Usage: cri_client.py --socket SOCK [--image-socket SOCK] --stubs DIR COMMAND [ARGS]
  --image-socket: where image calls go (kubelet's --image-service-endpoint); --socket
  by default.
  DIR holds cri_api_pb2.py and cri_api_pb2_grpc.py, generated from
  testdata/cri_api.proto by `python3 -m grpc_tools.protoc`.

Commands (results on stdout: an ID, or the response as JSON with proto field names):
  version | status | imagefs | images
  pull REF [--auth USER:PASSWORD]  the image ref (ID) the runtime returns; with
                                  --auth, the credentials go in the request's AuthConfig
                                  (username, password), as kubelet sends a pull secret's
  rmi REF
  runp --name N --uid U --logdir DIR --cgroup-parent CG --save FILE
                                  a host-network pod (network NODE, pid and ipc POD);
                                  its PodSandboxConfig is saved to FILE for `create`
  create --pod ID --pod-config FILE --name N --image REF --log-path P CMD [ARG...]
  start ID | rm ID | stopp ID | rmp ID | cstatus ID
  wait ID [--timeout S]           until the container has exited; its status as JSON
                                  (exit status 1 if it did not exit in time)
A failed call prints "cri_client: COMMAND: CODE: DETAILS" on stderr and exits with 2.
"""
import argparse
import json
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--socket", required=True)
    p.add_argument("--stubs", required=True)
    p.add_argument("--image-socket")
    p.add_argument("--call-timeout", type=float, default=60)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("version", "status", "imagefs", "images"):
        sub.add_parser(name)
    for name in ("pull", "rmi", "start", "rm", "stopp", "rmp", "cstatus"):
        sub.add_parser(name).add_argument("id")
    sub.choices["pull"].add_argument("--auth")
    r = sub.add_parser("runp")
    for a in ("--name", "--uid", "--logdir", "--cgroup-parent", "--save"):
        r.add_argument(a, required=True)
    c = sub.add_parser("create")
    for a in ("--pod", "--pod-config", "--name", "--image", "--log-path"):
        c.add_argument(a, required=True)
    c.add_argument("command", nargs=argparse.REMAINDER)
    w = sub.add_parser("wait")
    w.add_argument("id")
    w.add_argument("--timeout", type=float, default=30)
    args = p.parse_args()

    sys.path.insert(0, args.stubs)
    import grpc
    from google.protobuf import json_format
    import cri_api_pb2 as api
    import cri_api_pb2_grpc as api_grpc

    channel = grpc.insecure_channel("unix://" + args.socket)
    rt = api_grpc.RuntimeServiceStub(channel)
    img = api_grpc.ImageServiceStub(
        grpc.insecure_channel("unix://" + args.image_socket) if args.image_socket else channel)
    t = args.call_timeout

    def show(msg):
        print(json.dumps(json_format.MessageToDict(msg, preserving_proto_field_name=True,
                                                   including_default_value_fields=True),
                         indent=1, sort_keys=True))

    def call(fn, req):
        try:
            return fn(req, timeout=t)
        except grpc.RpcError as e:
            print(f"cri_client: {args.cmd}: {e.code().name}: {e.details()}", file=sys.stderr)
            sys.exit(2)

    cmd = args.cmd
    if cmd == "version":
        show(call(rt.Version, api.VersionRequest(version="v1")))
    elif cmd == "status":
        show(call(rt.Status, api.StatusRequest(verbose=False)))
    elif cmd == "imagefs":
        show(call(img.ImageFsInfo, api.ImageFsInfoRequest()))
    elif cmd == "images":
        show(call(img.ListImages, api.ListImagesRequest()))
    elif cmd == "pull":
        auth = None
        if args.auth:
            user, _, password = args.auth.partition(":")
            auth = api.AuthConfig(username=user, password=password)
        print(call(img.PullImage, api.PullImageRequest(image=api.ImageSpec(image=args.id),
                                                       auth=auth)).image_ref)
    elif cmd == "rmi":
        call(img.RemoveImage, api.RemoveImageRequest(image=api.ImageSpec(image=args.id)))
    elif cmd == "runp":
        config = api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name=args.name, uid=args.uid, namespace="clip-cri-test",
                                            attempt=0),
            # No hostname: a host-network pod shares the host's UTS namespace (kubelet
            # sets none either; runc refuses a hostname without a private UTS namespace).
            log_directory=args.logdir,
            linux=api.LinuxPodSandboxConfig(
                cgroup_parent=args.cgroup_parent,
                security_context=api.LinuxSandboxSecurityContext(
                    namespace_options=api.NamespaceOption(network=api.NODE, pid=api.POD,
                                                          ipc=api.POD))))
        resp = call(rt.RunPodSandbox, api.RunPodSandboxRequest(config=config))
        with open(args.save, "wb") as f:
            f.write(config.SerializeToString())
        print(resp.pod_sandbox_id)
    elif cmd == "create":
        pod_config = api.PodSandboxConfig()
        with open(args.pod_config, "rb") as f:
            pod_config.ParseFromString(f.read())
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        config = api.ContainerConfig(
            metadata=api.ContainerMetadata(name=args.name, attempt=0),
            image=api.ImageSpec(image=args.image),
            command=command[:1], args=command[1:], log_path=args.log_path)
        resp = call(rt.CreateContainer, api.CreateContainerRequest(
            pod_sandbox_id=args.pod, config=config, sandbox_config=pod_config))
        print(resp.container_id)
    elif cmd == "start":
        call(rt.StartContainer, api.StartContainerRequest(container_id=args.id))
    elif cmd == "rm":
        call(rt.RemoveContainer, api.RemoveContainerRequest(container_id=args.id))
    elif cmd == "stopp":
        call(rt.StopPodSandbox, api.StopPodSandboxRequest(pod_sandbox_id=args.id))
    elif cmd == "rmp":
        call(rt.RemovePodSandbox, api.RemovePodSandboxRequest(pod_sandbox_id=args.id))
    elif cmd == "cstatus":
        show(call(rt.ContainerStatus, api.ContainerStatusRequest(container_id=args.id)))
    elif cmd == "wait":
        deadline = time.monotonic() + args.timeout
        while True:
            st = call(rt.ContainerStatus, api.ContainerStatusRequest(container_id=args.id))
            if st.status.state == api.CONTAINER_EXITED or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        show(st)
        sys.exit(0 if st.status.state == api.CONTAINER_EXITED else 1)


if __name__ == "__main__":
    main()
