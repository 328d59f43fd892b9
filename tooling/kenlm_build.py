"""KenLM's command-line tools (`lmplz`, `build_binary`, `query`), compiled from the kenlm source
distribution on PyPI with CMake, and cached.

The Python `kenlm` module only scores; training a model needs `lmplz` and `build_binary`, and
the tests compare our scores with KenLM's own `query`. They need Boost (program_options,
system, thread, unit_test_framework) and zlib headers: as root, missing Debian packages are
installed; otherwise the build stops with one line naming them.
"""

import glob
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata

from core.errors import AuroraError

TOOLS = ("lmplz", "build_binary", "query")
DEBIAN_PACKAGES = [
    "libboost-program-options-dev", "libboost-system-dev", "libboost-thread-dev", "libboost-test-dev", "zlib1g-dev",
]
_HEADERS = ["boost/program_options.hpp", "boost/thread.hpp", "boost/test/unit_test.hpp", "zlib.h"]


def tool_paths(cache_dir: str) -> dict[str, str]:
    return {tool: os.path.join(cache_dir, "bin", tool) for tool in TOOLS}


def _usable(path: str) -> bool:
    """The binary exists and its shared libraries load (`--help` exits without a loader error)."""
    if not os.access(path, os.X_OK):
        return False
    result = subprocess.run([path, "--help"], capture_output=True, text=True)
    return "error while loading shared libraries" not in result.stderr


def _ensure_build_dependencies() -> None:
    missing = [h for h in _HEADERS if not os.path.exists(os.path.join("/usr/include", h))]
    for tool in ("cmake", "make", "c++"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise AuroraError(
            f"building KenLM needs {', '.join(missing)}: install the Debian packages "
            f"{' '.join(DEBIAN_PACKAGES)} cmake g++ make"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", *DEBIAN_PACKAGES, "cmake", "g++", "make"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise AuroraError(f"apt-get could not install {' '.join(DEBIAN_PACKAGES)}: {result.stderr.strip()[-200:]}")


def _kenlm_sdist(directory: str) -> str:
    """The kenlm source distribution from PyPI, the same version as the installed Python module."""
    try:
        version = f"kenlm=={metadata.version('kenlm')}"
    except metadata.PackageNotFoundError:
        version = "kenlm"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         "--no-build-isolation", "--dest", directory, version],
        capture_output=True, text=True,
    )
    archives = glob.glob(os.path.join(directory, "kenlm-*.tar.gz"))
    if result.returncode != 0 or not archives:
        raise AuroraError(f"cannot download the kenlm source distribution: {result.stderr.strip()[-200:]}")
    return archives[0]


def ensure_kenlm_tools(cache_dir: str) -> tuple[dict[str, str], bool]:
    """Paths of the cached tools, building them first when absent; and whether a build happened."""
    paths = tool_paths(cache_dir)
    if all(_usable(p) for p in paths.values()):
        return paths, False
    _ensure_build_dependencies()
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(_kenlm_sdist(tmp)) as archive:
            archive.extractall(tmp, filter="data")
        source = next(p for p in glob.glob(os.path.join(tmp, "kenlm-*")) if os.path.isdir(p))
        build = os.path.join(source, "build")
        os.makedirs(build)
        for command in (
            ["cmake", "..", "-DCMAKE_BUILD_TYPE=Release", "-DCOMPILE_TESTS=OFF"],
            ["make", f"-j{os.cpu_count() or 1}", *TOOLS],
        ):
            result = subprocess.run(command, cwd=build, capture_output=True, text=True)
            if result.returncode != 0:
                tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
                raise AuroraError(f"building KenLM failed at `{' '.join(command)}`: {' '.join(tail)}")
        os.makedirs(os.path.join(cache_dir, "bin"), exist_ok=True)
        for tool, path in paths.items():
            shutil.copy2(os.path.join(build, "bin", tool), path + ".tmp")
            os.replace(path + ".tmp", path)
    return paths, True
