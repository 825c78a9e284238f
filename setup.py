"""Package discovery only (metadata lives in pyproject.toml).

`tasks/` installs as `zoo_tasks` and `hardware/` as `zoo_hardware`: import names no
user's `tasks.py` or `hardware.py` can shadow.
"""

from setuptools import find_packages, setup

ROOTS = {"zoo": "zoo", "zoo_tasks": "tasks", "zoo_hardware": "hardware"}
packages = []
for name, folder in ROOTS.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]
setup(packages=packages, package_dir=ROOTS,
      package_data={name: ["**/*.json", "**/*.safetensors", "**/*.npz"] for name in ROOTS})
