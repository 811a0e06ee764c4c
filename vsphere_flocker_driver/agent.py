"""
Loading a backend from agent.yml the way Flocker's dataset agent does it.

The agent reads ``/etc/flocker/agent.yml``, imports the Python module that the
``dataset`` section's ``backend`` key names, reads that module's
``FLOCKER_BACKEND`` (a ``BackendDescription``) and calls its ``api_factory``
with the cluster id and every other key of the ``dataset`` section.  The tests
and the operator CLI take the same steps, so that a file that loads here loads
in the agent; each way the file or the backend module can be wrong is reported
as one ``AgentConfigError`` naming the file and the problem.  Errors in the
backend's own keys (``ConfigurationError``) are the backend's to report and
pass through unchanged.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import difflib
import errno
import importlib
import io
import re

import yaml

from ._compat import integer_types, native_string, string_types, text_type, to_text
from .errors import AgentConfigError
from .flocker_api import BackendDescription, DeployerType

#: The only agent.yml version Flocker's agent accepts.
AGENT_CONFIG_VERSION = 1

#: Where a backend module has to be installed for the agent to import it.
INSTALL_HINT = (
    "it must be pip-installed, with its dependencies, into the Python "
    "environment the agent runs in (for Flocker 1.15: /opt/flocker/bin/pip "
    "install ...)")

# A dotted module name, as ``import`` takes it.  Relative names (".x") and
# paths ("x/y.py") are what operators most often get wrong here.
_MODULE_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")

# Keyword arguments the agent passes to the factory itself, so that the
# dataset section cannot also give them.
_AGENT_ARGUMENTS = ("cluster_id", "reactor")

# The backends Flocker's agent has built in: it never imports a module for
# these names, so neither can this loader.
_BUILTIN_BACKENDS = ("aws", "gce", "loopback", "openstack", "zfs")

_MISSING = object()


def _kind(value):
    """Name the kind of a value parsed from YAML, for messages."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, integer_types + (float,)):
        return "a number"
    if isinstance(value, string_types):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "a {}".format(type(value).__name__)


def _one_line(error):
    """An exception's message as one line of text, on both interpreters."""
    return " ".join(to_text(str(error)).split())


def _read_bytes(path):
    """The content of the file at ``path``."""
    with io.open(path, "rb") as config_file:
        return config_file.read()


def _read_problem(error):
    """Say why reading the file failed, from an ``IOError``/``OSError``."""
    if error.errno == errno.ENOENT:
        return "it does not exist"
    if error.errno == errno.EISDIR:
        return "it is a directory, not a file"
    return "it cannot be read ({})".format(
        to_text(error.strerror or _one_line(error)))


def _yaml_problem(error):
    """Say where and why PyYAML could not parse the file."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if mark is not None and problem:
        return "line {}, column {}: {}".format(
            mark.line + 1, mark.column + 1, to_text(problem))
    if isinstance(error, yaml.reader.ReaderError):
        # Undecodable bytes or control characters: no line is known, only
        # the offset.
        return "{} at offset {}".format(to_text(error.reason), error.position)
    return _one_line(error)


#: How alike a given key must be to a missing required one to be taken for
#: a misspelling of it.  Stricter than difflib's default (0.6), as this
#: loader knows only the required keys, not the backend's optional ones:
#: ``vc_port`` (0.67 alike) is no misspelling of ``vc_ip``, while
#: ``datastor_name`` (0.96) or ``datastore`` (0.78) are of ``datastore_name``.
_MISSPELT_CUTOFF = 0.75


def _misspelt_hint(missing, dataset, required):
    """
    "; did you mean X?" for each missing required key that a key the
    dataset gives instead is a near miss of, as the backend's own check
    says for its optional keys; empty when there is none.
    """
    given = [text_type(key) for key in dataset
             if key not in required and key != "backend"]
    hints = []
    for key in missing:
        close = difflib.get_close_matches(key, given, n=1,
                                          cutoff=_MISSPELT_CUTOFF)
        if close:
            given.remove(close[0])
            hints.append("{} is given: did you mean {}?".format(close[0], key))
    return "".join("; " + hint for hint in hints)


def load_agent_config(path):
    """
    Read and check an agent.yml file as far as the agent does before it loads
    the backend.

    :param text path: The file, such as ``/etc/flocker/agent.yml``.
    :raises AgentConfigError: the file is missing or unreadable, is not YAML,
        is not a mapping, is not ``version: 1``, or has no ``dataset``
        mapping with a ``backend`` module name.
    :returns dict: The whole file, as parsed.
    """
    path = to_text(path)
    try:
        content = _read_bytes(path)
    except (IOError, OSError) as error:
        raise AgentConfigError(path, _read_problem(error))
    try:
        config = yaml.safe_load(content)
    except yaml.YAMLError as error:
        raise AgentConfigError(
            path, "it is not valid YAML: {}".format(_yaml_problem(error)))
    if config is None:
        raise AgentConfigError(path, "it is empty")
    if not isinstance(config, dict):
        raise AgentConfigError(
            path, "its top level must be a mapping of keys to values, not "
                  "{}".format(_kind(config)))
    if "version" not in config:
        raise AgentConfigError(
            path, "it has no version key (it must say version: {})".format(
                AGENT_CONFIG_VERSION))
    version = config["version"]
    is_number = (isinstance(version, integer_types + (float,))
                 and not isinstance(version, bool))
    if not is_number or version != AGENT_CONFIG_VERSION:
        raise AgentConfigError(
            path, "its version must be {}, not {}".format(
                AGENT_CONFIG_VERSION, version if is_number else _kind(version)))
    if "dataset" not in config:
        raise AgentConfigError(
            path, "it has no dataset section (the backend and its keys)")
    dataset = config["dataset"]
    if not isinstance(dataset, dict):
        raise AgentConfigError(
            path, "its dataset section must be a mapping of keys to values, "
                  "not {}".format(_kind(dataset)))
    for key in dataset:
        # YAML makes "yes:" or "1:" into a boolean or a number, which cannot
        # be a keyword argument of the factory.
        if not isinstance(key, string_types):
            raise AgentConfigError(
                path, "its dataset section has a key that is {}, not a name: "
                      "{!r}".format(_kind(key), key))
    if "backend" not in dataset:
        raise AgentConfigError(
            path, "its dataset section has no backend key naming the "
                  "backend's Python module")
    backend = dataset["backend"]
    if not isinstance(backend, string_types):
        raise AgentConfigError(
            path, "the dataset's backend must be the name of a Python "
                  "module, not {}".format(_kind(backend)))
    if not backend.strip():
        raise AgentConfigError(
            path, "the dataset's backend is blank: it must be the name of a "
                  "Python module")
    return config


def backend_description(module_name, path=None):
    """
    Import a backend module and return its ``FLOCKER_BACKEND``, checked as
    the agent needs it.

    :param text module_name: The module, as agent.yml's ``backend`` names it.
    :param text path: The agent.yml file naming it, for messages only.
    :raises AgentConfigError: the name is not a module name, the module
        is one of Flocker's built-in backends (``aws`` and the like),
        cannot be imported, has no ``FLOCKER_BACKEND``, or that is not a
        ``BackendDescription`` of a block-device backend.
    :returns BackendDescription:
    """
    name = to_text(module_name).strip()
    if name.endswith(".py") and _MODULE_NAME.match(name[:-len(".py")]):
        raise AgentConfigError(
            path, "the backend '{}' is a file name; give the module's name, "
                  "{}".format(name, name[:-len(".py")]))
    if not _MODULE_NAME.match(name):
        raise AgentConfigError(
            path, "the backend '{}' is not a Python module name (such as "
                  "vsphere_flocker_plugin)".format(name))
    if name in _BUILTIN_BACKENDS:
        raise AgentConfigError(
            path, "the backend {} is one of Flocker's built-in backends, not a "
                  "third-party backend module".format(name))
    try:
        module = importlib.import_module(native_string(name))
    except ImportError as error:
        # The message names what is missing: the module itself, or one of
        # the libraries it imports.
        raise AgentConfigError(
            path, "the backend module {} cannot be imported ({}); {}".format(
                name, _one_line(error), INSTALL_HINT))
    description = getattr(module, "FLOCKER_BACKEND", _MISSING)
    if description is _MISSING:
        raise AgentConfigError(
            path, "the backend module {} ({}) has no FLOCKER_BACKEND, so it "
                  "is not a Flocker backend".format(
                      name, to_text(getattr(module, "__file__", "built in"))))
    if not isinstance(description, BackendDescription):
        # Also what happens when the backend was built with another copy of
        # the class than the agent's: say which one is expected.
        raise AgentConfigError(
            path, "{}.FLOCKER_BACKEND must be a {}.BackendDescription, not "
                  "{}.{}".format(
                      name, BackendDescription.__module__,
                      type(description).__module__, type(description).__name__))
    if description.deployer_type != DeployerType.block:
        raise AgentConfigError(
            path, "{}.FLOCKER_BACKEND has deployer_type {}, but only "
                  "block-device backends (DeployerType.block) are "
                  "supported".format(
                      name, getattr(description.deployer_type, "name",
                                    description.deployer_type)))
    return description


def factory_arguments(path, cluster_id, **extra):
    """
    The backend that an agent.yml file names, and the keyword arguments the
    agent would call its factory with.

    The arguments are every key of the ``dataset`` section but ``backend``,
    plus ``cluster_id`` if the backend ``needs_cluster_id`` and ``reactor``
    only if it ``needs_reactor`` (as the agent does; a ``reactor`` given for
    a backend that needs none is dropped).

    :param text path: The agent.yml file.
    :param UUID cluster_id: The Flocker cluster's id.
    :param extra: More keyword arguments for the factory: ``reactor``, and
        ones the agent itself never passes (such as ``guest_root`` in tests);
        they win over the dataset's keys of the same name.
    :raises AgentConfigError: as ``load_agent_config`` and
        ``backend_description`` do; or a key the backend's ``required_config``
        names is missing; or the dataset gives ``cluster_id`` or ``reactor``
        itself; or the backend needs a cluster id or a reactor and none was
        given.
    :returns: ``(BackendDescription, dict of keyword arguments)``.
    """
    path = to_text(path)
    config = load_agent_config(path)
    dataset = dict(config["dataset"])
    backend = to_text(dataset.pop("backend")).strip()
    description = backend_description(backend, path=path)
    missing = sorted(text_type(key) for key in description.required_config
                     if key not in dataset)
    if missing:
        raise AgentConfigError(
            path, "the backend {} needs the dataset key{} {}, which {} "
                  "missing{}".format(
                      backend, "s" if len(missing) > 1 else "",
                      ", ".join(missing), "are" if len(missing) > 1 else "is",
                      _misspelt_hint(missing, dataset,
                                     description.required_config)))
    reactor = extra.pop("reactor", None)
    arguments = {}
    if description.needs_cluster_id:
        if cluster_id is None:
            raise AgentConfigError(
                path, "the backend {} needs a cluster id and none was "
                      "given".format(backend))
        arguments["cluster_id"] = cluster_id
    if description.needs_reactor:
        if reactor is None:
            raise AgentConfigError(
                path, "the backend {} needs a Twisted reactor and none was "
                      "given".format(backend))
        arguments["reactor"] = reactor
    for key in _AGENT_ARGUMENTS:
        if key in arguments and key in dataset:
            raise AgentConfigError(
                path, "its dataset section must not give {}: the agent passes "
                      "it to the backend itself".format(key))
    arguments.update(dataset)
    arguments.update(extra)
    return description, arguments


def api_from_agent_config(path, cluster_id, **extra):
    """
    Build a backend's API object from an agent.yml file, as the agent does:
    its factory called with ``factory_arguments``.

    :raises AgentConfigError: as ``factory_arguments`` does.
    :raises ConfigurationError: the backend's own check of its keys failed
        (or whatever else the backend's factory raises).
    :returns: The backend's API object (an ``IBlockDeviceAPI`` provider).
    """
    description, arguments = factory_arguments(path, cluster_id, **extra)
    return description.api_factory(**arguments)


__all__ = [
    "AGENT_CONFIG_VERSION", "api_from_agent_config", "backend_description",
    "factory_arguments", "load_agent_config",
]
