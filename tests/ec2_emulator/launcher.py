#!/usr/bin/env python3
"""EC2 emulator for vip-arbiter tests: moto 5.2.1's EC2 service, corrected, with
fault injection and a call log.  See docs/ec2-emulator.md.

What plain moto 5.2.1 gets wrong, found by running it (tests/ec2_emulator/
test_launcher.py::test_plain_moto_* keeps checking each one, so an upgrade that
fixes one is noticed):
  * AssignPrivateIpAddresses ignores AllowReassignment.  An address held by
    another ENI is simply added a second time, with or without the flag: the
    old ENI keeps it (two holders), and nothing ever fails.  Corrected: with
    AllowReassignment=true the secondary address MOVES (taken off every other
    ENI in the subnet, then added); without it an address held by another ENI
    fails with InvalidIPAddress.InUse (400, "Address X is in use.", the code
    EC2 returns for a private address in use; EC2 has no code
    "PrivateIpAddressInUse", that is Azure's; the exact code EC2 uses for this
    action is not confirmed from a primary source) and nothing changes.  An
    address that is another ENI's primary is never moved (EC2 cannot either),
    and one outside the subnet's CIDR is InvalidParameterValue.  The answer's
    AssignedPrivateIpAddresses lists only the addresses just assigned, as EC2
    does (moto listed every address, the primary too).
  * DescribeNetworkInterfaces: filters addresses.private-ip-address and
    private-ip-address compare the primary address only; attachment.device-index
    and addresses.primary are not implemented (HTTP 500).  Corrected: the first
    two match any private IPv4 address (primary or secondary), device-index
    matches attached ENIs only, and several values match if any one does.
    subnet-id, network-interface-id and tag:* were already right (kept).
  * DryRun on AssignPrivateIpAddresses / UnassignPrivateIpAddresses is ignored
    and the change is made.  EC2's API model has NO DryRun member for these two
    actions (botocore and aws-sdk-ec2 refuse to send one), and EC2 answers a
    parameter it does not know with 400 UnknownParameter "The parameter DryRun
    is not recognized"; so that is what a hand-made request gets here, and
    nothing changes.  DescribeNetworkInterfaces, CreateTags and DeleteTags
    already answered DryRun=true with 412 DryRunOperation and changed nothing.
  * Not gaps: CreateTags/DeleteTags on ENIs and TagSet in
    DescribeNetworkInterfaces round-trip correctly.
"""
import argparse, fnmatch, io, ipaddress, json, os, re, signal, sys, threading, time, uuid
from http import HTTPStatus
from xml.sax.saxutils import escape
from collections import deque
from urllib.parse import parse_qsl

os.environ.setdefault("MOTO_ACCOUNT_ID", "123456789012")  # any credentials: one account
import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from moto.core.responses import ActionResult, EmptyResult  # noqa: E402
from moto.ec2.exceptions import EC2ClientError  # noqa: E402
from moto.ec2.models import ec2_backends  # noqa: E402
from moto.ec2.models.elastic_network_interfaces import NetworkInterfaceBackend  # noqa: E402
from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces  # noqa: E402
from moto.moto_server.werkzeug_app import create_backend_app  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

ACCOUNT = os.environ["MOTO_ACCOUNT_ID"]
MOTO_LOCK = threading.RLock()  # moto's models are not thread-safe: one EC2 call at a time


# ---------------------------------------------------------------- corrections
def _ips(eni):
    return [a["PrivateIpAddress"] for a in eni.private_ip_addresses]


def _reject_dry_run(resp):
    # Raw key check: moto's parsed params drop members the API model lacks.
    if "DryRun" in resp.querystring:
        raise EC2ClientError("UnknownParameter", "The parameter DryRun is not recognized")


def assign_ips(backend, eni_id, ips, allow_reassignment):
    """Assign `ips` as secondaries of `eni_id`, as EC2 does; all-or-nothing."""
    eni = backend.get_network_interface(eni_id)
    subnet = ipaddress.ip_network(eni.subnet.cidr_block)
    moves = []
    for ip in ips:
        if ipaddress.ip_address(ip) not in subnet:
            raise EC2ClientError("InvalidParameterValue",
                                 f"Address {ip} does not fall within the subnet's address range")
        for other in backend.enis.values():
            if other is eni or other.subnet.id != eni.subnet.id or ip not in _ips(other):
                continue
            if other.private_ip_address == ip or not allow_reassignment:
                raise EC2ClientError("InvalidIPAddress.InUse", f"Address {ip} is in use.")
            moves.append((other, ip))
    for other, ip in moves:  # every check passed: now change
        other.private_ip_addresses = [a for a in other.private_ip_addresses
                                      if a["PrivateIpAddress"] != ip]
    new = [ip for ip in dict.fromkeys(ips) if ip not in _ips(eni)]
    eni.private_ip_addresses.extend({"Primary": False, "PrivateIpAddress": ip} for ip in new)
    return eni, new


def _assign_response(self):
    _reject_dry_run(self)
    eni_id = self._get_param("NetworkInterfaceId")
    ips = self._get_param("PrivateIpAddresses", [])
    if not ips:  # SecondaryPrivateIpAddressCount: moto's own code is right
        before = set(_ips(self.ec2_backend.get_network_interface(eni_id)))
        eni = self.ec2_backend.assign_private_ip_addresses(
            eni_id, [], self._get_int_param("SecondaryPrivateIpAddressCount", 0))
        new = [ip for ip in _ips(eni) if ip not in before]
    else:
        eni, new = assign_ips(self.ec2_backend, eni_id, ips,
                              self._get_bool_param("AllowReassignment", False))
    return ActionResult({"NetworkInterfaceId": eni.id,
                         "AssignedPrivateIpAddresses": [{"PrivateIpAddress": ip} for ip in new]})


def _unassign_response(self):
    _reject_dry_run(self)
    self.ec2_backend.unassign_private_ip_addresses(
        self._get_param("NetworkInterfaceId"), self._get_param("PrivateIpAddresses", []))
    return EmptyResult()


ENI_FILTERS = {  # filter name -> the ENI's values for it (strings)
    "addresses.private-ip-address": _ips,
    "private-ip-address": _ips,
    "addresses.primary": lambda e: [str(bool(a.get("Primary"))).lower() for a in e.private_ip_addresses],
    "attachment.device-index": lambda e: [str(e.device_index)] if e.attachment_id else [],
}
_moto_get_all_enis = NetworkInterfaceBackend.get_all_network_interfaces


def _get_all_enis(self, eni_ids=None, filters=None):
    filters = dict(filters or {})
    ours = {k: filters.pop(k) for k in list(filters) if k in ENI_FILTERS}
    enis = _moto_get_all_enis(self, eni_ids, filters)
    for name, patterns in ours.items():  # EC2: match if any value matches any pattern
        enis = [e for e in enis if any(fnmatch.fnmatchcase(v, p)
                                       for v in ENI_FILTERS[name](e) for p in patterns)]
    return enis


def install_patches():
    ElasticNetworkInterfaces.assign_private_ip_addresses = _assign_response
    ElasticNetworkInterfaces.unassign_private_ip_addresses = _unassign_response
    NetworkInterfaceBackend.get_all_network_interfaces = _get_all_enis


# ------------------------------------------------------------- faults, calls
FAULT_ERRORS = {  # kind -> (HTTP status, EC2 error code, message)
    "http503": (503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
    "throttle": (503, "RequestLimitExceeded", "Request limit exceeded."),
    "unauthorized": (403, "UnauthorizedOperation",
                     "You are not authorized to perform this operation. User: arn:aws:iam::{account}:user/"
                     "vip-arbiter is not authorized to perform: ec2:{action} because no identity-based "
                     "policy allows the ec2:{action} action"),
}
MAX_WINDOW_S, MAX_LATENCY_MS = 600, 60_000


class Faults:
    def __init__(self):
        self.lock, self.windows = threading.Lock(), []

    def add(self, spec):
        kind = spec.get("kind")
        if kind not in (*FAULT_ERRORS, "latency"):
            raise ValueError(f"kind must be one of {sorted((*FAULT_ERRORS, 'latency'))}")
        seconds = spec.get("seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds <= MAX_WINDOW_S:
            raise ValueError(f"seconds must be a number in (0, {MAX_WINDOW_S}]")
        w = {"id": uuid.uuid4().hex[:8], "kind": kind, "seconds": seconds,
             "until": time.time() + seconds, "latency_ms": 0, "actions": None, "sources": None}
        for key in ("actions", "sources"):
            val = spec.get(key)
            if val is not None and (not isinstance(val, list) or not all(isinstance(v, str) for v in val)):
                raise ValueError(f"{key} must be a list of strings")
            w[key] = val
        if kind == "latency":
            ms = spec.get("latency_ms")
            if not isinstance(ms, int) or isinstance(ms, bool) or not 0 < ms <= MAX_LATENCY_MS:
                raise ValueError(f"latency_ms must be an integer in (0, {MAX_LATENCY_MS}]")
            w["latency_ms"] = ms
        with self.lock:
            self.windows.append(w)
        return w

    def active(self):
        now = time.time()
        with self.lock:
            self.windows = [w for w in self.windows if w["until"] > now]
            return [dict(w) for w in self.windows]

    def clear(self):
        with self.lock:
            self.windows = []

    def match(self, action, source):
        """(sum of matching latency windows in s, newest matching error window or None)"""
        hits = [w for w in self.active() if (w["actions"] is None or action in w["actions"])
                and (w["sources"] is None or source in w["sources"])]
        errors = [w for w in hits if w["kind"] != "latency"]
        return sum(w["latency_ms"] for w in hits) / 1000.0, (errors[-1] if errors else None)


LOGGED_PARAMS = re.compile(r"^(NetworkInterfaceId(\.\d+)?|AllowReassignment|PrivateIpAddress\.\d+"
                           r"|Filter\..*|ResourceId\.\d+|Tag\..*)$")


class CallLog:
    def __init__(self, path=None, keep=100_000):
        self.lock, self.calls = threading.Lock(), deque(maxlen=keep)
        self.file = open(path, "a", encoding="utf-8") if path else None

    def add(self, rec):
        with self.lock:
            self.calls.append(rec)
            if self.file:
                self.file.write(json.dumps(rec) + "\n")
                self.file.flush()

    def list(self):
        with self.lock:
            return list(self.calls)

    def clear(self):
        with self.lock:
            self.calls.clear()


def ec2_error_body(code, message):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error></Errors>"
            f"<RequestID>{uuid.uuid4()}</RequestID></Response>").encode()


# ---------------------------------------------------------------- the server
class Emulator:
    def __init__(self, call_log=None):
        self.ec2 = create_backend_app("ec2")  # every AWS request goes to EC2, signed or not
        self.faults, self.calls = Faults(), CallLog(call_log)
        self.url = None  # set once listening; /_va/setup calls our own EC2 API

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/_va/"):
            return self.control(Request(environ))(environ, start_response)
        return self.aws(environ, start_response)

    def aws(self, environ, start_response):
        t0 = time.time()
        length = environ.get("CONTENT_LENGTH") or ""
        body = environ["wsgi.input"].read(int(length)) if length.isdigit() else (
            environ["wsgi.input"].read() if environ.get("wsgi.input_terminated") else b"")
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        params = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action, source = params.get("Action"), environ.get("REMOTE_ADDR", "")
        internal = environ.get("HTTP_X_VA_INTERNAL") == "1"
        delay, fault = self.faults.match(action, source) if action and not internal else (0, None)
        if delay:
            time.sleep(delay)
        if fault:
            status, code, msg = FAULT_ERRORS[fault["kind"]]
            out = ec2_error_body(code, msg.format(account=ACCOUNT, action=action))
            headers = [("Content-Type", "text/xml"), ("Content-Length", str(len(out)))]
        else:
            got = {}

            def capture(st, hdrs, exc_info=None):
                got["status"], got["headers"] = int(st.split()[0]), hdrs
            with MOTO_LOCK:
                it = self.ec2(environ, capture)
                try:
                    out = b"".join(it)
                finally:
                    getattr(it, "close", lambda: None)()
            status, headers = got["status"], [(k, v) for k, v in got["headers"] if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(out))))
            m = re.search(rb"<Code>([^<]+)</Code>", out) if status >= 400 else None
            code = m.group(1).decode() if m else None
        if action and not internal:
            self.calls.add({"t": t0, "action": action, "status": status, "error_code": code if status >= 400 else None,
                            "source": source, "dry_run": params.get("DryRun", "").lower() == "true",
                            "params": {k: v for k, v in params.items() if LOGGED_PARAMS.match(k)},
                            "fault": fault["kind"] if fault else ("latency" if delay else None),
                            "ms": round((time.time() - t0) * 1000, 1)})
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [out]

    # -------------------------------------------------------- control API
    def control(self, req):
        route = (req.method, req.path)
        try:
            if route == ("POST", "/_va/fault"):
                return jresp(self.faults.add(req.get_json(force=True, silent=True) or {}))
            if route == ("GET", "/_va/fault"):
                return jresp(self.faults.active())
            if route == ("DELETE", "/_va/fault"):
                self.faults.clear()
                return jresp({"cleared": True})
            if route == ("GET", "/_va/calls"):
                return jresp(self.calls.list())
            if route == ("DELETE", "/_va/calls"):
                self.calls.clear()
                return jresp({"cleared": True})
            if route == ("POST", "/_va/setup"):
                return jresp(self.setup(req.get_json(force=True, silent=True) or {}))
            if route == ("GET", "/_va/holder"):
                return jresp(self.holder(req.args.get("ip", ""), req.args.get("region", "us-east-1")))
        except (ValueError, KeyError, TypeError) as e:
            return jresp({"error": str(e)}, 400)
        except Exception as e:  # e.g. a botocore ClientError from setup
            return jresp({"error": f"{type(e).__name__}: {e}"}, 500)
        return jresp({"error": f"no such control endpoint: {req.method} {req.path}"}, 404)

    def setup(self, spec):
        region = spec.get("region", "us-east-1")
        ec2 = boto3.client("ec2", endpoint_url=self.url, region_name=region, aws_access_key_id="va",
                           aws_secret_access_key="va", config=Config(retries={"total_max_attempts": 1}))
        ec2.meta.events.register("before-sign.ec2.*", lambda request, **_: request.headers.__setitem__(
            "X-VA-Internal", "1"))
        if spec.get("subnet_id"):
            # More ENIs in an existing subnet (e.g. one that appears later).
            subnet = spec["subnet_id"]
            vpc = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["VpcId"]
        else:
            vpc = ec2.create_vpc(CidrBlock=spec.get("vpc_cidr", "10.77.0.0/16"))["Vpc"]["VpcId"]
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=spec.get("subnet_cidr", "10.77.0.0/20"))["Subnet"]["SubnetId"]
        enis = {}
        for e in spec.get("enis", []):
            name, mac, forced = e["name"], e.get("mac"), e.get("eni_id")
            if mac is not None and not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac):
                raise ValueError(f"mac {mac!r} is not lower-case aa:bb:cc:dd:ee:ff")
            if forced is not None and not re.fullmatch(r"eni-[0-9a-f]{8,17}", forced):
                raise ValueError(f"eni_id {forced!r} is not eni-<8 to 17 lower-case hex digits>")
            if forced is not None:
                with MOTO_LOCK:
                    if forced in ec2_backends[ACCOUNT][region].enis:
                        raise ValueError(f"eni_id {forced} exists already")
            eni_id = ec2.create_network_interface(
                SubnetId=subnet, PrivateIpAddress=e["private_ip"], Description=f"vip-arbiter test {name}",
                TagSpecifications=[{"ResourceType": "network-interface", "Tags": [{"Key": "Name", "Value": name}]}],
            )["NetworkInterface"]["NetworkInterfaceId"]
            if forced is not None:
                # A test that names the ENI before it exists (a node configured with
                # an ENI that EC2 shows late) gets exactly that id.
                with MOTO_LOCK:
                    backend = ec2_backends[ACCOUNT][region]
                    model = backend.enis.pop(eni_id)
                    model.id = forced
                    backend.enis[forced] = model
                    backend.tags[forced] = backend.tags.pop(eni_id, {})
                eni_id = forced
            inst = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                     NetworkInterfaces=[{"DeviceIndex": 0, "NetworkInterfaceId": eni_id}])
            with MOTO_LOCK:
                model = ec2_backends[ACCOUNT][region].get_network_interface(eni_id)
                if mac:
                    model.mac_address = mac
                mac = model.mac_address
            enis[name] = {"eni_id": eni_id, "mac": mac, "instance_id": inst["Instances"][0]["InstanceId"],
                          "private_ip": e["private_ip"]}
        return {"region": region, "vpc_id": vpc, "subnet_id": subnet, "enis": enis}

    def holder(self, ip, region):
        ipaddress.ip_address(ip)  # ValueError -> 400
        with MOTO_LOCK:
            enis = ec2_backends[ACCOUNT][region].enis.values()
            return {"ip": ip, "holders": sorted(e.id for e in enis if ip in _ips(e))}


def jresp(obj, status=200):
    return Response(json.dumps(obj), status=status, mimetype="application/json")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", required=True, help="address to listen on (loopback or a test namespace's)")
    ap.add_argument("--port", type=int, required=True, help="0 picks a free port")
    ap.add_argument("--call-log", help="also append every EC2 call to this file, one JSON object a line")
    ap.add_argument("--ready-file", help="write the URL here once listening")
    args = ap.parse_args(argv)

    install_patches()
    import logging
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the call log replaces access lines
    app = Emulator(args.call_log)
    server = make_server(args.host, args.port, app, threaded=True)
    server.daemon_threads, server.block_on_close = True, False  # a delayed call must not hold up exit
    host = f"[{args.host}]" if ":" in args.host else args.host
    app.url = f"http://{host}:{server.server_port}"
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if args.ready_file:
        tmp = f"{args.ready_file}.tmp"
        with open(tmp, "w") as f:
            f.write(app.url + "\n")
        os.replace(tmp, args.ready_file)
    print(f"READY {app.url}", flush=True)
    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
