"""
The module agent.yml names: ``backend: vsphere_flocker_plugin``.

Kept under the original driver's name so existing agent.yml files load
unchanged; everything lives in ``vsphere_flocker_driver``.
"""

from __future__ import absolute_import

from vsphere_flocker_driver import FLOCKER_BACKEND

__all__ = ["FLOCKER_BACKEND"]
