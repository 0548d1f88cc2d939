"""The OpenMP wait policy sinfree sets on import (src/sinfree/__init__.py): sleeping by default, the user's wins."""

import os
import subprocess
import sys

import pytest

# the command-line entry point sets it (the library leaves the environment alone: tests/test_cli.py)
CODE = "import os, sys; sys.argv = ['sinfree', '--version']; from sinfree.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\nprint(os.environ['OMP_WAIT_POLICY'])"


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_wait_policy_defaults_to_passive_and_keeps_the_users(given, expected):
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if given is not None:
        environment["OMP_WAIT_POLICY"] = given
    done = subprocess.run([sys.executable, "-c", CODE], env=environment, capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == expected
