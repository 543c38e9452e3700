"""The command line: matridge's own options show in --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from matridge import config

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = [name for name in dir(config) if name.isupper() and "__" not in name]


def help_text(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    )
    return " ".join(done.stdout.split())  # argparse wraps lines


def assert_lists_every_option(text: str) -> None:
    assert "matridge options" in text
    for name in OPTIONS:
        assert "--" + name.lower().replace("_", "-") in text
        assert "SLIDGE__MATRIDGE_" + name in text


def test_the_matridge_command_lists_its_options() -> None:
    text = help_text(
        "import sys; sys.argv = ['matridge', '--help']\n"
        "from matridge.__main__ import main; main()"
    )
    assert_lists_every_option(text)
    assert "--legacy-module" not in text  # preset by the command


def test_slidge_with_the_module_lists_them_through_the_pth_hook() -> None:
    hook = (ROOT / "matridge-help.pth").read_text()
    text = help_text(
        "import sys\n"
        "sys.argv = ['/usr/bin/slidge', '--legacy-module=matridge', '--help']\n"
        + hook
        + "import slidge.main; slidge.main.main()"
    )
    assert_lists_every_option(text)


def test_the_hook_stays_out_of_other_programs() -> None:
    hook = (ROOT / "matridge-help.pth").read_text()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.argv = ['pytest', '--help', 'matridge']\n"
            + hook
            + "print('slidge.main' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "False"
