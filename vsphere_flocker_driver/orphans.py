"""
What an operator sees of a cluster's storage: its volumes with where they
are and who holds them, and what is left over in its folders.

A crashed or interrupted operation can leave files in the cluster's folders
that no volume accounts for: a disk descriptor without a capacity (creation
stopped half-way), an extent (``-flat.vmdk``) without its descriptor.  Other
files may have been put there by people.  And a volume attached to a VM that
is powered off serves nobody.  ``find_orphans`` names all of these;
``repair`` fixes only what is safe: it detaches volumes from powered-off
VMs and deletes half-created disk files named after a dataset that no VM
holds.  Files with other names are reported, never touched.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

from pyrsistent import PClass, field

from ._compat import text_type
from .flocker_api import UnattachedVolume, UnknownVolume
from .layout import (
    DatastorePath, blockdevice_id_for, dataset_id_of_file, parse_dataset_id,
)

_FLAT_SUFFIX = "-flat.vmdk"

#: Kinds of finding.
INCOMPLETE_DISK = "incomplete disk"
LONE_EXTENT = "extent without descriptor"
FOREIGN_FILE = "foreign file"
POWERED_OFF_HOLDER = "attached to a powered-off VM"
DUPLICATE_DISKS = "several disks for one dataset"
DANGLING_DISK = "attached disk whose file is gone"


class VolumeRow(PClass):
    """
    One volume of the cluster, with where it is and who holds it.

    :ivar text blockdevice_id:
    :ivar dataset_id: The dataset's ``UUID``.
    :ivar int size: Bytes.
    :ivar text profile:
    :ivar text datastore:
    :ivar text path: The disk, ``[datastore] folder/file.vmdk``.
    :ivar vm_name: The holding VM's name, or ``None``.
    :ivar vm_id: Its instance UUID (the Flocker node id), or ``None``.
    :ivar power_state: Its power state, or ``None``.
    """
    blockdevice_id = field(type=text_type, mandatory=True)
    dataset_id = field(mandatory=True)
    size = field(type=int, mandatory=True)
    profile = field(type=text_type, mandatory=True)
    datastore = field(type=text_type, mandatory=True)
    path = field(type=text_type, mandatory=True)
    vm_name = field(type=(text_type, type(None)), initial=None)
    vm_id = field(type=(text_type, type(None)), initial=None)
    power_state = field(type=(text_type, type(None)), initial=None)


class Finding(PClass):
    """
    Something in the cluster's storage that needs an operator's eye.

    :ivar text kind: One of the kinds above.
    :ivar text path: The file, or the volume's disk.
    :ivar text detail: What is wrong, for a person.
    :ivar repair: What ``repair`` would do, or ``None`` when nothing is safe.
    :ivar blockdevice_id: The volume concerned, if any.
    :ivar files: The files a repair deletes.
    :ivar vm_id: The node id of the VM holding the volume, if any.
    :ivar descriptor: A half-created disk's descriptor, the file a VM would
        name if it held the disk.
    :ivar dataset_id: The dataset a half-created disk is named after.
    """
    kind = field(type=text_type, mandatory=True)
    path = field(type=text_type, mandatory=True)
    detail = field(type=text_type, mandatory=True)
    repair = field(type=(text_type, type(None)), initial=None)
    blockdevice_id = field(type=(text_type, type(None)), initial=None)
    files = field(type=tuple, initial=())
    vm_id = field(type=(text_type, type(None)), initial=None)
    descriptor = field(type=(text_type, type(None)), initial=None)
    dataset_id = field(initial=None)


def volume_rows(assembly):
    """
    The cluster's volumes, each with its datastore, profile and holder,
    read as the backend's own listing reads them (the search between two
    looks at the VMs that agree, ``disks_and_holders``); a volume Storage
    vMotion moved out of the cluster's folders is shown where it is now,
    on its holder.

    :param Assembly assembly: The backend's parts.
    :raises VirtualMachinesUnknown: vCenter did not report every VM's
        disks: a volume could be left out, or shown as held by none.
    :returns: a list of ``VolumeRow``, by dataset id.
    """
    operations, layout = assembly.operations, assembly.layout
    # A volume on its way home is shown once the backend's next look
    # settles it (``WayHome.settle``).
    found, attachments = operations.disks_and_holders(layout)
    attachments.require_known()
    disks = [disk for disk in found if disk.source is None]
    searched = set(disk.path for disk in disks)
    return _rows(disks + [disk for disk in attachments.moved_disks()
                          if disk.path not in searched], attachments)


def _rows(disks, attachments):
    """The ``VolumeRow`` of each of ``disks``, held as ``attachments`` say."""
    rows = []
    for disk in disks:
        holder = attachments.holder(disk.path)
        vm = holder.vm if holder else None
        rows.append(VolumeRow(
            blockdevice_id=blockdevice_id_for(disk.dataset_id),
            dataset_id=disk.dataset_id, size=disk.size, profile=disk.profile,
            datastore=disk.path.datastore, path=text_type(disk.path),
            vm_name=vm.name if vm else None,
            vm_id=vm.instance_uuid if vm else None,
            power_state=vm.power_state if vm else None))
    return sorted(rows, key=lambda row: text_type(row.dataset_id))


def find_orphans(assembly):
    """
    Everything in the cluster's folders (on every configured datastore and
    every member of a configured datastore cluster) that no volume accounts
    for, and the volumes attached to powered-off VMs.

    :param Assembly assembly: The backend's parts.
    :returns: a list of ``Finding``.
    """
    operations, layout = assembly.operations, assembly.layout
    files = assembly.operator.cluster_files(layout)
    # A disk is complete when the backend itself lists it: the same disk
    # search, not this broader file search, decides.
    disks = [disk for disk in operations.search_disks(layout)
             if disk.source is None]
    volumes = set(text_type(disk.path) for disk in disks)
    attachments = operations.attachments(layout)
    held = set(text_type(disk.path) for disk in attachments.disks)
    present = set("{}/{}".format(folder.rstrip("/"), name)
                  for _, folder, name, _ in files)
    findings = []
    for datastore, folder, name, _ in sorted(files):
        path = "{}/{}".format(folder.rstrip("/"), name)
        in_profile = layout.profile_of_folder(datastore, folder) is not None
        dataset_id = dataset_id_of_file(name)
        if dataset_id is not None and in_profile:
            if path in volumes:
                continue  # a volume
            findings.append(_half_created(
                INCOMPLETE_DISK, path, path, held, attachments, present,
                "a disk descriptor without a capacity: its creation stopped "
                "half-way"))
            continue
        if name.endswith(_FLAT_SUFFIX) and in_profile and parse_dataset_id(
                name[:-len(_FLAT_SUFFIX)]) is not None:
            descriptor = path[:-len(_FLAT_SUFFIX)] + ".vmdk"
            if descriptor in present:
                continue  # the extent of a disk already looked at
            findings.append(_half_created(
                LONE_EXTENT, path, descriptor, held, attachments, present,
                "a disk extent whose descriptor is missing"))
            continue
        findings.append(Finding(
            kind=FOREIGN_FILE, path=path, detail=(
                "a disk outside any profile's folder" if dataset_id is not None
                else "not a file this driver names") + "; left alone"))
    by_dataset = {}
    for disk in disks:
        by_dataset.setdefault(disk.dataset_id, []).append(text_type(disk.path))
    for dataset_id, paths in sorted(by_dataset.items()):
        if len(paths) > 1:
            # Which one holds the data cannot be told from the files: an
            # operator decides (see blockdevice's ``_keep_one``).
            findings.append(Finding(
                kind=DUPLICATE_DISKS, path=sorted(paths)[0],
                blockdevice_id=blockdevice_id_for(dataset_id),
                dataset_id=dataset_id, files=tuple(sorted(paths)), detail=(
                    "volume {} has {} disks: {}; a race left them, and only "
                    "an operator can tell which holds its data: keep that "
                    "one, delete the others").format(
                        blockdevice_id_for(dataset_id), len(paths),
                        ", ".join(sorted(paths)))))
    # Every datastore the file search covered: the configured ones and the
    # members of configured datastore clusters (as ``cluster_files`` just
    # read them).
    searched = set(assembly.lookup.current_datastores())
    for held in attachments.disks:
        path = text_type(held.path)
        if held.moved is not None:
            continue  # a volume Storage vMotion moved: its file is there
        if held.path.datastore in searched and path not in present:
            # A destroy cut short after its deletion, or files removed by
            # hand: the VM would fail to power on with it.
            findings.append(Finding(
                kind=DANGLING_DISK, path=path, vm_id=held.vm.instance_uuid,
                detail="VM {} ({}) holds {}, whose file is gone".format(
                    held.vm.name, held.vm.instance_uuid, path),
                repair="detach it from {}".format(held.vm.name)))
    for row in _rows(disks + attachments.moved_disks(), attachments):
        if row.vm_id is not None and row.power_state != "poweredOn":
            # A suspended VM comes back with its disks: only a powered-off
            # one may safely lose them.
            findings.append(Finding(
                kind=POWERED_OFF_HOLDER, path=row.path,
                blockdevice_id=row.blockdevice_id, vm_id=row.vm_id,
                detail="volume {} is attached to VM {} ({}), which is {}".format(
                    row.blockdevice_id, row.vm_name, row.vm_id, row.power_state),
                repair=("detach it from {}".format(row.vm_name)
                        if row.power_state == "poweredOff" else None)))
    return findings


def _half_created(kind, path, descriptor, held, attachments, present, detail):
    """A finding about a half-created disk; safe to delete unless a VM holds it."""
    if descriptor in held:
        return Finding(kind=kind, path=path, detail=detail + "; a VM holds it, "
                       "so it is left alone")
    if attachments.unknown:
        return Finding(kind=kind, path=path, detail=detail + "; vCenter did "
                       "not report every VM's disks, so it is left alone")
    files = tuple(name for name in (
        descriptor, descriptor[:-len(".vmdk")] + _FLAT_SUFFIX) if name in present)
    return Finding(kind=kind, path=path, detail=detail, files=files,
                   repair="delete {}".format(" and ".join(files)),
                   descriptor=descriptor, dataset_id=dataset_id_of_file(
                       descriptor.rpartition("/")[2]))


def repair(assembly, findings):
    """
    Carry out the safe repair of each finding that has one.

    :param Assembly assembly: The backend's parts.
    :returns: a list of ``(Finding, text saying what was done)``.
    """
    operations, layout = assembly.operations, assembly.layout
    done = []
    for finding in findings:
        if finding.repair is None:
            continue
        # The state is read again right before each repair: Flocker's own
        # agents may have moved the volume, or a VM taken the disk, or
        # completed the creation, since the findings were made.
        path = DatastorePath.parse(finding.descriptor or finding.path)
        if path is None:
            # Not a path a VM could name, so who holds it cannot be told.
            done.append((finding, "left alone: not a datastore path"))
            continue
        attachments = operations.attachments(layout)
        if attachments.unknown:
            done.append((finding, "left alone: vCenter did not report every "
                         "VM's disks"))
            continue
        holders = [held.vm for held in attachments.holders(path)]
        if finding.kind == POWERED_OFF_HOLDER:
            holder = holders[0] if len(holders) == 1 else None
            if (holder is None or holder.instance_uuid != finding.vm_id
                    or holder.power_state != "poweredOff"):
                done.append((finding, "left alone: the volume moved or its "
                             "VM was powered on since"))
                continue
            # As the backend detaches: a volume Storage vMotion moved is
            # brought home into the cluster's folder.
            try:
                assembly.api.detach_volume(finding.blockdevice_id)
            except (UnattachedVolume, UnknownVolume):
                done.append((finding, "left alone: the volume moved since"))
                continue
            done.append((finding, "detached volume {}".format(
                finding.blockdevice_id)))
        elif finding.kind == DANGLING_DISK:
            mine = [vm for vm in holders if vm.instance_uuid == finding.vm_id]
            if not mine or assembly.operator.folder_entry(path) is not None:
                done.append((finding, "left alone: the VM let go of it, or "
                             "its file is back"))
                continue
            operations.detach_disk(mine[0], path)
            done.append((finding, "detached {} from {}".format(
                finding.path, mine[0].name)))
        elif holders:
            done.append((finding, "left alone: a VM holds it now"))
        elif operations.search_disks(layout, finding.dataset_id):
            done.append((finding, "left alone: the dataset has a complete "
                         "volume now"))
        else:
            deleted = [name for name in finding.files
                       if assembly.operator.delete_file(name)]
            done.append((finding, "deleted {}".format(
                " and ".join(deleted) or "nothing (already gone)")))
    return done
