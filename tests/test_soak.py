"""The soak test, short form: several nodes at once, then a full account."""

from __future__ import absolute_import, division, print_function, unicode_literals

from vsphere_flocker_driver.assembly import assemble
from vsphere_flocker_driver.testtools.soak import run_soak


def test_concurrent_nodes_lose_nothing_and_never_attach_twice(
        simulator, dataset_config, cluster_id, logger):
    def make_assembly():
        return assemble(cluster_id, **dataset_config).validate()
    nodes = [vm.instance_uuid for vm in simulator.vms]
    report = run_soak(make_assembly, nodes, operations=20, seconds=60, seed=7)
    text = "\n".join(report.lines())
    print(text)
    assert report.ok, text
    assert sum(report.operations.values()) >= len(nodes) * 10, text
    api = make_assembly().api
    for volume in api.list_volumes():
        if volume.attached_to is not None:
            api.detach_volume(volume.blockdevice_id)
        api.destroy_volume(volume.blockdevice_id)
