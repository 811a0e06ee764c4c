"""
Packaging for vsphere-flocker-driver.

The version ranges admit the libraries Flocker 1.15 pins in its own Python 2.7
virtualenv (eliot 0.11.0, pyrsistent 0.11.13, Twisted 16.6.0, zope.interface
4.3.3, bitmath 1.3.1.2, PyYAML 3.12, six 1.10.0), so that installing this
backend there never upgrades them.
"""

from setuptools import find_packages, setup

with open("README.md") as readme:
    long_description = readme.read()

setup(
    name="vsphere-flocker-driver",
    version="1.0.0.dev0",
    description="Flocker block-device backend for VMware vSphere",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache 2.0",
    packages=find_packages(exclude=["tests", "tests.*"]),
    py_modules=["vsphere_flocker_plugin"],
    package_data={
        "vsphere_flocker_driver.testtools": ["vcsim/*.go"],
    },
    python_requires=">=2.7, !=3.0.*, !=3.1.*, !=3.2.*, !=3.3.*, !=3.4.*, "
                    "!=3.5.*, !=3.6.*, !=3.7.*, !=3.8.*",
    install_requires=[
        "pyvmomi >= 7.0.3",
        "zope.interface >= 4.3.3",
        "eliot >= 0.11.0",
        "bitmath >= 1.3.1.2",
        "pyrsistent >= 0.11.13",
        "twisted >= 16.6.0",
        # Flocker's profile names are constants of this (Twisted's own
        # dependency).
        "constantly >= 15.1.0",
        "PyYAML >= 3.12",
        "six >= 1.10.0",
    ],
    entry_points={
        "console_scripts": [
            "vsphere-flocker = vsphere_flocker_driver.cli:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 2.7",
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
    ],
)
