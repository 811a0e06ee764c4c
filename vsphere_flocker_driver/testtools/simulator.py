"""
A vCenter simulator for tests: govmomi's vcsim, extended in ``vcsim/*.go``.

``build_simulator()`` compiles the Go sources shipped with this package (once,
into a cache keyed by their hash); ``Simulator`` runs one instance and tells
where it listens, which VMs and datastores it has, and how to configure the
Flocker backend against it. ``python -m vsphere_flocker_driver.testtools.simulator``
starts one by hand and prints the ``dataset:`` section of an ``agent.yml``.

The extensions make the simulator behave as vSphere does where a volume
driver can tell: VMDK descriptors with capacity and UUID, datastore search
details, file locks between powered-on VMs, SCSI unit rules and
``SearchIndex.FindAllByUuid``, VMs' ``config.changeVersion`` (a stale one
makes a reconfiguration fail with ``ConcurrentAccess``) and, on demand
(``Simulator.inject_missing``), answers that are only partial. As opt-ins it
adds a vSAN and a VVol datastore whose top-level folders are namespace objects
(``vsan=True``, ``vvol=True``), datastore clusters under Storage DRS with a
working ``RecommendDatastores`` (``pods=...``) and Storage vMotion that moves
and renames a VM's disks (``RelocateVM_Task``, ``Simulator.relocate``). It
still has no guest side: no block device appears anywhere when a disk is
attached.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import argparse
import binascii
import hashlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import namedtuple

from .._compat import (
    integer_types, makedirs, monotonic, string_types, to_text, urlparse, which)
from . import govmomi_patches

__all__ = [
    "SimulatorUnavailable",
    "SimulatorFailed",
    "VirtualMachineRecord",
    "Simulator",
    "build_simulator",
    "main",
]

#: Folder holding the simulator's Go sources.
SOURCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vcsim")

#: Debian packages that provide the Go toolchain and govmomi's sources.
APT_PACKAGES = ("golang-go", "golang-github-vmware-govmomi-dev")

#: Where Debian's golang-github-vmware-govmomi-dev installs govmomi (GOPATH layout).
DEFAULT_GOPATH = "/usr/share/gocode"



class SimulatorUnavailable(Exception):
    """The simulator cannot be built on this machine; the message says why."""


class SimulatorFailed(Exception):
    """The simulator process died or did not start in time."""


#: One VM of the simulated inventory, as the simulator reported it at start.
VirtualMachineRecord = namedtuple(
    "VirtualMachineRecord", ["name", "bios_uuid", "instance_uuid"])


def _go_sources():
    return sorted(name for name in os.listdir(SOURCE_DIR) if name.endswith(".go"))


def _sources_digest():
    """
    :returns: The SHA-256 over the Go sources' names and contents, and over
        the patches to govmomi (their replacements and added Go files), as
        hex.
    """
    digest = hashlib.sha256()
    for name in _go_sources():
        digest.update(name.encode("utf-8") + b"\0")
        with open(os.path.join(SOURCE_DIR, name), "rb") as source:
            digest.update(source.read())
        digest.update(b"\0")
    for label, content in govmomi_patches.digest_parts():
        digest.update(label.encode("utf-8") + b"\0" + content + b"\0")
    return digest.hexdigest()


def _cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return os.path.join(base, "vsphere-flocker-driver")


def _unavailable(reason):
    return SimulatorUnavailable(
        "%s; the vCenter simulator needs Go and govmomi's sources: "
        "apt-get install %s" % (reason, " ".join(APT_PACKAGES)))


def build_simulator():
    """
    Build the simulator binary unless the cache already has one for these
    sources.

    The Go sources are compiled against Debian's govmomi in GOPATH mode, with
    no network: ``GO111MODULE=off GOPATH=/usr/share/gocode go build`` (the
    GOPATH can be changed with ``$VCSIM_GOPATH``), with govmomi's simulator
    patched through ``go build -overlay`` (``govmomi_patches``).

    :raises SimulatorUnavailable: if ``go`` or govmomi is missing, govmomi's
        sources do not take the patches or the build fails.
    :returns: The path of the binary.
    :rtype: str
    """
    cache = _cache_dir()
    binary = os.path.join(cache, "vcsim-" + _sources_digest())
    if os.access(binary, os.X_OK):
        return binary

    go = which("go")
    if go is None:
        raise _unavailable("the go command is not on $PATH")
    gopath = os.environ.get("VCSIM_GOPATH", DEFAULT_GOPATH)
    if not os.path.isdir(os.path.join(
            gopath, "src", "github.com", "vmware", "govmomi", "simulator")):
        raise _unavailable("govmomi is not under %s" % (gopath,))

    makedirs(cache)
    env = dict(os.environ)
    env.update({"GO111MODULE": "off", "GOPATH": gopath, "GOFLAGS": ""})
    # go needs a build cache; $HOME may be unset or read-only under tox.
    env.setdefault("GOCACHE", os.path.join(cache, "go-build"))
    # Build under a temporary name and rename: parallel test runs may build
    # at the same time, and a half-written binary must never be run.
    partial = tempfile.NamedTemporaryFile(
        dir=cache, prefix="vcsim-", suffix=".partial", delete=False)
    partial.close()
    # The patched govmomi files, for this build only.
    patches = tempfile.mkdtemp(dir=cache, prefix="govmomi-overlay-")
    try:
        try:
            overlay = govmomi_patches.overlay(gopath, patches)
        except govmomi_patches.PatchFailed as e:
            raise SimulatorUnavailable(
                "%s; the vCenter simulator cannot be built against it" % (e,))
        process = subprocess.Popen(
            [go, "build", "-overlay", overlay, "-o", partial.name, "."],
            cwd=SOURCE_DIR, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = process.communicate()[0].decode("utf-8", "replace")
        if process.returncode != 0:
            raise _unavailable("go build failed (exit %d):\n%s" % (
                process.returncode, output))
        os.rename(partial.name, binary)
    finally:
        if os.path.exists(partial.name):
            os.remove(partial.name)
        shutil.rmtree(patches, ignore_errors=True)
    return binary


class Simulator(object):
    """
    One running vCenter simulator.

    Construct it with the inventory wanted, then ``start()`` it (or use it as a
    context manager); ``stop()`` ends the process, which removes its datastore
    folders. After ``start()``:

    :ivar str url: The SDK URL, ``https://127.0.0.1:PORT/sdk``.
    :ivar str host: The address it listens on.
    :ivar int port: The port it listens on.
    :ivar str username: The only user name it accepts.
    :ivar str password: The only password it accepts.
    :ivar int pid: The simulator's process id.
    :ivar str datacenter_name: The datacenter, ``DC0``.
    :ivar dict datastores: Datastore name -> local folder holding its files.
    :ivar list vms: ``VirtualMachineRecord`` for each VM, sorted by name.
    :ivar str ca_file: A PEM file of its (self-signed) certificate, to verify
        it with as vCenter's is verified.
    :ivar dict datastore_types: Datastore name -> ``summary.type``
        (``OTHER`` for the local ones, ``vsan``, ``VVOL``).
    :ivar dict datastore_urls: Datastore name -> ``summary.url``; on vSAN
        and VVol the vSphere form ``ds:///vmfs/volumes/vsan:<uuid>/``.
    :ivar dict pods: Datastore cluster name -> ``{"datastores": [member
        names], "sdrs": bool}``.
    """

    #: The vSAN datastore's name, as in the original driver's example config.
    VSAN_DATASTORE = "vsanDatastore"
    #: The VVol datastore's name.
    VVOL_DATASTORE = "vvolDatastore"

    def __init__(self, vms=2, hosts=1, clusters=1, cluster_hosts=3,
                 datastores=1, username="administrator@vsphere.local",
                 password=None, delay_ms=0, clone_bios_uuid=False,
                 listen="127.0.0.1:0", start_timeout=60.0, vsan=False,
                 vvol=False, pods=None, namespace_mkdir="namespace",
                 task_delay=0, recent_tasks=True):
        """
        :param int vms: VMs per standalone host and per cluster.
        :param int hosts: Standalone hosts.
        :param int clusters: Clusters.
        :param int cluster_hosts: Hosts in each cluster.
        :param int datastores: Datastores, ``LocalDS_0`` onwards.
        :param str username: The one user name to accept.
        :param str password: The one password to accept; random if ``None``.
        :param int delay_ms: Milliseconds added to every SOAP call.
        :param bool clone_bios_uuid: Give the last VM the first one's BIOS UUID.
        :param str listen: Address and port to listen on (port 0: any).
        :param float start_timeout: Seconds to wait for the simulator to listen.
        :param bool vsan: Add ``vsanDatastore``, a vSAN datastore whose
            top-level folders are namespace objects (``vcsim/namespaces.go``).
        :param bool vvol: Add ``vvolDatastore``, a VVol datastore, the same
            with ``rfc4122.<uuid>`` namespace names.
        :param pods: Datastore clusters (``vcsim/pods.go``): a mapping of
            cluster name to its number of member datastores (Storage DRS on)
            or to ``{"datastores": N, "sdrs": bool}``. Members are new
            datastores ``<name>_DS0``, ``<name>_DS1``...
        :param str namespace_mkdir: What ``FileManager.MakeDirectory`` does
            at the top level of a vSAN or VVol datastore: ``"namespace"``
            makes a namespace object, as vCenter does; ``"refuse"`` fails
            with ``CannotCreateFile``.
        :param float task_delay: Seconds each task a client starts reports
            ``running`` before it ends (with the same result or fault), as
            on vCenter, where a task is still running at the first look
            (``vcsim/taskdelay.go``); 0: tasks have ended when their start
            answers.
        :param bool recent_tasks: Keep each entity's ``recentTask``
            (``vcsim/recenttask.go``); ``False`` leaves them empty, as a
            vCenter that does not report them would.
        """
        if password is None:
            password = binascii.hexlify(os.urandom(8)).decode("ascii")
        self.username = username
        self.password = password
        self._arguments = [
            "-vms", str(vms), "-hosts", str(hosts), "-clusters", str(clusters),
            "-cluster-hosts", str(cluster_hosts), "-datastores", str(datastores),
            "-username", username, "-password", password,
            "-delay", str(delay_ms), "-listen", listen,
            # The simulator exits when our end of its stdin closes, so it
            # does not outlive a test run that is killed.
            "-stdin-watch",
        ]
        if clone_bios_uuid:
            self._arguments.append("-clone-bios-uuid")
        if vsan:
            self._arguments.append("-vsan")
        if vvol:
            self._arguments.append("-vvol")
        if namespace_mkdir not in ("namespace", "refuse"):
            raise ValueError("namespace_mkdir must be 'namespace' or 'refuse', "
                             "not %r" % (namespace_mkdir,))
        if namespace_mkdir != "namespace":
            self._arguments += ["-namespace-mkdir", namespace_mkdir]
        if task_delay:
            if isinstance(task_delay, bool) or not task_delay >= 0:
                raise ValueError("task_delay must be seconds >= 0, not %r" % (
                    task_delay,))
            self._arguments += ["-task-delay", "%.6fs" % (task_delay,)]
        if not recent_tasks:
            self._arguments.append("-recent-tasks=false")
        for name, members, sdrs in _pod_specs(pods):
            self._arguments += ["-pod", "%s:%d:%s" % (
                name, members, "sdrs" if sdrs else "nosdrs")]
        self._start_timeout = start_timeout
        self._process = None
        self._stderr = None
        self.url = self.host = self.port = self.datacenter_name = None
        self.pid = None
        self.ca_file = None
        self.datastores = {}
        self.datastore_types = {}
        self.datastore_urls = {}
        self.pods = {}
        self.vms = []

    def start(self):
        """
        Build the simulator if needed, run it and wait until it listens.

        :raises SimulatorUnavailable: if it cannot be built.
        :raises SimulatorFailed: if it exits or stays silent for
            ``start_timeout`` seconds.
        :returns: ``self``.
        """
        if self._process is not None:
            return self
        binary = build_simulator()
        # stderr goes to a file: a pipe nobody reads would fill and block it.
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [binary] + self._arguments, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr)
        try:
            ready = self._read_ready_line()
        except SimulatorFailed:
            self.stop()
            raise
        self.url = ready["url"]
        self.pid = ready["pid"]
        parsed = urlparse(self.url)
        self.host, self.port = parsed.hostname, parsed.port
        self.datacenter_name = ready["datacenter"]
        self.datastores = dict(ready["datastores"])
        self.datastore_types = dict(ready.get("datastore_types") or {})
        self.datastore_urls = dict(ready.get("datastore_urls") or {})
        self.pods = dict(ready.get("pods") or {})
        self.ca_file = ready.get("ca_file")
        self.vms = [
            VirtualMachineRecord(vm["name"], vm["bios_uuid"], vm["instance_uuid"])
            for vm in ready["vms"]]
        return self

    def _stderr_text(self):
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-4000:]

    def _read_ready_line(self):
        """
        :returns: The decoded JSON line the simulator prints once it listens.
        """
        lines = []
        reader = threading.Thread(
            target=lambda: lines.append(self._process.stdout.readline()))
        reader.daemon = True
        reader.start()
        reader.join(self._start_timeout)
        if reader.is_alive():
            raise SimulatorFailed(
                "the simulator did not report its address within %s s; "
                "stderr:\n%s" % (self._start_timeout, self._stderr_text()))
        if not lines or not lines[0].strip():
            code = self._process.wait()
            raise SimulatorFailed(
                "the simulator exited (code %s) before listening; stderr:\n%s"
                % (code, self._stderr_text()))
        return json.loads(lines[0].decode("utf-8"))

    def stop(self, timeout=10.0):
        """
        End the simulator (SIGTERM, then SIGKILL after ``timeout`` seconds).
        Safe to call more than once.
        """
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            deadline = monotonic() + timeout
            while process.poll() is None and monotonic() < deadline:
                time.sleep(0.05)
            if process.poll() is None:
                process.kill()
                process.wait()
        for stream in (process.stdin, process.stdout, self._stderr):
            if stream is not None:
                stream.close()
        self._stderr = None

    @property
    def running(self):
        """``True`` while the simulator process runs."""
        return self._process is not None and self._process.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
        return False

    def dataset_config(self, **overrides):
        """
        :param overrides: Keys to add or replace.
        :returns: The ``dataset:`` section of an ``agent.yml`` for this
            simulator, on its first datastore.
        :rtype: dict
        """
        config = {
            "backend": "vsphere_flocker_plugin",
            "vc_ip": self.host,
            "vc_port": self.port,
            "username": self.username,
            "password": self.password,
            "datacenter_name": self.datacenter_name,
            "datastore_name": self._first_datastore(),
            "ssl_verify_cert": False,
        }
        config.update(overrides)
        return config

    def _first_datastore(self):
        """
        The first of the ``LocalDS_N`` datastores (whatever else was added),
        or ``None``.
        """
        local = sorted(name for name in self.datastores
                       if name.startswith("LocalDS_"))
        names = local or sorted(self.datastores)
        return names[0] if names else None

    def connect(self):
        """
        Log in with pyVmomi, without verifying the simulator's self-signed
        certificate (acceptable for a local test simulator only).

        :returns: A ``vim.ServiceInstance``; pass it to
            ``pyVim.connect.Disconnect`` when done.
        """
        from pyVim.connect import SmartConnect
        context = ssl._create_unverified_context()
        return SmartConnect(host=self.host, port=self.port, user=self.username,
                            pwd=self.password, sslContext=context)

    def set_datastore_accessible(self, name, accessible):
        """
        Take a datastore's storage away, or give it back, as when its device
        or NFS server is lost on vSphere: its folder is renamed away (to
        ``FOLDER.unavailable``) or back, then each host mounting it refreshes
        its storage (``HostStorageSystem.RefreshStorageSystem``). Afterwards
        the datastore's ``summary.accessible`` and ``host[].mountInfo
        .accessible`` read ``accessible``.

        Give the storage back before ``stop()``: a folder left away is not
        removed.

        :param str name: A datastore, a key of ``datastores``.
        :param bool accessible: ``False`` to take its storage away, ``True``
            to give it back.
        :raises KeyError: if there is no such datastore.
        :raises RuntimeError: if the simulator does not report the new state.
        """
        from pyVim.connect import Disconnect
        from pyVmomi import vim

        folder = self.datastores[name]
        away = folder + ".unavailable"
        source, target = (away, folder) if accessible else (folder, away)
        if os.path.exists(source):
            if os.path.exists(target):
                raise RuntimeError(
                    "both %s and %s exist; cannot tell which is datastore %s's "
                    "storage" % (folder, away, name))
            os.rename(source, target)

        instance = self.connect()
        try:
            datastore = find_entity(instance.RetrieveContent(), vim.Datastore,
                                    name)
            hosts = dict((mount.key._moId, mount.key) for mount in datastore.host)
            for host in hosts.values():
                host.configManager.storageSystem.RefreshStorageSystem()
            if datastore.summary.accessible != accessible:
                raise RuntimeError(
                    "datastore %s still reports accessible = %s after its "
                    "hosts refreshed their storage" % (
                        name, datastore.summary.accessible))
        finally:
            Disconnect(instance)

    #: The faults ``inject_missing`` can make the simulator report.
    MISSING_FAULTS = ("NoPermission", "NotAuthenticated", "SystemError",
                      "InvalidState")

    def inject_missing(self, vm_name, paths, fault="NoPermission"):
        """
        Make the simulator answer the VM's ``paths`` only partially, as
        vCenter does for a VM the user may not read or that is inaccessible:
        ``RetrievePropertiesEx`` (and ``RetrieveProperties`` and the updates
        of ``WaitForUpdatesEx``) report each of those properties (and any
        property below or above one) in the object's ``missingSet`` with
        ``fault``, and give it no value; pyVmomi's attribute reads
        (``vm.runtime``) raise the fault. Other properties and other VMs are
        unaffected. Replaces an earlier injection on the same VM; undo it
        with ``clear_missing``.

        This sets the VM's extraConfig key ``vcsim.inject.missing`` through
        ``ReconfigVM_Task`` (which changes the VM's ``config.changeVersion``);
        ``config.extraConfig`` is withheld only when ``paths`` name it.

        :param str vm_name: One of ``vms``' names.
        :param paths: A property path (``"runtime.powerState"``) or a list
            of them.
        :param str fault: One of ``MISSING_FAULTS``.
        :raises ValueError: for no path, a path with ``,`` or ``:`` or an
            unknown fault.
        :raises LookupError: if there is no such VM.
        :raises RuntimeError: if the reconfiguration fails.
        """
        if isinstance(paths, string_types):
            paths = [paths]
        paths = [to_text(path).strip() for path in paths]
        if not paths or not all(paths):
            raise ValueError("inject_missing needs property paths, got %r" % (
                paths,))
        for path in paths:
            if "," in path or ":" in path:
                raise ValueError("a property path cannot hold ',' or ':': %r" % (
                    path,))
        if fault not in self.MISSING_FAULTS:
            raise ValueError("fault %r is none of %s" % (
                fault, ", ".join(self.MISSING_FAULTS)))
        self._set_extra_config(vm_name, _MISSING_KEY,
                               "%s:%s" % (",".join(paths), fault))

    def clear_missing(self, vm_name):
        """
        Undo ``inject_missing``: the VM's properties are answered in full
        again. Harmless when nothing is injected.

        :param str vm_name: One of ``vms``' names.
        :raises LookupError: if there is no such VM.
        :raises RuntimeError: if the reconfiguration fails.
        """
        # An empty value removes the key, as on vSphere.
        self._set_extra_config(vm_name, _MISSING_KEY, "")

    def _set_extra_config(self, vm_name, key, value, timeout=30.0):
        """
        Set (or, with an empty ``value``, remove) one extraConfig key of a VM
        with ``ReconfigVM_Task`` on a connection of our own, and wait for the
        task to succeed.
        """
        from pyVim.connect import Disconnect
        from pyVmomi import vim

        instance = self.connect()
        try:
            vm = find_entity(instance.RetrieveContent(), vim.VirtualMachine,
                             vm_name)
            task = vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=[
                vim.option.OptionValue(key=key, value=value)]))
            _wait_for_task(task, timeout)
        finally:
            Disconnect(instance)


    def local_path(self, datastore_path):
        """
        :param str datastore_path: ``"[datastore] folder/file"``, in any
            form the simulator knows (a vSAN friendly name or namespace UUID).
        :returns: The file on this machine that the path names.
        :raises KeyError: if there is no such datastore.
        :raises ValueError: if it is no datastore path.
        """
        datastore, relative = _split_datastore_path(datastore_path)
        return os.path.join(self.datastores[datastore], relative)

    def uuid_path(self, datastore_path):
        """
        The form a VM reports a path in: on a vSAN or VVol datastore, with the
        top-level folder's friendly name replaced by its namespace UUID (read
        from the friendly name's link); any other path unchanged.

        :param str datastore_path: ``"[vsanDatastore] FLOCKER/x.vmdk"``.
        :rtype: str
        """
        datastore, relative = _split_datastore_path(datastore_path)
        if self.datastore_types.get(datastore) not in ("vsan", "VVOL"):
            return datastore_path
        parts = relative.split("/", 1)
        link = os.path.join(self.datastores[datastore], parts[0])
        if not parts[0] or not os.path.islink(link):
            return datastore_path
        parts[0] = os.path.basename(os.readlink(link))
        return "[%s] %s" % (datastore, "/".join(parts))

    def relocate(self, vm_name, datastore_name=None, disks=None,
                 timeout=30.0):
        """
        Storage vMotion: ``RelocateVM_Task`` of a VM, on a connection of our
        own, as an operator or Storage DRS would. With ``datastore_name`` the
        VM's files and every disk no entry of ``disks`` names move there;
        each moved disk lands in the VM's folder on its new datastore, renamed
        ``<vm>.vmdk``, ``<vm>_1.vmdk``... (``vcsim/relocate.go``).

        :param str vm_name: One of ``vms``' names.
        :param str datastore_name: The target datastore, or ``None`` to leave
            the VM's files where they are.
        :param dict disks: Disk (its ``backing.fileName`` in any form, or its
            device key) -> datastore name, per-disk targets.
        :raises LookupError: if there is no such VM, datastore or disk.
        :raises RuntimeError: if the relocation fails.
        :returns: ``{device key: backing.fileName}`` of the VM's disks after
            the move.
        :rtype: dict
        """
        from pyVim.connect import Disconnect
        from pyVmomi import vim

        instance = self.connect()
        try:
            content = instance.RetrieveContent()
            vm = find_entity(content, vim.VirtualMachine, vm_name)
            spec = vim.vm.RelocateSpec()
            if datastore_name is not None:
                spec.datastore = find_entity(content, vim.Datastore,
                                             datastore_name)
            current = [d for d in vm.config.hardware.device
                       if isinstance(d, vim.vm.device.VirtualDisk)]
            for disk, target in sorted((disks or {}).items(),
                                       key=lambda item: str(item[0])):
                found = [d for d in current if disk == d.key or (
                    isinstance(disk, string_types) and self._same_path(
                        disk, d.backing.fileName))]
                if not found:
                    raise LookupError("VM %s has no disk %r" % (vm_name, disk))
                spec.disk.append(vim.vm.RelocateSpec.DiskLocator(
                    diskId=found[0].key,
                    datastore=find_entity(content, vim.Datastore, target)))
            _wait_for_task(vm.RelocateVM_Task(spec=spec), timeout)
            return dict(
                (d.key, d.backing.fileName) for d in vm.config.hardware.device
                if isinstance(d, vim.vm.device.VirtualDisk))
        finally:
            Disconnect(instance)

    def _same_path(self, a, b):
        return self.uuid_path(a) == self.uuid_path(b)

    def set_storage_drs(self, pod_name, enabled, timeout=30.0):
        """
        Turn Storage DRS on or off for a datastore cluster
        (``StorageResourceManager.ConfigureStorageDrsForPod_Task``).

        :param str pod_name: One of ``pods``.
        :param bool enabled: Whether SDRS manages the cluster.
        :raises LookupError: if there is no such datastore cluster.
        """
        from pyVim.connect import Disconnect
        from pyVmomi import vim

        instance = self.connect()
        try:
            content = instance.RetrieveContent()
            pod = find_entity(content, vim.StoragePod, pod_name)
            spec = vim.storageDrs.ConfigSpec(
                podConfigSpec=vim.storageDrs.PodConfigSpec(enabled=enabled))
            _wait_for_task(content.storageResourceManager
                           .ConfigureStorageDrsForPod_Task(
                               pod=pod, spec=spec, modify=True), timeout)
            if pod_name in self.pods:
                self.pods[pod_name]["sdrs"] = bool(enabled)
        finally:
            Disconnect(instance)


#: The extraConfig key that makes the simulator withhold a VM's properties.
_MISSING_KEY = "vcsim.inject.missing"


def _split_datastore_path(datastore_path):
    """
    :returns: (datastore, relative path) of ``"[datastore] relative"``.
    :raises ValueError: if it is no datastore path.
    """
    text = to_text(datastore_path).strip()
    if not text.startswith("[") or "]" not in text:
        raise ValueError("not a datastore path: %r" % (datastore_path,))
    datastore, relative = text[1:].split("]", 1)
    return datastore, relative.strip().lstrip("/")


def _pod_specs(pods):
    """
    :returns: [(name, member count, sdrs)] from ``Simulator``'s ``pods``.
    """
    if not pods:
        return []
    if isinstance(pods, dict):
        items = sorted(pods.items())
    else:
        items = [(name, 2) for name in pods]
    specs = []
    for name, value in items:
        name = to_text(name)
        if not name or ":" in name:
            raise ValueError("bad datastore cluster name %r" % (name,))
        if isinstance(value, dict):
            unknown = set(value) - {"datastores", "sdrs"}
            if unknown:
                raise ValueError("unknown datastore cluster settings %s" % (
                    ", ".join(sorted(unknown)),))
            members, sdrs = value.get("datastores", 2), value.get("sdrs", True)
        else:
            members, sdrs = value, True
        if isinstance(members, bool) or not isinstance(members, integer_types) \
                or members < 0:
            raise ValueError("bad member count %r for %s" % (members, name))
        specs.append((name, members, bool(sdrs)))
    return specs


def _wait_for_task(task, timeout):
    """
    Wait for a task to end.

    :raises RuntimeError: if it fails or is still running after ``timeout``
        seconds.
    """
    deadline = monotonic() + timeout
    while True:
        info = task.info
        if info.state == "success":
            return info.result
        if info.state == "error":
            raise RuntimeError("task %s failed: %s" % (
                task._moId, getattr(info.error, "msg", None) or info.error))
        if monotonic() > deadline:
            raise RuntimeError("task %s still %s after %s s" % (
                task._moId, info.state, timeout))
        time.sleep(0.05)


def find_entity(content, kind, name):
    """
    The managed object of type ``kind`` called ``name``, read directly from
    vCenter (``content``: a ``ServiceContent``), behind the driver's back.

    :raises LookupError: there is none.
    """
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [kind], True)
    try:
        for entity in view.view:
            if entity.name == name:
                return entity
    finally:
        view.DestroyView()
    raise LookupError(name)


def main(argv=None):
    """
    Run a simulator until Ctrl-C and print the ``agent.yml`` section for it.
    """
    import yaml

    parser = argparse.ArgumentParser(
        prog="python -m vsphere_flocker_driver.testtools.simulator",
        description="Run a vCenter simulator for the vSphere Flocker backend.")
    parser.add_argument("--vms", type=int, default=2,
                        help="VMs per standalone host and per cluster")
    parser.add_argument("--hosts", type=int, default=1, help="standalone hosts")
    parser.add_argument("--clusters", type=int, default=1)
    parser.add_argument("--cluster-hosts", type=int, default=3)
    parser.add_argument("--datastores", type=int, default=1)
    parser.add_argument("--username", default="administrator@vsphere.local")
    parser.add_argument("--password", default=None,
                        help="default: a random one, printed below")
    parser.add_argument("--delay-ms", type=int, default=0,
                        help="milliseconds added to every SOAP call")
    parser.add_argument("--task-delay", type=float, default=0.0,
                        metavar="SECONDS",
                        help="how long each task reports running before it "
                        "ends, as on vCenter (default 0: at once)")
    parser.add_argument("--clone-bios-uuid", action="store_true",
                        help="the last VM shares the first VM's BIOS UUID")
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--vsan", action="store_true",
                        help="add vsanDatastore, a vSAN datastore")
    parser.add_argument("--vvol", action="store_true",
                        help="add vvolDatastore, a VVol datastore")
    parser.add_argument("--pod", action="append", default=[],
                        metavar="NAME[:DATASTORES[:sdrs|nosdrs]]",
                        help="a datastore cluster with new member datastores "
                        "(default 2, Storage DRS on); repeatable")
    options = parser.parse_args(argv)
    if not options.task_delay >= 0:
        parser.error("--task-delay must be seconds >= 0")

    pods = {}
    for value in options.pod:
        parts = value.split(":")
        try:
            pods[parts[0]] = {
                "datastores": int(parts[1]) if len(parts) > 1 else 2,
                "sdrs": parts[2] not in ("nosdrs", "off") if len(parts) > 2 else True}
        except ValueError:
            parser.error("bad --pod %r" % (value,))
    simulator = Simulator(
        vms=options.vms, hosts=options.hosts, clusters=options.clusters,
        cluster_hosts=options.cluster_hosts, datastores=options.datastores,
        username=options.username, password=options.password,
        delay_ms=options.delay_ms, clone_bios_uuid=options.clone_bios_uuid,
        listen=options.listen, vsan=options.vsan, vvol=options.vvol,
        pods=pods, task_delay=options.task_delay)
    # A service manager or `timeout` stops us with SIGTERM: leave as on Ctrl-C,
    # through the `finally` below that stops the simulator.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        simulator.start()
    except (SimulatorUnavailable, SimulatorFailed) as e:
        print("error: %s" % (e,), file=sys.stderr)
        return 1
    try:
        print("# vCenter simulator at %s (pid %s)" % (
            simulator.url, simulator.pid))
        for name, path in sorted(simulator.datastores.items()):
            print("# datastore %s (%s): %s" % (
                name, simulator.datastore_types.get(name), path))
        for name, pod in sorted(simulator.pods.items()):
            print("# datastore cluster %s (Storage DRS %s): %s" % (
                name, "on" if pod["sdrs"] else "off",
                ", ".join(pod["datastores"])))
        for vm in simulator.vms:
            print("# VM %s: bios uuid %s, instance uuid %s" % (
                vm.name, vm.bios_uuid, vm.instance_uuid))
        # Verified against the simulator's own certificate, as a real
        # vCenter's should be: following the README shows no TLS warning.
        tls = ({"ssl_verify_cert": True, "ssl_ca_file": simulator.ca_file}
               if simulator.ca_file else {})
        print(yaml.safe_dump({"dataset": simulator.dataset_config(**tls)},
                             default_flow_style=False), end="")
        sys.stdout.flush()
        while simulator.running:
            time.sleep(0.5)
        print("error: the simulator exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        simulator.stop()


if __name__ == "__main__":
    sys.exit(main())
