#!/usr/bin/env python3
"""A stand-in for the Kubernetes API server (kube-apiserver), for tests.

No real API server can be installed on the test machines, so this one speaks
the same wire protocol for the few resources nodevitals uses: HTTPS with a
serving certificate signed by its own CA, bearer-token authentication, JSON
bodies, `resourceVersion` on every object (a stale update gets 409 Conflict),
strategic-merge patches of `nodes/status` merged by condition type, Leases
(coordination.k8s.io/v1), Events (events.k8s.io/v1) and ConfigMaps. Every
object it stores is validated against the Kubernetes OpenAPI schema of the
targeted version (kubernetes-validate, strict: unknown fields are rejected),
so it cannot accept what a real API server would reject; a body that fails
gets 422 Invalid, as the real one answers.

It records every request it served (verb, API group, resource, subresource,
namespace, name) as JSON lines, so a test can compare what the agent did with
the RBAC rules it ships.

Fault modes, set through the plain-HTTP control port (loopback only):
normal, delay (every answer 30 s late, or --delay), 500 (every request
answered 500 InternalError) and garbage (200 with a body that is not JSON).
"Down" is the process stopped: the state file lets a new one carry on.

Usage: kube_apiserver.py --dir DIR [--port N] [--node NAME ...]
Writes DIR/ca.crt, DIR/token and DIR/kubeconfig, then prints
"listening PORT CONTROL_PORT" on stdout.
"""

import argparse
import copy
import datetime
import http.server
import json
import os
import re
import secrets
import ssl
import subprocess
import sys
import threading
import time
import uuid

import kubernetes_validate

K8S_VERSION = "1.37"
MAX_BODY = 1 << 20

# (group, version, plural) -> kind
KINDS = {
    ("", "v1", "nodes"): "Node",
    ("", "v1", "configmaps"): "ConfigMap",
    ("events.k8s.io", "v1", "events"): "Event",
    ("coordination.k8s.io", "v1", "leases"): "Lease",
}
CLUSTER_SCOPED = {"nodes"}

PATH_RE = re.compile(
    r"^/(?:api/(?P<cv>v1)|apis/(?P<group>[^/]+)/(?P<gv>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)


def now_rfc3339(micro=False):
    t = datetime.datetime.now(datetime.timezone.utc)
    if micro:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_certs(d):
    """A CA and a serving certificate for 127.0.0.1, as kubeadm would make."""
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    key, csr, crt = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.crt"))
    ext = os.path.join(d, "server.ext")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key,
        "-out", ca_crt, "-days", "2", "-subj", "/CN=stand-in-kubernetes-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
        "-subj", "/CN=kube-apiserver")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
        "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
    return ca_crt, crt, key


class Invalid(Exception):
    pass


def strategic_merge(target, patch):
    """Strategic merge patch as the API server applies it to a Node: maps merge
    recursively, null deletes, and the lists that Kubernetes declares with
    patchMergeKey (status.conditions: "type", status.addresses: "type") merge
    element by element on that key; other lists are replaced."""
    for k, v in patch.items():
        if k == "$patch":
            continue
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            strategic_merge(target[k], v)
        elif k in ("conditions", "addresses") and isinstance(v, list):
            current = target.get(k) or []
            for item in v:
                if not isinstance(item, dict) or "type" not in item:
                    raise Invalid("%s: every element needs the merge key \"type\"" % k)
                for i, existing in enumerate(current):
                    if existing.get("type") == item["type"]:
                        merged = copy.deepcopy(existing)
                        strategic_merge(merged, item)
                        current[i] = merged
                        break
                else:
                    current.append(copy.deepcopy(item))
            target[k] = current
        else:
            target[k] = copy.deepcopy(v)


def merge_patch(target, patch):
    """JSON merge patch (RFC 7386)."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            merge_patch(target[k], v)
        else:
            target[k] = copy.deepcopy(v)


class Store:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.objects = {}
        self.rv = 1
        if path and os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)
            self.rv = saved["rv"]
            self.objects = {tuple(json.loads(k)): v for k, v in saved["objects"].items()}

    def save(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"rv": self.rv,
                       "objects": {json.dumps(list(k)): v for k, v in self.objects.items()}}, f)
        os.replace(tmp, self.path)

    def stamp(self, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)


def validate(obj):
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        raise Invalid("%s: %s" % (path or "(root)", e.message))
    except Exception as e:  # schema not found, malformed apiVersion/kind
        raise Invalid(getattr(e, "message", str(e)))


class Api:
    def __init__(self, args):
        self.args = args
        self.store = Store(args.state)
        self.mode = "normal"
        self.record_lock = threading.Lock()
        with self.store.lock:
            for node in args.node:
                key = ("", "nodes", "", node)
                if key not in self.store.objects:
                    self.store.objects[key] = self.kubelet_node(node)
                    self.store.stamp(self.store.objects[key])
            self.store.save()

    @staticmethod
    def kubelet_node(name):
        """A Node as the kubelet registers it, with the kubelet's conditions."""
        t = now_rfc3339()
        cond = lambda typ, status, reason, msg: {
            "type": typ, "status": status, "reason": reason, "message": msg,
            "lastHeartbeatTime": t, "lastTransitionTime": t}
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": t,
                         "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {
                "conditions": [
                    cond("MemoryPressure", "False", "KubeletHasSufficientMemory",
                         "kubelet has sufficient memory available"),
                    cond("DiskPressure", "False", "KubeletHasNoDiskPressure",
                         "kubelet has no disk pressure"),
                    cond("PIDPressure", "False", "KubeletHasSufficientPID",
                         "kubelet has sufficient PID available"),
                    cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                ],
                "nodeInfo": {"kubeletVersion": "v1.37.0", "containerRuntimeVersion": "docker://28.0.0",
                             "architecture": "amd64", "bootID": "", "kernelVersion": "",
                             "kubeProxyVersion": "", "machineID": "", "operatingSystem": "linux",
                             "osImage": "", "systemUUID": ""},
            },
        }

    def record(self, entry):
        with self.record_lock, open(self.args.record, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def handle(self, user, method, path, query, headers, body):
        """Returns (code, object). Raises Invalid for 422."""
        m = PATH_RE.match(path)
        if not m:
            return 404, status(404, "NotFound", "the server could not find the requested resource")
        group = m.group("group") or ""
        version = m.group("cv") or m.group("gv")
        plural, ns, name, sub = m.group("plural"), m.group("ns") or "", m.group("name"), m.group("sub")
        kind = KINDS.get((group, version, plural))
        verb = {"GET": "get" if name else "list", "POST": "create", "PUT": "update",
                "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())
        self.record({"user": user, "verb": verb, "group": group, "resource": plural, "subresource": sub or "",
                     "namespace": ns, "name": name or ""})
        if kind is None or (plural in CLUSTER_SCOPED) == bool(ns) or (sub and sub != "status"):
            return 404, status(404, "NotFound", "the server could not find the requested resource")
        key = lambda n: (group, plural, ns, n)
        with self.store.lock:
            if method == "GET" and name:
                obj = self.store.objects.get(key(name))
                if obj is None:
                    return 404, not_found(plural, name)
                return 200, obj
            if method == "GET":
                items = [o for (g, p, n, _), o in sorted(self.store.objects.items())
                         if g == group and p == plural and n == ns]
                return 200, {"apiVersion": "v1", "kind": kind + "List",
                             "metadata": {"resourceVersion": str(self.store.rv)}, "items": items}
            obj = self.parse(body) if method in ("POST", "PUT", "PATCH") else None
            if method == "POST" and not name:
                return self.create(obj, kind, group, version, plural, ns, key)
            if method == "PUT" and name:
                return self.update(obj, kind, name, key(name))
            if method == "PATCH" and name:
                return self.patch(obj, headers.get("Content-Type", ""), name, key(name), plural)
            if method == "DELETE" and name:
                if self.store.objects.pop(key(name), None) is None:
                    return 404, not_found(plural, name)
                self.store.save()
                return 200, status(200, "", "deleted")
        return 405, status(405, "MethodNotAllowed", "the server does not allow this method")

    @staticmethod
    def parse(body):
        try:
            obj = json.loads(body or b"null")
        except ValueError as e:
            raise BadRequest("invalid JSON: %s" % e)
        if not isinstance(obj, dict):
            raise BadRequest("the body must be a JSON object")
        return obj

    def create(self, obj, kind, group, version, plural, ns, key):
        meta = obj.setdefault("metadata", {})
        if obj.get("kind") != kind or obj.get("apiVersion") != (group + "/" if group else "") + version:
            raise Invalid("kind/apiVersion do not match the URL")
        if meta.get("resourceVersion"):
            raise Invalid("metadata.resourceVersion: must be empty on create")
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + secrets.token_hex(3)
            meta["name"] = name
        if not name:
            raise Invalid("metadata.name: Required value")
        if ns and meta.setdefault("namespace", ns) != ns:
            raise Invalid("metadata.namespace: does not match the namespace of the URL")
        if key(name) in self.store.objects:
            return 409, status(409, "AlreadyExists", '%s "%s" already exists' % (plural, name))
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        self.check(obj)
        self.store.stamp(obj)
        self.store.objects[key(name)] = obj
        self.store.save()
        return 201, obj

    def update(self, obj, kind, name, k):
        current = self.store.objects.get(k)
        if current is None:
            return 404, not_found(kind.lower() + "s", name)
        rv = obj.get("metadata", {}).get("resourceVersion")
        if rv != current["metadata"]["resourceVersion"]:
            return 409, status(409, "Conflict",
                               'Operation cannot be fulfilled on %s "%s": the object has been '
                               "modified; please apply your changes to the latest version and try again"
                               % (kind.lower() + "s", name))
        meta = obj["metadata"]
        meta["uid"] = current["metadata"]["uid"]
        meta["creationTimestamp"] = current["metadata"]["creationTimestamp"]
        self.check(obj)
        self.store.stamp(obj)
        self.store.objects[k] = obj
        self.store.save()
        return 200, obj

    def patch(self, patch, content_type, name, k, plural):
        current = self.store.objects.get(k)
        if current is None:
            return 404, not_found(plural, name)
        updated = copy.deepcopy(current)
        ctype = content_type.split(";")[0].strip()
        if ctype == "application/strategic-merge-patch+json":
            if plural not in ("nodes", "configmaps"):
                return 415, status(415, "UnsupportedMediaType", "strategic merge patch is not supported for this resource")
            strategic_merge(updated, patch)
        elif ctype == "application/merge-patch+json":
            merge_patch(updated, patch)
        else:
            return 415, status(415, "UnsupportedMediaType", "the body of the request was in an unknown format")
        rv = patch.get("metadata", {}).get("resourceVersion")
        if rv is not None and rv != current["metadata"]["resourceVersion"]:
            return 409, status(409, "Conflict", "the object has been modified")
        for field in ("uid", "name", "creationTimestamp"):
            updated["metadata"][field] = current["metadata"].get(field)
        self.check(updated)
        self.store.stamp(updated)
        self.store.objects[k] = updated
        self.store.save()
        return 200, updated

    @staticmethod
    def check(obj):
        validate(obj)
        if obj["kind"] == "Node":
            types = [c.get("type") for c in obj.get("status", {}).get("conditions", [])]
            if len(types) != len(set(types)):
                raise Invalid("status.conditions: Duplicate value")
            for c in obj.get("status", {}).get("conditions", []):
                if c.get("status") not in ("True", "False", "Unknown"):
                    raise Invalid("status.conditions: status must be True, False or Unknown")
        if obj["kind"] == "Lease":
            d = obj.get("spec", {}).get("leaseDurationSeconds")
            if d is not None and d <= 0:
                raise Invalid("spec.leaseDurationSeconds: must be greater than 0")
        if obj["kind"] == "Event":
            for field in ("eventTime", "reportingController", "reportingInstance", "action", "reason"):
                if not obj.get(field):
                    raise Invalid("%s: Required value" % field)
            if obj.get("type") not in ("Normal", "Warning"):
                raise Invalid("type: must be Normal or Warning")
            if len(obj.get("note", "")) > 1024:
                raise Invalid("note: must have at most 1024 bytes")


class BadRequest(Exception):
    pass


def status(code, reason, message):
    return {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def not_found(plural, name):
    return status(404, "NotFound", '%s "%s" not found' % (plural, name))


def handler(api):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            sys.stderr.write("stand-in apiserver: " + (fmt % a) + "\n")

        def reply(self, code, body, ctype="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self.reply(413, status(413, "RequestEntityTooLarge", "request is too large"))
            body = self.rfile.read(length) if length else b""
            user = {"Bearer " + api.args.token_value: "agent",
                    "Bearer " + api.args.admin_token: "admin"}.get(self.headers.get("Authorization"))
            if user is None:
                return self.reply(401, status(401, "Unauthorized", "Unauthorized"))
            mode = api.mode
            if mode == "delay":
                time.sleep(api.args.delay)
            elif mode == "500":
                return self.reply(500, status(500, "InternalError", "stand-in: injected failure"))
            elif mode == "garbage":
                return self.reply(200, b"\x00<html>not json \xff", "application/json")
            path, _, query = self.path.partition("?")
            try:
                code, obj = api.handle(user, self.command, path, query, self.headers, body)
            except BadRequest as e:
                code, obj = 400, status(400, "BadRequest", str(e))
            except Invalid as e:
                code, obj = 422, status(422, "Invalid", str(e))
            self.reply(code, obj)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = serve

    return Handler


def control_handler(api):
    class Control(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):
            pass

        def do_GET(self):
            path, _, query = self.path.partition("?")
            if path == "/mode":
                api.mode = query or "normal"
                body = {"mode": api.mode}
            elif path == "/objects":
                with api.store.lock:
                    body = [{"key": list(k), "object": o} for k, o in sorted(api.store.objects.items())]
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Control


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--node", action="append", default=[])
    p.add_argument("--delay", type=float, default=30.0)
    args = p.parse_args()
    args.state = os.path.join(args.dir, "state.json")
    args.record = os.path.join(args.dir, "requests.jsonl")
    token_path = os.path.join(args.dir, "token")
    if not os.path.exists(token_path):
        with open(token_path, "w") as f:
            f.write(secrets.token_hex(16))
    with open(token_path) as f:
        args.token_value = f.read().strip()
    # A second identity, the operator's (kubectl), whose requests RBAC checks skip.
    admin_path = os.path.join(args.dir, "admin-token")
    if not os.path.exists(admin_path):
        with open(admin_path, "w") as f:
            f.write(secrets.token_hex(16))
    with open(admin_path) as f:
        args.admin_token = f.read().strip()
    ca = os.path.join(args.dir, "ca.crt")
    if not os.path.exists(os.path.join(args.dir, "server.crt")):
        make_certs(args.dir)
    api = Api(args)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(args.dir, "server.crt"), os.path.join(args.dir, "server.key"))
    ctx.set_alpn_protocols(["http/1.1"])
    server = Server(("127.0.0.1", args.port), handler(api))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    control = Server(("127.0.0.1", 0), control_handler(api))
    port = server.server_address[1]
    with open(os.path.join(args.dir, "kubeconfig"), "w") as f:
        json.dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "stand-in",
            "clusters": [{"name": "stand-in", "cluster": {
                "server": "https://127.0.0.1:%d" % port, "certificate-authority": ca}}],
            "users": [{"name": "nodevitals", "user": {"tokenFile": token_path}}],
            "contexts": [{"name": "stand-in", "context": {
                "cluster": "stand-in", "user": "nodevitals", "namespace": "nodevitals"}}],
        }, f)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print("listening %d %d" % (port, control.server_address[1]), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
