"""Meta-tests of the conformance suites: every contract member has a test, and boothby itself never needs pytest."""

from __future__ import annotations

import subprocess
import sys

from boothby.testing import SUITES
from boothby.testing.contract import conformance_tests, uncovered_members, unknown_members


def test_every_contract_member_has_a_test():
    missing = sorted(uncovered_members(SUITES))
    assert not missing, (
        f"no conformance test declares @covers for {missing}; add a test to the suite in boothby/testing "
        "that exercises each of them"
    )


def test_no_test_claims_a_removed_member():
    unknown = sorted(unknown_members(SUITES))
    assert not unknown, f"conformance tests declare members the contract no longer has: {unknown}"


def test_every_conformance_test_declares_members():
    undeclared = sorted(name for name, members in conformance_tests(SUITES).items() if not members)
    assert not undeclared, f"these conformance tests have no @covers(...) mark: {undeclared}"


def test_import_boothby_does_not_import_pytest():
    program = (
        "import sys\n"
        "import boothby, boothby.cli, boothby.deflector, boothby.grappler, boothby.plugins\n"
        "from boothby.plugins import load_registry\n"
        "load_registry()\n"
        "print('pytest' in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "False", "importing boothby or loading its plugins imported pytest"
