"""Setup for fundus_mtl: reads settings.ini (nbdev 2 style, written by hand: nbdev_new needs the network)."""
from configparser import ConfigParser
from pathlib import Path

import setuptools

here = Path(__file__).parent
cfg = ConfigParser(delimiters=["="])
cfg.read(here / "settings.ini", encoding="utf-8")
s = cfg["DEFAULT"]

licenses = {"apache2": "Apache-2.0"}  # SPDX expression (license classifiers are deprecated)
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable"]

setuptools.setup(
    name=s["lib_name"],
    version=s["version"],
    description=s["description"],
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author=s["author"],
    author_email=s["author_email"],
    license=licenses[s["license"]],
    url=s["git_url"],
    keywords=s["keywords"].split(),
    classifiers=[
        "Development Status :: " + statuses[int(s["status"])],
        "Intended Audience :: " + s["audience"].title(),
        "Natural Language :: " + s["language"].title(),
        "Programming Language :: Python :: 3.11",
    ],
    # fundus_mtl.weights (the shipped camera model and its card) is a data-only folder: named as a package, setuptools
    # keeps it (left to include_package_data it warns "Package would be ignored" and a later release drops it)
    packages=setuptools.find_packages(include=["fundus_mtl", "fundus_mtl.*"]) + ["fundus_mtl.weights"],
    include_package_data=True,
    package_data={"fundus_mtl.weights": ["*.onnx", "*.md"]},
    python_requires=">=" + s["min_python"],
    install_requires=s["requirements"].split(),
    extras_require={"camera": s.get("camera_requirements", "").split(), "train": s["train_requirements"].split(),
                    "dev": s["train_requirements"].split() + s["dev_requirements"].split()},
    entry_points={
        "console_scripts": s["console_scripts"].split(),
        "nbdev": [f'{s["lib_path"]}={s["lib_path"]}._modidx:d'],
    },
    zip_safe=False,
)
