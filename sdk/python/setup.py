"""Records where the package was installed from, so that a non-editable
install still finds the library built in that source tree (twin/_native.py
looks in its build directories). Nothing is compiled."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent.parent.parent
        if (root / "include" / "twin" / "twin.h").is_file():
            out = Path(self.build_lib) / "twin" / "_build_info.py"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text('"""Written at install time by setup.py."""\n\n'
                           f"SOURCE_ROOT = {str(root)!r}\n")


setup(cmdclass={"build_py": BuildPy})
