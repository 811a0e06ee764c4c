"""Sphinx configuration of vsphere-flocker-driver's documentation."""

project = "vsphere-flocker-driver"
author = "The vsphere-flocker-driver developers"
copyright = "2026, " + author
extensions = []
master_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
