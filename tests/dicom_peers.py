"""Real DICOM peers for the tests: DCMTK, dicom3tools and Orthanc on loopback.

A missing binary skips the test with a reason locally; under CI (``CI`` set) it fails,
because ``.ci/run`` installs them (dcmtk, dicom3tools, orthanc, orthanc-dicomweb).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def need(tool: str) -> str:
    """Path of ``tool``, else skip (fail under CI) naming the Debian package.

    The system's tools come first: pynetdicom installs its own ``storescu``/``findscu``
    scripts into the virtual environment, which shadow DCMTK's (other options: ``-xs``
    unknown) when the environment is activated."""
    path = shutil.which(tool, path="/usr/sbin:/usr/bin") or shutil.which(tool)
    if path is None:
        package = {"dciodvfy": "dicom3tools", "Orthanc": "orthanc"}.get(tool, "dcmtk")
        message = f"{tool} not installed (Debian package {package}; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines dciodvfy prints for ``path`` (warnings are not errors)."""
    out = subprocess.run([need("dciodvfy"), str(path)], capture_output=True, text=True,
                         timeout=120)
    return [line for line in (out.stdout + out.stderr).splitlines()
            if line.startswith("Error")]


def storescu(port: int, files: list[Path], *, called: str = "RADVIEW",
             calling: str = "STORESCU", extra: tuple[str, ...] = ()
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([need("storescu"), "-aet", calling, "-aec", called, *extra,
                           "127.0.0.1", str(port), *map(str, files)],
                          capture_output=True, text=True, timeout=300)


@dataclass
class Orthanc:
    """A running Orthanc: DIMSE on ``dicom_port`` (AE ``aet``), REST/DICOMweb on
    ``http_port``."""

    aet: str
    dicom_port: int
    http_port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def rest(self, path: str, body: Any = None) -> Any:
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data,
                                     method="POST" if data is not None else "GET")
        with urllib.request.urlopen(req, timeout=30) as rsp:
            raw = rsp.read()
        try:
            return json.loads(raw)
        except ValueError:
            return raw


def start_orthanc(folder: Path, modalities: dict[str, tuple[str, str, int]]) -> Orthanc:
    """Start Orthanc with its storage under ``folder`` and the given DICOM modalities
    (name → (AE title, host, port)); waits until its REST API answers."""
    binary = need("Orthanc")
    folder.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port = free_port(), free_port()
    config: dict[str, Any] = {
        "Name": "radview-test", "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"), "DicomAet": "ORTHANC",
        "DicomPort": dicom_port, "HttpPort": http_port, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "DicomCheckCalledAet": True,
        "DicomModalities": {k: list(v) for k, v in modalities.items()},
        "StableAge": 1,
    }
    if DICOMWEB_PLUGIN.exists():
        config["Plugins"] = [str(DICOMWEB_PLUGIN)]
        config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
    elif os.environ.get("CI"):
        pytest.fail("orthanc-dicomweb not installed (.ci/run installs it)")
    (folder / "orthanc.json").write_text(json.dumps(config, indent=1))
    log = folder / "orthanc.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=out,
                                   stderr=subprocess.STDOUT)
    server = Orthanc("ORTHANC", dicom_port, http_port, process, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            server.rest("/system")
            return server
        except (urllib.error.URLError, ConnectionError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                stop_orthanc(server)
                pytest.fail(f"Orthanc did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)


def stop_orthanc(server: Orthanc) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)
