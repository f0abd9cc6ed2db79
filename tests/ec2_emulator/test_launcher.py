"""Tests of tests/ec2_emulator/launcher.py: each correction, each fault kind, the
call log and the control API, through boto3 against the launcher run as a
subprocess on 127.0.0.1; and (test_plain_moto_*) that plain moto really has the
gaps the launcher corrects, so a moto upgrade that fixes one is noticed.

Run: python3 -m pytest -q tests/ec2_emulator
"""
import itertools
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.py")
START_TIMEOUT_S = 60
_cidr = itertools.count(10)  # each world its own 10.N.0.0/16, so holders never mix


# ---------------------------------------------------------------- helpers
def start_launcher(tmp_path, *extra):
    """Start the launcher on 127.0.0.1 port 0; return (process, url)."""
    err = open(tmp_path / "launcher.stderr", "wb")
    proc = subprocess.Popen([sys.executable, LAUNCHER, "--host", "127.0.0.1", "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    err.close()
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline, line = time.monotonic() + START_TIMEOUT_S, b""
    try:
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            if sel.select(timeout=0.5):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
    finally:
        sel.close()
    if not line.startswith(b"READY http://"):
        stop_launcher(proc)
        raise AssertionError(f"no READY line: {line!r}; stderr: {(tmp_path / 'launcher.stderr').read_text()}")
    return proc, line.split()[1].decode()


def stop_launcher(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    proc.stdout.close()
    return proc.returncode


def ctl(url, method, path, body=None):
    """Call the control API; return (HTTP status, decoded JSON)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def raw_ec2(url, params, scope=False):
    """A hand-made EC2 Query request with exactly these params: (status, body).
    Unsigned; scope=True adds a SigV4-shaped Authorization header (unchecked by
    moto), which plain moto's server needs to route the request to EC2."""
    body = urllib.parse.urlencode({"Version": "2016-11-15", **params}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if scope:
        headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/ec2/aws4_request, "
                                    "SignedHeaders=host, Signature=0")
    req = urllib.request.Request(url + "/", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def ec2_client(url, region="us-east-1", source=None):
    """A boto3 EC2 client; source="127.0.0.2" makes its requests come from that address
    (any of 127.0.0.0/8 is local), so the emulator sees another client."""
    c = boto3.client("ec2", endpoint_url=url, region_name=region, aws_access_key_id="testing",
                     aws_secret_access_key="testing",
                     config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30))
    if source:  # botocore has no option for it: every new urllib3 connection binds here
        c._endpoint.http_session._manager.connection_pool_kw["source_address"] = (source, 0)
    return c


def ips_of(ec2, eni_id):
    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]
    return sorted(a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"])


def error_of(call):
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        call()
    r = exc.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"].get("Message", "")


def wait_until(pred, timeout=8.0, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def url(tmp_path_factory):
    proc, u = start_launcher(tmp_path_factory.mktemp("emu"))
    try:
        yield u
    finally:
        stop_launcher(proc)


@pytest.fixture(autouse=True)
def _no_faults_left(request):
    yield
    if "url" in request.fixturenames:
        ctl(request.getfixturevalue("url"), "DELETE", "/_va/fault")
        ctl(request.getfixturevalue("url"), "DELETE", "/_va/lag")


@pytest.fixture
def ec2(url):
    return ec2_client(url)


@pytest.fixture
def world(url):
    """A fresh VPC/subnet with ENIs n1, n2, n3 (primaries .11 .12 .13) and a VIP .100;
    the subnet without the cluster tag (these tests read exact tag sets)."""
    n = next(_cidr)
    status, w = ctl(url, "POST", "/_va/setup", {
        "region": "us-east-1", "vpc_cidr": f"10.{n}.0.0/16", "subnet_cidr": f"10.{n}.0.0/20", "cluster_tag": None,
        "enis": [{"name": f"n{i}", "private_ip": f"10.{n}.0.1{i}"} for i in (1, 2, 3)]})
    assert status == 200, w
    w["vip"], w["net"] = f"10.{n}.0.100", n
    w["id"] = {k: v["eni_id"] for k, v in w["enis"].items()}
    return w


def holders(url, ip):
    status, body = ctl(url, "GET", f"/_va/holder?ip={ip}")
    assert status == 200, body
    return body["holders"]


# ---------------------------------------------------------------- CLI
def test_cli_ready_file_call_log_file_and_clean_exit(tmp_path):
    ready, log = tmp_path / "ready", tmp_path / "calls.jsonl"
    proc, u = start_launcher(tmp_path, "--ready-file", str(ready), "--call-log", str(log))
    try:
        assert ready.read_text().strip() == u
        assert u.startswith("http://127.0.0.1:") and not u.endswith(":0")
        ec2_client(u).describe_network_interfaces()
        assert raw_ec2(u, {"Action": "DescribeNetworkInterfaces", "DryRun": "true"})[0] == 412
        lines = [json.loads(x) for x in log.read_text().splitlines()]  # flushed per call
        assert [(c["action"], c["status"], c["dry_run"]) for c in lines] == [
            ("DescribeNetworkInterfaces", 200, False), ("DescribeNetworkInterfaces", 412, True)]
    finally:
        rc = stop_launcher(proc, signal.SIGTERM)
    assert rc == 0
    proc, u = start_launcher(tmp_path)
    assert stop_launcher(proc, signal.SIGINT) == 0


# ---------------------------------------------------------------- correction 1
def test_reassign_moves_the_address(url, ec2, world):
    n1, n2, vip = world["id"]["n1"], world["id"]["n2"], world["vip"]
    r = ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip])
    assert [a["PrivateIpAddress"] for a in r["AssignedPrivateIpAddresses"]] == [vip]
    assert holders(url, vip) == [n1]
    r = ec2.assign_private_ip_addresses(NetworkInterfaceId=n2, PrivateIpAddresses=[vip], AllowReassignment=True)
    assert [a["PrivateIpAddress"] for a in r["AssignedPrivateIpAddresses"]] == [vip]
    assert vip not in ips_of(ec2, n1) and vip in ips_of(ec2, n2)
    assert ips_of(ec2, n1) == [f"10.{world['net']}.0.11"]  # its primary stays
    assert holders(url, vip) == [n2]
    # Reassigning to the holder itself is a no-op that succeeds.
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n2, PrivateIpAddresses=[vip], AllowReassignment=True)
    assert holders(url, vip) == [n2]


@pytest.mark.parametrize("flag", [None, False])
def test_no_reassignment_when_in_use_fails_and_changes_nothing(ec2, world, flag):
    n1, n2, vip = world["id"]["n1"], world["id"]["n2"], world["vip"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip])
    before = (ips_of(ec2, n1), ips_of(ec2, n2))
    kw = {} if flag is None else {"AllowReassignment": flag}
    status, code, msg = error_of(lambda: ec2.assign_private_ip_addresses(
        NetworkInterfaceId=n2, PrivateIpAddresses=[vip], **kw))
    assert (status, code) == (400, "InvalidIPAddress.InUse") and vip in msg
    assert (ips_of(ec2, n1), ips_of(ec2, n2)) == before


def test_all_or_nothing_and_primary_and_subnet_checks(url, ec2, world):
    n1, n2, vip, net = world["id"]["n1"], world["id"]["n2"], world["vip"], world["net"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip])
    free = f"10.{net}.0.101"
    # One address in use, one free, no reassignment: neither is assigned.
    assert error_of(lambda: ec2.assign_private_ip_addresses(
        NetworkInterfaceId=n2, PrivateIpAddresses=[free, vip]))[1] == "InvalidIPAddress.InUse"
    assert holders(url, free) == [] and holders(url, vip) == [n1]
    # Another ENI's primary address is never moved, even with reassignment.
    primary = f"10.{net}.0.13"
    assert error_of(lambda: ec2.assign_private_ip_addresses(
        NetworkInterfaceId=n2, PrivateIpAddresses=[primary], AllowReassignment=True))[1] == "InvalidIPAddress.InUse"
    assert holders(url, primary) == [world["id"]["n3"]]
    # An address outside the subnet's CIDR.
    assert error_of(lambda: ec2.assign_private_ip_addresses(
        NetworkInterfaceId=n2, PrivateIpAddresses=[f"10.{net}.200.1"], AllowReassignment=True)
    )[:2] == (400, "InvalidParameterValue")
    # Unknown ENI.
    assert error_of(lambda: ec2.assign_private_ip_addresses(
        NetworkInterfaceId="eni-0000000000000000", PrivateIpAddresses=[free]))[1] == "InvalidNetworkInterfaceID.NotFound"


# ---------------------------------------------------------------- correction 2
def test_filters_find_secondary_addresses_and_tags_come_back(ec2, world):
    n1, n2, n3, vip = world["id"]["n1"], world["id"]["n2"], world["id"]["n3"], world["vip"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip])
    ec2.create_tags(Resources=[n1], Tags=[{"Key": "vip-arbiter/claim", "Value": "node1:7"}])

    def ids(*filters):
        r = ec2.describe_network_interfaces(Filters=[{"Name": k, "Values": v} for k, v in filters])
        return sorted(e["NetworkInterfaceId"] for e in r["NetworkInterfaces"])

    sub = ("subnet-id", [world["subnet_id"]])
    # The daemon's exact call: the VIP in our subnet, and it reads TagSet.
    r = ec2.describe_network_interfaces(Filters=[{"Name": "addresses.private-ip-address", "Values": [vip]},
                                                 {"Name": "subnet-id", "Values": [world["subnet_id"]]}])
    assert [e["NetworkInterfaceId"] for e in r["NetworkInterfaces"]] == [n1]
    assert {"Key": "vip-arbiter/claim", "Value": "node1:7"} in r["NetworkInterfaces"][0]["TagSet"]
    assert ids(("private-ip-address", [vip]), sub) == [n1]
    assert ids(("addresses.private-ip-address", [f"10.{world['net']}.0.12"]), sub) == [n2]  # primaries too
    assert ids(("addresses.private-ip-address", [vip, f"10.{world['net']}.0.13"]), sub) == sorted([n1, n3])
    assert ids(("addresses.private-ip-address", [f"10.{world['net']}.0.1*"]), sub) == sorted([n1, n2, n3])
    assert ids(("addresses.private-ip-address", ["10.255.255.255"]), sub) == []
    assert ids(("addresses.private-ip-address", [vip]), ("subnet-id", ["subnet-00000000"])) == []
    assert ids(("addresses.primary", ["false"]), sub) == [n1]
    assert ids(("subnet-id", [world["subnet_id"]])) == sorted([n1, n2, n3])
    assert ids(("network-interface-id", [n2])) == [n2]
    assert ids(("network-interface-id", [n2, n3])) == sorted([n2, n3])
    # device-index: the setup ENIs are attached at 0; an unattached ENI has no index.
    loose = ec2.create_network_interface(SubnetId=world["subnet_id"],
                                         PrivateIpAddress=f"10.{world['net']}.0.50")["NetworkInterface"]
    assert ids(("attachment.device-index", ["0"]), sub) == sorted([n1, n2, n3])
    assert ids(("attachment.device-index", ["1"]), sub) == []
    assert loose["NetworkInterfaceId"] in ids(sub)
    # After a move the filter follows the address.
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n2, PrivateIpAddresses=[vip], AllowReassignment=True)
    assert ids(("addresses.private-ip-address", [vip]), sub) == [n2]


# ---------------------------------------------------------------- correction 3
def test_dry_run_answers_like_ec2_and_changes_nothing(url, ec2, world):
    n1, n2, vip = world["id"]["n1"], world["id"]["n2"], world["vip"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip])
    ec2.create_tags(Resources=[n1], Tags=[{"Key": "keep", "Value": "1"}])
    snapshot = lambda: (ips_of(ec2, n1), ips_of(ec2, n2), ec2.describe_network_interfaces(  # noqa: E731
        NetworkInterfaceIds=[n1])["NetworkInterfaces"][0]["TagSet"])
    before = snapshot()
    dry = (412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
    assert error_of(lambda: ec2.describe_network_interfaces(DryRun=True)) == dry
    assert error_of(lambda: ec2.create_tags(Resources=[n1], Tags=[{"Key": "k", "Value": "v"}], DryRun=True)) == dry
    assert error_of(lambda: ec2.delete_tags(Resources=[n1], Tags=[{"Key": "keep"}], DryRun=True)) == dry
    # EC2's model has no DryRun for these two: the SDK refuses to send it ...
    for call in (ec2.assign_private_ip_addresses, ec2.unassign_private_ip_addresses):
        with pytest.raises(botocore.exceptions.ParamValidationError):
            call(NetworkInterfaceId=n2, PrivateIpAddresses=[vip], DryRun=True)
    # ... and a hand-made request gets EC2's answer to an unknown parameter.
    for action, eni in (("AssignPrivateIpAddresses", n2), ("UnassignPrivateIpAddresses", n1)):
        status, body = raw_ec2(url, {"Action": action, "NetworkInterfaceId": eni, "PrivateIpAddress.1": vip,
                                     "AllowReassignment": "true", "DryRun": "true"})
        assert status == 400 and "<Code>UnknownParameter</Code>" in body, body
        assert "The parameter DryRun is not recognized" in body
    assert snapshot() == before
    # The same hand-made requests without DryRun do act (so the check above is real).
    assert raw_ec2(url, {"Action": "AssignPrivateIpAddresses", "NetworkInterfaceId": n2,
                         "PrivateIpAddress.1": vip, "AllowReassignment": "true"})[0] == 200
    assert holders(url, vip) == [n2]
    assert raw_ec2(url, {"Action": "UnassignPrivateIpAddresses", "NetworkInterfaceId": n2,
                         "PrivateIpAddress.1": vip})[0] == 200
    assert holders(url, vip) == []


# ---------------------------------------------------------------- correction 4
def test_tags_round_trip(ec2, world):
    n1, n2 = world["id"]["n1"], world["id"]["n2"]
    tags = lambda e: {t["Key"]: t["Value"] for t in ec2.describe_network_interfaces(  # noqa: E731
        NetworkInterfaceIds=[e])["NetworkInterfaces"][0]["TagSet"]}
    assert tags(n1) == {"Name": "n1"}
    ec2.create_tags(Resources=[n1, n2], Tags=[{"Key": "claim", "Value": "a:1"}, {"Key": "x", "Value": ""}])
    assert tags(n1) == {"Name": "n1", "claim": "a:1", "x": ""} and tags(n2)["claim"] == "a:1"
    ec2.create_tags(Resources=[n1], Tags=[{"Key": "claim", "Value": "b:2"}])  # overwrite
    assert tags(n1)["claim"] == "b:2" and tags(n2)["claim"] == "a:1"
    r = ec2.describe_network_interfaces(Filters=[{"Name": "tag:claim", "Values": ["b:2"]}])
    assert [e["NetworkInterfaceId"] for e in r["NetworkInterfaces"]] == [n1]
    ec2.delete_tags(Resources=[n1], Tags=[{"Key": "claim", "Value": "not-the-value"}])  # value must match
    assert tags(n1)["claim"] == "b:2"
    ec2.delete_tags(Resources=[n1], Tags=[{"Key": "claim"}, {"Key": "x"}])
    assert tags(n1) == {"Name": "n1"} and tags(n2)["claim"] == "a:1"


# ---------------------------------------------------------------- faults
def window_closed(url):
    return ctl(url, "GET", "/_va/fault")[1] == []


@pytest.mark.parametrize("kind,status,code", [
    ("http503", 503, "ServiceUnavailable"),
    ("throttle", 503, "RequestLimitExceeded"),
    ("unauthorized", 403, "UnauthorizedOperation"),
])
def test_error_fault_window(url, ec2, world, kind, status, code):
    n1, vip = world["id"]["n1"], world["vip"]
    ctl(url, "DELETE", "/_va/calls")
    st, w = ctl(url, "POST", "/_va/fault", {"kind": kind, "seconds": 1.5, "actions": ["AssignPrivateIpAddresses"]})
    assert st == 200 and w["kind"] == kind
    got = error_of(lambda: ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip]))
    assert got[:2] == (status, code)
    if kind == "unauthorized":
        assert "ec2:AssignPrivateIpAddresses" in got[2]
    assert holders(url, vip) == []  # nothing changed
    ec2.describe_network_interfaces(NetworkInterfaceIds=[n1])  # other actions are served
    assert wait_until(lambda: window_closed(url), timeout=5)
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip])
    assert holders(url, vip) == [n1]
    calls = [(c["action"], c["status"], c["error_code"], c["fault"]) for c in ctl(url, "GET", "/_va/calls")[1]]
    assert calls == [("AssignPrivateIpAddresses", status, code, kind),
                     ("DescribeNetworkInterfaces", 200, None, None),
                     ("AssignPrivateIpAddresses", 200, None, None)]


def test_fault_all_actions_by_default(url, ec2):
    assert ctl(url, "POST", "/_va/fault", {"kind": "http503", "seconds": 1})[0] == 200
    assert error_of(ec2.describe_network_interfaces)[:2] == (503, "ServiceUnavailable")
    assert error_of(lambda: ec2.create_tags(Resources=["eni-1"], Tags=[{"Key": "a", "Value": "b"}]))[1] == \
        "ServiceUnavailable"
    assert wait_until(lambda: window_closed(url), timeout=5)
    ec2.describe_network_interfaces()


def test_latency_fault(url, ec2):
    assert ctl(url, "POST", "/_va/fault", {"kind": "latency", "seconds": 2, "latency_ms": 500,
                                           "actions": ["DescribeNetworkInterfaces"]})[0] == 200
    t0 = time.monotonic()
    ec2.describe_network_interfaces()  # delayed, then served normally
    assert time.monotonic() - t0 >= 0.5
    assert wait_until(lambda: window_closed(url), timeout=5)
    ctl(url, "DELETE", "/_va/calls")
    ec2.describe_network_interfaces()
    [c] = ctl(url, "GET", "/_va/calls")[1]
    assert c["fault"] is None and c["status"] == 200 and c["ms"] < 500


def test_fault_sources_and_clear(url, ec2):
    assert ctl(url, "POST", "/_va/fault", {"kind": "throttle", "seconds": 30, "sources": ["10.77.0.99"]})[0] == 200
    ec2.describe_network_interfaces()  # we are 127.0.0.1: not throttled
    assert ctl(url, "POST", "/_va/fault", {"kind": "unauthorized", "seconds": 30, "sources": ["127.0.0.1"]})[0] == 200
    assert error_of(ec2.describe_network_interfaces)[1] == "UnauthorizedOperation"
    assert len(ctl(url, "GET", "/_va/fault")[1]) == 2  # windows coexist
    assert ctl(url, "DELETE", "/_va/fault")[0] == 200
    assert window_closed(url)
    ec2.describe_network_interfaces()


@pytest.mark.parametrize("spec", [
    {"kind": "throttle", "seconds": 601},
    {"kind": "throttle", "seconds": 0},
    {"kind": "throttle"},
    {"kind": "reboot", "seconds": 1},
    {"kind": "latency", "seconds": 1},
    {"kind": "latency", "seconds": 1, "latency_ms": 600_000},
    {"kind": "throttle", "seconds": 1, "actions": "AssignPrivateIpAddresses"},
])
def test_fault_spec_is_validated(url, spec):
    status, body = ctl(url, "POST", "/_va/fault", spec)
    assert status == 400 and "error" in body
    assert window_closed(url)


# ---------------------------------------------------------------- call log
def test_call_log_records_calls(url, ec2, world):
    n1, n2, vip = world["id"]["n1"], world["id"]["n2"], world["vip"]
    assert ctl(url, "DELETE", "/_va/calls")[0] == 200
    t0 = time.time()
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip])
    error_of(lambda: ec2.assign_private_ip_addresses(NetworkInterfaceId=n2, PrivateIpAddresses=[vip]))
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n2, PrivateIpAddresses=[vip], AllowReassignment=True)
    ec2.describe_network_interfaces(Filters=[{"Name": "addresses.private-ip-address", "Values": [vip]},
                                             {"Name": "subnet-id", "Values": [world["subnet_id"]]}])
    error_of(lambda: ec2.create_tags(Resources=[n2], Tags=[{"Key": "c", "Value": "1"}], DryRun=True))
    calls = ctl(url, "GET", "/_va/calls")[1]
    assert [(c["action"], c["status"], c["error_code"], c["dry_run"]) for c in calls] == [
        ("AssignPrivateIpAddresses", 200, None, False),
        ("AssignPrivateIpAddresses", 400, "InvalidIPAddress.InUse", False),
        ("AssignPrivateIpAddresses", 200, None, False),
        ("DescribeNetworkInterfaces", 200, None, False),
        ("CreateTags", 412, "DryRunOperation", True),
    ]
    assert all(c["source"] == "127.0.0.1" and t0 - 1 <= c["t"] <= time.time() for c in calls)
    assert [c["t"] for c in calls] == sorted(c["t"] for c in calls)
    assert calls[0]["params"] == {"NetworkInterfaceId": n1, "PrivateIpAddress.1": vip}
    assert calls[2]["params"] == {"NetworkInterfaceId": n2, "PrivateIpAddress.1": vip, "AllowReassignment": "true"}
    assert calls[3]["params"] == {"Filter.1.Name": "addresses.private-ip-address", "Filter.1.Value.1": vip,
                                  "Filter.2.Name": "subnet-id", "Filter.2.Value.1": world["subnet_id"]}
    assert calls[4]["params"] == {"ResourceId.1": n2, "Tag.1.Key": "c", "Tag.1.Value": "1"}
    # Control calls and setup's own EC2 calls are not logged; DELETE clears.
    ctl(url, "POST", "/_va/setup", {"vpc_cidr": "10.250.0.0/16", "subnet_cidr": "10.250.0.0/20", "enis": []})
    assert len(ctl(url, "GET", "/_va/calls")[1]) == 5
    ctl(url, "DELETE", "/_va/calls")
    assert ctl(url, "GET", "/_va/calls")[1] == []


# ---------------------------------------------------------------- setup, holder
def test_setup_creates_attached_enis_and_works_twice(url, ec2):
    spec = {"vpc_cidr": "10.240.0.0/16", "subnet_cidr": "10.240.0.0/20",
            "enis": [{"name": "a", "private_ip": "10.240.0.11", "mac": "02:aa:bb:cc:dd:01"},
                     {"name": "b", "private_ip": "10.240.0.12"}]}
    st1, w1 = ctl(url, "POST", "/_va/setup", spec)
    st2, w2 = ctl(url, "POST", "/_va/setup", {**spec, "vpc_cidr": "10.241.0.0/16", "subnet_cidr": "10.241.0.0/20"})
    assert (st1, st2) == (200, 200)
    assert w1["vpc_id"] != w2["vpc_id"] and w1["subnet_id"] != w2["subnet_id"]
    assert set(w1["enis"]) == {"a", "b"}
    a = ec2.describe_network_interfaces(NetworkInterfaceIds=[w1["enis"]["a"]["eni_id"]])["NetworkInterfaces"][0]
    assert a["PrivateIpAddress"] == "10.240.0.11" and a["SubnetId"] == w1["subnet_id"] and a["VpcId"] == w1["vpc_id"]
    assert a["MacAddress"] == "02:aa:bb:cc:dd:01" == w1["enis"]["a"]["mac"]
    assert a["Attachment"]["InstanceId"] == w1["enis"]["a"]["instance_id"] and a["Attachment"]["DeviceIndex"] == 0
    b = ec2.describe_network_interfaces(NetworkInterfaceIds=[w1["enis"]["b"]["eni_id"]])["NetworkInterfaces"][0]
    assert b["MacAddress"] == w1["enis"]["b"]["mac"] and b["MacAddress"] != a["MacAddress"]
    # The subnet's cluster tag (the shipped policy conditions writes on it), as an
    # operator sets it up; "cluster_tag": null leaves it untagged.
    sn_tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [w1["subnet_id"]]}])["Tags"]
    assert [(t["Key"], t["Value"]) for t in sn_tags] == [("vip-arbiter-cluster", "test")]
    st, bare = ctl(url, "POST", "/_va/setup", {"vpc_cidr": "10.245.0.0/16", "subnet_cidr": "10.245.0.0/20",
                                               "cluster_tag": None, "enis": []})
    assert st == 200
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [bare["subnet_id"]]}])["Tags"] == []
    vpc = ec2.describe_vpcs(VpcIds=[w1["vpc_id"]])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.240.0.0/16"
    # Another region keeps its own world.
    st, w3 = ctl(url, "POST", "/_va/setup", {"region": "eu-west-1", "vpc_cidr": "10.242.0.0/16",
                                             "subnet_cidr": "10.242.0.0/20",
                                             "enis": [{"name": "c", "private_ip": "10.242.0.11"}]})
    assert st == 200
    eu = ec2_client(url, "eu-west-1").describe_network_interfaces()["NetworkInterfaces"]
    assert [e["NetworkInterfaceId"] for e in eu] == [w3["enis"]["c"]["eni_id"]]
    assert ctl(url, "GET", "/_va/holder?ip=10.242.0.11&region=eu-west-1")[1]["holders"] == [w3["enis"]["c"]["eni_id"]]
    assert holders(url, "10.242.0.11") == []
    # Bad input is a 400, not a crash.
    assert ctl(url, "POST", "/_va/setup", {"enis": [{"name": "x", "private_ip": "10.77.0.5", "mac": "zz"}],
                                           "vpc_cidr": "10.243.0.0/16", "subnet_cidr": "10.243.0.0/20"})[0] == 400


def test_setup_adds_to_an_existing_subnet_with_a_chosen_eni_id(url, ec2):
    st, w = ctl(url, "POST", "/_va/setup", {"vpc_cidr": "10.244.0.0/16", "subnet_cidr": "10.244.0.0/20", "enis": []})
    assert st == 200 and w["enis"] == {}
    chosen = "eni-0feedfacecafe0001"
    assert error_of(lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=[chosen]))[1] == \
        "InvalidNetworkInterfaceID.NotFound"
    st, late = ctl(url, "POST", "/_va/setup", {"subnet_id": w["subnet_id"], "enis": [
        {"name": "late", "private_ip": "10.244.0.11", "mac": "02:00:0a:f4:00:0b", "eni_id": chosen}]})
    assert st == 200, late
    assert (late["subnet_id"], late["vpc_id"]) == (w["subnet_id"], w["vpc_id"])
    assert late["enis"]["late"]["eni_id"] == chosen
    e = ec2.describe_network_interfaces(NetworkInterfaceIds=[chosen])["NetworkInterfaces"][0]
    assert e["SubnetId"] == w["subnet_id"] and e["MacAddress"] == "02:00:0a:f4:00:0b"
    assert e["Attachment"]["InstanceId"] == late["enis"]["late"]["instance_id"]
    assert {"Key": "Name", "Value": "late"} in e["TagSet"]
    ec2.create_tags(Resources=[chosen], Tags=[{"Key": "k", "Value": "v"}])
    assert holders(url, "10.244.0.11") == [chosen]
    # The same id twice, or a malformed one, is a 400.
    again = {"subnet_id": w["subnet_id"], "enis": [{"name": "x", "private_ip": "10.244.0.12", "eni_id": chosen}]}
    assert ctl(url, "POST", "/_va/setup", again)[0] == 400
    bad = {"subnet_id": w["subnet_id"], "enis": [{"name": "x", "private_ip": "10.244.0.13", "eni_id": "eni-XYZ"}]}
    assert ctl(url, "POST", "/_va/setup", bad)[0] == 400


def test_holder_endpoint(url, ec2, world):
    n1, n2, vip = world["id"]["n1"], world["id"]["n2"], world["vip"]
    assert holders(url, vip) == []
    assert holders(url, f"10.{world['net']}.0.11") == [n1]  # a primary counts too
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n2, PrivateIpAddresses=[vip])
    assert holders(url, vip) == [n2]
    assert ctl(url, "GET", "/_va/holder?ip=not-an-ip")[0] == 400
    assert ctl(url, "GET", "/_va/holder")[0] == 400
    assert ctl(url, "GET", "/_va/nothing")[0] == 404


# ---------------------------------------------------------------- corrections 5-8 and checks
def tags_of(ec2, rid):
    r = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [rid]}])["Tags"]
    return {t["Key"]: t["Value"] for t in r}


def test_create_tags_on_eni_and_subnet_in_one_call_and_delete_on_subnet(ec2, world):
    n1, sn, vpc = world["id"]["n1"], world["subnet_id"], world["vpc_id"]
    ec2.create_tags(Resources=[n1, sn], Tags=[{"Key": "vip-arbiter/fence", "Value": "node1:9"}])
    assert tags_of(ec2, n1) == {"Name": "n1", "vip-arbiter/fence": "node1:9"}
    assert ec2.describe_subnets(SubnetIds=[sn])["Subnets"][0]["Tags"] == [
        {"Key": "vip-arbiter/fence", "Value": "node1:9"}]
    assert ec2.describe_subnets(Filters=[{"Name": "subnet-id", "Values": [sn]}])["Subnets"][0]["Tags"] == [
        {"Key": "vip-arbiter/fence", "Value": "node1:9"}]
    ec2.delete_tags(Resources=[sn], Tags=[{"Key": "vip-arbiter/fence", "Value": "node1:9"}])
    assert ec2.describe_subnets(SubnetIds=[sn])["Subnets"][0].get("Tags", []) == []
    assert tags_of(ec2, sn) == {} and tags_of(ec2, n1)["vip-arbiter/fence"] == "node1:9"
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": "k", "Value": "v"}])  # VPCs too
    assert tags_of(ec2, vpc) == {"k": "v"}
    # Correction 6: an unknown ENI fails the whole call, and tags nothing.
    ghost = "eni-0000000000000000a"
    st, code, msg = error_of(lambda: ec2.create_tags(Resources=[sn, ghost], Tags=[{"Key": "x", "Value": "1"}]))
    assert (st, code) == (400, "InvalidNetworkInterfaceID.NotFound") and ghost in msg
    assert tags_of(ec2, sn) == {} and tags_of(ec2, ghost) == {}
    assert error_of(lambda: ec2.create_tags(Resources=["subnet-0000000000000000a"], Tags=[
        {"Key": "x", "Value": "1"}]))[:2] == (400, "InvalidSubnetID.NotFound")
    assert error_of(lambda: ec2.describe_subnets(SubnetIds=["subnet-0000000000000000a"]))[1] == \
        "InvalidSubnetID.NotFound"


def test_retire_claim_calls_tag_key_filter_and_delete_tags_by_value(ec2, world):
    """`vip-arbiter retire-claim`'s calls: the ENIs carrying a claim key in the subnet
    (tag-key and subnet-id filters, wherever the VIP is), then DeleteTags of one key with
    the value it was read with, on the subnet and on an ENI: a value rewritten since stays."""
    n1, n2, n3, sn, vip = world["id"]["n1"], world["id"]["n2"], world["id"]["n3"], world["subnet_id"], world["vip"]
    key, mark = f"vip-arbiter:{vip}", f"vip-arbiter:{vip}/node-2"
    ec2.create_tags(Resources=[n1, sn], Tags=[{"Key": key, "Value": "timeline=3;node=1"}])
    ec2.create_tags(Resources=[n2, sn], Tags=[{"Key": key, "Value": "timeline=3;node=2"},
                                              {"Key": mark, "Value": "timeline=3;node=2"}])
    ec2.create_tags(Resources=[n3], Tags=[{"Key": key + "x", "Value": "not ours"}])
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip])

    def claimed(subnet):
        r = ec2.describe_network_interfaces(Filters=[{"Name": "tag-key", "Values": [key]},
                                                     {"Name": "subnet-id", "Values": [subnet]}])
        return sorted((e["NetworkInterfaceId"], {t["Key"]: t["Value"] for t in e["TagSet"]}[key])
                      for e in r["NetworkInterfaces"])

    assert claimed(sn) == sorted([(n1, "timeline=3;node=1"), (n2, "timeline=3;node=2")])
    assert claimed("subnet-00000000") == []
    # A value that no longer matches deletes nothing, on either resource type ...
    ec2.delete_tags(Resources=[sn], Tags=[{"Key": mark, "Value": "timeline=2;node=2"}])
    ec2.delete_tags(Resources=[n2], Tags=[{"Key": key, "Value": "timeline=2;node=2"}])
    assert tags_of(ec2, sn)[mark] == "timeline=3;node=2" and tags_of(ec2, n2)[key] == "timeline=3;node=2"
    # ... the value read deletes exactly that key on exactly that resource.
    ec2.delete_tags(Resources=[sn], Tags=[{"Key": mark, "Value": "timeline=3;node=2"}])
    ec2.delete_tags(Resources=[n2], Tags=[{"Key": key, "Value": "timeline=3;node=2"}])
    assert mark not in tags_of(ec2, sn) and tags_of(ec2, sn)[key] == "timeline=3;node=2"
    assert key not in tags_of(ec2, n2) and tags_of(ec2, n2)[mark] == "timeline=3;node=2"
    assert claimed(sn) == [(n1, "timeline=3;node=1")]


def test_describe_tags_filters(ec2, world):
    n1, n2, sn = world["id"]["n1"], world["id"]["n2"], world["subnet_id"]
    key = f"claim-{world['net']}"  # unique to this world: other tests' tags never match
    ec2.create_tags(Resources=[n1, sn], Tags=[{"Key": key, "Value": "a:1"}])
    ec2.create_tags(Resources=[n2], Tags=[{"Key": key, "Value": "b:2"}])

    def got(*filters):
        r = ec2.describe_tags(Filters=[{"Name": k, "Values": v} for k, v in filters])["Tags"]
        return sorted((t["ResourceId"], t["ResourceType"], t["Key"], t["Value"]) for t in r)

    assert got(("key", [key])) == sorted([(n1, "network-interface", key, "a:1"), (n2, "network-interface", key, "b:2"),
                                          (sn, "subnet", key, "a:1")])
    assert got(("key", [key]), ("resource-id", [n1, sn])) == sorted([(n1, "network-interface", key, "a:1"),
                                                                      (sn, "subnet", key, "a:1")])
    assert got(("key", [key]), ("resource-type", ["subnet"])) == [(sn, "subnet", key, "a:1")]
    assert got(("key", [key]), ("resource-type", ["network-interface"])) == sorted(
        [(n1, "network-interface", key, "a:1"), (n2, "network-interface", key, "b:2")])
    assert got(("resource-id", [n1, n2])) == sorted([(n1, "network-interface", "Name", "n1"),
                                                    (n2, "network-interface", "Name", "n2"),
                                                    (n1, "network-interface", key, "a:1"),
                                                    (n2, "network-interface", key, "b:2")])
    assert got(("key", [key]), ("value", ["b:*"])) == [(n2, "network-interface", key, "b:2")]
    assert got(("key", ["no-such-key"])) == []


def test_unassign_secondary_and_errors(url, ec2, world):
    n1, n2, vip, net = world["id"]["n1"], world["id"]["n2"], world["vip"], world["net"]
    other = f"10.{net}.0.101"
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip, other])
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[other])
    assert ips_of(ec2, n1) == sorted([f"10.{net}.0.11", vip]) and holders(url, other) == []
    # An address the ENI does not have (here: another ENI's, and a free one): 400, no change.
    for ip in (f"10.{net}.0.12", other):
        st, code, msg = error_of(lambda: ec2.unassign_private_ip_addresses(NetworkInterfaceId=n1,
                                                                           PrivateIpAddresses=[vip, ip]))
        assert (st, code) == (400, "InvalidParameterValue") and "not assigned to interface " + n1 in msg
    assert ips_of(ec2, n1) == sorted([f"10.{net}.0.11", vip]) and holders(url, f"10.{net}.0.12") == [n2]
    # Its primary address: 400, no change.
    st, code, msg = error_of(lambda: ec2.unassign_private_ip_addresses(NetworkInterfaceId=n1,
                                                                       PrivateIpAddresses=[f"10.{net}.0.11"]))
    assert (st, code) == (400, "InvalidParameterValue") and "primary" in msg
    assert ips_of(ec2, n1) == sorted([f"10.{net}.0.11", vip])
    assert error_of(lambda: ec2.unassign_private_ip_addresses(NetworkInterfaceId="eni-0000000000000000a",
                                                              PrivateIpAddresses=[vip]))[:2] == \
        (400, "InvalidNetworkInterfaceID.NotFound")


def test_describe_eni_by_id_shows_attachment_subnet_mac(ec2, world):
    n1, n2 = world["id"]["n1"], world["id"]["n2"]
    by_filter = ec2.describe_network_interfaces(
        Filters=[{"Name": "network-interface-id", "Values": [n1]}])["NetworkInterfaces"]
    by_ids = ec2.describe_network_interfaces(NetworkInterfaceIds=[n1])["NetworkInterfaces"]
    for [e] in (by_filter, by_ids):
        assert e["NetworkInterfaceId"] == n1 and e["SubnetId"] == world["subnet_id"]
        assert e["MacAddress"] == world["enis"]["n1"]["mac"]
        assert e["Attachment"]["InstanceId"] == world["enis"]["n1"]["instance_id"]
        assert e["Attachment"]["DeviceIndex"] == 0 and e["Attachment"]["Status"] == "attached"
        assert e["Status"] == "in-use"
    two = ec2.describe_network_interfaces(NetworkInterfaceIds=[n1, n2])["NetworkInterfaces"]
    assert sorted(e["NetworkInterfaceId"] for e in two) == sorted([n1, n2])
    # An id that does not exist: NotFound by id; by filter, an empty answer (as EC2).
    ghost = "eni-0000000000000000a"
    st, code, msg = error_of(lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=[ghost]))
    assert (st, code) == (400, "InvalidNetworkInterfaceID.NotFound") and ghost in msg
    assert error_of(lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=[n1, ghost]))[1] == \
        "InvalidNetworkInterfaceID.NotFound"
    assert ec2.describe_network_interfaces(
        Filters=[{"Name": "network-interface-id", "Values": [ghost]}])["NetworkInterfaces"] == []


def test_terminate_keeps_and_detaches_an_attached_eni(url, ec2, world):
    n1, vip, inst = world["id"]["n1"], world["vip"], world["enis"]["n1"]["instance_id"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip])
    ec2.terminate_instances(InstanceIds=[inst])
    [e] = ec2.describe_network_interfaces(NetworkInterfaceIds=[n1])["NetworkInterfaces"]
    assert e["Status"] == "available" and "Attachment" not in e  # kept, detached
    assert vip in ips_of(ec2, n1) and holders(url, vip) == [n1] and tags_of(ec2, n1) == {"Name": "n1"}
    assert wait_until(lambda: ec2.describe_instances(InstanceIds=[inst])["Reservations"][0]["Instances"][0][
        "State"]["Name"] == "terminated", timeout=5)
    # An ENI created by RunInstances with DeleteOnTermination=true goes, tags and all.
    own = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, NetworkInterfaces=[
        {"DeviceIndex": 0, "SubnetId": world["subnet_id"], "DeleteOnTermination": True}])["Instances"][0]
    eni = own["NetworkInterfaces"][0]["NetworkInterfaceId"]
    ec2.create_tags(Resources=[eni], Tags=[{"Key": "k", "Value": "v"}])
    ec2.terminate_instances(InstanceIds=[own["InstanceId"]])
    assert error_of(lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=[eni]))[1] == \
        "InvalidNetworkInterfaceID.NotFound"
    assert tags_of(ec2, eni) == {}


def test_delete_network_interface_drops_its_tags(ec2, world):
    loose = ec2.create_network_interface(SubnetId=world["subnet_id"], PrivateIpAddress=f"10.{world['net']}.0.60",
                                         TagSpecifications=[{"ResourceType": "network-interface",
                                                             "Tags": [{"Key": "k", "Value": "v"}]}])
    eni = loose["NetworkInterface"]["NetworkInterfaceId"]
    assert tags_of(ec2, eni) == {"k": "v"}
    ec2.delete_network_interface(NetworkInterfaceId=eni)
    assert tags_of(ec2, eni) == {}


# ---------------------------------------------------------------- vanish
def test_vanish_removes_the_eni_its_addresses_and_tags(url, ec2, world):
    n1, n2, vip = world["id"]["n1"], world["id"]["n2"], world["vip"]
    inst = world["enis"]["n1"]["instance_id"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip])
    ec2.create_tags(Resources=[n1], Tags=[{"Key": "claim", "Value": "node1:3"}])
    st, gone = ctl(url, "POST", "/_va/vanish", {"eni_id": n1})
    assert st == 200, gone
    assert gone == {"eni_id": n1, "region": "us-east-1", "addresses": [f"10.{world['net']}.0.11", vip],
                    "tags": {"Name": "n1", "claim": "node1:3"}, "instance_id": inst}
    assert error_of(lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=[n1]))[1] == \
        "InvalidNetworkInterfaceID.NotFound"
    r = ec2.describe_network_interfaces(Filters=[{"Name": "addresses.private-ip-address", "Values": [vip]},
                                                 {"Name": "subnet-id", "Values": [world["subnet_id"]]}])
    assert r["NetworkInterfaces"] == [] and holders(url, vip) == []
    assert tags_of(ec2, n1) == {}
    assert error_of(lambda: ec2.create_tags(Resources=[n1], Tags=[{"Key": "k", "Value": "v"}]))[1] == \
        "InvalidNetworkInterfaceID.NotFound"
    state = ec2.describe_instances(InstanceIds=[inst])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("shutting-down", "terminated")
    # The address is free again: another ENI takes it without AllowReassignment.
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n2, PrivateIpAddresses=[vip])
    assert holders(url, vip) == [n2]
    assert ctl(url, "POST", "/_va/vanish", {"eni_id": n1})[0] == 404
    assert ctl(url, "POST", "/_va/vanish", {})[0] == 400
    assert ctl(url, "POST", "/_va/vanish", {"eni_id": 7})[0] == 400


# ---------------------------------------------------------------- lag
LAG_S = 1.0


def lag(url, **spec):
    st, rule = ctl(url, "POST", "/_va/lag", spec)
    assert st == 200, rule
    return rule


@pytest.fixture
def other(url):
    """A second client, from 127.0.0.2."""
    return ec2_client(url, source="127.0.0.2")


def eni_tags(ec2, eni):
    [e] = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
    return {t["Key"]: t["Value"] for t in e["TagSet"]}


def vip_holders(ec2, world):
    r = ec2.describe_network_interfaces(Filters=[{"Name": "addresses.private-ip-address", "Values": [world["vip"]]},
                                                 {"Name": "subnet-id", "Values": [world["subnet_id"]]}])
    return sorted(e["NetworkInterfaceId"] for e in r["NetworkInterfaces"])


def seen_by(url, ip, reader):
    st, body = ctl(url, "GET", f"/_va/holder?ip={ip}&as_seen_by={reader}")
    assert st == 200, body
    return body["holders"]


def poll_lag(reads, t0, t1, delay, timeout=None):
    """Poll `reads` (each True once it shows a change written between monotonic times
    t0 and t1, delayed by `delay`) until one round shows it everywhere.  Every answer is
    checked against the clock (the emulator's and ours are the same CLOCK_MONOTONIC): a
    read that ended before t0 + delay must not show it, one that started after t1 + delay
    must.  Returns how many answers were certainly early, so the caller can insist on
    having seen the old state; a loaded machine only makes the reads slower, not wrong."""
    deadline = time.monotonic() + (timeout if timeout is not None else delay + 5)
    early = 0
    while time.monotonic() < deadline:
        results = []
        for read in reads:
            start = time.monotonic()
            got = read()
            end = time.monotonic()
            if end < t0 + delay:
                assert not got, f"{read} showed the change {end - t0:.2f} s after it, before {delay} s"
                early += 1
            if start > t1 + delay:
                assert got, f"{read} still hid the change {start - t1:.2f} s after it ({delay} s lag)"
            results.append(got)
        if all(results):
            return early
        time.sleep(0.05)
    raise AssertionError(f"the change never became visible within {deadline - t0:.1f} s")


def test_lag_tag_write_hidden_then_seen(url, ec2, world):
    n1, sn, vpc = world["id"]["n1"], world["subnet_id"], world["vpc_id"]
    rule = lag(url, tags_s=LAG_S, moves_s=0)
    assert rule == {"id": rule["id"], "tags_s": LAG_S, "moves_s": 0, "writers": None, "readers": None}
    assert ctl(url, "GET", "/_va/lag")[1] == [rule]
    ctl(url, "DELETE", "/_va/calls")
    t0 = time.monotonic()
    ec2.create_tags(Resources=[n1, sn, vpc], Tags=[{"Key": "claim", "Value": "node1:5"}])
    t1 = time.monotonic()
    reads = [lambda: "claim" in eni_tags(ec2, n1),
             lambda: tags_of(ec2, sn).get("claim") == "node1:5",
             lambda: "claim" in tags_of(ec2, vpc),
             lambda: bool(ec2.describe_subnets(SubnetIds=[sn])["Subnets"][0].get("Tags")),
             lambda: bool(ec2.describe_network_interfaces(
                 Filters=[{"Name": "tag:claim", "Values": ["node1:5"]}])["NetworkInterfaces"])]
    assert poll_lag(reads, t0, t1, LAG_S) >= len(reads)  # at least one full round saw the old state
    assert holders(url, world["vip"]) == []  # (the control API is never delayed)
    calls = ctl(url, "GET", "/_va/calls")[1]
    assert calls[0]["action"] == "CreateTags" and calls[0]["hidden"] == 0
    hidden = [c["hidden"] for c in calls[1:]]  # the reads: 3 changes hidden, then none
    assert set(hidden) == {3, 0} and hidden == sorted(hidden, reverse=True), hidden
    # An overwrite and a delete are delayed too: the old value stays until then.
    t0 = time.monotonic()
    ec2.create_tags(Resources=[n1], Tags=[{"Key": "claim", "Value": "node2:6"}])
    ec2.delete_tags(Resources=[sn], Tags=[{"Key": "claim"}])
    t1 = time.monotonic()

    def old_or_new(read, old, new):
        def f():
            got = read()
            assert got in (old, new), got
            return got == new
        return f
    assert poll_lag([old_or_new(lambda: eni_tags(ec2, n1)["claim"], "node1:5", "node2:6"),
                     old_or_new(lambda: tags_of(ec2, sn), {"claim": "node1:5"}, {})], t0, t1, LAG_S) >= 2


def test_lag_per_reader_and_per_writer(url, ec2, other, world):
    n1, n2 = world["id"]["n1"], world["id"]["n2"]
    # Readers: only 127.0.0.2 lags; the writer itself (127.0.0.1) sees its change at once.
    lag(url, tags_s=60, moves_s=0, readers=["127.0.0.2"])
    ec2.create_tags(Resources=[n1], Tags=[{"Key": "r", "Value": "1"}])
    assert eni_tags(ec2, n1).get("r") == "1" and "r" not in eni_tags(other, n1)
    sources = {c["source"] for c in ctl(url, "GET", "/_va/calls")[1]}
    assert {"127.0.0.1", "127.0.0.2"} <= sources  # really two clients
    ctl(url, "DELETE", "/_va/lag")
    assert eni_tags(other, n1).get("r") == "1"
    # Writers: only changes written by 127.0.0.2 lag, for every reader.
    lag(url, tags_s=60, moves_s=0, writers=["127.0.0.2"])
    ec2.create_tags(Resources=[n1], Tags=[{"Key": "w", "Value": "1"}])
    other.create_tags(Resources=[n2], Tags=[{"Key": "w", "Value": "2"}])
    for c in (ec2, other):
        assert eni_tags(c, n1).get("w") == "1" and "w" not in eni_tags(c, n2)
    ctl(url, "DELETE", "/_va/lag")
    assert all(eni_tags(c, n2).get("w") == "2" for c in (ec2, other))
    # Both lists, two matching rules: the delay is the larger one (and it ends).
    lag(url, tags_s=0.3, moves_s=0, writers=["127.0.0.1"], readers=["127.0.0.2"])
    lag(url, tags_s=LAG_S, moves_s=0, writers=["127.0.0.1"], readers=["127.0.0.2", "127.0.0.9"])
    t0 = time.monotonic()
    ec2.create_tags(Resources=[n1], Tags=[{"Key": "m", "Value": "1"}])
    t1 = time.monotonic()
    assert eni_tags(ec2, n1).get("m") == "1"
    assert poll_lag([lambda: eni_tags(other, n1).get("m") == "1"], t0, t1, LAG_S) >= 1


def test_lag_newest_visible_write_wins(url, ec2, other, world):
    n1 = world["id"]["n1"]
    lag(url, tags_s=60, moves_s=0, writers=["127.0.0.2"])
    other.create_tags(Resources=[n1], Tags=[{"Key": "claim", "Value": "lagged"}])
    assert "claim" not in eni_tags(ec2, n1)
    ec2.create_tags(Resources=[n1], Tags=[{"Key": "claim", "Value": "prompt"}])  # a later, unlagged write
    assert eni_tags(ec2, n1)["claim"] == "prompt" == eni_tags(other, n1)["claim"]
    other.delete_tags(Resources=[n1], Tags=[{"Key": "claim"}])  # a lagged delete after it
    assert eni_tags(ec2, n1)["claim"] == "prompt"
    assert ctl(url, "GET", "/_va/holder?ip=10.0.0.1&as_seen_by=127.0.0.1")[1]["hidden"] == 2  # both lagged
    ctl(url, "DELETE", "/_va/lag")
    assert "claim" not in eni_tags(ec2, n1)


def test_lag_address_move(url, ec2, other, world):
    n1, n2, vip = world["id"]["n1"], world["id"]["n2"], world["vip"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip])  # before any rule
    lag(url, tags_s=0, moves_s=60, readers=["127.0.0.2"])
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n2, PrivateIpAddresses=[vip], AllowReassignment=True)
    ec2.create_tags(Resources=[n2], Tags=[{"Key": "claim", "Value": "node2:8"}])  # tags_s=0: seen at once
    assert holders(url, vip) == [n2]  # the truth
    assert seen_by(url, vip, "127.0.0.1") == [n2] and seen_by(url, vip, "127.0.0.2") == [n1]
    assert vip_holders(ec2, world) == [n2] and vip_holders(other, world) == [n1]
    assert vip in ips_of(other, n1) and vip not in ips_of(other, n2)
    assert eni_tags(other, n2)["claim"] == "node2:8"
    # An unassign is delayed too; writes act on the truth meanwhile.
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=n2, PrivateIpAddresses=[vip])
    assert vip_holders(other, world) == [n1] and holders(url, vip) == []
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip])  # free in truth: no InUse
    assert vip_holders(ec2, world) == [n1]
    # DELETE /_va/lag: consistent at once.
    assert ctl(url, "DELETE", "/_va/lag") == (200, {"cleared": True})
    assert ctl(url, "GET", "/_va/lag")[1] == []
    assert vip_holders(other, world) == [n1] == seen_by(url, vip, "127.0.0.2")
    assert ips_of(other, n2) == [f"10.{world['net']}.0.12"]
    # A short lag ends by itself: the move reaches the lagged reader after moves_s.
    lag(url, tags_s=0, moves_s=LAG_S, readers=["127.0.0.2"])
    t0 = time.monotonic()
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n2, PrivateIpAddresses=[vip], AllowReassignment=True)
    t1 = time.monotonic()
    assert vip_holders(ec2, world) == [n2] == holders(url, vip)

    def moved(read):
        def f():
            got = read()
            assert got in ([n1], [n2]), got  # never both, never none
            return got == [n2]
        return f
    assert poll_lag([moved(lambda: vip_holders(other, world)), moved(lambda: seen_by(url, vip, "127.0.0.2"))],
                    t0, t1, LAG_S) >= 2


def test_lag_spares_setup_vanish_and_control(url, ec2, world):
    lag(url, tags_s=600, moves_s=600)
    n = next(_cidr)
    st, w = ctl(url, "POST", "/_va/setup", {"vpc_cidr": f"10.{n}.0.0/16", "subnet_cidr": f"10.{n}.0.0/20",
                                            "enis": [{"name": "s", "private_ip": f"10.{n}.0.11"}]})
    assert st == 200
    eni = w["enis"]["s"]["eni_id"]
    assert eni_tags(ec2, eni) == {"Name": "s"}  # setup's own calls are never delayed
    n1, vip = world["id"]["n1"], world["vip"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=n1, PrivateIpAddresses=[vip])
    ec2.create_tags(Resources=[n1], Tags=[{"Key": "claim", "Value": "x"}])
    assert vip_holders(ec2, world) == [] and "claim" not in eni_tags(ec2, n1)
    # Vanish is seen at once by everyone, pending changes of that ENI included.
    assert ctl(url, "POST", "/_va/vanish", {"eni_id": n1})[0] == 200
    assert vip_holders(ec2, world) == [] and seen_by(url, vip, "127.0.0.1") == []
    assert tags_of(ec2, n1) == {}
    assert error_of(lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=[n1]))[1] == \
        "InvalidNetworkInterfaceID.NotFound"


@pytest.mark.parametrize("spec", [
    {"tags_s": -1, "moves_s": 0},
    {"tags_s": 601, "moves_s": 0},
    {"tags_s": 1, "moves_s": "1"},
    {"tags_s": True, "moves_s": 0},
    {"tags_s": 1},
    {"moves_s": 1},
    {"tags_s": float("nan"), "moves_s": 0},
    {"tags_s": 1, "moves_s": 1, "writers": "127.0.0.1"},
    {"tags_s": 1, "moves_s": 1, "readers": [1]},
    {"tags_s": 1, "moves_s": 1, "reader": ["127.0.0.1"]},
    [{"tags_s": 1, "moves_s": 1}],
    None,
])
def test_lag_spec_is_validated(url, spec):
    data = json.dumps(spec).encode() if spec is not None else b"not json"
    req = urllib.request.Request(url + "/_va/lag", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=30)
    assert exc.value.code == 400 and "error" in json.loads(exc.value.read())
    assert ctl(url, "GET", "/_va/lag")[1] == []
    assert ctl(url, "GET", "/_va/holder?ip=10.0.0.1&as_seen_by=nope")[0] == 400


# ---------------------------------------------------------------- plain moto
@pytest.fixture
def plain_moto():
    """moto's own server, unpatched (this process never imports the launcher)."""
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    u = f"http://{host}:{port}"
    ec2 = ec2_client(u)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    sn = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/20")["Subnet"]["SubnetId"]
    a, b = (ec2.create_network_interface(SubnetId=sn, PrivateIpAddress=ip)["NetworkInterface"]["NetworkInterfaceId"]
            for ip in ("10.9.0.11", "10.9.0.12"))
    try:
        yield u, ec2, a, b
    finally:
        server.stop()


def test_plain_moto_gaps_still_exist(plain_moto):
    """If this fails after a moto upgrade, moto fixed a gap: drop that correction."""
    u, ec2, a, b = plain_moto
    vip = "10.9.0.100"
    ec2.assign_private_ip_addresses(NetworkInterfaceId=a, PrivateIpAddresses=[vip])
    # 1. no AllowReassignment, address in use: accepted, two holders
    ec2.assign_private_ip_addresses(NetworkInterfaceId=b, PrivateIpAddresses=[vip])
    assert vip in ips_of(ec2, a) and vip in ips_of(ec2, b)
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=b, PrivateIpAddresses=[vip])
    # 1. AllowReassignment=true does not take it off the old ENI
    ec2.assign_private_ip_addresses(NetworkInterfaceId=b, PrivateIpAddresses=[vip], AllowReassignment=True)
    assert vip in ips_of(ec2, a) and vip in ips_of(ec2, b)
    # 2. the address filters see primaries only; device-index is a 500
    r = ec2.describe_network_interfaces(Filters=[{"Name": "addresses.private-ip-address", "Values": [vip]}])
    assert r["NetworkInterfaces"] == []
    assert raw_ec2(u, {"Action": "DescribeNetworkInterfaces", "Filter.1.Name": "attachment.device-index",
                       "Filter.1.Value.1": "0"}, scope=True)[0] == 500
    # 3. DryRun on a hand-made Assign is ignored and the change is made
    status, _ = raw_ec2(u, {"Action": "AssignPrivateIpAddresses", "NetworkInterfaceId": a,
                            "PrivateIpAddress.1": "10.9.0.101", "DryRun": "true"}, scope=True)
    assert status == 200 and "10.9.0.101" in ips_of(ec2, a)
    # Not gaps: DryRun on Describe/CreateTags, and tags round-trip.
    assert error_of(lambda: ec2.describe_network_interfaces(DryRun=True))[:2] == (412, "DryRunOperation")
    assert error_of(lambda: ec2.create_tags(Resources=[a], Tags=[{"Key": "k", "Value": "v"}], DryRun=True)
                    )[:2] == (412, "DryRunOperation")
    ec2.create_tags(Resources=[a], Tags=[{"Key": "k", "Value": "v"}])
    tagset = ec2.describe_network_interfaces(NetworkInterfaceIds=[a])["NetworkInterfaces"][0]["TagSet"]
    assert tagset == [{"Key": "k", "Value": "v"}]


def test_plain_moto_tag_unassign_and_terminate_gaps_still_exist(plain_moto):
    """The gaps behind corrections 5-8 (and what was already right), in plain moto."""
    u, ec2, a, b = plain_moto
    sn = ec2.describe_network_interfaces(NetworkInterfaceIds=[a])["NetworkInterfaces"][0]["SubnetId"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=a, PrivateIpAddresses=["10.9.0.100"])
    # 5. Unassign of an address the ENI lacks, and of its primary: 200; the primary goes.
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=a, PrivateIpAddresses=["10.9.0.12"])
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=a, PrivateIpAddresses=["10.9.0.11"])
    assert ips_of(ec2, a) == ["10.9.0.100"]
    # 6. CreateTags with an unknown ENI id: 200, and the other resource is tagged.
    ghost = "eni-0000000000000000a"
    ec2.create_tags(Resources=[ghost, sn], Tags=[{"Key": "x", "Value": "1"}])
    assert ec2.describe_subnets(SubnetIds=[sn])["Subnets"][0]["Tags"] == [{"Key": "x", "Value": "1"}]
    # 7. A deleted ENI's tags stay in DescribeTags.
    ec2.create_tags(Resources=[b], Tags=[{"Key": "k", "Value": "v"}])
    ec2.delete_network_interface(NetworkInterfaceId=b)
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [b]}])["Tags"] != []
    # 8. TerminateInstances leaves a kept ENI attached ("in-use") to the terminated instance.
    inst = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                             NetworkInterfaces=[{"DeviceIndex": 0, "NetworkInterfaceId": a}])["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[inst])
    [e] = ec2.describe_network_interfaces(NetworkInterfaceIds=[a])["NetworkInterfaces"]
    assert e["Status"] == "in-use" and e["Attachment"]["InstanceId"] == inst
    # Not gaps: one CreateTags for an ENI and a subnet, DeleteTags on a subnet, DescribeTags'
    # filters and fields, DescribeSubnets' Tags, DescribeNetworkInterfaces by id and NotFound.
    ec2.create_tags(Resources=[a, sn], Tags=[{"Key": "f", "Value": "1"}])
    r = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["f"]}, {"Name": "resource-id", "Values": [a, sn]}])
    assert sorted((t["ResourceId"], t["ResourceType"], t["Key"], t["Value"]) for t in r["Tags"]) == sorted(
        [(a, "network-interface", "f", "1"), (sn, "subnet", "f", "1")])
    r = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["f"]}, {"Name": "resource-type", "Values": ["subnet"]}])
    assert [t["ResourceId"] for t in r["Tags"]] == [sn]
    ec2.delete_tags(Resources=[sn], Tags=[{"Key": "f"}, {"Key": "x"}])
    assert ec2.describe_subnets(SubnetIds=[sn])["Subnets"][0].get("Tags", []) == []
    assert e["SubnetId"] == sn and e["MacAddress"]
    assert error_of(lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=[ghost]))[1] == \
        "InvalidNetworkInterfaceID.NotFound"
