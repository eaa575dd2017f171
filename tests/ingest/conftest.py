"""Fixtures of the ingest tests: the `twin` binary, a real `twin serve`
(its schema registry API) and the twin files the tests run live."""
import os
import signal
import subprocess

import pytest

TWIN = os.environ["TWIN_BIN"]
SOURCE = os.environ["TWIN_SOURCE_DIR"]


class Server:
    def __init__(self, tmp_path):
        cmd = [TWIN, "serve", "--listen", "127.0.0.1:0", "--data",
               str(tmp_path / "serve")]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), \
            line + self.p.stderr.read()
        self.url = line.strip().split(" ", 2)[2]

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.communicate(timeout=15)


@pytest.fixture
def serve(tmp_path):
    s = Server(tmp_path)
    yield s
    s.stop()


def twin(*args, timeout=300, **kw):
    return subprocess.run([TWIN, *args], capture_output=True, text=True,
                          timeout=timeout, **kw)
