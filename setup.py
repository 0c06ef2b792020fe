"""Map the top-level folders to presso.* packages (no top-level `kernels`/`server` is ever installed).

`loadtest` (an HTTP-only load generator that imports nothing of presso) installs under its own name.
"""

from setuptools import find_packages, setup

ROOTS = {"presso.server": "server", "presso.kernels": "kernels", "presso.compression": "compression",
         "loadtest": "loadtest"}

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=ROOTS)
