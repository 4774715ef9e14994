"""The package layout that pyproject.toml cannot declare: one top-level name, ``sagestack``.

The library lives in src/sagestack. The adapters keep their folders at the top of the repository (the design fixes
them) and install as sub-packages of ``sagestack``, so installing sagestack adds no other top-level name. The BentoML
service installs as ``sagestack.bento``: ``sagestack.serving`` is the library's framework-free endpoint core.
"""

from setuptools import find_namespace_packages, find_packages, setup

# folder at the top of the repository -> the sub-package of sagestack it installs as
ADAPTERS = {
    "components": "sagestack.components",
    "pipelines": "sagestack.pipelines",
    "serving": "sagestack.bento",
    "console": "sagestack.console",
    "feature_repo": "sagestack.feature_repo",
}

packages = find_namespace_packages("src", include=["sagestack*"])
for folder, package in ADAPTERS.items():
    packages += [package, *(f"{package}.{sub}" for sub in find_packages(folder))]

setup(packages=packages, package_dir={"": "src", **{package: folder for folder, package in ADAPTERS.items()}})
