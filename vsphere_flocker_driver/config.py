"""
The ``dataset`` section of agent.yml, validated into one immutable value.

Every key of VMware's original driver keeps its name and meaning (``vc_ip``,
``username``, ``password``, ``datacenter_name``, ``datastore_name``,
``ssl_verify_cert``, ``ssl_key_file``, ``ssl_cert_file``, ``ssl_thumbprint``);
the rest are this driver's additions, each with a safe default.  A wrong
section fails with one ``ConfigurationError`` naming the key, whatever the
value: a file named for TLS is loaded into an ``SSLContext`` here, so a file
OpenSSL cannot use is reported now rather than at the first connection.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import difflib
import io
import os
import re
import socket
from encodings import idna
from uuid import UUID

from pyrsistent import PClass, field, pmap_field

from ._compat import integer_types, string_types, text_type
from .errors import ConfigurationError
from .tls import load_client_certificate, verifying_context

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
# Characters no configured text may hold (C0 controls and DEL): XML, and so
# SOAP, cannot carry most of them, and none belongs in a name or a path.
_CONTROL = re.compile("[\x00-\x1f\x7f]")
# Those a password cannot hold: the ones XML 1.0 cannot carry.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
# One label of a host name, once in ASCII (IDNA): letters, digits, "-" and
# the "_" some internal names carry; no "-" at either end.
_HOST_LABEL = re.compile(r"\A[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\Z")
_IPV6_ADDRESS = re.compile(r"\A([0-9A-Fa-f:.]+)(%[A-Za-z0-9_.-]+)?\Z")
#: The most a password file may hold: more is not a password.
_MAX_PASSWORD_FILE = 64 * 1024
# Integers beyond this are not turned into text for messages (Python 3.11
# refuses integers of over 4300 digits).
_LARGEST_SHOWN = 10 ** 18


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


def _decoded(data, encoding="utf-8"):
    """
    ``data`` decoded, or ``None``: the decoding error is dropped here, as
    its text and attributes hold the bytes (a password's, say), and an error
    raised while it is handled would carry it along as its context.
    """
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _encodable(text):
    """Whether ``text`` can be sent as UTF-8 (it holds no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _as_text(key, value):
    """
    A string value as text: Python 2's byte strings must be UTF-8, and text
    must be encodable as UTF-8 to be sent at all.  The value is not shown.
    """
    if isinstance(value, bytes):
        value = _decoded(value)
        if value is None:
            raise ConfigurationError(key, "must be UTF-8 text")
    value = text_type(value)
    if not _encodable(value):
        raise ConfigurationError(key, "must be valid Unicode text (it holds "
                                 "a lone surrogate)")
    return value


def _require_text(key, value):
    if not isinstance(value, string_types):
        raise ConfigurationError(
            key, "must be text, not {}".format(_kind(value)))
    value = _as_text(key, value).strip()
    if not value:
        raise ConfigurationError(key, "must not be empty")
    if _CONTROL.search(value):
        raise ConfigurationError(
            key, "must not hold control characters (such as a line break "
                 "or NUL)")
    return value


def _password(key, value):
    # Unlike other text, a password is taken as it is: spaces may belong.
    # Nothing of it is ever shown, not even the character at fault.
    if not isinstance(value, string_types):
        raise ConfigurationError(key, "must be text, not {}".format(_kind(value)))
    value = _as_text(key, value)
    if not value:
        raise ConfigurationError(key, "must not be empty")
    if _NOT_XML.search(value):
        raise ConfigurationError(
            key, "must not hold control characters, which vCenter's SOAP "
                 "(XML) cannot carry")
    return value


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


def _number(value):
    """A number as a message shows it: a huge integer is not written out."""
    if isinstance(value, integer_types) and abs(value) >= _LARGEST_SHOWN:
        return "a number of over 18 digits"
    return "{}".format(value)


def _shown(value):
    """Any value as a message quotes it."""
    if isinstance(value, integer_types) and not isinstance(value, bool):
        return _number(value)
    return "{!r}".format(value)


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
        key, "must be yes or no (true or false), not {}".format(_shown(value)))


def _port(key, value):
    if isinstance(value, bool) or not isinstance(value, integer_types):
        raise ConfigurationError(
            key, "must be a port number, not {}".format(_kind(value)))
    if not 0 < value < 65536:
        raise ConfigurationError(
            key, "must be between 1 and 65535, not {}".format(_number(value)))
    return int(value)


def _timeout(key, value):
    if isinstance(value, bool) or not isinstance(value, integer_types + (float,)):
        raise ConfigurationError(
            key, "must be a number of seconds, not {}".format(_kind(value)))
    # Written so that NaN, which compares false with everything, is refused.
    if not 0 < value <= 86400:
        raise ConfigurationError(
            key, "must be more than 0 and at most 86400 seconds, not {}".format(
                _number(value)))
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


def _by_name(keys):
    """
    ``keys`` of a YAML mapping in a stable order: text first, then any other
    (numbers, booleans, ``None``), which cannot be compared with text.
    """
    return sorted(keys, key=lambda key: (
        (0, key) if isinstance(key, string_types) else (1, repr(key))))


def _profiles(given, datastore_name, provisioning):
    """
    The ``profiles`` mapping: each name to its datastore, storage policy and
    provisioning; gold, silver and bronze always exist (on the default
    datastore unless configured).
    """
    if not isinstance(given, dict):
        raise ConfigurationError("profiles", "must be a mapping of profile "
                                 "names to settings, not {}".format(_kind(given)))
    named = {}
    for raw in _by_name(given):
        key = "profiles.{}".format(raw)
        if not isinstance(raw, string_types):
            # YAML reads an unquoted yes, 1 or ~ as a boolean, number or null.
            raise ConfigurationError(key, "a profile name must be text, not "
                                     "{} (quote it)".format(_kind(raw)))
        name = _profile_name(key, raw)
        if name in named:
            raise ConfigurationError(key, "names the profile {} again (names "
                                     "are matched without regard to "
                                     "case)".format(name))
        named[name] = (key, given[raw])
    for name in MANDATORY_PROFILES:
        named.setdefault(name, ("profiles.{}".format(name), None))
    profiles = {}
    for name, (key, settings) in sorted(named.items()):
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise ConfigurationError(key, "must be a mapping (datastore, "
                                     "storage_policy, provisioning)")
        values = {"name": name, "datastore": datastore_name,
                  "provisioning": provisioning}
        for setting in _by_name(settings):
            if setting not in _PROFILE_KEYS:
                raise ConfigurationError(
                    "{}.{}".format(key, setting),
                    "is not a known key" + _nearest_hint(setting, _PROFILE_KEYS))
            values[setting] = _PROFILE_KEYS[setting](
                "{}.{}".format(key, setting), settings[setting])
        profiles[name] = Profile(**values)
    return profiles


def _readable_file(key, value):
    value = _require_text(key, value)
    try:
        is_file = os.path.isfile(value)
        readable = is_file and os.access(value, os.R_OK)
    except (TypeError, ValueError):
        # Python 2 encodes a name for the system, which may not have the
        # characters: not a name this system can have.
        is_file = readable = None
    if is_file is None:
        raise ConfigurationError(key, "names {}, which this system cannot use "
                                 "as a file name".format(value))
    if not is_file:
        raise ConfigurationError(key, "names {}, which is not a file".format(value))
    if not readable:
        raise ConfigurationError(key, "names {}, which cannot be read".format(value))
    return value


def _host(key, value):
    """
    A host name or IP address, checked as the socket layer would take it:
    labels of at most 63 characters, 253 in all, once in ASCII (IDNA), which
    is the form kept; an IPv6 address may be given in brackets, which are
    dropped.
    """
    value = _require_text(key, value)
    bracketed = value.startswith("[") and value.endswith("]")
    address = value[1:-1] if bracketed else value
    if _is_ip_address(address):
        return address
    if bracketed:
        raise ConfigurationError(key, "must be an IPv6 address in brackets")
    if "/" in value:
        raise ConfigurationError(key, "must be a host name or IP address, not "
                                 "a URL or path")
    if ":" in value:
        raise ConfigurationError(key, "must be a host name or IP address; give "
                                 "the port as vc_port")
    labels = (value[:-1] if value.endswith(".") else value).split(".")
    if re.match(r"\A[0-9.]+\Z", value):
        raise ConfigurationError(key, "is not a valid IPv4 address")
    ascii_labels = []
    for label in labels:
        if not label:
            raise ConfigurationError(key, "must not have an empty label (a "
                                     "leading dot or two dots in a row)")
        if len(label) > 63:
            raise ConfigurationError(key, "has a label of {} characters; a host "
                                     "name's labels have at most 63".format(
                                         len(label)))
        ascii_label = _idna_label(label)
        if ascii_label is None or len(ascii_label) > 63:
            raise ConfigurationError(key, "has a label that is not a valid "
                                     "international host name")
        if not _HOST_LABEL.match(ascii_label):
            raise ConfigurationError(key, "must be a host name of letters, "
                                     "digits, '-' and '.' (and no '-' at the "
                                     "start or end of a label), or an IP "
                                     "address")
        ascii_labels.append(ascii_label)
    ascii_name = ".".join(ascii_labels)
    if len(ascii_name) > 253:
        raise ConfigurationError(key, "is a host name of {} characters; at most "
                                 "253 are allowed".format(len(ascii_name)))
    # The ASCII form, as Python 3's socket layer would send it; Python 2's
    # would send the UTF-8 bytes, which resolvers do not know.
    return ascii_name + ("." if value.endswith(".") else "")


def _idna_label(label):
    """One label in ASCII as the socket layer sends it, or ``None``."""
    try:
        return idna.ToASCII(label).decode("ascii")
    except UnicodeError:
        return None


def _is_ip_address(text):
    """Whether ``text`` is an IPv4 address, or an IPv6 one (with a zone)."""
    try:
        socket.inet_pton(socket.AF_INET, text)
        return True
    except (socket.error, ValueError, UnicodeError):
        pass
    match = _IPV6_ADDRESS.match(text)
    if match is None:
        return False
    try:
        socket.inet_pton(socket.AF_INET6, match.group(1))
        return True
    except (socket.error, ValueError, UnicodeError):
        return False


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
        text = _decoded(value) if isinstance(value, bytes) else text_type(value)
        if text is not None:
            return UUID(text)
    except (TypeError, ValueError):
        pass
    raise ConfigurationError("cluster_id", "must be a UUID, not {}".format(
        _shown(value)))


_PROFILE_KEYS["provisioning"] = _one_of(PROVISIONING_TYPES)

# key: (checker, the field it fills, required?)
_KEYS = {
    "vc_ip": (_host, "vc_host", True),
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

#: Earlier names of keys: the original driver's first releases called
#: ``ssl_verify_cert`` ``validate_cert``.
_ALIASES = {"validate_cert": "ssl_verify_cert"}


def _unaliased(dataset):
    """
    ``dataset`` with each earlier key name given as its current one.

    :raises ConfigurationError: both names given, with different values.
    """
    dataset = dict(dataset)
    for alias, key in sorted(_ALIASES.items()):
        if alias not in dataset:
            continue
        value = dataset.pop(alias)
        if key in dataset:
            check = _KEYS[key][0]
            if check(alias, value) != check(key, dataset[key]):
                raise ConfigurationError(alias, (
                    "is the earlier name of {} and gives another value; "
                    "give one of them").format(key))
        else:
            dataset[key] = value
    return dataset


def _set(dataset):
    """
    ``dataset`` without the optional keys given as empty text: the original
    driver's example gives ``ssl_key_file: ""`` and the like for "not set".
    """
    return dict((key, value) for key, value in dataset.items()
                if not (key in _KEYS and not _KEYS[key][2]
                        and isinstance(value, string_types)
                        and not value.strip()))


def _read_password_file(path):
    """
    The password in the file ``path``: UTF-8 text of one line; only the line
    end an editor adds (and a byte order mark) is dropped, as spaces may
    belong.  No byte of the file ever appears in an error.
    """
    reason = None
    try:
        with io.open(path, "rb") as password_file:
            data = password_file.read(_MAX_PASSWORD_FILE + 1)
    except (IOError, OSError) as error:
        reason = error.strerror or "it cannot be read"
    if reason is not None:
        raise ConfigurationError("password_file", "names {}, which cannot be "
                                 "read: {}".format(path, reason))
    if len(data) > _MAX_PASSWORD_FILE:
        raise ConfigurationError("password_file", "names {}, which is too "
                                 "large to hold a password".format(path))
    password = _decoded(data, "utf-8-sig")
    del data  # not kept in the frame of the error's traceback either
    if password is None:
        raise ConfigurationError("password_file", "names {}, which is not "
                                 "UTF-8 text".format(path))
    password = password.rstrip("\r\n")
    if not password:
        raise ConfigurationError("password_file", "names an empty file")
    if "\n" in password or "\r" in password:
        raise ConfigurationError("password_file", "names {}, which holds more "
                                 "than one line".format(path))
    return _password("password_file", password)


def _check_tls_files(ca_file, cert_file, key_file):
    """Load the TLS files given into a context, as the session will."""
    if ca_file is None and cert_file is None:
        return
    context = verifying_context(ca_file)
    if cert_file is not None:
        load_client_certificate(context, cert_file, key_file)


def check_guest_root(guest_root):
    """
    Check the folder standing for this node's ``/`` (the factory's
    ``guest_root``: tests and the command line's ``--guest-root`` give it).

    :param guest_root: Its path (text, or bytes from Python 2's arguments).
    :raises ConfigurationError: naming ``guest_root``: not the absolute path
        of an existing folder.
    :returns: ``guest_root``.
    """
    if not isinstance(guest_root, string_types):
        raise ConfigurationError("guest_root", "must be a folder's path, not "
                                 "{}".format(_kind(guest_root)))
    path = _decoded(guest_root) if isinstance(guest_root, bytes) else guest_root
    if path is None:
        raise ConfigurationError("guest_root", "must be a UTF-8 path")
    if not path or _CONTROL.search(path):
        raise ConfigurationError("guest_root", "must be a path, without "
                                 "control characters (such as NUL)")
    problem = None
    if not os.path.isabs(path):
        problem = "is not an absolute path"
    else:
        try:
            if not os.path.isdir(guest_root):
                problem = "is not an existing folder"
        except (TypeError, ValueError):
            problem = "is not a path this system can use"
    if problem is not None:
        raise ConfigurationError("guest_root", "names {}, which {}".format(
            path, problem))
    return guest_root


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
    unknown = [key for key in _by_name(dataset)
               if key not in _KEYS and key not in _AGENT_KEYS
               and key not in _ALIASES]
    if unknown:
        key = "{}".format(unknown[0])
        raise ConfigurationError(key, "is not a known key" + _nearest_hint(
            key, _KEYS))
    dataset = _set(_unaliased(dataset))
    checked = {}
    for key, (check, field_name, required) in sorted(_KEYS.items()):
        if key not in dataset:
            if required:
                raise ConfigurationError(key, "is missing")
            continue
        checked[key] = check(key, dataset[key])
        if field_name is not None:
            values[field_name] = checked[key]
    if "password" in dataset and "password_file" in dataset:
        raise ConfigurationError(
            "password_file", "cannot be given together with password")
    if "password_file" in checked:
        values["password"] = _read_password_file(checked["password_file"])
    if "password" not in values:
        raise ConfigurationError("password", "is missing (or give password_file)")
    values["password"] = Secret(values["password"])
    values["profiles"] = _profiles(checked.get("profiles", {}),
                                   values["datastore_name"],
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
    _check_tls_files(values.get("ssl_ca_file"), values.get("ssl_cert_file"),
                     values.get("ssl_key_file"))
    return VsphereConfiguration(**values)
