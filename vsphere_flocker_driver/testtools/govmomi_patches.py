"""
Build-time patches to govmomi 0.24's vCenter simulator, where it answers
``WaitForUpdatesEx`` unlike vCenter in ways a client's cost can tell:

1. A poll (``maxWaitSeconds`` 0), which vCenter answers at once, waited for a
   250 ms ticker before it looked for updates; a blocking wait looked every
   250 ms.
2. For every queued enter or modify of any object (each task state change),
   it collected again the whole contents of every filter of the collector:
   a filter over 1,000 VMs re-collected them once per unrelated task update,
   so an incremental view cost more than a full ``RetrievePropertiesEx``.
   vCenter's cost follows the changes.
3. One answer could carry two ``PropertyFilterUpdate`` for one filter.
4. ``DestroyPropertyCollector`` of a collector holding three filters or
   more failed (the simulator's handler panicked, and the connection was
   dropped): it destroyed them while walking the list each destruction
   shortens.

``overlay()`` reads govmomi's ``simulator/property_collector.go`` from a
GOPATH, applies ``REPLACEMENTS`` (each must match exactly once: a govmomi
that changed fails the build here, naming the replacement, rather than
building something else) and writes it with a ``go build -overlay`` file that
also adds our ``vcsim/govmomi/*.go`` to the package. Those hold the new
``WaitForUpdatesEx``; the replacements only make room for it. No govmomi file
is kept in this repository.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import json
import os
from collections import namedtuple

from .._compat import to_text

__all__ = [
    "ADDED_DIR",
    "PACKAGE",
    "PatchFailed",
    "REPLACEMENTS",
    "Replacement",
    "added_sources",
    "digest_parts",
    "overlay",
    "patched_sources",
]

#: govmomi's simulator package, relative to a GOPATH.
PACKAGE = os.path.join("src", "github.com", "vmware", "govmomi", "simulator")

#: Our Go files added to that package (``package simulator``); a directory of
#: their own, so that ``go build .`` in ``vcsim/`` leaves them out.
ADDED_DIR = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "vcsim", "govmomi")

#: One exact string replacement in one file of govmomi's simulator package.
Replacement = namedtuple("Replacement", ["name", "filename", "old", "new"])

REPLACEMENTS = (
    # The new WaitForUpdatesEx keeps state in each collector between
    # answers (collector_batch.go, collectorBatch): whether a filter was
    # created since the last one, and new objects a filter did not find yet.
    Replacement(
        "collector-batch-field", "property_collector.go",
        "\tupdates []types.ObjectUpdate\n",
        "\tupdates []types.ObjectUpdate\n"
        "\tbatch   collectorBatch // WaitForUpdatesEx's, collector_batch.go\n"),
    # It collects only the filters that an update can change, and a filter
    # created after the first WaitForUpdatesEx must still report its objects
    # at the next answer (0.24 found them at the next update of anything).
    Replacement(
        "create-filter-records-it", "property_collector.go",
        "\tpc.Filter = append(pc.Filter, ctx.Session.Put(filter).Reference())\n",
        "\tpc.Filter = append(pc.Filter, ctx.Session.Put(filter).Reference())\n"
        "\tpc.filterCreated()\n"),
    # Gaps 1 to 3 are all in WaitForUpdatesEx's wait loop: rename 0.24's
    # method away (it stays, unused) so that collector_batch.go's
    # WaitForUpdatesEx serves the method instead; WaitForUpdates and our
    # wrapper (vcsim/missing.go) call that one.
    Replacement(
        "wait-for-updates-ex-renamed", "property_collector.go",
        "func (pc *PropertyCollector) WaitForUpdatesEx(ctx *Context, "
        "r *types.WaitForUpdatesEx) soap.HasFault {\n",
        "// Replaced by WaitForUpdatesEx in collector_batch.go "
        "(vsphere_flocker_driver).\n"
        "func (pc *PropertyCollector) waitForUpdatesEx024(ctx *Context, "
        "r *types.WaitForUpdatesEx) soap.HasFault {\n"),
    # Gap 4: the filters to destroy are a copy of the collector's list,
    # not the list their destruction shortens.
    Replacement(
        "destroy-collector-walks-a-copy", "property_collector.go",
        "\tfor _, ref := range pc.Filter {\n"
        "\t\tfilter := ctx.Session.Get(ref).(*PropertyFilter)\n"
        "\t\tfilter.DestroyPropertyFilter(",
        "\tfor _, ref := range append([]types.ManagedObjectReference(nil), "
        "pc.Filter...) {\n"
        "\t\tfilter := ctx.Session.Get(ref).(*PropertyFilter)\n"
        "\t\tfilter.DestroyPropertyFilter("),
)


class PatchFailed(Exception):
    """govmomi's sources are not those the replacements were written for."""


def added_sources():
    """
    :returns: The Go files added to govmomi's simulator package, sorted.
    """
    return sorted(os.path.join(ADDED_DIR, name) for name in os.listdir(ADDED_DIR)
                  if name.endswith(".go"))


def digest_parts():
    """
    What the simulator binary's cache key must cover of these patches.

    :returns: ``[(label, bytes)]``: each replacement, then each added file.
    """
    parts = []
    for replacement in REPLACEMENTS:
        parts.append(("replacement:" + replacement.name, "\0".join(
            [replacement.filename, replacement.old, replacement.new]
        ).encode("utf-8")))
    for path in added_sources():
        with io.open(path, "rb") as source:
            parts.append(("added:" + os.path.basename(path), source.read()))
    return parts


def _read(path):
    # newline="": the text exactly as it is, so that the replacements'
    # "\n" are the file's own.
    with io.open(path, encoding="utf-8", newline="") as source:
        return source.read()


def patched_sources(gopath):
    """
    Apply ``REPLACEMENTS`` to govmomi's files under ``gopath``.

    :raises PatchFailed: a file is missing or a replacement does not match
        exactly once.
    :returns: ``{file name: patched text}``.
    """
    package = os.path.join(gopath, PACKAGE)
    patched = {}
    for replacement in REPLACEMENTS:
        name = replacement.filename
        if name not in patched:
            path = os.path.join(package, name)
            try:
                patched[name] = _read(path)
            except (IOError, OSError) as e:
                raise PatchFailed("cannot read %s for the govmomi patch \"%s\": %s" % (
                    path, replacement.name, e))
        count = patched[name].count(replacement.old)
        if count != 1:
            raise PatchFailed(
                "the govmomi patch \"%s\" matches %s %d times, not once: this "
                "govmomi (%s) differs from the one "
                "vsphere_flocker_driver/testtools/govmomi_patches.py was "
                "written for" % (replacement.name, name, count, package))
        patched[name] = patched[name].replace(replacement.old, replacement.new)
    return patched


def overlay(gopath, directory):
    """
    Write the patched files and a ``go build -overlay`` file into
    ``directory``.

    :raises PatchFailed: see ``patched_sources``.
    :returns: The path of the overlay file.
    """
    package = os.path.abspath(os.path.join(gopath, PACKAGE))
    replace = {}
    for name, text in sorted(patched_sources(gopath).items()):
        path = os.path.join(directory, name)
        with io.open(path, "w", encoding="utf-8", newline="") as target:
            target.write(text)
        replace[os.path.join(package, name)] = os.path.abspath(path)
    for path in added_sources():
        name = os.path.basename(path)
        if os.path.exists(os.path.join(package, name)):
            # Added files must be new to the package, or they would
            # silently replace one of govmomi's.
            raise PatchFailed("govmomi's simulator already has a %s" % (name,))
        replace[os.path.join(package, name)] = path
    path = os.path.join(directory, "overlay.json")
    with io.open(path, "w", encoding="utf-8") as target:
        # json.dumps gives bytes on Python 2.7, text on 3.
        target.write(to_text(json.dumps({"Replace": replace}, sort_keys=True)))
    return path
