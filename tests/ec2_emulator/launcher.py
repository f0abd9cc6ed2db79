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
    subnet-id, network-interface-id, tag:* and tag-key were already right (kept).
  * DryRun on AssignPrivateIpAddresses / UnassignPrivateIpAddresses is ignored
    and the change is made.  EC2's API model has NO DryRun member for these two
    actions (botocore and aws-sdk-ec2 refuse to send one), and EC2 answers a
    parameter it does not know with 400 UnknownParameter "The parameter DryRun
    is not recognized"; so that is what a hand-made request gets here, and
    nothing changes.  DescribeNetworkInterfaces, CreateTags and DeleteTags
    already answered DryRun=true with 412 DryRunOperation and changed nothing.
  * UnassignPrivateIpAddresses of an address the ENI does not have succeeds and
    does nothing; of the ENI's primary address it succeeds and REMOVES it from
    PrivateIpAddresses.  Corrected, all-or-nothing: 400 InvalidParameterValue "Some
    of the specified addresses are not assigned to interface eni-..." (the message
    clients of real EC2 match on; the API reference lists no action-specific
    errors), and 400 InvalidParameterValue for the primary (message not confirmed).
  * CreateTags with an unknown ENI id succeeds, tagging the phantom id and every
    other resource of the call (moto looks ENIs up with a filter that never fails).
    Corrected: 400 InvalidNetworkInterfaceID.NotFound and nothing is tagged, as EC2
    fails the whole call when any resource is gone.  (Unknown subnets, VPCs and
    instances were already NotFound.)
  * A deleted ENI's tags stay in DescribeTags.  Corrected: they go with it.
  * TerminateInstances keeps an ENI that was created separately and attached (right:
    DeleteOnTermination is false for such an attachment) but leaves it "in-use",
    attached to the terminated instance.  Corrected: it is detached ("available",
    no Attachment), keeping its addresses and tags.
  * Not gaps: CreateTags/DeleteTags on ENIs, subnets and VPCs (several resources in
    one call), TagSet in DescribeNetworkInterfaces, Tags in DescribeSubnets,
    DescribeTags' key / resource-id / resource-type / value filters and its
    ResourceId/ResourceType/Key/Value, DescribeNetworkInterfaces by
    NetworkInterfaceIds (InvalidNetworkInterfaceID.NotFound for an unknown id) and
    its Attachment.InstanceId, SubnetId, MacAddress.

Beyond moto: fault windows, a call log, /_va/setup and /_va/holder, /_va/vanish (an
instance dies with its ENI) and a lag mode (EC2's eventual consistency: tag and
address changes reach describes late; see class Lag).
"""
import argparse, fnmatch, io, ipaddress, json, os, re, signal, sys, threading, time, uuid
from contextlib import contextmanager
from http import HTTPStatus
from xml.sax.saxutils import escape
from collections import deque
from urllib.parse import parse_qsl

os.environ.setdefault("MOTO_ACCOUNT_ID", "123456789012")  # any credentials: one account
import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from moto.core.responses import ActionResult, EmptyResult  # noqa: E402
from moto.ec2.exceptions import EC2ClientError  # noqa: E402
from moto.ec2.models import EC2Backend, ec2_backends  # noqa: E402
from moto.ec2.models.elastic_network_interfaces import NetworkInterfaceBackend  # noqa: E402
from moto.ec2.models.instances import Instance  # noqa: E402
from moto.ec2.utils import EC2_RESOURCE_TO_PREFIX, get_prefix  # noqa: E402
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
    eni_id, ips = self._get_param("NetworkInterfaceId"), self._get_param("PrivateIpAddresses", [])
    eni = self.ec2_backend.get_network_interface(eni_id)  # unknown: InvalidNetworkInterfaceID.NotFound
    held = {a["PrivateIpAddress"]: a for a in eni.private_ip_addresses}
    for ip in ips:  # all-or-nothing: every check before any change
        if ip not in held:
            raise EC2ClientError("InvalidParameterValue",
                                 f"Some of the specified addresses are not assigned to interface {eni_id}")
        if held[ip].get("Primary") or ip == eni.private_ip_address:
            raise EC2ClientError("InvalidParameterValue",
                                 f"Value ({ip}) for parameter privateIpAddress is invalid. "
                                 "The primary IP address of an interface cannot be unassigned.")
    self.ec2_backend.unassign_private_ip_addresses(eni_id, ips)
    return EmptyResult()


_moto_resources_exist = EC2Backend.do_resources_exist


def _resources_exist(self, resource_ids):
    # moto looks ENI ids up with a filter that never fails, so CreateTags on an unknown
    # ENI "succeeded" (and tagged a phantom id and the other resources of the call).
    for rid in resource_ids:
        if get_prefix(rid) == EC2_RESOURCE_TO_PREFIX["network-interface"]:
            self.get_network_interface(rid)  # InvalidNetworkInterfaceID.NotFound
    return _moto_resources_exist(self, resource_ids)


_moto_delete_eni = NetworkInterfaceBackend.delete_network_interface


def _delete_eni(self, eni_id):
    _moto_delete_eni(self, eni_id)
    self.tags.pop(eni_id, None)  # moto kept a deleted ENI's tags in DescribeTags
    LAG.forget(eni_id)


_moto_terminate = Instance.terminate


def _terminate(self):
    # EC2 keeps an ENI whose attachment has DeleteOnTermination=false (always so for an
    # ENI created separately and attached) and detaches it: status "available", no
    # Attachment.  moto kept it "in-use", attached to the terminated instance.
    kept = [nic for nic in self.nics.values() if not nic.delete_on_termination]
    state = _moto_terminate(self)
    for nic in kept:
        if nic.instance is self:
            _detach(nic)
    return state


def _detach(eni):
    """The ENI's side of a detach.  The instance keeps it in `nics`: moto's Instance
    reads nics[0] for its private address and DNS name, even once terminated."""
    eni.instance = eni.attachment_id = eni.attach_time = eni.device_index = None
    eni.status = "available"


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
    NetworkInterfaceBackend.delete_network_interface = _delete_eni
    EC2Backend.do_resources_exist = _resources_exist
    Instance.terminate = _terminate


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


# --------------------------------------------------- eventual consistency
MAX_LAG_S, MAX_LAG_LOG = 600, 10_000
LAG_NUMBERS, LAG_LISTS = ("tags_s", "moves_s"), ("writers", "readers")


def _world():
    """What the lag mode tracks, per region backend already created: (tags: {resource
    id: {key: value}}, private IPv4 entries: {eni id: [{"Primary", "PrivateIpAddress"}]})."""
    acct, out = ec2_backends[ACCOUNT], {}
    for region in list(dict.keys(acct)):  # dict's own keys: never creates a backend
        b = dict.__getitem__(acct, region)
        out[region] = ({rid: dict(t) for rid, t in b.tags.items() if t},
                       {eid: [dict(a) for a in e.private_ip_addresses] for eid, e in b.enis.items()})
    return out


def _changes(before, after):
    """The tag and address changes from world `before` to world `after`."""
    for region in sorted(after.keys() & before.keys()):  # a backend this call created: no change
        (tags0, enis0), (tags1, enis1) = before[region], after[region]
        deleted = enis0.keys() - enis1.keys()  # its entries are dropped (Lag.forget), not delayed
        for rid in sorted((tags0.keys() | tags1.keys()) - deleted):
            t0, t1 = tags0.get(rid, {}), tags1.get(rid, {})
            for key in sorted(t0.keys() | t1.keys()):
                if (key in t0, t0.get(key)) != (key in t1, t1.get(key)):
                    yield {"kind": "tag", "region": region, "rid": rid, "key": key,
                           "before": t0.get(key), "after": t1.get(key)}
        for eid in sorted(enis0.keys() & enis1.keys()):
            a0 = {a["PrivateIpAddress"]: (i, a) for i, a in enumerate(enis0[eid])}
            a1 = {a["PrivateIpAddress"]: (i, a) for i, a in enumerate(enis1[eid])}
            for ip in sorted(a0.keys() ^ a1.keys()):
                index, item = a0.get(ip) or a1[ip]
                yield {"kind": "ip", "region": region, "rid": eid, "key": ip, "before": ip in a0,
                       "after": ip in a1, "index": index, "item": item}


class Lag:
    """Eventual consistency: rules, and a log of the tag and address changes made while
    any rule exists.  A change's delays are fixed when it is WRITTEN: the rules whose
    `writers` match its writer, each as (readers, seconds).  A reader sees it once
    now >= t + max(seconds of those whose readers match the reader, default 0).  For a
    read, every (resource, key) with a change the reader cannot see yet is set in the
    moto model to the value of the newest change it can see (or, seeing none, to the
    value before the oldest logged one), the handler runs, and the true state is put
    back, all under MOTO_LOCK.  Every attribute lives in MOTO_LOCK too."""

    def __init__(self):
        self.rules, self.log = [], deque()

    def add(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("the body must be a JSON object")
        unknown = set(spec) - {*LAG_NUMBERS, *LAG_LISTS}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; allowed: {[*LAG_NUMBERS, *LAG_LISTS]}")
        rule = {"id": uuid.uuid4().hex[:8]}
        for key in LAG_NUMBERS:
            val = spec.get(key)
            if not isinstance(val, (int, float)) or isinstance(val, bool) or not 0 <= val <= MAX_LAG_S:
                raise ValueError(f"{key} must be a number in [0, {MAX_LAG_S}]")
            rule[key] = val
        for key in LAG_LISTS:
            val = spec.get(key)
            if val is not None and (not isinstance(val, list) or not all(isinstance(v, str) for v in val)):
                raise ValueError(f"{key} must be a list of strings")
            rule[key] = val
        with MOTO_LOCK:
            self.rules.append(rule)
        return dict(rule)

    def list(self):
        with MOTO_LOCK:
            return [dict(r) for r in self.rules]

    def clear(self):
        """Drop every rule and every pending change: the world is consistent again."""
        with MOTO_LOCK:
            self.rules, self.log = [], deque()

    def forget(self, rid):
        """A resource that is gone: its pending changes are dropped (seen at once)."""
        with MOTO_LOCK:
            if any(e["rid"] == rid for e in self.log):
                self.log = deque(e for e in self.log if e["rid"] != rid)

    def record(self, before, after, writer, internal):
        now = time.monotonic()
        rules = [] if internal else [r for r in self.rules if r["writers"] is None or writer in r["writers"]]
        for change in _changes(before, after):
            field = "tags_s" if change["kind"] == "tag" else "moves_s"
            change.update(t=now, writer=writer, delays=tuple(
                (None if r["readers"] is None else frozenset(r["readers"]), r[field]) for r in rules if r[field] > 0))
            self.log.append(change)
        self.prune(now)

    def prune(self, now):
        """Drop changes from the oldest while every reader sees them (so a visible change
        is only kept behind an older pending one), and beyond MAX_LAG_LOG entries."""
        while self.log and (len(self.log) > MAX_LAG_LOG or
                            now >= self.log[0]["t"] + max((s for _, s in self.log[0]["delays"]), default=0)):
            self.log.popleft()

    @contextmanager
    def view(self, reader):
        """Inside MOTO_LOCK: the model as `reader` sees it now; yields how many logged
        changes it does not see yet.  The true state is back on exit."""
        now = time.monotonic()
        self.prune(now)
        keys, hidden = {}, 0
        for e in self.log:
            delay = max((s for readers, s in e["delays"] if readers is None or reader in readers), default=0)
            seen = now >= e["t"] + delay
            hidden += not seen
            keys.setdefault((e["region"], e["kind"], e["rid"], e["key"]), []).append((e, seen))
        acct, saved_tags, saved_ips = ec2_backends[ACCOUNT], {}, {}
        try:
            for (region, kind, rid, key), entries in keys.items():
                if all(seen for _, seen in entries):
                    continue  # the newest change is seen: that is the true value
                visible = [e for e, seen in entries if seen]
                ref = visible[-1] if visible else entries[0][0]
                value = ref["after"] if visible else ref["before"]
                b = dict.__getitem__(acct, region)
                if kind == "tag":
                    if (region, rid) not in saved_tags:
                        saved_tags[(region, rid)] = (b, rid in b.tags, b.tags.get(rid))
                        b.tags[rid] = dict(b.tags.get(rid) or {})
                    if value is None:
                        b.tags[rid].pop(key, None)
                    else:
                        b.tags[rid][key] = value
                    continue
                eni = b.enis.get(rid)
                if eni is None:
                    continue
                if (region, rid) not in saved_ips:
                    saved_ips[(region, rid)] = (eni, eni.private_ip_addresses)
                    eni.private_ip_addresses = list(eni.private_ip_addresses)
                ips = eni.private_ip_addresses
                if not value:
                    ips[:] = [a for a in ips if a["PrivateIpAddress"] != key]
                elif key not in _ips(eni):
                    ips.insert(min(ref["index"], len(ips)), dict(ref["item"]))
            yield hidden
        finally:
            for (_, rid), (b, had, orig) in saved_tags.items():
                if had:
                    b.tags[rid] = orig
                else:
                    b.tags.pop(rid, None)
            for eni, orig in saved_ips.values():
                eni.private_ip_addresses = orig


LAG = Lag()


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
        hidden = 0  # changes this read did not see yet (lag mode)
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
                read = action is not None and action.startswith("Describe")
                if read and not internal:
                    with LAG.view(source) as hidden:
                        out = self.call_moto(environ, capture)
                elif not read and LAG.rules:
                    before = _world()
                    out = self.call_moto(environ, capture)
                    LAG.record(before, _world(), source, internal)
                else:
                    out = self.call_moto(environ, capture)
            status, headers = got["status"], [(k, v) for k, v in got["headers"] if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(out))))
            m = re.search(rb"<Code>([^<]+)</Code>", out) if status >= 400 else None
            code = m.group(1).decode() if m else None
        if action and not internal:
            self.calls.add({"t": t0, "action": action, "status": status, "error_code": code if status >= 400 else None,
                            "source": source, "dry_run": params.get("DryRun", "").lower() == "true",
                            "params": {k: v for k, v in params.items() if LOGGED_PARAMS.match(k)},
                            "fault": fault["kind"] if fault else ("latency" if delay else None),
                            "hidden": hidden, "ms": round((time.time() - t0) * 1000, 1)})
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [out]

    def call_moto(self, environ, capture):
        it = self.ec2(environ, capture)
        try:
            return b"".join(it)
        finally:
            getattr(it, "close", lambda: None)()

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
                return jresp(self.holder(req.args.get("ip", ""), req.args.get("region", "us-east-1"),
                                         req.args.get("as_seen_by")))
            if route == ("POST", "/_va/lag"):
                return jresp(LAG.add(req.get_json(force=True, silent=True)))
            if route == ("GET", "/_va/lag"):
                return jresp(LAG.list())
            if route == ("DELETE", "/_va/lag"):
                LAG.clear()
                return jresp({"cleared": True})
            if route == ("POST", "/_va/vanish"):
                return jresp(self.vanish(req.get_json(force=True, silent=True) or {}))
        except NotFound as e:
            return jresp({"error": str(e)}, 404)
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
        # As operations.md has the operator do: the subnet carries the tag the shipped
        # IAM policy conditions writes on (null: left untagged). The emulator checks no
        # IAM policy, so the ENIs are left as they are (their tags are what tests read).
        cluster = spec.get("cluster_tag", "test")
        cluster_tags = [] if cluster is None else [{"Key": "vip-arbiter-cluster", "Value": cluster}]
        if cluster_tags and not spec.get("subnet_id"):
            ec2.create_tags(Resources=[subnet], Tags=cluster_tags)
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
            # The MAC before the attach: a reader that sees the ENI attached sees its
            # final MAC (an unattached ENI is "not ours yet" to the daemon, retried;
            # an attached one with another MAC would be a configuration error).
            if mac:
                with MOTO_LOCK:
                    ec2_backends[ACCOUNT][region].get_network_interface(eni_id).mac_address = mac
            inst = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                     NetworkInterfaces=[{"DeviceIndex": 0, "NetworkInterfaceId": eni_id}])
            with MOTO_LOCK:
                mac = ec2_backends[ACCOUNT][region].get_network_interface(eni_id).mac_address
            enis[name] = {"eni_id": eni_id, "mac": mac, "instance_id": inst["Instances"][0]["InstanceId"],
                          "private_ip": e["private_ip"]}
        return {"region": region, "vpc_id": vpc, "subnet_id": subnet, "enis": enis}

    def holder(self, ip, region, as_seen_by=None):
        """The TRUE holders of `ip`; with as_seen_by, the holders that reader sees (lag mode)."""
        ipaddress.ip_address(ip)  # ValueError -> 400
        with MOTO_LOCK:
            enis = ec2_backends[ACCOUNT][region].enis.values()
            if as_seen_by is None:
                return {"ip": ip, "holders": sorted(e.id for e in enis if ip in _ips(e))}
            ipaddress.ip_address(as_seen_by)
            with LAG.view(as_seen_by) as hidden:
                return {"ip": ip, "as_seen_by": as_seen_by, "hidden": hidden,
                        "holders": sorted(e.id for e in enis if ip in _ips(e))}

    def vanish(self, spec):
        """The instance died with its ENI: the ENI leaves the model (its addresses and tags
        with it, at once, whatever the lag rules) and its instance is terminated."""
        eni_id, region = spec.get("eni_id"), spec.get("region", "us-east-1")
        if not isinstance(eni_id, str) or not isinstance(region, str):
            raise ValueError("eni_id (and region, if given) must be strings")
        with MOTO_LOCK:
            b = ec2_backends[ACCOUNT][region]
            eni = b.enis.get(eni_id)
            if eni is None:
                raise NotFound(f"no ENI {eni_id} in {region}")
            gone = {"eni_id": eni_id, "region": region, "addresses": _ips(eni),
                    "tags": dict(b.tags.get(eni_id) or {}), "instance_id": None}
            inst = eni.instance
            if inst is not None:
                _detach(eni)
                gone["instance_id"] = inst.id
            eni.delete()  # moto's: off the backend, its subnet addresses freed; ours: tags, lag log
            if inst is not None:
                b.terminate_instances([inst.id])
            return gone


class NotFound(Exception):
    pass


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
