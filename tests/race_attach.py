"""
One contender of the attach race in tests/test_reliability.py, run as its own
process: build the API from the JSON in argv, wait for the start signal (a
file appearing), attach, and print the outcome as one JSON line.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import json
import os
import sys
import time
import uuid

from vsphere_flocker_driver import vsphere_from_configuration
from vsphere_flocker_driver.flocker_api import AlreadyAttachedVolume


def main(argv):
    settings = json.loads(argv[1])
    api = vsphere_from_configuration(
        cluster_id=uuid.UUID(settings["cluster_id"]), **settings["dataset"])
    api.list_volumes()  # logged in and looked up before the start signal
    deadline = time.time() + 30
    while not os.path.exists(settings["go"]) and time.time() < deadline:
        time.sleep(0.001)
    try:
        api.attach_volume(settings["blockdevice_id"], settings["node"])
        outcome = "attached"
    except AlreadyAttachedVolume:
        outcome = "already attached"
    print(json.dumps({"node": settings["node"], "outcome": outcome}))


if __name__ == "__main__":
    main(sys.argv)
