"""
What a volume's disk carries that says which volume it is, wherever it is.

A volume's file is ``[ds] <folder>/<cluster>/<profile>/<dataset>.vmdk`` until
Storage vMotion (by an administrator, or Storage DRS) moves the VM holding it:
then the file is renamed after the VM (``[ds2] node-1/node-1_1.vmdk``, or a
vSAN namespace's UUID path) and its path says nothing.  Two things travel
with the disk and its VM:

- the disk's UUID, set once its creation succeeded
  (``committed_disk_uuid``): VMware's NAA prefix, a tag of the cluster, and
  a hash of (cluster, dataset) -- so the VM's device list alone tells that a
  disk is one of this cluster's (``is_cluster_disk``) without a request;
- a record in the holding VM's ``extraConfig``, written with the attach and
  removed with the detach (``volume_record``), naming the dataset and the
  profile.

A moved disk is known as a volume only when both agree
(``recorded_volume``): its UUID is the one the record's dataset derives.  A
foreign disk (another cluster's, an operator's) never has this cluster's
UUID, and a record left behind for a disk that is no longer there names a
UUID no device has.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import re
from uuid import UUID, uuid5

from ._compat import native_string, text_type

#: What vSphere's own disk UUIDs begin with (NAA type 6, VMware's OUI
#: 000c29): kept, so a guest sees the identifier it would of any disk.
_NAA_PREFIX = "6000c29"

#: extraConfig keys of the records: ``flocker.volume.<disk UUID>``.
RECORD_PREFIX = "flocker.volume."

_RECORD_VALUE = re.compile(
    r"\A(?P<profile>[A-Za-z0-9][A-Za-z0-9_-]{0,79})/(?P<dataset>"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\Z")


def _cluster_tag(cluster_id):
    """36 bits of the cluster: which cluster a disk UUID belongs to."""
    return uuid5(cluster_id, native_string("flocker volumes")).hex[:9]


def committed_disk_uuid(cluster_id, dataset_id):
    """
    The UUID (32 hex digits) a volume's disk is given once its creation has
    succeeded: derived from the cluster and the dataset, so that any node
    tells the disk of a creation that succeeded from one a lost race left,
    and knows the disk after Storage vMotion renamed it.
    """
    dataset_hash = uuid5(cluster_id, native_string(text_type(dataset_id))).hex
    return _NAA_PREFIX + _cluster_tag(cluster_id) + dataset_hash[:16]


def is_cluster_disk(cluster_id, disk_uuid):
    """
    Whether ``disk_uuid`` (32 hex digits, or ``None``) is of a disk this
    cluster committed: a moved disk worth reading its VM's records for.
    """
    return bool(disk_uuid) and disk_uuid.startswith(
        _NAA_PREFIX + _cluster_tag(cluster_id))


def record_key(disk_uuid):
    """The ``extraConfig`` key of the record of the disk ``disk_uuid``."""
    return RECORD_PREFIX + disk_uuid


def volume_record(cluster_id, dataset_id, profile):
    """
    The ``(key, value)`` a VM holding the volume of ``dataset_id`` keeps in
    its ``extraConfig``: which volume its disk of that UUID is.
    """
    return (record_key(committed_disk_uuid(cluster_id, dataset_id)),
            "{}/{}".format(profile, dataset_id))


def recorded_volume(cluster_id, disk_uuid, options):
    """
    The volume the disk ``disk_uuid`` is, by its VM's records.

    :param options: The VM's ``extraConfig`` as ``{key: value}``.
    :returns: ``(dataset id, profile)``, or ``None`` when the VM records
        nothing for the disk, or a record its UUID does not bear out.
    """
    if not disk_uuid:
        return None
    match = _RECORD_VALUE.match(text_type(options.get(record_key(disk_uuid))
                                          or ""))
    if match is None:
        return None
    dataset_id = UUID(match.group("dataset"))
    if committed_disk_uuid(cluster_id, dataset_id) != disk_uuid:
        return None
    return dataset_id, match.group("profile")
