"""
The operator's command line, driven through ``cli.main(argv)`` against the
simulator: an agent.yml in a temporary folder, a cluster id of the test's
own, and this node played by a folder holding its BIOS UUID (or by a virtual
guest where a device must appear).
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import json
import os
import platform
import stat
import subprocess
import uuid
from contextlib import contextmanager

import pytest
import yaml

from vsphere_flocker_driver import __version__, cli, vsphere_from_configuration
from vsphere_flocker_driver._compat import text_type
from vsphere_flocker_driver.errors import ConfigurationError, VCenterError
from vsphere_flocker_driver.testtools.virtual_guest import serial_for

GiB = 1024 ** 3


class Run(object):
    """What one run of the command line did."""

    def __init__(self, status, out, err):
        self.status = status
        self.out = out
        self.err = err

    def __repr__(self):
        return "<Run status={} out={!r} err={!r}>".format(
            self.status, self.out, self.err)


class Terminal(io.StringIO):
    """A stream that says it is a terminal, with what a person types."""

    def isatty(self):
        return True


def run_cli(argv, stdin=None, stdout=None):
    stdout = stdout if stdout is not None else io.StringIO()
    stderr = io.StringIO()
    status = cli.main(list(argv), stdin=stdin or io.StringIO(), stdout=stdout,
                      stderr=stderr)
    return Run(status, stdout.getvalue(), stderr.getvalue())


def write_agent_yml(path, dataset):
    with io.open(path, "wb") as f:
        f.write(yaml.safe_dump({"version": 1, "dataset": dataset},
                               default_flow_style=False, encoding="utf-8"))
    return path


def node_root(folder, bios_uuid):
    """A folder standing for the ``/`` of a node VM with ``bios_uuid``."""
    dmi = os.path.join(folder, "sys", "class", "dmi", "id")
    if not os.path.isdir(dmi):
        os.makedirs(dmi)
    with io.open(os.path.join(dmi, "product_serial"), "w") as f:
        f.write(serial_for(bios_uuid) + "\n")
    return folder


class Operator(object):
    """
    Runs the command line against one simulator, for one cluster.

    :ivar text config: The agent.yml path.
    :ivar UUID cluster_id:
    :ivar text root: This node's ``/`` (VM ``node``'s BIOS UUID).
    """

    def __init__(self, simulator, folder, node, verified=False, **overrides):
        self.simulator = simulator
        self.folder = folder
        self.cluster_id = uuid.uuid4()
        self.root = node_root(os.path.join(folder, "node"), node.bios_uuid)
        if verified and simulator.ca_file:
            # As vCenter should be: against its certificate, so without
            # the warning that it is not.
            overrides = dict(dict(ssl_verify_cert=True,
                                  ssl_ca_file=simulator.ca_file), **overrides)
        self.dataset = dict(simulator.dataset_config(), **overrides)
        self.config = write_agent_yml(os.path.join(folder, "agent.yml"),
                                      self.dataset)

    def argv(self, *args):
        return ["--config", self.config, "--cluster-id", text(self.cluster_id),
                "--guest-root", self.root] + list(args)

    def __call__(self, *args, **kwargs):
        return run_cli(self.argv(*args), **kwargs)

    def api(self):
        dataset = dict(self.dataset)
        dataset.pop("backend")
        return vsphere_from_configuration(cluster_id=self.cluster_id, **dataset)

    def clean(self):
        try:
            api = self.api()
        except (ConfigurationError, VCenterError):
            # A configuration that cannot work made no volumes.
            return
        for volume in api.list_volumes():
            if volume.attached_to is not None:
                api.detach_volume(volume.blockdevice_id)
            api.destroy_volume(volume.blockdevice_id)


def text(value):
    return "{}".format(value)


@contextmanager
def operators(simulator, tmpdir, verified=False):
    """
    Make ``Operator``s on ``simulator`` (as VM 0's node unless told); their
    clusters' volumes are detached and destroyed afterwards.  With
    ``verified``, vCenter's certificate is verified (no warning) unless
    the overrides say otherwise.
    """
    made = []
    folders = []

    def make(node=None, clean=True, **overrides):
        folder = tmpdir.join("operator-{}".format(len(folders))).strpath
        folders.append(folder)
        os.makedirs(folder)
        operator = Operator(simulator, folder, node or simulator.vms[0],
                            verified, **overrides)
        if clean:
            made.append(operator)
        return operator

    yield make
    for operator in made:
        operator.clean()


@pytest.fixture
def operator(simulator, tmpdir, logger):
    """
    The command line on the session's simulator, verifying its certificate
    (``ssl_verify_cert=False`` for the warning).
    """
    with operators(simulator, tmpdir, verified=True) as make:
        yield make


def make_certificate(folder, subject):
    """A self-signed certificate with ``subject``, as Flocker's node.crt."""
    key = os.path.join(folder, "node.key")
    crt = os.path.join(folder, "node.crt")
    subprocess.check_call(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", crt, "-days", "1", "-subj", subject],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return crt


# -- the cluster id ---------------------------------------------------------------

def test_cluster_id_is_read_from_the_node_certificate(tmpdir):
    cluster_id = uuid.uuid4()
    crt = make_certificate(tmpdir.strpath, "/OU={}/CN=node-{}".format(
        cluster_id, uuid.uuid4()))
    assert cli.cluster_id_from_certificate(crt) == cluster_id


def test_certificate_without_cluster_is_a_clear_error(tmpdir):
    crt = make_certificate(tmpdir.strpath, "/CN=node")
    with pytest.raises(cli.CommandError) as caught:
        cli.cluster_id_from_certificate(crt)
    assert "no organizational unit" in text(caught.value)


@pytest.mark.parametrize("content, problem", [
    (None, "does not exist"), ("not a certificate", "is not a PEM certificate")])
def test_unreadable_certificate_is_a_clear_error(tmpdir, content, problem):
    path = tmpdir.join("node.crt")
    if content is not None:
        path.write(content)
    with pytest.raises(cli.CommandError) as caught:
        cli.cluster_id_from_certificate(path.strpath)
    assert problem in text(caught.value)


def test_cluster_id_from_certificate_reaches_the_commands(operator, tmpdir):
    op = operator()
    crt = make_certificate(tmpdir.strpath, "/OU={}/CN=node".format(
        op.cluster_id))
    op.api().create_volume(uuid.uuid4(), GiB)
    result = run_cli(["--config", op.config, "--node-certificate", crt, "list"])
    assert result.status == 0, result
    assert len(result.out.splitlines()) == 2


def test_no_cluster_id_is_one_sentence(operator, tmpdir):
    op = operator()
    result = run_cli(["--config", op.config, "--node-certificate",
                      tmpdir.join("missing.crt").strpath, "list"])
    assert result.status == 1
    assert result.err.count("\n") == 1
    assert "does not exist; give --cluster-id" in result.err


# -- list, create -----------------------------------------------------------------

def test_list_without_volumes_says_so(operator):
    op = operator()
    result = op("list")
    assert (result.status, result.out) == (0, "")
    assert "No volumes in cluster {}".format(op.cluster_id) in result.err
    assert op("--json", "list").out.strip() == "[]"


def test_create_and_list_as_an_aligned_table(operator):
    op = operator()
    dataset_id = uuid.uuid4()
    created = op("create", "--size", "10GiB", "--profile", "gold",
                 "--dataset-id", text(dataset_id))
    assert created.status == 0, created
    assert "10 GiB" in created.out and text(dataset_id) in created.out
    op("create", "--size", "1536MiB")
    result = op("list")
    lines = result.out.splitlines()
    assert lines[0].split() == ["DATASET", "ID", "BLOCKDEVICE", "ID", "SIZE",
                                "PROFILE", "DATASTORE", "VM", "VM", "ID", "POWER"]
    assert len(lines) == 3
    # Aligned: every column starts where its header does.
    start = lines[0].index("SIZE")
    sizes = sorted(line[start:].split("  ")[0].strip() for line in lines[1:])
    assert sizes == ["1.5 GiB", "10 GiB"]
    gold = [line for line in lines if text(dataset_id) in line][0]
    assert gold.index("gold") == lines[0].index("PROFILE")


def test_list_json_gives_objects(operator, simulator):
    op = operator()
    volume = op.api().create_volume(uuid.uuid4(), 4 * GiB)
    op("attach", volume.blockdevice_id)
    [listed] = json.loads(op("--json", "list").out)
    vm = simulator.vms[0]
    assert listed == {
        "dataset_id": text(volume.dataset_id),
        "blockdevice_id": volume.blockdevice_id,
        "size": 4 * GiB, "size_human": "4 GiB", "profile": "bronze",
        "datastore": "LocalDS_0", "path": listed["path"],
        "vm_name": vm.name, "vm_id": vm.instance_uuid,
        "power_state": "poweredOn"}
    assert listed["path"].endswith("/bronze/{}.vmdk".format(volume.dataset_id))


def test_options_after_the_command_work_too(operator):
    op = operator()
    result = run_cli(["list", "--config", op.config, "--cluster-id",
                      text(op.cluster_id), "--json"])
    assert (result.status, result.out.strip()) == (0, "[]")


@pytest.mark.parametrize("size, problem", [
    ("10", "has no unit; give one, such as 10GiB"),
    ("lots", "is not a size such as 10GiB"),
    ("1000KiB", "multiple of the allocation unit"),
])
def test_create_refuses_a_bad_size(operator, size, problem):
    result = operator()("create", "--size", size)
    assert result.status == 2 and problem in result.err, result


def test_create_with_unknown_profile_names_the_known_ones(operator):
    result = operator()("create", "--size", "1GiB", "--profile", "platinum")
    assert result.status == 1
    assert "Unknown storage profile 'platinum'" in result.err
    assert "bronze, gold, silver" in result.err


def test_create_an_existing_dataset_is_refused(operator):
    op = operator()
    dataset_id = text(uuid.uuid4())
    assert op("create", "--size", "1GiB", "--dataset-id", dataset_id).status == 0
    result = op("create", "--size", "1GiB", "--dataset-id", dataset_id)
    assert result.status == 1
    assert result.err.strip().endswith(
        "Dataset {} already has a volume".format(dataset_id))


# -- attach, detach, destroy, path --------------------------------------------------

def test_attach_to_this_node_and_detach(operator, simulator):
    op = operator()
    volume = op.api().create_volume(uuid.uuid4(), GiB)
    result = op("attach", volume.blockdevice_id)
    assert result.status == 0, result
    assert simulator.vms[0].name in result.out and "poweredOn" in result.out
    again = op("attach", volume.blockdevice_id)
    assert again.status == 1
    assert "is already attached; detach it first" in again.err
    detached = op("detach", volume.blockdevice_id)
    assert detached.status == 0, detached
    assert simulator.vms[0].name not in detached.out
    assert op.api().list_volumes()[0].attached_to is None
    twice = op("detach", volume.blockdevice_id)
    assert (twice.status, twice.err.strip()) == (
        1, "vsphere-flocker: error: Volume {} is not attached".format(
            volume.blockdevice_id))


def test_attach_to_another_node(operator, simulator):
    op = operator()
    volume = op.api().create_volume(uuid.uuid4(), GiB)
    other = simulator.vms[1]
    result = op("attach", volume.blockdevice_id, "--node", other.instance_uuid)
    assert result.status == 0, result
    assert other.name in result.out and other.instance_uuid in result.out


def test_attach_to_an_unknown_node_is_one_sentence(operator):
    op = operator()
    volume = op.api().create_volume(uuid.uuid4(), GiB)
    node = text(uuid.uuid4())
    result = op("attach", volume.blockdevice_id, "--node", node)
    assert result.status == 1
    assert result.err == ("vsphere-flocker: error: No virtual machine with "
                          "instance UUID {} in the datacenter\n".format(node))


def test_destroy_refuses_an_attached_volume(operator, simulator):
    op = operator()
    volume = op.api().create_volume(uuid.uuid4(), GiB)
    op("attach", volume.blockdevice_id)
    result = op("destroy", volume.blockdevice_id, "--yes")
    assert result.status == 1
    assert result.err == (
        "vsphere-flocker: error: Volume {id} is attached to VM {vm} ({node}); "
        "detach it first (vsphere-flocker detach {id})\n").format(
            id=volume.blockdevice_id, vm=simulator.vms[0].name,
            node=simulator.vms[0].instance_uuid)
    assert len(op.api().list_volumes()) == 1


def test_destroy_asks_on_a_terminal(operator):
    op = operator()
    volume = op.api().create_volume(uuid.uuid4(), GiB)
    refused = op("destroy", volume.blockdevice_id, stdin=Terminal("n\n"))
    assert refused.status == 1
    assert "Destroy volume {} (1 GiB".format(volume.blockdevice_id) in refused.err
    assert "Not destroyed." in refused.err
    assert len(op.api().list_volumes()) == 1
    accepted = op("destroy", volume.blockdevice_id, stdin=Terminal("yes\n"))
    assert accepted.status == 0, accepted
    assert "Destroyed volume {} (1 GiB).".format(
        volume.blockdevice_id) in accepted.out
    assert op.api().list_volumes() == []


def test_destroy_without_a_terminal_needs_yes(operator):
    op = operator()
    volume = op.api().create_volume(uuid.uuid4(), GiB)
    result = op("destroy", volume.blockdevice_id)
    assert result.status == 1 and "pass --yes to confirm" in result.err
    assert op("destroy", volume.blockdevice_id, "--yes").status == 0
    assert op.api().list_volumes() == []


def test_path_shows_the_device_on_this_node(operator, simulator, virtual_guest):
    guest = virtual_guest(simulator.vms[0])
    op = operator()
    op.root = guest.root
    volume = op.api().create_volume(uuid.uuid4(), GiB)
    assert op("attach", volume.blockdevice_id).status == 0
    result = op("path", volume.blockdevice_id)
    assert result.status == 0, result
    path = result.out.strip()
    assert path.startswith(guest.root) and stat.S_ISBLK(os.stat(path).st_mode)
    op("detach", volume.blockdevice_id)
    guest.wait_idle()


def test_path_of_a_volume_elsewhere_says_where(operator, simulator):
    op = operator()
    volume = op.api().create_volume(uuid.uuid4(), GiB)
    other = simulator.vms[1]
    op("attach", volume.blockdevice_id, "--node", other.instance_uuid)
    result = op("path", volume.blockdevice_id)
    assert result.status == 1
    assert "is not attached to this node ({})".format(
        simulator.vms[0].instance_uuid) in result.err
    assert "it is attached to VM {}".format(other.name) in result.err


# -- errors and output ---------------------------------------------------------------

def test_unknown_volume_is_one_sentence_without_traceback(operator):
    result = operator()("detach", "no-such-volume")
    assert result.status == 1
    assert result.err == ("vsphere-flocker: error: No volume no-such-volume in "
                          "this cluster\n")


def test_debug_shows_the_traceback(operator):
    result = operator()("--debug", "detach", "no-such-volume")
    assert result.status == 1
    assert "Traceback (most recent call last)" in result.err
    assert result.err.endswith("No volume no-such-volume in this cluster\n")


def test_missing_configuration_is_one_sentence(tmpdir):
    path = tmpdir.join("agent.yml").strpath
    result = run_cli(["--config", path, "--cluster-id", text(uuid.uuid4()),
                      "list"])
    assert result.status == 1
    assert result.err == ("vsphere-flocker: error: Cannot use agent "
                          "configuration {}: it does not exist\n".format(path))


def test_no_command_is_a_usage_error():
    result = run_cli([])
    assert result.status == 2 and "a command is needed" in result.err
    result = run_cli(["frobnicate"])
    assert result.status == 2 and "see vsphere-flocker --help" in result.err


def test_colour_only_on_a_terminal(operator):
    op = operator()
    plain = op("check")
    assert "\x1b[" not in plain.out
    coloured = op("check", stdout=Terminal())
    assert "\x1b[32mPASS\x1b[0m" in coloured.out


def test_progress_only_on_a_terminal(operator):
    op = operator()
    result = op("create", "--size", "1GiB")
    assert result.err == ""
    stderr = Terminal()
    status = cli.main(op.argv("create", "--size", "1GiB"), stdout=io.StringIO(),
                      stderr=stderr)
    assert status == 0
    assert "Creating a 1 GiB volume (profile bronze)... done" in stderr.getvalue()


def test_sizes_read_as_people_write_them():
    assert cli.human_size(4 * GiB) == "4 GiB"
    assert cli.human_size(1536 * 1024 ** 2) == "1.5 GiB"
    assert cli.human_size(512 * 1024 ** 2) == "512 MiB"
    assert cli.parse_size("10GiB") == 10 * GiB
    assert cli.parse_size("10G") == 10 * GiB
    assert cli.parse_size("512 MiB") == 512 * 1024 ** 2


@pytest.fixture
def bitmath_1_3_0_2(monkeypatch):
    """
    bitmath as Flocker 1.15 pins it (1.3.0.2): no ``parse_string_unsafe``,
    and a ``parse_string`` of strict units only, without keyword arguments.
    """
    import bitmath
    strict = bitmath.parse_string
    monkeypatch.delattr(bitmath, "parse_string_unsafe", raising=False)
    monkeypatch.setattr(bitmath, "parse_string", lambda s: strict(s))


@pytest.mark.parametrize("text, size", [
    ("10G", 10 * GiB), ("10g", 10 * GiB), ("10GiB", 10 * GiB),
    ("10 gib", 10 * GiB), ("10Gi", 10 * GiB), ("1.5GiB", 1536 * 1024 ** 2),
    ("512M", 512 * 1024 ** 2), ("1T", 1024 * GiB), ("4096K", 4 * 1024 ** 2),
    ("1048576B", 1024 ** 2), ("2048GB", 2048 * 1000 ** 3)])
def test_sizes_parse_on_flockers_bitmath(bitmath_1_3_0_2, text, size):
    assert cli.parse_size(text) == size


def test_create_10g_on_flockers_bitmath(bitmath_1_3_0_2, operator):
    op = operator()
    result = op("--json", "create", "--size", "10G")
    assert result.status == 0, result
    [row] = json.loads(result.out)
    assert (row["size"], row["size_human"]) == (10 * GiB, "10 GiB")


@pytest.mark.parametrize("text, hint", [
    ("10GB", "'10GB' is in decimal units (10000000000 bytes, 9.3 GiB), not a "
             "whole number of MiB; volumes are sized in binary units: for "
             "10 GiB give 10GiB"),
    ("512 mb", "for 512 MiB give 512MiB"),
    ("1.5TB", "for 1.5 TiB give 1.5TiB"),
])
def test_decimal_units_get_a_hint_for_binary_ones(text, hint):
    with pytest.raises(cli.UsageError) as caught:
        cli.parse_size(text)
    assert hint in text_type(caught.value)


def test_create_in_decimal_units_says_to_use_binary_ones(operator):
    op = operator()
    result = op("create", "--size", "10GB")
    assert result.status == 2
    assert result.err.strip().endswith(
        "volumes are sized in binary units: for 10 GiB give 10GiB"), result
    assert op.api().list_volumes() == []


@pytest.mark.parametrize("text", ["", "GiB", "10 GiBs", "ten GiB", "10XB",
                                  "-1GiB", "1e3GiB", "1..5GiB"])
def test_what_is_not_a_size(text):
    with pytest.raises(cli.UsageError) as caught:
        cli.parse_size(text)
    assert "is not a size such as 10GiB" in text_type(caught.value)


@pytest.mark.parametrize("text", ["0GiB", "0.1B", "1.3KiB"])
def test_sizes_must_be_whole_positive_bytes(text):
    with pytest.raises(cli.UsageError) as caught:
        cli.parse_size(text)
    assert "not a positive whole number of bytes" in text_type(caught.value)


# -- --version, --json errors ----------------------------------------------------

def test_version():
    result = run_cli(["--version"])
    assert result.status == 0 and result.err == ""
    assert result.out == "vsphere-flocker {} (Python {})\n".format(
        __version__, platform.python_version())
    as_json = run_cli(["--json", "--version"])
    assert json.loads(as_json.out) == {"program": "vsphere-flocker",
                                       "version": __version__}


def test_json_errors_are_json_on_stderr_with_the_status(operator):
    op = operator()
    unknown = op("--json", "detach", "no-such-volume")
    assert (unknown.status, unknown.out) == (1, "")
    assert json.loads(unknown.err) == {
        "error": "No volume no-such-volume in this cluster", "status": 1}
    usage = run_cli(["--json", "frobnicate"])
    error = json.loads(usage.err)
    assert (usage.status, error["status"]) == (2, 2)
    assert "see vsphere-flocker --help" in error["error"]
    bad_size = op("--json", "create", "--size", "10")
    assert json.loads(bad_size.err) == {
        "error": "The size 10 has no unit; give one, such as 10GiB",
        "status": 2}


def test_json_debug_puts_the_traceback_in_the_error(operator):
    result = operator()("--json", "--debug", "detach", "no-such-volume")
    error = json.loads(result.err)
    assert error["status"] == 1
    assert error["traceback"].startswith("Traceback (most recent call last)")


# -- the configuration ----------------------------------------------------------

def test_misspelt_required_key_gets_a_hint(operator):
    op = operator()
    dataset = dict(op.dataset)
    dataset["datastor_name"] = dataset.pop("datastore_name")
    write_agent_yml(op.config, dataset)
    result = op("list")
    assert result.status == 1
    assert result.err.strip().endswith(
        "key datastor_name: is not a known key; did you mean "
        "datastore_name?"), result


# -- messages said once --------------------------------------------------------------

def test_unreadable_bios_uuid_says_why_once(operator, tmpdir):
    op = operator()
    op.root = tmpdir.mkdir("not-a-vm").strpath
    volume = op.api().create_volume(uuid.uuid4(), GiB)
    result = op("attach", volume.blockdevice_id)
    assert result.status == 1
    assert result.err.count("No such file or directory") == 1, result
    checked = op("check")
    [line] = [line for line in checked.out.splitlines()
              if line.startswith("FAIL  this node's VM")]
    assert line.count("No such file or directory") == 1, line


def test_demo_runs_from_the_command_line(simulator, capsys):
    # The ``simulator`` fixture makes the test skip where none can be built;
    # the demonstration starts its own.
    assert cli.main(["demo"], stdout=io.StringIO(), stderr=io.StringIO()) == 0
    assert "Destroy it" in capsys.readouterr().out
