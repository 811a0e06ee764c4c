"""
The README's demonstration runs, and shows the data moving, and a volume
through a Storage vMotion.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

from vsphere_flocker_driver.testtools import demo
from vsphere_flocker_driver.testtools.virtual_guest import loop_devices_available


def test_demonstration_moves_data_between_nodes(capsys, simulator):
    # The ``simulator`` fixture is asked for so that the test skips (or, in
    # CI, fails) where no simulator can be built; the demo starts its own.
    assert demo.run() == 0
    output = capsys.readouterr().out
    assert "Destroy it" in output and "(no volumes)" in output
    # The Storage vMotion: the disk renamed after the VM, then back home.
    assert "] DC0_H0_VM0/DC0_H0_VM0_1.vmdk" in output
    assert output.count("] FLOCKER/<cluster>/bronze/") >= 4
    if loop_devices_available()[0]:
        assert "byte for byte what node A wrote" in output
