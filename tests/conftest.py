import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import HostServer, InProcessHost  # noqa: E402
from pack_import import load_pure  # noqa: E402,F401  (re-exported for tests)


@pytest.fixture(scope="session")
def host():
    """The real host, in-process, with all node packs (ours included) registered."""
    return InProcessHost()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The real HTTP server, started once per session and stopped even on failure."""
    srv = HostServer(tmp_path_factory.mktemp("server-output"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def tiny(host):
    """(model, clip, vae) of the tiny checkpoint, loaded by the host's own loader."""
    return host.load_checkpoint()
