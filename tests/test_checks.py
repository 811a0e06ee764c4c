"""
``vsphere-flocker check``: every check passes on a node set up as the guide
asks, and each one fails, with its reason and fix, when its one thing is
wrong.  The later checks that need a failed one are skipped, not failed.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import hashlib
import io
import json
import os
import socket
import ssl
import uuid
from contextlib import contextmanager

import pytest
from pyVmomi import vim

from vsphere_flocker_driver import vsphere_from_configuration
from vsphere_flocker_driver.checks import DATASTORE_PRIVILEGES, VM_PRIVILEGES
from vsphere_flocker_driver.errors import DatastoreUnusable
from vsphere_flocker_driver.testtools.simulator import Simulator

from .conftest import find_vm, set_disk_enable_uuid
from .test_cli import node_root, operators, run_cli

GiB = 1024 ** 3


def checks(operator, *options):
    """Run ``check --json``: ``(exit status, {check: result})``."""
    result = operator("--json", "check", *options)
    results = json.loads(result.out)
    return result.status, dict((r["check"], r) for r in results)


def statuses(results):
    return dict((name, r["status"]) for name, r in results.items())


def assert_only_failure(status, results, failed, skipped=()):
    """
    ``failed`` failed, ``skipped`` were skipped, everything else passed
    (or warned that certificates are not verified), and the exit status
    says so.
    """
    assert status == 1
    for name, result in results.items():
        if name in failed:
            assert result["status"] == "FAIL", result
            assert result["fix"], result
        elif name in skipped:
            assert result["status"] == "SKIP", result
        elif name == "certificate":
            assert result["status"] in ("PASS", "WARN"), result
        else:
            assert result["status"] == "PASS", result


@pytest.fixture
def operator(simulator, tmpdir, logger):
    with operators(simulator, tmpdir) as make:
        yield make


AFTER_LOGIN = ["datacenter", "datastores", "storage policies", "volume folder",
               "this node's VM", "disk.EnableUUID", "privileges",
               "free SCSI slot"]


def test_a_prepared_node_passes_every_check(operator, simulator):
    op = operator()
    result = op("check")
    assert result.status == 0, result
    lines = result.out.splitlines()
    assert lines[-1] == ("14 checks: 13 passed, 1 warned, 0 failed, 0 skipped")
    for line in lines[:-1]:
        assert line.split()[0] in ("PASS", "WARN"), line
    assert "WARN  certificate" in result.out
    node = simulator.vms[0]
    assert "{} (node id {})".format(node.name, node.instance_uuid) in result.out


def test_json_gives_every_check_with_reason_and_fix(operator, simulator):
    status, results = checks(operator())
    assert status == 0
    assert results["certificate"]["status"] == "WARN"
    assert "ssl_thumbprint:" in results["certificate"]["fix"]
    assert set(statuses(results)) >= set([
        "configuration", "vCenter reachable", "login", "datacenter",
        "datastore LocalDS_0", "storage policies", "volume folder on LocalDS_0",
        "this node's VM", "disk.EnableUUID", "privileges on datastore LocalDS_0",
        "privileges on VM {}".format(simulator.vms[0].name),
        "free SCSI slot"])


def test_invalid_configuration_fails_and_the_rest_is_skipped(operator):
    status, results = checks(operator(datastore_nme="LocalDS_0"))
    assert status == 1
    assert results["configuration"]["status"] == "FAIL"
    assert "key datastore_nme: is not a known key; did you mean " \
        "datastore_name?" in results["configuration"]["reason"]
    assert set(statuses(results).values()) == set(["FAIL", "SKIP"])
    assert results["login"]["reason"] == \
        "not checked: certificate did not pass"


def test_no_cluster_id_fails_the_configuration(operator, tmpdir):
    op = operator()
    run = run_cli(["--json", "--config", op.config, "--node-certificate",
                   tmpdir.join("none.crt").strpath, "check"])
    [first] = [r for r in json.loads(run.out) if r["check"] == "configuration"]
    assert first["status"] == "FAIL"
    assert "does not exist; give --cluster-id" in first["reason"]


def test_unreachable_vcenter_fails(operator):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    status, results = checks(operator(vc_port=port))
    assert_only_failure(status, results, ["vCenter reachable"],
                        ["certificate", "login"] + AFTER_LOGIN)
    assert "cannot connect to 127.0.0.1:{}".format(port) in \
        results["vCenter reachable"]["reason"]


def fingerprint(simulator, algorithm="sha256"):
    pem = ssl.get_server_certificate((simulator.host, simulator.port))
    return hashlib.new(algorithm, ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def test_self_signed_certificate_fails_when_verified(operator, simulator):
    status, results = checks(operator(ssl_verify_cert=True))
    assert_only_failure(status, results, ["certificate"], ["login"] + AFTER_LOGIN)
    assert "not trusted" in results["certificate"]["reason"]
    assert results["certificate"]["fix"].endswith(
        "ssl_thumbprint: {}".format(fingerprint(simulator)))


def test_certificate_signed_by_the_configured_ca_passes(operator, simulator):
    if not getattr(simulator, "ca_file", None):
        pytest.skip("this simulator does not give its certificate")
    status, results = checks(operator(ssl_verify_cert=True,
                                      ssl_ca_file=simulator.ca_file))
    assert status == 0
    assert results["certificate"] == {
        "check": "certificate", "status": "PASS", "fix": None,
        "reason": "verified against {}".format(simulator.ca_file)}


def test_wrong_thumbprint_fails(operator, simulator):
    status, results = checks(operator(ssl_thumbprint="ab" * 32))
    assert_only_failure(status, results, ["certificate"], ["login"] + AFTER_LOGIN)
    assert "not the configured ssl_thumbprint" in results["certificate"]["reason"]


@pytest.mark.parametrize("algorithm", ["sha256", "sha1"])
def test_pinned_thumbprint_passes(operator, simulator, algorithm):
    status, results = checks(operator(
        ssl_thumbprint=fingerprint(simulator, algorithm)))
    assert status == 0
    assert results["certificate"]["status"] == "PASS"


def test_wrong_password_fails_login(operator):
    status, results = checks(operator(password="not-the-password"))
    assert_only_failure(status, results, ["login"], AFTER_LOGIN)
    assert "refused the login" in results["login"]["reason"]


def test_unknown_datacenter_fails(operator):
    status, results = checks(operator(datacenter_name="DC9"))
    assert_only_failure(status, results, ["datacenter"], [
        "datastores", "volume folder", "this node's VM", "disk.EnableUUID",
        "privileges", "free SCSI slot"])
    assert "found: DC0" in results["datacenter"]["reason"]


def test_unknown_datastore_fails(operator):
    op = operator(profiles={"gold": {"datastore": "LocalDS_9"}})
    status, results = checks(op)
    # The node's VM is looked up in the datacenter, whatever the datastores,
    # as the agent looks it up: those checks still run.
    assert_only_failure(status, results, ["datastore LocalDS_9"],
                        ["volume folder"])
    reason = results["datastore LocalDS_9"]["reason"]
    assert "no datastore named 'LocalDS_9'" in reason and "gold" in reason


def test_unknown_storage_policy_fails(operator):
    op = operator(profiles={"gold": {"storage_policy": "Platinum"}})
    status, results = checks(op)
    assert_only_failure(status, results, ["storage policies"])
    assert "'Platinum'" in results["storage policies"]["reason"]


def test_volume_folder_blocked_by_a_file_fails(operator, simulator):
    folder = "F{}".format(uuid.uuid4().hex[:8])
    path = os.path.join(simulator.datastores["LocalDS_0"], folder)
    io.open(path, "wb").close()
    try:
        status, results = checks(operator(volume_folder=folder))
    finally:
        os.remove(path)
    assert_only_failure(status, results, ["volume folder on LocalDS_0"])
    assert "[LocalDS_0] {} is a file".format(folder) in \
        results["volume folder on LocalDS_0"]["reason"]


def test_existing_volume_folder_passes(operator):
    op = operator()
    assert op("create", "--size", "1GiB").status == 0
    status, results = checks(op)
    assert status == 0
    assert results["volume folder on LocalDS_0"]["reason"].endswith(" exists")


def test_unknown_node_fails(operator):
    op = operator()
    node_root(op.root, text(uuid.uuid4()))
    status, results = checks(op)
    assert_only_failure(status, results, ["this node's VM"],
                        ["disk.EnableUUID", "free SCSI slot"])
    # The agent's own message: the check runs the agent's own look-up.
    assert "no virtual machine in datacenter DC0 has BIOS UUID" in \
        results["this node's VM"]["reason"]


def test_unreadable_identity_fails(operator, tmpdir):
    op = operator()
    op.root = tmpdir.mkdir("empty").strpath
    status, results = checks(op)
    assert_only_failure(status, results, ["this node's VM"],
                        ["disk.EnableUUID", "free SCSI slot"])
    assert "run the command as root" in results["this node's VM"]["fix"]


def test_disk_uuid_not_enabled_fails(operator, vcenter, simulator):
    node = simulator.vms[0]
    set_disk_enable_uuid(vcenter, node.name, False)
    try:
        status, results = checks(operator())
    finally:
        set_disk_enable_uuid(vcenter, node.name, True)
    assert_only_failure(status, results, ["disk.EnableUUID"])
    assert "power-cycle" in results["disk.EnableUUID"]["fix"]


@contextmanager
def only_privileges(vcenter, simulator, entity, privileges):
    """
    The simulator's user holds only ``privileges`` (and the System ones
    every role has) on ``entity`` and below, for the duration.
    """
    authz = vcenter.authorizationManager
    name = "flocker-test-{}".format(uuid.uuid4().hex[:8])
    authz.AddAuthorizationRole(name=name, privIds=list(privileges))
    [role] = [role.roleId for role in authz.roleList if role.name == name]
    authz.SetEntityPermissions(entity=entity, permission=[
        vim.AuthorizationManager.Permission(
            entity=entity, principal=simulator.username, group=False,
            roleId=role, propagate=True)])
    try:
        yield
    finally:
        authz.RemoveEntityPermission(entity=entity, user=simulator.username,
                                     isGroup=False)
        authz.RemoveAuthorizationRole(roleId=role, failIfUsed=False)


def test_missing_privileges_fail(operator, vcenter, simulator):
    datastore = [ds for ds in vcenter.rootFolder.childEntity[0].datastore
                 if ds.name == "LocalDS_0"][0]
    with only_privileges(vcenter, simulator, datastore, ["System.Read"]):
        status, results = checks(operator())
    assert_only_failure(status, results, ["privileges on datastore LocalDS_0"])
    result = results["privileges on datastore LocalDS_0"]
    assert result["reason"] == "{} lacks {}".format(
        simulator.username, ", ".join(DATASTORE_PRIVILEGES))
    assert "grant {} a role".format(simulator.username) in result["fix"]


def test_missing_optional_privilege_warns(operator, vcenter, simulator):
    node = simulator.vms[0]
    vm = find_vm(vcenter, node.name)
    with only_privileges(vcenter, simulator, vm, VM_PRIVILEGES):
        status, results = checks(operator())
    assert status == 0
    result = results["privileges on VM {}".format(node.name)]
    assert result["status"] == "WARN"
    assert result["reason"] == (
        "{} lacks VirtualMachine.Interact.PowerOn: Flocker cannot power a "
        "stopped node VM on (start_node)".format(simulator.username))


@pytest.fixture(scope="module")
def cloned():
    """A simulator whose two VMs share one BIOS UUID."""
    with Simulator(vms=2, clusters=0, clone_bios_uuid=True) as sim:
        yield sim


def test_cloned_bios_uuid_fails(cloned, tmpdir, logger):
    with operators(cloned, tmpdir) as make:
        status, results = checks(make())
    assert_only_failure(status, results, ["this node's VM"],
                        ["disk.EnableUUID", "free SCSI slot"])
    reason = results["this node's VM"]["reason"]
    assert "Several virtual machines have BIOS UUID {}".format(
        cloned.vms[0].bios_uuid) in reason
    assert "unique BIOS UUID" in results["this node's VM"]["fix"]


def fill_scsi_slots(simulator, vm_name):
    """Give the VM four SCSI controllers with 15 disks each."""
    content = simulator.connect().RetrieveContent()
    vm = find_vm(content, vm_name)
    devices = vm.config.hardware.device
    controllers = [d for d in devices
                   if isinstance(d, vim.vm.device.VirtualSCSIController)]
    used = set((d.controllerKey, d.unitNumber) for d in devices
               if d.unitNumber is not None)
    changes = []
    buses = set(c.busNumber for c in controllers)
    keys = [c.key for c in controllers]
    for bus in range(4):
        if bus not in buses:
            key = -1 - bus
            keys.append(key)
            changes.append(vim.vm.device.VirtualDeviceSpec(
                operation="add", device=vim.vm.device.ParaVirtualSCSIController(
                    key=key, busNumber=bus, sharedBus="noSharing")))
    for key in keys:
        for unit in range(16):
            if unit == 7 or (key, unit) in used:
                continue
            changes.append(vim.vm.device.VirtualDeviceSpec(
                operation="add", fileOperation="create",
                device=vim.vm.device.VirtualDisk(
                    key=-100 - len(changes), controllerKey=key,
                    unitNumber=unit, capacityInKB=1024,
                    backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                        fileName="[LocalDS_0]", diskMode="persistent"))))
    task = vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=changes))
    assert task.info.state == "success", task.info.error


def test_full_scsi_slots_fail(tmpdir, logger):
    with Simulator(vms=2, clusters=0) as sim:
        content = sim.connect().RetrieveContent()
        set_disk_enable_uuid(content, sim.vms[0].name, True)
        fill_scsi_slots(sim, sim.vms[0].name)
        with operators(sim, tmpdir) as make:
            status, results = checks(make(clean=False))
    assert_only_failure(status, results, ["free SCSI slot"])
    assert "4 SCSI controllers with 15 disks each" in \
        results["free SCSI slot"]["reason"]


def text(value):
    return "{}".format(value)


def agent_refusal(simulator, **overrides):
    """What stops the agent's start-up with this configuration."""
    dataset = dict(simulator.dataset_config(), **overrides)
    dataset.pop("backend")
    with pytest.raises(DatastoreUnusable) as caught:
        vsphere_from_configuration(uuid.uuid4(), **dataset)
    return caught.value


def test_inaccessible_datastore_fails_check_and_agent_alike(operator, simulator):
    """
    A datastore whose storage is lost stops the agent at start-up, and the
    check fails it with the very same words and fix: both ask one rule.
    """
    simulator.set_datastore_accessible("LocalDS_0", False)
    try:
        refused = agent_refusal(simulator)
        status, results = checks(operator(clean=False))
    finally:
        simulator.set_datastore_accessible("LocalDS_0", True)
    assert refused.key == "datastore_name"
    assert "not accessible" in refused.problem
    line = results["datastore LocalDS_0"]
    assert line["status"] == "FAIL"
    assert line["reason"].startswith(refused.problem)
    assert line["fix"] == refused.fix
    assert status == 1


def test_datastore_rule_changed_in_one_place_changes_both(
        operator, simulator, monkeypatch):
    """The datastore rule lives in one function: the agent and check obey it."""
    from vsphere_flocker_driver import datastore_rules

    def refuse_every_datastore(datastore):
        return ("is refused by a rule of the test", "remove the rule")
    monkeypatch.setattr(datastore_rules, "datastore_refusal",
                        refuse_every_datastore)
    refused = agent_refusal(simulator)
    status, results = checks(operator(clean=False))
    line = results["datastore LocalDS_0"]
    assert refused.problem == "names 'LocalDS_0', which is refused by a rule " \
                              "of the test"
    assert (line["status"], line["fix"]) == ("FAIL", "remove the rule")
    assert line["reason"].startswith(refused.problem)


# -- datastore clusters -------------------------------------------------------------

SDRS_POD, MANUAL_POD = "POD_SDRS", "POD_MANUAL"


@pytest.fixture(scope="module")
def pod_sim():
    """A simulator with a datastore cluster under Storage DRS and one without."""
    with Simulator(vms=2, clusters=0, pods={
            SDRS_POD: 2, MANUAL_POD: {"datastores": 2, "sdrs": False}}) as sim:
        content = sim.connect().RetrieveContent()
        set_disk_enable_uuid(content, sim.vms[0].name, True)
        yield sim


def test_a_datastore_cluster_is_checked_with_each_member(pod_sim, tmpdir, logger):
    with operators(pod_sim, tmpdir) as make:
        status, results = checks(make(datastore_name=SDRS_POD, profiles={
            "manual": {"datastore": MANUAL_POD}}))
    assert status == 0, results
    sdrs = results["datastore {}".format(SDRS_POD)]
    assert sdrs["status"] == "PASS"
    first = pod_sim.pods[SDRS_POD]["datastores"][0]
    # Where the agent would put a new volume, asked as the agent asks.
    assert sdrs["reason"] == (
        "datastore cluster (Storage DRS on); a new 1 GiB volume would go to "
        "{} (profiles bronze, gold, silver)".format(first))
    manual = results["datastore {}".format(MANUAL_POD)]
    assert manual["reason"].startswith(
        "datastore cluster (Storage DRS off: the member with the most free "
        "space); a new 1 GiB volume would go to {}_DS".format(MANUAL_POD))
    assert manual["reason"].endswith("(profiles manual)")
    for pod in (SDRS_POD, MANUAL_POD):
        for name in pod_sim.pods[pod]["datastores"]:
            line = results["datastore {} in cluster {}".format(name, pod)]
            assert line["status"] == "PASS"
            assert line["reason"].startswith("accessible, ")
            assert line["reason"].endswith(" free")
            # Volumes go to any member: each has the folder or can have it,
            # and the user's privileges there are checked.
            assert results["volume folder on {}".format(name)]["status"] == \
                "PASS"
            assert results["privileges on datastore {} (in cluster {})".format(
                name, pod)]["status"] == "PASS"


def test_an_inaccessible_member_fails_its_cluster(pod_sim, tmpdir, logger):
    lost, kept = pod_sim.pods[MANUAL_POD]["datastores"]
    pod_sim.set_datastore_accessible(lost, False)
    try:
        with operators(pod_sim, tmpdir) as make:
            status, results = checks(make(clean=False,
                                          datastore_name=MANUAL_POD))
    finally:
        pod_sim.set_datastore_accessible(lost, True)
    assert_only_failure(status, results, [
        "datastore {} in cluster {}".format(lost, MANUAL_POD)],
        ["volume folder"])
    line = results["datastore {} in cluster {}".format(lost, MANUAL_POD)]
    assert "no volume is listed until it is back" in line["reason"]
    assert line["fix"] == "bring datastore {} back".format(lost)
    # New volumes would still find a place: the other member.
    assert results["datastore {}".format(MANUAL_POD)]["reason"].startswith(
        "datastore cluster (Storage DRS off: the member with the most free "
        "space); a new 1 GiB volume would go to {}".format(kept))


def test_a_cluster_without_room_fails(pod_sim, tmpdir, logger):
    with operators(pod_sim, tmpdir) as make:
        op = make(clean=False, datastore_name=MANUAL_POD)
        for name in pod_sim.pods[MANUAL_POD]["datastores"]:
            pod_sim.set_datastore_accessible(name, False)
        try:
            status, results = checks(op)
        finally:
            for name in pod_sim.pods[MANUAL_POD]["datastores"]:
                pod_sim.set_datastore_accessible(name, True)
    line = results["datastore {}".format(MANUAL_POD)]
    assert line["status"] == "FAIL"
    assert "none of whose datastores can hold a new disk of 1 GiB" in \
        line["reason"]
    assert line["fix"] == "free space on its datastores, or add one to the " \
        "cluster"
    assert status == 1
