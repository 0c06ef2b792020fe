"""Map the top-level folders to presso.* packages (no top-level `kernels`/`server` is ever installed).

`server/`, `kernels/` and `compression/` have no `__init__.py`: each is a namespace portion of
`presso.server`, `presso.kernels`, `presso.compression`. From the repo root (where Python puts the
folders on sys.path) a namespace portion never shadows an installed package: `import kernels` still
finds Hugging Face's `kernels`, which transformers imports. Their subpackages are regular packages.
`loadtest` (an HTTP-only load generator that imports nothing of presso) installs under its own name.
"""

from setuptools import find_packages, setup

ROOTS = {"presso.server": "server", "presso.kernels": "kernels", "presso.compression": "compression",
         "loadtest": "loadtest"}

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

# the native kernels' C sources are built on the user's machine at first use (kernels/native/build.py)
setup(packages=packages, package_dir=ROOTS, package_data={"presso.kernels.native": ["*.c"]})
