"""
The ``dataset`` section of agent.yml, validated into one immutable value.

Every key of VMware's original driver keeps its name and meaning (``vc_ip``,
``username``, ``password``, ``datacenter_name``, ``datastore_name``,
``ssl_verify_cert``, ``ssl_key_file``, ``ssl_cert_file``, ``ssl_thumbprint``);
the rest are this driver's additions, each with a safe default.  A wrong
section fails with one ``ConfigurationError`` naming the key.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import difflib
import io
import os
import re
from uuid import UUID

from pyrsistent import PClass, field, pmap_field

from ._compat import integer_types, string_types, text_type
from .errors import ConfigurationError

#: How new disks are provisioned, by configuration name -> vSphere ``diskType``.
PROVISIONING_TYPES = {
    "thin": "thin",
    "thick": "preallocated",
    "eager_zeroed_thick": "eagerZeroedThick",
}

#: SCSI controller types for controllers the driver adds.
SCSI_CONTROLLER_TYPES = ("paravirtual", "lsilogic", "lsilogic_sas", "buslogic")

_TRUE_WORDS = ("yes", "true", "on", "1")
_FALSE_WORDS = ("no", "false", "off", "0")
_THUMBPRINT = re.compile(r"\A(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
# Names become datastore folder names: keep them to what every datastore
# (VMFS, NFS, vSAN) accepts, and never a path.
_FOLDER_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,79}\Z")


class Secret(object):
    """
    A value that must never be shown: its ``repr`` and ``str`` hide it.

    :ivar reveal: Returns the value, for the one place that sends it.
    """
    __slots__ = ("_value",)

    def __init__(self, value):
        self._value = value

    def reveal(self):
        return self._value

    def __repr__(self):
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other):
        return isinstance(other, Secret) and other._value == self._value

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self._value)


#: The profiles every profiled Flocker backend offers; bronze is the default.
MANDATORY_PROFILES = ("gold", "silver", "bronze")
DEFAULT_PROFILE = "bronze"


class Profile(PClass):
    """
    Where and how volumes of one storage profile are made.

    :ivar text name: The profile's name (gold, silver, bronze, or an admin's).
    :ivar text datastore: The datastore its disks live on.
    :ivar storage_policy: The vSphere storage policy applied to its disks
        when attached, by name, or ``None``.
    :ivar text provisioning: ``thin``, ``thick`` or ``eager_zeroed_thick``.
    """
    name = field(type=text_type, mandatory=True)
    datastore = field(type=text_type, mandatory=True)
    storage_policy = field(type=(text_type, type(None)), initial=None)
    provisioning = field(type=text_type, mandatory=True)

    @property
    def disk_type(self):
        """The vSphere ``diskType`` of new disks."""
        return PROVISIONING_TYPES[self.provisioning]


class VsphereConfiguration(PClass):
    """
    Everything the driver needs to know, validated.

    Build it with :func:`configuration_from_dataset`, not directly.
    """
    cluster_id = field(type=UUID, mandatory=True)
    vc_host = field(type=text_type, mandatory=True)
    vc_port = field(type=int, mandatory=True, initial=443)
    username = field(type=text_type, mandatory=True)
    password = field(type=Secret, mandatory=True)
    datacenter_name = field(type=text_type, mandatory=True)
    datastore_name = field(type=text_type, mandatory=True)
    volume_folder = field(type=text_type, mandatory=True, initial="FLOCKER")
    provisioning = field(type=text_type, mandatory=True, initial="thin")
    scsi_controller_type = field(type=text_type, mandatory=True,
                                 initial="paravirtual")
    operation_timeout = field(type=float, mandatory=True, initial=300.0)
    device_timeout = field(type=float, mandatory=True, initial=60.0)
    ssl_verify_cert = field(type=bool, mandatory=True, initial=True)
    ssl_ca_file = field(type=(text_type, type(None)), initial=None)
    ssl_cert_file = field(type=(text_type, type(None)), initial=None)
    ssl_key_file = field(type=(text_type, type(None)), initial=None)
    ssl_thumbprint = field(type=(text_type, type(None)), initial=None)
    profiles = pmap_field(text_type, Profile)
    default_profile = field(type=text_type, mandatory=True,
                            initial=DEFAULT_PROFILE)

    @property
    def disk_type(self):
        """The vSphere ``diskType`` of new disks of the default profile."""
        return self.profiles[self.default_profile].disk_type

    @property
    def datastores(self):
        """Every datastore a profile names, the default one first."""
        names = [self.datastore_name]
        for name in sorted(self.profiles):
            if self.profiles[name].datastore not in names:
                names.append(self.profiles[name].datastore)
        return names


def _require_text(key, value):
    if not isinstance(value, string_types):
        raise ConfigurationError(
            key, "must be text, not {}".format(_kind(value)))
    value = text_type(value).strip()
    if not value:
        raise ConfigurationError(key, "must not be empty")
    return value


def _password(key, value):
    # Unlike other text, a password is taken as it is: spaces may belong.
    if not isinstance(value, string_types):
        raise ConfigurationError(key, "must be text, not {}".format(_kind(value)))
    if not value:
        raise ConfigurationError(key, "must not be empty")
    return text_type(value)


def _kind(value):
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, integer_types + (float,)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "empty"
    if isinstance(value, string_types):
        return "text"
    return "a {}".format(type(value).__name__)


def _boolean(key, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, string_types):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ConfigurationError(
        key, "must be yes or no (true or false), not {!r}".format(value))


def _port(key, value):
    if isinstance(value, bool) or not isinstance(value, integer_types):
        raise ConfigurationError(
            key, "must be a port number, not {}".format(_kind(value)))
    if not 0 < value < 65536:
        raise ConfigurationError(
            key, "must be between 1 and 65535, not {}".format(value))
    return int(value)


def _timeout(key, value):
    if isinstance(value, bool) or not isinstance(value, integer_types + (float,)):
        raise ConfigurationError(
            key, "must be a number of seconds, not {}".format(_kind(value)))
    if not 0 < value <= 86400:
        raise ConfigurationError(
            key, "must be more than 0 and at most 86400 seconds, not {}".format(
                value))
    return float(value)


def _one_of(choices):
    def check(key, value):
        value = _require_text(key, value).lower()
        if value not in choices:
            raise ConfigurationError(key, "must be one of {}, not {!r}".format(
                ", ".join(sorted(choices)), value))
        return value
    return check


def _folder(key, value):
    value = _require_text(key, value)
    if not _FOLDER_NAME.match(value):
        raise ConfigurationError(
            key, "must be one folder name of letters, digits, '.', '_' or '-' "
                 "(at most 80), not {!r}".format(value))
    return value


def _profile_name(key, value):
    # Flocker's names are lower case; an admin's "Fast" is the profile "fast".
    value = _require_text(key, value).lower()
    if not _FOLDER_NAME.match(value) or "." in value:
        raise ConfigurationError(
            key, "must be a name of letters, digits, '_' or '-', not {!r}".format(
                value))
    return value


def _nearest_hint(key, valid):
    close = difflib.get_close_matches(text_type(key), list(valid), n=1)
    if close:
        return "; did you mean {}?".format(close[0])
    return "; valid keys are {}".format(", ".join(sorted(valid)))


_PROFILE_KEYS = {
    "datastore": _require_text,
    "storage_policy": _require_text,
    "provisioning": None,  # filled in below, once _one_of exists
}


def _profiles(dataset, datastore_name, provisioning):
    """
    The ``profiles`` mapping: each name to its datastore, storage policy and
    provisioning; gold, silver and bronze always exist (on the default
    datastore unless configured).
    """
    given = dataset.get("profiles", {})
    if not isinstance(given, dict):
        raise ConfigurationError("profiles", "must be a mapping of profile "
                                 "names to settings, not {}".format(_kind(given)))
    profiles = {}
    for name in list(MANDATORY_PROFILES) + sorted(
            set(given) - set(MANDATORY_PROFILES)):
        settings = given.get(name) or {}
        key = "profiles.{}".format(name)
        name = _profile_name(key, name)
        if not isinstance(settings, dict):
            raise ConfigurationError(key, "must be a mapping (datastore, "
                                     "storage_policy, provisioning)")
        values = {"name": name, "datastore": datastore_name,
                  "provisioning": provisioning}
        for setting, value in settings.items():
            if setting not in _PROFILE_KEYS:
                raise ConfigurationError(
                    "{}.{}".format(key, setting),
                    "is not a known key" + _nearest_hint(setting, _PROFILE_KEYS))
            values[setting] = _PROFILE_KEYS[setting](
                "{}.{}".format(key, setting), value)
        profiles[name] = Profile(**values)
    return profiles


def _readable_file(key, value):
    value = _require_text(key, value)
    if not os.path.isfile(value):
        raise ConfigurationError(key, "names {}, which is not a file".format(value))
    if not os.access(value, os.R_OK):
        raise ConfigurationError(key, "names {}, which cannot be read".format(value))
    return value


def _thumbprint(key, value):
    value = _require_text(key, value)
    digits = value.replace(":", "").lower()
    if not _THUMBPRINT.match(digits):
        raise ConfigurationError(
            key, "must be a SHA-256 (64 hex digits) or SHA-1 (40 hex digits) "
                 "certificate fingerprint, colons allowed")
    return digits


def _cluster_id(value):
    if isinstance(value, UUID):
        return value
    try:
        return UUID(text_type(value))
    except ValueError:
        raise ConfigurationError("cluster_id", "must be a UUID, not {!r}".format(
            value))


_PROFILE_KEYS["provisioning"] = _one_of(PROVISIONING_TYPES)

# key: (checker, the field it fills, required?)
_KEYS = {
    "vc_ip": (_require_text, "vc_host", True),
    "vc_port": (_port, "vc_port", False),
    "username": (_require_text, "username", True),
    "password": (_password, "password", False),
    "password_file": (_readable_file, None, False),
    "datacenter_name": (_require_text, "datacenter_name", True),
    "datastore_name": (_require_text, "datastore_name", True),
    "volume_folder": (_folder, "volume_folder", False),
    "provisioning": (_one_of(PROVISIONING_TYPES), "provisioning", False),
    "scsi_controller_type": (_one_of(SCSI_CONTROLLER_TYPES),
                             "scsi_controller_type", False),
    "operation_timeout": (_timeout, "operation_timeout", False),
    "device_timeout": (_timeout, "device_timeout", False),
    "ssl_verify_cert": (_boolean, "ssl_verify_cert", False),
    "ssl_ca_file": (_readable_file, "ssl_ca_file", False),
    "ssl_cert_file": (_readable_file, "ssl_cert_file", False),
    "ssl_key_file": (_readable_file, "ssl_key_file", False),
    "ssl_thumbprint": (_thumbprint, "ssl_thumbprint", False),
    "profiles": (lambda key, value: value, None, False),
    "default_profile": (_profile_name, "default_profile", False),
}

#: Keys of the ``dataset`` section the agent itself uses, not the backend.
_AGENT_KEYS = ("backend",)


def _read_password_file(path):
    with io.open(path, encoding="utf-8") as password_file:
        # Only the line end an editor adds is dropped: spaces may belong.
        password = password_file.read().rstrip("\r\n")
    if not password:
        raise ConfigurationError("password_file", "names an empty file")
    return password


def configuration_from_dataset(cluster_id, dataset):
    """
    Validate a ``dataset`` section of agent.yml.

    :param cluster_id: The Flocker cluster's id (``UUID`` or its text).
    :param dict dataset: The section's keys (``backend`` is ignored).
    :raises ConfigurationError: naming the first wrong key.
    :returns VsphereConfiguration:
    """
    if not isinstance(dataset, dict):
        raise ConfigurationError(None, "the dataset section must be a mapping")
    values = {"cluster_id": _cluster_id(cluster_id)}
    unknown = sorted(
        key for key in dataset if key not in _KEYS and key not in _AGENT_KEYS)
    if unknown:
        key = unknown[0]
        raise ConfigurationError(key, "is not a known key" + _nearest_hint(
            key, _KEYS))
    for key, (check, field_name, required) in sorted(_KEYS.items()):
        if key not in dataset:
            if required:
                raise ConfigurationError(key, "is missing")
            continue
        value = check(key, dataset[key])
        if field_name is not None:
            values[field_name] = value
    if "password" in dataset and "password_file" in dataset:
        raise ConfigurationError(
            "password_file", "cannot be given together with password")
    if "password_file" in dataset:
        values["password"] = _read_password_file(dataset["password_file"])
    if "password" not in values:
        raise ConfigurationError("password", "is missing (or give password_file)")
    values["password"] = Secret(values["password"])
    values["profiles"] = _profiles(dataset, values["datastore_name"],
                                   values.get("provisioning", "thin"))
    default = values.get("default_profile", DEFAULT_PROFILE)
    if default not in values["profiles"]:
        raise ConfigurationError("default_profile", (
            "names no profile: {!r} is none of {}").format(
                default, ", ".join(sorted(values["profiles"]))))
    if ("ssl_cert_file" in values) != ("ssl_key_file" in values):
        raise ConfigurationError(
            "ssl_key_file" if "ssl_cert_file" in values else "ssl_cert_file",
            "is needed too: a client certificate needs both its certificate "
            "and its key")
    return VsphereConfiguration(**values)
