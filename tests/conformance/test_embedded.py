"""The embedded transport against the transport conformance suite."""

from __future__ import annotations

import shutil
import tempfile

import pytest

from boothby.testing import TransportConformance


class TestEmbeddedTransport(TransportConformance):
    transport_name = "embedded"
    server_holds_queues = True

    @pytest.fixture
    def socket_dir(self):
        # Unix socket paths are limited to about 100 bytes, too short for pytest's tmp_path.
        directory = tempfile.mkdtemp(prefix="bbc-")
        yield directory
        shutil.rmtree(directory, ignore_errors=True)

    @pytest.fixture
    def transport_settings(self, socket_dir):
        return {"socket": f"{socket_dir}/embedded.sock"}

    @pytest.fixture
    def unreachable_transport_settings(self, socket_dir):
        return {"socket": f"{socket_dir}/nobody-listens.sock"}

