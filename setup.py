"""
Packaging for vsphere-flocker-driver.

One sdist and one universal (``py2.py3``) wheel serve both interpreters: Python
2.7, inside Flocker 1.15's own virtualenv (``/opt/flocker``), where operators
install with that virtualenv's pip 8.1.2; and Python 3.

The dependency bounds admit the libraries the released Flocker 1.15.0 pins
(``requirements/flocker-1.15-py27.txt``: Twisted 16.2.0, zope.interface 4.2.0,
bitmath 1.3.0.2, PyYAML 3.11, eliot 0.11.0, pyrsistent 0.11.13, six 1.10.0),
so that installing there adds this project and pyVmomi and changes nothing
else (``tests/test_packaging.py`` checks it).  Where the two interpreters need
different requirements they are environment markers, which the wheel's
metadata carries to the interpreter that installs it: a test of
``sys.version_info`` here would be decided once, by whichever Python built the
wheel.  pip 8.1.2 understands these markers but ignores ``Requires-Python``,
so a requirement that has Python-3-only releases is bounded below them on 2.7.

This file runs under setuptools 23 on Python 2.7 (pip 8.1.2 building the
sdist) as well as under current setuptools on Python 3.
"""

import io
import os
import re

import setuptools
from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))

#: The project's public home.  It has none yet: fill this in when it does.
URL = "https://example.invalid/vsphere-flocker-driver"


def read(*parts):
    """The text of a file of the source tree."""
    with io.open(os.path.join(HERE, *parts), encoding="utf-8") as source:
        return source.read()


def license_metadata():
    """
    The licence as this setuptools records it: current ones (77 and later)
    take an SPDX expression and deprecate licence classifiers; setuptools 23
    (pip 8.1.2 building the sdist on Python 2.7) knows only the free-text
    field and the classifier.

    :returns: ``(setup keywords, classifiers)``
    """
    if int(setuptools.__version__.split(".")[0]) >= 77:
        return {"license_expression": "Apache-2.0"}, []
    return ({"license": "Apache-2.0"},
            ["License :: OSI Approved :: Apache Software License"])


LICENSE_KEYWORDS, LICENSE_CLASSIFIERS = license_metadata()


def version():
    """The one version string, ``vsphere_flocker_driver.__version__``."""
    match = re.search(r'^__version__ = "([^"]+)"$',
                      read("vsphere_flocker_driver", "__init__.py"), re.M)
    return match.group(1)


setup(
    name="vsphere-flocker-driver",
    version=version(),
    description="Flocker block-device backend for VMware vSphere",
    long_description=read("README.md"),
    long_description_content_type="text/markdown",
    url=URL,
    author="The vsphere-flocker-driver developers",
    license_files=["LICENSE"],
    packages=find_packages(exclude=["tests", "tests.*"]),
    py_modules=["vsphere_flocker_plugin"],
    # The simulator the test tools build from these sources.
    package_data={
        "vsphere_flocker_driver.testtools": ["vcsim/*.go", "vcsim/govmomi/*.go"],
    },
    python_requires=">=2.7, !=3.0.*, !=3.1.*, !=3.2.*, !=3.3.*, !=3.4.*, "
                    "!=3.5.*, !=3.6.*, !=3.7.*, !=3.8.*",
    install_requires=[
        "zope.interface >= 4.2.0",
        "eliot >= 0.11.0",
        "bitmath >= 1.3.0.2",
        "pyrsistent >= 0.11.13",
        "Twisted >= 16.2.0",
        "PyYAML >= 3.11",
        "six >= 1.10.0",
    ],
    # Requirements for one interpreter, keyed by an environment marker: the
    # form that setuptools 23's egg_info writes as marker sections of
    # requires.txt, which pip 8.1.2 evaluates when it installs the sdist.  (It
    # does not evaluate a marker written inline in install_requires there:
    # it would fetch the Python 3 requirements on 2.7 too.)
    extras_require={
        ':python_version < "3"': [
            # 9.0 and later are Python 3 only; on 2.7 pip resolves
            # 8.0.3.0.1, and the test suite runs on it.
            "pyvmomi >= 7.0.3, < 9",
        ],
        ':python_version >= "3"': [
            "pyvmomi >= 7.0.3",
            # Flocker's profile names are constants: Twisted 16.2 (Flocker
            # 1.15's) has them as twisted.python.constants; later Twisted
            # moved them out into this package.
            "constantly >= 15.1.0",
        ],
    },
    # One wheel for both interpreters, tagged py2.py3: the code is a single
    # source for Python 2.7 and 3 with no compiled parts.  (The same tag as
    # the older `universal = 1`, which current setuptools deprecates.)
    options={"bdist_wheel": {"python_tag": "py2.py3"}},
    entry_points={
        "console_scripts": [
            "vsphere-flocker = vsphere_flocker_driver.cli:main",
        ],
    },
    classifiers=[
        "Development Status :: 4 - Beta",
        "Environment :: Console",
        "Intended Audience :: System Administrators",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python",
        "Programming Language :: Python :: 2",
        "Programming Language :: Python :: 2.7",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Filesystems",
    ] + LICENSE_CLASSIFIERS,
    **LICENSE_KEYWORDS
)
