import re

from setuptools import find_namespace_packages, setup

with open("tap_wootric/version.py", encoding="utf-8") as version_file:
    VERSION = re.search(r'VERSION = "([^"]+)"', version_file.read()).group(1)
with open("README.md", encoding="utf-8") as readme_file:
    LONG_DESCRIPTION = readme_file.read()

setup(
    name="singer-tap-wootric",
    version=VERSION,
    description="Singer tap for Wootric (InMoment): NPS, CSAT and CES survey end users, responses and declines",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    author="tap-wootric developers",
    license="Apache-2.0",
    url="https://github.com/tap-wootric/tap-wootric",
    classifiers=[
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
    ],
    python_requires=">=3.10",
    # The license is the SPDX `license` above: setuptools warns about license classifiers. The schemas
    # directory is a data package with no __init__.py, so namespace discovery names it explicitly.
    # package_dir lets an editable install be a plain path entry, without setuptools' warning about its
    # import finder.
    package_dir={"": "."},
    packages=find_namespace_packages(include=["tap_wootric", "tap_wootric.*"]),
    package_data={"tap_wootric.schemas": ["*.json"]},
    include_package_data=True,
    install_requires=[
        "singer-python>=6.0,<7",
        "requests>=2.25,<3",
        "backoff>=2.1,<3",
        "pendulum>=2.1,<4",
        "orjson>=3.9,<4",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "pytest-xdist>=3",
            "pyyaml>=5",
            "ruff>=0.4",
            "strict-rfc3339>=0.7",
            "yamllint>=1.30",
        ],
    },
    entry_points={"console_scripts": ["tap-wootric=tap_wootric:main"]},
)
