"""Builds the C extension matridge._core (metadata lives in pyproject.toml).

Set MATRIDGE_SANITIZE=1 to build with AddressSanitizer and UBSan (then run
Python with LD_PRELOAD=$(gcc -print-file-name=libasan.so)), and
MATRIDGE_DEBUG=1 for an unoptimised build with symbols.
"""

import glob
import os

from setuptools import Extension, setup
from setuptools.command.build_py import build_py


class BuildWithHelpHook(build_py):
    """Installs matridge-help.pth beside the package: it lets
    `slidge --legacy-module=matridge --help` list matridge's options."""

    def run(self) -> None:
        super().run()
        self.copy_file("matridge-help.pth", os.path.join(self.build_lib, "matridge-help.pth"))


compile_args = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden"]
link_args: list[str] = []

# Sanitizer builds run the production arena path: under ASan the arena puts
# a poisoned red zone after each allocation, every JSON node included
# (csrc/util/arena.c, csrc/util/jsonparse.c).
if os.environ.get("MATRIDGE_SANITIZE") == "thread":
    flags = ["-fsanitize=thread", "-fno-omit-frame-pointer", "-g", "-O1"]
    compile_args += flags
    link_args += flags
elif os.environ.get("MATRIDGE_SANITIZE"):
    flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1"]
    compile_args += flags
    link_args += flags
elif os.environ.get("MATRIDGE_DEBUG"):
    compile_args += ["-g", "-O0"]

setup(
    cmdclass={"build_py": BuildWithHelpHook},
    ext_modules=[
        Extension(
            "matridge._core",
            # csrc/ is layered (util <- matrix <- engine <- py, see
            # docs/architecture.rst); includes name the layer: "util/arena.h".
            sources=sorted(glob.glob("csrc/**/*.c", recursive=True)),
            depends=sorted(glob.glob("csrc/**/*.h", recursive=True)),
            include_dirs=["csrc", "/usr/include/cjson"],
            libraries=["curl", "cjson", "pthread"],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        )
    ],
)
